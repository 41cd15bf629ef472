"""The bundle: a directory written atomically, with a manifest that makes it re-verifiable."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from shrink.errors import PluginError, UsageError
from shrink.support.files import dead_temporaries, sha256_file

MANIFEST = "manifest.json"
MANIFEST_KIND = "shrink-bundle"
MANIFEST_VERSION = 1
MODEL_FILE = "model.onnx"
LIBRARIES = ("shrink", "torch", "torch-pruning", "nncf", "onnx", "onnxruntime", "onnxsim", "numpy", "scikit-learn", "pluggy")


def is_bundle(path: Path) -> bool:
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("kind") == MANIFEST_KIND
    except (OSError, ValueError, AttributeError):
        return False


def manifest_shapes(model: Path) -> dict[str, list[int]]:
    """The pinned input shapes a bundle's manifest records for `model`, when `model` is that bundle's own
    model file (so `inspect`/`verify` of `dist/x/model.onnx` need no `--shape`); empty otherwise."""
    bundle = model.parent
    if not is_bundle(bundle):
        return {}
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
        record = manifest.get("model") or {}
        if record.get("file") != model.name:
            return {}
        return {str(i["name"]): [int(d) for d in i["shape"]] for i in record.get("inputs") or []
                if isinstance(i, dict) and isinstance(i.get("shape"), list)
                and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in i["shape"])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def check_output_dir(path: Path) -> None:
    """Refuse (exit 2) an existing output that is not a shrink bundle: we never clobber user files."""
    if path.is_symlink():
        raise UsageError(f"output {str(path)!r} is a symbolic link; shrink replaces bundles atomically and would replace the link",
                         where="--output", hint=f"pass the directory it points to ({os.path.realpath(path)})")
    if path.exists() and not path.is_dir():
        raise UsageError(f"output {str(path)!r} exists and is not a directory", where="--output")
    if path.is_dir() and any(path.iterdir()) and not is_bundle(path):
        raise UsageError(f"output directory {str(path)!r} is not empty and is not a shrink bundle", where="--output",
                         hint="choose another -o DIR or remove it yourself")


def _temporaries(out: Path, kind: str) -> list[Path]:
    """`.NAME.shrink-KIND-<pid>-xxxx` siblings of `out` whose compile is no longer running."""
    return dead_temporaries(out.parent, re.escape(f".{out.name}.shrink-{kind}-") + r"(?P<pid>\d+)-.*")


def clean_stale_temporaries(out: Path) -> None:
    """Tidy up after a compile that was killed: restore the previous bundle if it was moved aside
    and the new one never arrived, then remove the dead compiles' temporary siblings."""
    if not out.parent.is_dir():
        return
    olds = sorted(_temporaries(out, "old"), key=lambda p: p.stat().st_mtime)
    if olds and not out.exists() and is_bundle(olds[-1]):
        os.rename(olds[-1], out)
    for stale in _temporaries(out, "old") + _temporaries(out, "new"):
        shutil.rmtree(stale, ignore_errors=True)


def write_bundle(out: Path, files: dict[str, Path | bytes | str], manifest: dict[str, Any]) -> None:
    """Write `files` and a manifest (with every file's sha256 and size) to `out`, atomically.

    Everything is written into a temporary sibling directory which is renamed into place only when
    complete; an existing bundle at `out` is replaced, never left half-written.
    """
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.shrink-new-{os.getpid()}-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; a bundle is an ordinary directory
    try:
        records = {}
        for name, content in sorted(files.items()):
            if Path(name).name != name or name in (".", "..", MANIFEST):
                raise PluginError(f"bundle file name {name!r} is not a plain file name", where="bundle_files",
                                  hint="a pass may add only plain file names to artifact.meta['bundle_files']")
            dest = tmp / name
            if isinstance(content, Path):
                shutil.copyfile(content, dest)
            elif isinstance(content, bytes):
                dest.write_bytes(content)
            else:
                dest.write_text(content, encoding="utf-8")
            records[name] = {"sha256": sha256_file(dest), "size": dest.stat().st_size}
        manifest = {**manifest, "kind": MANIFEST_KIND, "manifest_version": MANIFEST_VERSION, "files": records}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        _fsync_dir(tmp)
        if out.exists():
            if _exchange(tmp, out):  # one atomic step: `out` is the old bundle, then the new one
                shutil.rmtree(tmp, ignore_errors=True)
            else:  # no renameat2: a microsecond window without `out`, repaired by clean_stale_temporaries
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.shrink-old-{os.getpid()}-", dir=out.parent))
                os.rmdir(old)
                os.rename(out, old)
                os.rename(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directory entries with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(ctypes.get_errno(), f"cannot swap {b} into place: {os.strerror(ctypes.get_errno())}")


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir():
        with child.open("rb") as fh:
            os.fsync(fh.fileno())
