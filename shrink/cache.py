"""The pass cache: content-addressed results of the source loader and of every pass.

An entry's key hashes everything its result depends on: the key of the step before it (so, through
the chain, the source model's files and every earlier pass), the pass name, its plugin's version and
the sha256 of the pass's module, the resolved options and the files they name, the data fingerprint,
the recipe seed, the target profile's hash and the versions of the key libraries. A recompile with an
unchanged recipe, or with only a later pass changed, restores the longest cached prefix and runs the
rest. Plugins save and restore models of their formats (`shrink_save_artifact`,
`shrink_load_artifact`); a model no plugin can save faithfully is simply not cached.

Layout: `<root>/v1/<key[:2]>/<key>/entry.json` plus the files the plugin saved. Entries are written
to a temporary sibling and renamed into place, so a killed compile never leaves a half entry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.bundle import library_versions, sha256_file

log = logging.getLogger("shrink.cache")

CACHE_ENV = "SHRINK_CACHE_DIR"
LAYOUT = "v1"
ENTRY = "entry.json"
_FACTORY = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):[A-Za-z_][\w.]*$")
_MAX_HASHED_FILES = 10_000


def default_root() -> Path:
    """`$SHRINK_CACHE_DIR`, else `$XDG_CACHE_HOME/shrink`, else `~/.cache/shrink`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shrink"


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _hash_tree(path: Path) -> str:
    parts = []
    for i, child in enumerate(sorted(p for p in path.rglob("*") if p.is_file())):
        if i >= _MAX_HASHED_FILES:
            break
        parts.append((str(child.relative_to(path)), sha256_file(child)))
    return digest(parts)


def referenced_files(options: Any, resolve: Any) -> dict[str, str]:
    """sha256 of every file or folder an option value names (`weights`, `file.py:fn`, `pkg.mod:fn`).

    `resolve` maps a recipe string to a path (relative to the recipe). Module factories are located
    with `importlib.util.find_spec`, as the compile itself would import them.
    """
    found: dict[str, str] = {}

    def visit(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, str) and value and len(value) < 4096:
            candidates = [value]
            if ":" in value and not value.startswith(("http:", "https:")):
                candidates.append(value.rsplit(":", 1)[0])
            for candidate in candidates:
                try:
                    path = resolve(candidate)
                    if path.is_file():
                        found[value] = sha256_file(path)
                        return
                    if path.is_dir() and "/" in candidate:
                        found[value] = _hash_tree(path)
                        return
                except (OSError, ValueError):
                    continue
            match = _FACTORY.match(value)
            if match:
                origin = _module_origin(match["module"], resolve("."))
                if origin is not None:
                    found[value] = sha256_file(origin)

    visit(options)
    return found


def _module_origin(module: str, base: Path) -> Path | None:
    added = str(base) not in sys.path
    if added:
        sys.path.insert(0, str(base))
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError, AttributeError):
        return None
    finally:
        if added:
            sys.path.remove(str(base))
    origin = getattr(spec, "origin", None) if spec else None
    return Path(origin) if origin and Path(origin).is_file() else None


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (mappings, sequences, numpy scalars and paths included)."""
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def code_hash(obj: Any) -> str:
    """sha256 of the file that defines `obj` (a pass or source class), so edits invalidate its entries."""
    try:
        source = inspect.getsourcefile(obj)
    except TypeError:
        source = None
    return sha256_file(Path(source)) if source and Path(source).is_file() else ""


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    record: dict[str, Any]

    def file(self, name: str) -> Path:
        return self.path / name


class PassCache:
    """A directory of entries; `enabled=False` makes every lookup miss and every store a no-op."""

    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.root = (root or default_root()) / LAYOUT
        self.enabled = enabled

    @staticmethod
    def key(components: Mapping[str, Any]) -> str:
        return digest(dict(components))

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Entry | None:
        if not self.enabled:
            return None
        path = self._dir(key)
        try:
            record = json.loads((path / ENTRY).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != key:
            return None
        return Entry(key, path, record)

    def put(self, key: str, record: dict[str, Any], files: Mapping[str, Path | bytes] | None = None,
            save: Any = None) -> Entry | None:
        """Store an entry atomically. `save(directory)` may write more files and returns a
        descriptor (kept as `record["saved"]`) or None, meaning "store the record only"."""
        if not self.enabled:
            return None
        final = self._dir(key)
        if final.exists():
            return self.get(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
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
            (tmp / ENTRY).write_text(json.dumps(record, default=str), encoding="utf-8")  # key order is part of the result
            os.rename(tmp, final)
        except OSError:  # another compile stored the same key first, or the disk is full
            shutil.rmtree(tmp, ignore_errors=True)
            return self.get(key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Entry(key, final, record)

    def entries(self) -> list[Entry]:
        found = []
        if not self.root.is_dir():
            return found
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for path in shard.iterdir():
                if path.name.startswith("."):
                    continue
                entry = self.get(path.name)
                if entry is not None:
                    found.append(entry)
        return found

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

    def info(self) -> dict[str, Any]:
        entries = self.entries()
        total = 0
        for entry in entries:
            total += sum(p.stat().st_size for p in entry.path.iterdir() if p.is_file())
        by_step: dict[str, int] = {}
        for entry in entries:
            name = str(entry.record.get("name", "?"))
            by_step[name] = by_step.get(name, 0) + 1
        return {"path": str(self.root.parent), "entries": len(entries), "bytes": total,
                "by_pass": dict(sorted(by_step.items()))}

    def clear(self) -> int:
        count = len(self.entries())
        if self.root.is_dir():
            shutil.rmtree(self.root)
        return count
