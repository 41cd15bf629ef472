"""What the folder sources (images, audio) share: scanning the declared folders, labels from class
subfolders, the splits, the plan-time checks against the model's input and a fingerprint without decoding.

A source subclasses `FolderProvider` with its `Options` (a `FolderOptions`), `resolve()` (its preprocessing,
defaulted from the model's input) and `decode()` (one file to one sample).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from shrink import Dataset, PlanContext, Split, UsageError
from shrink.api.context import Context
from shrink_common.samples import SampleSpec, data_input, sample_problems
from shrink_data.base import SplitProvider
from shrink_data.files import Folder, listing_digest, scan
from shrink_data.lazy import Decoder, LazySamples
from shrink_data.options import SplitOptions
from shrink_data.splits import size_problems, split_orders


class FolderOptions(SplitOptions):
    """Split options plus the class order of labelled folders."""

    classes: list[str] | SkipJsonSchema[None] = Field(
        None, min_length=1, description="label order: class subfolder names, label i = classes[i] (default: the "
                                        "subfolder names sorted)")


class Prep(Protocol):
    """A source's resolved preprocessing: what one sample becomes."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    dtype: str

    def describe(self) -> str: ...


OptionsT = TypeVar("OptionsT", bound=FolderOptions)
VERIFY_LIMIT = 20_000  # files whose headers load() reads up front
HELD_OUT_FOLDERS = ("val", "validation", "eval", "test")  # beside `train/`: the eval split, first found in this order


class FolderProvider(SplitProvider[OptionsT]):
    """A data source reading one folder (split by seed) or one folder per declared split."""

    extensions: ClassVar[tuple[str, ...]]
    kind: ClassVar[str]  # what the files are, in messages ("images")

    def __init__(self, options: OptionsT) -> None:
        super().__init__(options)
        self._scans: dict[Path, tuple[Folder | None, list[str]]] = {}  # listings by folder, for this plan

    @classmethod
    def claims(cls, path: str) -> dict[str, Any] | None:
        """A folder holding files of this kind (flat, or in class subfolders); one with a train folder and a held-out
        folder beside it (`train/` and `val/`, `validation/`, `eval/` or `test/`) declares those splits."""
        folder = Path(path)
        if not folder.is_dir() or not cls._holds_files(folder):
            return None
        subfolders = {p.name.lower(): p.name for p in folder.iterdir() if p.is_dir() and cls._holds_files(p)}
        held_out = next((subfolders[n] for n in HELD_OUT_FOLDERS if n in subfolders), None)
        if "train" in subfolders and held_out:
            return {"train": str(Path(path) / subfolders["train"]), "eval": str(Path(path) / held_out)}
        return {"path": path}

    @classmethod
    def _holds_files(cls, folder: Path) -> bool:
        return any(any(f.lower().endswith(cls.extensions) for f in files) for _, _, files in os.walk(folder))

    # to implement ---------------------------------------------------------------------------------

    def resolve(self, spec: Mapping[str, Any] | None) -> tuple[Prep | None, list[str]]:
        """The preprocessing for the model's one data-fed input `spec` (None: unknown), or None and why not."""
        raise NotImplementedError

    def decode(self, path: Path, prep: Any) -> np.ndarray:
        raise NotImplementedError

    def open_header(self, path: Path) -> None:
        """Read a file's header (cheap, no decoding); raise when it is not a readable file of this kind."""
        raise NotImplementedError

    def record(self, prep: Any, input_name: str, labels: list[str] | None) -> dict[str, Any]:
        """The preprocessing record of `prep` feeding model input `input_name` (`shrink_data.records`)."""
        raise NotImplementedError

    # plan time ------------------------------------------------------------------------------------

    def labelled(self, path: Callable[[str], Path]) -> bool:
        """Labelled when the folders that train and evaluate (else the only one) have class subfolders."""
        return self._labelled(self._scan_all(path)[0])

    def _labelled(self, folders: Mapping[str, Folder]) -> bool:
        used = [folders[k] for k in ("all", "train", "eval") if k in folders] or list(folders.values())
        return all(folder.labelled for folder in used) if used else True

    def _scan_all(self, path: Callable[[str], Path], fresh: bool = False) -> tuple[dict[str, Folder], list[str]]:
        """The declared folders' listings (kept for the plan's repeated questions; `fresh` lists them again)."""
        if fresh:
            self._scans.clear()
        folders, problems = {}, []
        for split, value in self.options.declared().items():
            root = path(value)
            if root not in self._scans:
                self._scans[root] = scan(root, self.extensions, self.kind, "path" if split == "all" else split,
                                         self.options.classes)
            folder, found = self._scans[root]
            problems += found
            if folder is not None:
                folders[split] = folder
        return folders, problems

    def problems(self, plan: PlanContext) -> list[str]:
        """The folders exist and hold files, the splits can be cut, and one preprocessed sample fits the model."""
        folders, problems = self._scan_all(plan.path)
        if "all" in folders:
            folder = folders["all"]
            classes = self.options.classes or folder.classes
            problems += size_problems(len(folder.files), folder.labels(classes), classes, self.options,
                                      f"path: folder {str(folder.root)!r}")
        prep, found = self.resolve(data_input(plan.inputs))
        problems += found
        if prep is not None:
            problems += sample_problems(plan.inputs, SampleSpec(prep.shape, prep.dtype), prep.describe())
        return problems

    # run time -------------------------------------------------------------------------------------

    def _prepared(self, ctx: Context) -> tuple[dict[str, Folder], Prep]:
        folders, problems = self._scan_all(ctx.path, fresh=True)
        prep, found = self.resolve(data_input(ctx.inputs))
        problems += found
        if problems or prep is None:
            raise UsageError(problems[0] if problems else f"cannot prepare the {self.kind}", where=f"{ctx.recipe.label}: data")
        return folders, prep

    def preprocessing(self, ctx: Context, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The record of the preprocessing `load()` applies (resolved as it resolves it), for the final model's one
        input fed by data, with the class names when the folders are labelled."""
        spec = data_input(inputs)
        if spec is None:
            return None
        folders, prep = self._prepared(ctx)
        labels = self.options.classes or sorted({name for folder in folders.values() for name in folder.classes})
        return self.record(prep, str(spec["name"]), labels if self._labelled(folders) else None)

    def fingerprint(self, ctx: Context) -> str | None:
        """The options, the resolved preprocessing and every file's path, size and modification time."""
        return self._fingerprint(*self._prepared(ctx))

    def _fingerprint(self, folders: Mapping[str, Folder], prep: Prep) -> str:
        digest = hashlib.sha256(self.options.model_dump_json().encode())
        digest.update(json.dumps(dataclasses.asdict(prep), sort_keys=True).encode())  # type: ignore[call-overload]
        for split, folder in sorted(folders.items()):
            digest.update(f"{split}\0{listing_digest(folder.root, folder.files)}\n".encode())
        return "quick-" + digest.hexdigest()

    def _verify(self, folders: Mapping[str, Folder], recipe: str) -> None:
        """Every file's header reads (up to VERIFY_LIMIT files; beyond, a bad file is reported when it is decoded),
        so that a broken file is a usage error now, naming it, rather than a failure inside a pass."""
        bad: list[str] = []
        checked = 0
        for key, folder in folders.items():
            for path in folder.files[:max(0, VERIFY_LIMIT - checked)]:
                try:
                    self.open_header(path)
                except Exception as exc:  # noqa: BLE001 - whatever the library raises, this file cannot be read
                    bad.append(f"data.{'path' if key == 'all' else key}: cannot read {str(path)!r}: {type(exc).__name__}: {exc}")
            checked += len(folder.files)
        if bad:
            more = f" (and {len(bad) - 1} more unreadable files)" if len(bad) > 1 else ""
            raise UsageError(bad[0] + more, where=recipe)

    def load(self, ctx: Context) -> Dataset:
        folders, prep = self._prepared(ctx)
        self._verify(folders, ctx.recipe.label)
        opts = self.options
        classes = opts.classes or sorted({name for folder in folders.values() for name in folder.classes})
        labels = {key: None if (found := folder.labels(classes)) is None else np.asarray(found, dtype=np.int64)
                  for key, folder in folders.items()}
        decoders = {key: Decoder(_reading(self.decode, folder, prep, f"data.{'path' if key == 'all' else key}",
                                          ctx.recipe.label), prep.shape, prep.dtype)
                    for key, folder in folders.items()}
        orders = split_orders({key: len(folder.files) for key, folder in folders.items()}, labels, opts)
        splits = {name: Split(LazySamples(decoders[key], order), None if labels[key] is None else _frozen(labels[key][order]))
                  for name, (key, order) in orders.items()}
        labelled = self._labelled(folders)
        meta = {"classes": classes if labelled else [], "preprocessing": dataclasses.asdict(prep),
                "folders": {name: str(folder.root) for name, folder in folders.items()},
                "sizes": {name: len(split) for name, split in splits.items()}}
        return Dataset(self.name, "classification" if labelled else self.name, splits, self._fingerprint(folders, prep), meta)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _reading(decode: Callable[[Path, Any], np.ndarray], folder: Folder, prep: Any, key: str,
             recipe: str) -> Callable[[int], np.ndarray]:
    """The decoder of `folder`'s file at an index; a file that cannot be read is a usage error naming it."""
    def run(index: int) -> np.ndarray:
        path = folder.files[index]
        try:
            return decode(path, prep)
        except Exception as exc:
            raise UsageError(f"{key}: cannot read {str(path)!r}: {type(exc).__name__}: {exc}", where=recipe) from exc
    return run
