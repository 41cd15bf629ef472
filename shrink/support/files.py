"""Files: content hashes and the left-overs of killed processes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (temporaries named after a dead process are left-overs of a kill)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a pid too large for pid_t is none either
        return False
    except PermissionError:
        return True
    return True


def dead_temporaries(folder: Path, pattern: str) -> list[Path]:
    """Entries of `folder` whose name matches `pattern` (a regular expression whose group `pid` names
    the process that made them) when that process no longer runs: the left-overs of a killed compile."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir()
                  if (match := re.fullmatch(pattern, path.name)) and not process_alive(int(match["pid"])))
