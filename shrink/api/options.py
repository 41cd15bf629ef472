"""`PassOptions`: the base of every typed options class (passes, sources, data providers, input specs).

The JSON Schema of a recipe section is generated from its options class; pydantic validators are the
cross-field checks and run at plan time.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PassOptions(BaseModel):
    """Base class for typed options: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
