"""Finding the samples on disk: folders of media files (class subfolders or flat), and cheap fingerprints.

Listing reads directory entries only, never file contents, so plan-time checks and the pass-cache key cost
a directory walk even for a folder of a million images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm")
AUDIO_EXTENSIONS = (".wav",)
SPLIT_FOLDER_NAMES = {"train", "training", "val", "valid", "validation", "eval", "test", "calibration", "calib"}
SMALL_FILE = 64 * 1024 * 1024  # files up to this size are fingerprinted by content, larger ones by size and mtime


@dataclass(frozen=True)
class Folder:
    """The media files of one folder, sorted; `file_classes` names each file's class subfolder (None: a flat,
    unlabelled folder)."""

    root: Path
    files: tuple[Path, ...]
    file_classes: tuple[str, ...] | None

    @property
    def labelled(self) -> bool:
        return self.file_classes is not None

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.file_classes or ()))

    def labels(self, classes: Sequence[str]) -> list[int] | None:
        """Each file's label: the index of its class in `classes`."""
        if self.file_classes is None:
            return None
        index = {name: i for i, name in enumerate(classes)}
        return [index[name] for name in self.file_classes]


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _media(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Media files anywhere under `folder` (hidden entries skipped), sorted by path."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        found += [Path(here) / f for f in files if _visible(f) and f.lower().endswith(extensions)]
    return sorted(found)


def scan(root: Path, extensions: tuple[str, ...], kind: str, key: str,
         classes: Sequence[str] | None = None) -> tuple[Folder | None, list[str]]:
    """List `root` as an ImageFolder-style tree (one subfolder per class) or a flat folder of `kind` files.
    Returns the folder, or None and one message per problem, each naming the option `key` and the folder."""
    where = f"{key}: folder {str(root)!r}"
    if not root.exists():
        return None, [f"{key}: no such folder {str(root)!r}"]
    if not root.is_dir():
        return None, [f"{key}: {str(root)!r} is a file, not a folder of {kind}"]
    entries = sorted(p for p in root.iterdir() if _visible(p.name))
    loose = [p for p in entries if p.is_file() and p.name.lower().endswith(extensions)]
    subfolders = [p for p in entries if p.is_dir()]
    by_class = {p.name: _media(p, extensions) for p in subfolders}
    if not loose and not any(by_class.values()):
        if subfolders and {p.name.lower() for p in subfolders} <= SPLIT_FOLDER_NAMES:
            return None, [f"{where} holds split folders ({', '.join(p.name for p in subfolders)}) with no {kind} of its own; "
                          "declare them as 'train', 'calibration' and 'eval' instead of 'path'"]
        return None, [f"{where} has no {kind} ({', '.join(extensions)})"]
    if not any(by_class.values()):
        return Folder(root, tuple(loose), None), []
    problems = []
    if {name.lower() for name in by_class} <= SPLIT_FOLDER_NAMES and all(
            any(c.is_dir() for c in (root / name).iterdir()) for name in by_class):
        problems.append(f"{where} holds split folders ({', '.join(by_class)}), not classes; declare them as 'train', "
                        "'calibration' and 'eval' instead of 'path'")
    if loose:
        problems.append(f"{where} has both class subfolders and {kind} of its own ({loose[0].name!r}); put every file "
                        "in a class subfolder, or use a flat folder")
    problems += [f"{key}: class folder {str(root / name)!r} has no {kind}" for name, files in by_class.items() if not files]
    if classes is not None:
        unknown = [name for name in by_class if name not in classes]
        if unknown:
            problems.append(f"{where} has class folders not in 'classes': {', '.join(map(repr, unknown))}")
    if problems:
        return None, problems
    files = [f for name in sorted(by_class) for f in by_class[name]]
    return Folder(root, tuple(files), tuple(name for name in sorted(by_class) for _ in by_class[name])), []


def file_digest(path: Path) -> str:
    """A small file's content hash, else its size and modification time (cheap for the pass-cache key)."""
    stat = path.stat()
    if stat.st_size <= SMALL_FILE:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def listing_digest(root: Path, files: Iterable[Path]) -> str:
    """Every file's path under `root`, size and modification time: changes whenever a file is added, removed,
    renamed or rewritten, without reading any."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
