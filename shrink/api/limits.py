"""Sane upper bounds checked at plan time, so an absurd recipe fails fast instead of exhausting memory."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, Field, PositiveInt

from shrink.support.units import human_bytes

MAX_INPUT_ELEMENTS = 1 << 28  # one input of 2**28 float32 elements is 1 GiB


def check_input_shape(shape: list[int]) -> list[int]:
    """Refuse one model input larger than `MAX_INPUT_ELEMENTS` (computed exactly, never allocated)."""
    elements = math.prod(shape)
    if elements > MAX_INPUT_ELEMENTS:
        raise ValueError(f"input_shape {shape} has {elements:.3g} elements ({human_bytes(4 * elements, digits=0)} as float32); "
                         f"one input may have at most 2**28 = {MAX_INPUT_ELEMENTS:,} elements (1 GiB of float32)")
    return shape


InputShape = Annotated[list[PositiveInt], Field(min_length=1, max_length=8), AfterValidator(check_input_shape)]
"""A model input's shape, batch first: 1 to 8 positive dims, at most 2**28 elements in all."""
