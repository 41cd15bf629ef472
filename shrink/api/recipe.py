"""`Recipe`: a loaded recipe as passes see it (its raw JSON, name, seed, budget, and path resolution)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.errors import Problem


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe; `raw` is the JSON after migration, `problems` what the envelope schema found.

    Planning goes on despite envelope problems so that every problem is reported at once.
    """

    path: Path
    raw: dict[str, Any]
    problems: tuple[Problem, ...] = ()

    @property
    def label(self) -> str:
        return self.path.name

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return str(self.raw.get("name", self.path.stem))

    @property
    def seed(self) -> int:
        return int(self.raw.get("seed", 0))

    @property
    def budget(self) -> dict[str, Any]:
        """The budget's gates and settings (its `description`, a note for people, left out)."""
        budget = self.raw.get("budget")
        return {k: v for k, v in budget.items() if k != "description"} if isinstance(budget, dict) else {}

    def resolve_path(self, value: str) -> Path:
        """Relative paths resolve against the recipe file's directory, never the working directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()
