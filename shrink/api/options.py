"""`PassOptions`: the base of every typed options class (passes, sources, data providers, input specs).

The JSON Schema of a recipe section is generated from its options class; pydantic validators are the
cross-field checks and run at plan time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict


class PassOptions(BaseModel):
    """Base class for typed options: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    search_space: ClassVar[dict[str, dict[str, Any]]] = {}
    """The spaces `shrink search` explores for the main options when a recipe writes no `$search` of its own, as
    `{"ratio": {"float": [0.1, 0.7]}, "epochs": {"choice": [15, 30]}}` (`shrink.plan.spaces`); each must lie inside
    its option's bounds."""

    @classmethod
    def from_section(cls, section: Mapping[str, Any], discriminator: str) -> Self:
        """The options a recipe section writes: all its keys but `discriminator` (`"source"`, `"pass"`, ...) and the
        `description` note. Raises pydantic's `ValidationError`."""
        return cls.model_validate({k: v for k, v in section.items() if k not in (discriminator, "description")})
