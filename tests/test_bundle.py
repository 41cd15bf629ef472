"""The bundle writer: symbolic links, other compiles' temporaries, permissions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shrink.bundle.write import clean_stale_temporaries, write_bundle


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_symlinked_output_is_refused(cli, make_recipe, tmp_path: Path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = cli("compile", make_recipe(), "-o", tmp_path / "link")
    assert result.code == 2 and "is a symbolic link" in result.err
    assert (tmp_path / "link").is_symlink() and not any((tmp_path / "real").iterdir())


def test_only_dead_compiles_temporaries_are_cleaned(tmp_path: Path):
    out = tmp_path / "b[1]"  # glob metacharacters in the name
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live_tmp = tmp_path / f".{out.name}.shrink-new-{os.getpid()}-abc"
    dead_tmp = tmp_path / f".{out.name}.shrink-new-{dead.stdout.strip()}-def"
    other = tmp_path / ".b1.shrink-new-1-ghi"  # another bundle's, matched by an unescaped glob
    for path in (live_tmp, dead_tmp, other):
        path.mkdir()
    clean_stale_temporaries(out)
    assert live_tmp.exists() and other.exists() and not dead_tmp.exists()


def test_bundle_permissions_follow_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        write_bundle(tmp_path / "b", {"a.txt": "x"}, {})
    finally:
        os.umask(old)
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o755
    assert _manifest(tmp_path / "b")["files"]["a.txt"]["size"] == 1
