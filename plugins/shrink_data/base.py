"""The base of the file-based data sources: splits declared by the options, labels known from the files."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from shrink import DataProvider, PlanContext
from shrink.api.context import Context
from shrink_data.files import file_digest
from shrink_data.options import SplitOptions

OptionsT = TypeVar("OptionsT", bound=SplitOptions)


class SplitProvider(DataProvider[OptionsT]):
    """A data source over recipe files (`path`, or declared `train` / `calibration` / `eval`).

    Whether the samples are labelled depends on the files (class subfolders, a label field or column), which
    only a recipe path resolver can find: `check()` keeps the plan's, and `labels` answers from it."""

    def __init__(self, options: OptionsT) -> None:
        super().__init__(options)
        self._recipe_path: Callable[[str], Path] | None = None

    @property
    def splits(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.options.split_names()

    @property
    def labels(self) -> bool:  # type: ignore[override]
        """True when the samples that train and evaluate are labelled (True until `check()` has seen the files,
        so that nothing is refused for want of a listing)."""
        return True if self._recipe_path is None else self.labelled(self._recipe_path)

    def labelled(self, path: Callable[[str], Path]) -> bool:
        """Whether the declared files, resolved with `path`, are labelled (True when they cannot be read: their
        problems are reported by `problems()`)."""
        raise NotImplementedError

    def check(self, plan: PlanContext) -> list[str]:
        self._recipe_path = plan.path
        return self.problems(plan)

    def fingerprint(self, ctx: Context) -> str | None:
        """The options and each declared file's content hash (size and modification time for files over 64 MiB);
        folder sources list their files instead."""
        digest = hashlib.sha256(self.options.model_dump_json().encode())
        for key, value in sorted(self.options.declared().items()):
            path = ctx.path(value)
            if not path.is_file():
                return None
            digest.update(f"{key}\0{file_digest(path)}\n".encode())
        return "quick-" + digest.hexdigest()

    def problems(self, plan: PlanContext) -> list[str]:
        """Plan-time problems: the files, the split sizes, the samples against `plan.inputs`."""
        return []
