"""The pass cache's store: content-addressed entries of the source loader, of every pass and of the
golden I/O. What a key hashes is `shrink.engine.keys`'s business; when entries are read and written is
the engine's (`shrink.engine.run`). Families save and restore their models (`ModelFamily.save`/`load`);
a model its family cannot save faithfully is simply not cached.

Layout: `<root>/v1/<key[:2]>/<key>/entry.json` plus the files the plugin saved. Entries are written
to a temporary sibling and renamed into place, so a killed compile never leaves a half entry.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.engine.keys import digest
from shrink.support.files import dead_temporaries

log = logging.getLogger("shrink.engine.cache")

CACHE_ENV = "SHRINK_CACHE_DIR"
LAYOUT = "v1"
ENTRY = "entry.json"


def default_root() -> Path:
    """`$SHRINK_CACHE_DIR`, else `$XDG_CACHE_HOME/shrink`, else `~/.cache/shrink`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shrink"


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
