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

from shrink.support.files import dead_temporaries, sha256_file

log = logging.getLogger("shrink.engine.cache")

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


def _hash_tree(path: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """A digest of a folder: each file's relative path and sha256 (of `.py` files only, given `suffixes`),
    skipping hidden entries and caches; at most 10,000 files."""
    parts = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules", "site-packages"))
        for name in sorted(files):
            if name.startswith(".") or (suffixes and not name.endswith(suffixes)):
                continue
            child = Path(root) / name
            parts.append((str(child.relative_to(path)), sha256_file(child)))
            if len(parts) >= _MAX_HASHED_FILES:
                return digest(parts)
    return digest(parts)


def referenced_files(options: Any, resolve: Any) -> dict[str, str]:
    """A digest of every file, folder or code an option value names.

    Files (`weights`) by content; folders (a model folder) by the content of their files; factories
    (`file.py:fn`, `pkg.mod:fn`) by every `.py` file of the folder or top-level package they live in,
    so edits to modules a factory imports invalidate the cache too. `resolve` maps a recipe string to
    a path (relative to the recipe). Anything that cannot be resolved counts as "no file": the
    compile itself reports bad values.
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
            try:
                digest_of = _referenced(value, resolve)
            except Exception:  # noqa: BLE001 - a value we cannot follow is not a file; the pass reports it
                digest_of = None
            if digest_of:
                found[value] = digest_of

    visit(options)
    return found


def _referenced(value: str, resolve: Any) -> str | None:
    head, sep, _ = value.rpartition(":")
    if sep and head.endswith(".py") and not value.startswith(("http:", "https:")):
        code = resolve(head)
        if code.is_file():
            return digest([sha256_file(code), _hash_tree(code.parent, (".py",))])
    path = resolve(value)
    if path.is_file():
        return sha256_file(path)
    if path.is_dir() and path != Path(path.anchor) and not str(path).startswith(("/proc", "/sys", "/dev")):
        return _hash_tree(path)
    match = _FACTORY.match(value)
    if match:
        origin = _module_origin(match["module"], resolve("."))
        if origin is not None:
            return digest([sha256_file(origin), _package_hash(origin, match["module"])])
    return None


def _package_hash(origin: Path, module: str) -> str:
    """The `.py` files of the top-level package `module` belongs to (of its folder, for a top-level module)."""
    levels = module.count(".") - (0 if origin.name == "__init__.py" else 1)
    top = origin.parent
    for _ in range(max(levels, 0)):
        top = top.parent
    return _hash_tree(top, (".py",))


def _module_origin(module: str, base: Path) -> Path | None:
    added = str(base) not in sys.path
    if added:
        sys.path.insert(0, str(base))
    try:
        spec = importlib.util.find_spec(module)
    except Exception:  # noqa: BLE001 - importing a parent package may raise anything; the compile reports it
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
    """A digest of the code `obj` (a pass or source class, or a module) comes from: every `.py` file of
    its top-level package, so edits to helper modules invalidate its entries, not only its own file."""
    module = obj if inspect.ismodule(obj) else sys.modules.get(getattr(obj, "__module__", ""), None)
    if module is None:
        return ""
    top = sys.modules.get(module.__name__.split(".")[0])
    files = [getattr(top, "__file__", None), getattr(module, "__file__", None)]
    source = next((Path(f) for f in files if f), None)
    if source is None or not source.is_file():
        return ""
    if source.name == "__init__.py":
        return _hash_tree(source.parent, (".py",))
    return sha256_file(source)


def _sweep(shard: Path) -> None:
    """Remove temporaries (`.<key>-<pid>-xxxx`) whose compile was killed before renaming them into place."""
    for tmp in dead_temporaries(shard, r"\.[0-9a-f]+-(?P<pid>\d+)-.*"):
        shutil.rmtree(tmp, ignore_errors=True)


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
            existing = self.get(key)
            if existing is not None:
                return existing
            shutil.rmtree(final, ignore_errors=True)  # a damaged entry: replace it
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
