"""The pass cache's store: content-addressed entries of the source loader, of every pass and of the
golden I/O. What a key hashes is `shrink.engine.keys`'s business; when entries are read and written, and
what a damaged entry means for a compile, is the engine's (`shrink.engine.run`). Families save and
restore their models (`ModelFamily.save`/`load`); a model its family cannot save faithfully is simply
not cached.

Layout: `<root>/v2/<key[:2]>/<key>/entry.json` plus the files the family saved. Entries are written to a
temporary sibling and renamed into place, so a killed compile never leaves a half entry, and removed by
renaming them to a temporary name first, so a concurrent compile finds either the whole entry or none.

Trust: `entry.json` records the sha256 of every other file of the entry and is sealed by the sha256 of
its own content. Reading checks the seal, and `verify` checks the files before a model is loaded from
them; a symbolic link, or a name that leads outside the entry, is damage too. This finds corruption (a
bad disk, a partial copy, an edited file); it cannot tell a forged entry from a real one, since whoever
can write the cache can write matching sha256s. Who may write a shared cache is the trust boundary
(`examples/ci/README.md`).

Last use is the modification time of `entry.json` (`touch`); `prune` removes least recently used
entries first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shrink.engine.keys import digest
from shrink.support.files import dead_temporaries
from shrink.support.units import parse_size

log = logging.getLogger("shrink.engine.cache")

CACHE_ENV = "SHRINK_CACHE_DIR"
MAX_SIZE_ENV = "SHRINK_CACHE_MAX_SIZE"
LAYOUT = "v2"  # v2: entries record their files' sha256 and seal entry.json
OLD_LAYOUTS = ("v1",)
ENTRY = "entry.json"
SEAL = "record_sha256"
MISMATCH = "does not match the sha256 recorded when the entry was written"


def default_root() -> Path:
    """`$SHRINK_CACHE_DIR`, else `$XDG_CACHE_HOME/shrink`, else `~/.cache/shrink`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shrink"


def default_max_bytes() -> int | None:
    """`$SHRINK_CACHE_MAX_SIZE` in bytes (`2GB`, `500MB`), or None when it is unset; a bad value is exit 2."""
    text = os.environ.get(MAX_SIZE_ENV, "").strip()
    return parse_size(text, f"${MAX_SIZE_ENV}") if text else None


def _sweep(shard: Path) -> None:
    """Remove temporaries (`.<key>-<pid>-xxxx`: half-written entries and half-deleted ones) whose process
    was killed before renaming or deleting them."""
    for tmp in dead_temporaries(shard, r"\.[0-9a-f]+-(?P<pid>\d+)-.*"):
        shutil.rmtree(tmp, ignore_errors=True)


class DamagedEntry(Exception):
    """An entry whose content is not what was recorded when it was written: a changed, missing or extra
    file, an unreadable or unsealed `entry.json`, a symbolic link, a name outside the entry.

    Not a `ShrinkError`: the engine decides whether it is a miss with a warning or an error
    (`--strict-cache`), and names the step."""

    def __init__(self, key: str, path: Path, file: str, reason: str) -> None:
        self.key, self.path, self.file, self.reason = key, path, file, reason
        super().__init__(f"{file} {reason}")


@dataclass(frozen=True)
class Entry:
    """A readable entry: its sealed record, and the sha256 of the `entry.json` it was read from."""

    key: str
    path: Path
    record: dict[str, Any]
    sha256: str

    @property
    def files(self) -> dict[str, str]:
        """The sha256 of each of the entry's files (other than entry.json), recorded when it was written."""
        return dict(self.record.get("files") or {})

    def file(self, name: str) -> Path:
        """The path of one recorded file; a name the record does not list is damage."""
        if name not in self.files:
            raise DamagedEntry(self.key, self.path, name, "is not one of the entry's recorded files")
        return self.path / name


@dataclass(frozen=True)
class Stored:
    """An entry folder as found on disk, readable or not: what `info`, `prune` and `verify_all` walk."""

    key: str
    path: Path
    bytes: int
    last_used: float
    entry: Entry | None  # None when its record is damaged
    damage: DamagedEntry | None = None

    @property
    def record(self) -> dict[str, Any]:
        return self.entry.record if self.entry else {}

    @property
    def created(self) -> float:
        value = self.record.get("created")
        return float(value) if isinstance(value, (int, float)) else self.last_used

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "recipe": self.record.get("recipe"), "step": self.record.get("step"),
                "name": self.record.get("name"), "bytes": self.bytes, "created": self.created, "last_used": self.last_used}


@dataclass(frozen=True)
class Pruned:
    removed: list[Stored]
    entries: int  # what is left
    bytes: int

    @property
    def freed(self) -> int:
        return sum(s.bytes for s in self.removed)


def _read_regular(path: Path, entry: Entry, name: str) -> bytes:
    """A file's bytes, refusing a symbolic link (O_NOFOLLOW) or anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise DamagedEntry(entry.key, entry.path, name, "is missing") from None
    except OSError as exc:
        if path.is_symlink():
            raise DamagedEntry(entry.key, entry.path, name, "is a symbolic link") from None
        raise DamagedEntry(entry.key, entry.path, name, f"cannot be read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise DamagedEntry(entry.key, entry.path, name, "is not a regular file")
        return fh.read()


def _inside(name: object) -> bool:
    """Whether a recorded file name stays inside its entry: relative, no `..`, not entry.json itself."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    pure = PurePosixPath(name)
    return not pure.is_absolute() and ".." not in pure.parts and "." not in name.split("/") and str(pure) == name \
        and name != ENTRY


def _walk(folder: Path, prefix: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative name, dir entry) of everything under `folder`, not following symbolic links."""
    with os.scandir(folder) as found:
        for item in sorted(found, key=lambda e: e.name):
            name = f"{prefix}{item.name}"
            if item.is_dir(follow_symlinks=False):
                yield from _walk(Path(item.path), f"{name}/")
            else:
                yield name, item


def _sha256(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    digest_ = hashlib.sha256()
    with os.fdopen(fd, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest_.update(block)
    return digest_.hexdigest()


def _hash_files(folder: Path) -> dict[str, str]:
    """The sha256 of every file a new entry holds (not entry.json); a symbolic link or special file is refused."""
    files = {}
    for name, item in _walk(folder):
        if not item.is_file(follow_symlinks=False):
            raise ValueError(f"{name} is not a regular file")
        files[name] = _sha256(Path(item.path))
    return files


def _size(folder: Path) -> int:
    total = 0
    try:
        for _, item in _walk(folder):
            try:
                total += item.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
    except (FileNotFoundError, NotADirectoryError):
        pass
    return total


def _seal(record: Mapping[str, Any]) -> str:
    return digest(json.loads(json.dumps(record, default=str)))


class PassCache:
    """A directory of entries; `enabled=False` makes every lookup miss and every store a no-op.

    `strict` is read by the engine: a damaged entry is an error instead of a miss (`--strict-cache`).
    `max_bytes` is the bound `apply_bound` prunes to after a compile (`$SHRINK_CACHE_MAX_SIZE`)."""

    def __init__(self, root: Path | None = None, enabled: bool = True, strict: bool = False,
                 max_bytes: int | None = None) -> None:
        self.base = root or default_root()
        self.root = self.base / LAYOUT
        self.enabled = enabled
        self.strict = strict
        self.max_bytes = max_bytes

    @staticmethod
    def key(components: Mapping[str, Any]) -> str:
        return digest(dict(components))

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    # reading --------------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry stored under `key` with its record checked (entry.json readable, sealed, for this key,
        naming only files inside the entry), or None when there is none. Its files are checked by
        `verify`. Raises `DamagedEntry`."""
        if not self.enabled:
            return None
        return self._read(key, self._dir(key))

    def _read(self, key: str, path: Path) -> Entry | None:
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(mode):
            raise DamagedEntry(key, path, "the entry folder", "is a symbolic link")
        if not stat.S_ISDIR(mode):
            raise DamagedEntry(key, path, "the entry", "is not a folder")
        if os.path.realpath(path) != os.path.join(os.path.realpath(self.root), key[:2], key):
            raise DamagedEntry(key, path, "the entry folder", "lies outside the cache (a linked shard folder)")
        probe = Entry(key, path, {}, "")
        try:
            data = _read_regular(path / ENTRY, probe, ENTRY)
        except DamagedEntry:
            if not path.is_dir():  # removed meanwhile (prune, or a compile replacing it): a miss
                return None
            raise
        try:
            record = json.loads(data)
        except ValueError:
            raise DamagedEntry(key, path, ENTRY, "is not valid JSON") from None
        if not isinstance(record, dict):
            raise DamagedEntry(key, path, ENTRY, "is not a JSON object")
        seal = record.pop(SEAL, None)
        if seal is None or seal != _seal(record):
            raise DamagedEntry(key, path, ENTRY, MISMATCH)
        if record.get("key") != key:
            raise DamagedEntry(key, path, ENTRY, f"belongs to another key ({str(record.get('key'))[:12]})")
        files = record.get("files")
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise DamagedEntry(key, path, ENTRY, "records no sha256 of its files")
        outside = sorted(str(name) for name in files if not _inside(name))
        if outside:
            raise DamagedEntry(key, path, outside[0], "is a path outside the entry")
        return Entry(key, path, record, hashlib.sha256(data).hexdigest())

    def verify(self, entry: Entry) -> dict[str, str] | None:
        """The sha256 of each of the entry's files, entry.json first, when they are exactly the recorded
        files with their recorded sha256; None when the entry has gone meanwhile (pruned or replaced by
        another compile: a miss). Raises `DamagedEntry` otherwise."""
        recorded = entry.files
        try:
            found: dict[str, str] = {}
            for name, item in _walk(entry.path):
                if name == ENTRY:
                    continue
                if item.is_symlink():
                    raise DamagedEntry(entry.key, entry.path, name, "is a symbolic link")
                if not item.is_file(follow_symlinks=False):
                    raise DamagedEntry(entry.key, entry.path, name, "is not a regular file")
                if name not in recorded:
                    raise DamagedEntry(entry.key, entry.path, name, "is not one of the entry's recorded files")
                found[name] = _sha256(Path(item.path))
                if found[name] != recorded[name]:
                    raise DamagedEntry(entry.key, entry.path, name, MISMATCH)
            missing = sorted(set(recorded) - set(found))
            if missing:
                raise DamagedEntry(entry.key, entry.path, missing[0], "is missing")
        except DamagedEntry:
            if self._replaced(entry):
                return None
            raise
        except OSError:
            if self._replaced(entry):
                return None
            raise DamagedEntry(entry.key, entry.path, "the entry folder", "cannot be read") from None
        return {ENTRY: entry.sha256, **found}

    def read(self, entry: Entry, name: str) -> bytes | None:
        """A recorded file's bytes, checked against its recorded sha256 (what is read is what is checked);
        None when the entry has gone meanwhile. Raises `DamagedEntry`."""
        try:
            data = _read_regular(entry.file(name), entry, name)
            if hashlib.sha256(data).hexdigest() != entry.files[name]:
                raise DamagedEntry(entry.key, entry.path, name, MISMATCH)
        except DamagedEntry:
            if self._replaced(entry):
                return None
            raise
        return data

    def _replaced(self, entry: Entry) -> bool:
        """Whether the entry that was read is no longer the one under its key (removed, or stored anew)."""
        try:
            current = self._read(entry.key, entry.path)
        except DamagedEntry:
            return False
        return current is None or current.sha256 != entry.sha256

    def entries(self) -> list[Entry]:
        """Every readable entry (damaged ones are skipped: `verify_all` lists them)."""
        return [stored.entry for stored in self._scan() if stored.entry is not None]

    def explain_miss(self, components: Mapping[str, Any], recipe: str, step: str) -> str:
        """Why `components` found no entry: what differs from the newest entry of the same recipe step."""
        previous = [e for e in self.entries() if e.record.get("recipe") == recipe and e.record.get("step") == step]
        if not previous:
            return f"no earlier entry for {step} of recipe {recipe!r}"
        newest = max(previous, key=lambda e: e.record.get("created", 0))
        before = newest.record.get("components", {})
        changed = sorted(k for k in set(before) | set(components) if before.get(k) != components.get(k))
        detail = []
        for name in changed:
            if name == "options" and isinstance(before.get(name), dict) and isinstance(components.get(name), dict):
                keys = sorted(k for k in set(before[name]) | set(components[name])
                              if before[name].get(k) != components[name].get(k))
                detail.append(f"options ({', '.join(keys)})")
            else:
                detail.append(name)
        return "changed since the last compile: " + ", ".join(detail) if detail else "entry was removed"

    # writing --------------------------------------------------------------------------------------

    def put(self, key: str, record: dict[str, Any], files: Mapping[str, Path | bytes] | None = None,
            save: Callable[[Path], Any] | None = None) -> Entry | None:
        """Store an entry atomically, replacing a damaged one. `save(directory)` may write more files and
        returns a descriptor (kept as `record["saved"]`) or None, meaning "store the record only".
        Every file's sha256 goes into the record, and the record is sealed."""
        if not self.enabled:
            return None
        final = self._dir(key)
        try:
            existing = self.get(key)
            if existing is not None and self.verify(existing) is not None:
                return existing
        except DamagedEntry:
            pass
        self._discard(final)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            _sweep(final.parent)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-{os.getpid()}-", dir=final.parent))
        except OSError as exc:
            log.warning("pass cache at %s is not writable: %s", self.root, exc)
            return None
        try:
            record = {**record, "key": key, "created": time.time()}
            if save is not None:
                record["saved"] = save(tmp)
            for name, content in (files or {}).items():
                if isinstance(content, Path):
                    shutil.copyfile(content, tmp / name)
                else:
                    (tmp / name).write_bytes(content)
            record["files"] = _hash_files(tmp)
            record[SEAL] = _seal(record)
            data = json.dumps(record, default=str).encode()  # key order is part of the result
            (tmp / ENTRY).write_bytes(data)
            os.rename(tmp, final)
        except ValueError as exc:  # a family saved a link or a special file: it could never be checked
            shutil.rmtree(tmp, ignore_errors=True)
            log.warning("not cached: %s: %s", record.get("name", key[:12]), exc)
            return None
        except OSError:  # another compile stored the same key first, or the disk is full
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                return self.get(key)
            except DamagedEntry:
                return None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        record.pop(SEAL)
        return Entry(key, final, json.loads(json.dumps(record, default=str)), hashlib.sha256(data).hexdigest())

    def touch(self, keys: Iterable[str | None]) -> None:
        """Mark entries as used now, all with the same time (a read-only cache is left as it is)."""
        now = time.time()
        for key in keys:
            if key and self.enabled:
                try:
                    os.utime(self._dir(key) / ENTRY, (now, now), follow_symlinks=False)
                except OSError:
                    continue

    def _discard(self, path: Path) -> bool:
        """Remove an entry folder: renamed to a temporary name first (one atomic step, so nobody sees a
        half-removed entry), then deleted. False when it was not there (or another process took it)."""
        trash = path.parent / f".{path.name[:12]}-{os.getpid()}-trash-{secrets.token_hex(4)}"
        try:
            os.rename(path, trash)
        except OSError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    # the whole cache ------------------------------------------------------------------------------

    def _scan(self) -> list[Stored]:
        found: list[Stored] = []
        if not self.root.is_dir():
            return found
        for shard in sorted(self.root.iterdir()):
            if shard.name.startswith(".") or not shard.is_dir():
                continue
            for path in sorted(shard.iterdir()):
                if path.name.startswith("."):
                    continue
                try:
                    last_used = os.lstat(path / ENTRY).st_mtime
                except OSError:
                    try:
                        last_used = os.lstat(path).st_mtime
                    except OSError:
                        continue  # removed meanwhile
                try:
                    entry, damage = self._read(path.name, path), None
                except DamagedEntry as exc:
                    entry, damage = None, exc
                if entry is None and damage is None:
                    continue  # removed meanwhile
                found.append(Stored(path.name, path, _size(path), last_used, entry, damage))
        return found

    def info(self) -> dict[str, Any]:
        """Size, entry count, entries per step name, and the least and most recently used entries."""
        stored = self._scan()
        by_step: dict[str, int] = {}
        for entry in stored:
            name = str(entry.record.get("name", "(unreadable)"))
            by_step[name] = by_step.get(name, 0) + 1
        ordered = sorted(stored, key=lambda s: (s.last_used, s.created))
        return {"path": str(self.base), "entries": len(stored), "bytes": sum(s.bytes for s in stored),
                "by_pass": dict(sorted(by_step.items())), "max_bytes": self.max_bytes,
                "oldest": ordered[0].describe() if ordered else None,
                "newest": ordered[-1].describe() if ordered else None}

    def verify_all(self) -> tuple[int, list[tuple[Stored, DamagedEntry]]]:
        """Check every entry (record and files): (entries checked, each bad entry with its first damage)."""
        checked: int = 0
        damaged: list[tuple[Stored, DamagedEntry]] = []
        for stored in self._scan():
            try:
                if stored.damage is not None:
                    raise stored.damage
                if stored.entry is None or self.verify(stored.entry) is None:
                    continue  # removed meanwhile
            except DamagedEntry as damage:
                damaged.append((stored, damage))
            checked += 1
        return checked, damaged

    def prune(self, max_bytes: int | None = None, older_than: float | None = None) -> Pruned:
        """Remove entries last used more than `older_than` seconds ago, then least recently used ones until
        the cache holds at most `max_bytes`. Entries used by one compile share a last-use time; among them
        the later steps go first, so what stays is a usable prefix of each chain."""
        stored = sorted(self._scan(), key=_eviction_order)
        now = time.time()
        removed: list[Stored] = []
        kept: list[Stored] = []
        for entry in stored:
            (removed if older_than is not None and now - entry.last_used > older_than else kept).append(entry)
        total = sum(s.bytes for s in kept)
        while max_bytes is not None and kept and total > max_bytes:
            entry = kept.pop(0)
            removed.append(entry)
            total -= entry.bytes
        gone = [entry for entry in removed if self._discard(entry.path)]
        if self.root.is_dir():
            for shard in self.root.iterdir():
                if not shard.name.startswith(".") and shard.is_dir():
                    _sweep(shard)
        return Pruned(gone, len(kept), total)

    def apply_bound(self) -> Pruned | None:
        """`prune(max_bytes)` after a compile when a bound is set; never fails the compile."""
        if not self.enabled or self.max_bytes is None:
            return None
        try:
            pruned = self.prune(max_bytes=self.max_bytes)
        except OSError as exc:
            log.warning("pruning the pass cache at %s to $%s failed: %s", self.base, MAX_SIZE_ENV, exc)
            return None
        if pruned.removed:
            log.info("pass cache: removed %d entries (%d bytes) to stay under %d bytes", len(pruned.removed),
                     pruned.freed, self.max_bytes)
        return pruned

    def clear(self) -> int:
        """Remove every entry (and those of older layouts); returns how many entries of this layout went."""
        count = len(self._scan())
        for tmp in dead_temporaries(self.base, r"\.v\d+-(?P<pid>\d+)-trash-.*"):
            shutil.rmtree(tmp, ignore_errors=True)
        for layout in (LAYOUT, *OLD_LAYOUTS):
            folder = self.base / layout
            if folder.is_dir():
                trash = self.base / f".{layout}-{os.getpid()}-trash-{secrets.token_hex(4)}"
                os.rename(folder, trash)
                shutil.rmtree(trash, ignore_errors=True)
        return count


def _eviction_order(entry: Stored) -> tuple[float, float]:
    """Least recently used first; among entries last used together, the newest-created (a later step) first."""
    return entry.last_used, -entry.created
