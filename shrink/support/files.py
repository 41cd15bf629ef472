"""Files: content hashes, the installed distribution that ships a file, and the left-overs of killed processes."""

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


def _install_folders() -> list[Path]:
    import site
    import sysconfig

    folders = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")] + list(site.getsitepackages())
    user = site.getusersitepackages()
    return [Path(f).resolve() for f in dict.fromkeys([*folders, *([user] if isinstance(user, str) else [])])]


def shipped_by(path: Path) -> tuple[str, str] | None:
    """The installed distribution whose files include `path` (a file inside an installation folder such as
    site-packages), and the file's name as that distribution lists it (`rapidocr_onnxruntime/models/x.onnx`); None
    for anything else (the user's own files, an editable install's sources)."""
    from importlib import metadata

    target = path.resolve()
    for folder in _install_folders():
        if not target.is_relative_to(folder) or target == folder:
            continue
        inside = target.relative_to(folder)
        top = inside.parts[0].removesuffix(".py")
        for name in metadata.packages_distributions().get(top, []):
            dist = metadata.distribution(name)
            for entry in dist.files or []:
                if Path(str(dist.locate_file(entry))).resolve() == target:
                    return str(dist.metadata["Name"]), entry.as_posix()
    return None


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
