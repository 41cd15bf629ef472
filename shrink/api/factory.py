"""Factories named in recipes: `package.module:callable` or `relative/file.py:callable`."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any, Callable

from shrink.errors import UsageError

FACTORY_PATTERN = r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$"
_ATTR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def split_factory(spec: str) -> tuple[str, str]:
    module, _, attr = spec.rpartition(":")
    return module, attr


def is_file_factory(spec: str) -> bool:
    module, _ = split_factory(spec)
    return module.endswith(".py") or "/" in module or "\\" in module


def check_factory(spec: str, base_dir: Path) -> str | None:
    """Plan-time check that needs no import: the file of a file factory exists. Returns a problem or None."""
    module, attr = split_factory(spec)
    if not module or not _ATTR.match(attr):
        return f"factory {spec!r} must look like 'package.module:callable' or 'path/to/file.py:callable'"
    if is_file_factory(spec):
        path = Path(module) if Path(module).is_absolute() else base_dir / module
        if not path.is_file():
            return f"factory file {str(path)!r} does not exist"
    return None


def load_factory(spec: str, base_dir: Path) -> Callable[..., Any]:
    """Import the callable named by `spec`; relative files resolve against `base_dir` (the recipe's)."""
    problem = check_factory(spec, base_dir)
    if problem:
        raise UsageError(problem)
    module_name, attr = split_factory(spec)
    if is_file_factory(spec):
        path = (Path(module_name) if Path(module_name).is_absolute() else base_dir / module_name).resolve()
        unique = "shrink_factory_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(unique)
        if module is None:
            spec_obj = importlib.util.spec_from_file_location(unique, path)
            assert spec_obj is not None and spec_obj.loader is not None
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[unique] = module
            folder = str(path.parent)
            added = folder not in sys.path
            if added:  # as for a script: the file's own folder is importable (sibling modules)
                sys.path.insert(0, folder)
            try:
                spec_obj.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(unique, None)
                raise
            finally:
                if added:
                    sys.path.remove(folder)
    else:
        added = str(base_dir) not in sys.path
        if added:
            sys.path.insert(0, str(base_dir))
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise UsageError(f"factory module {module_name!r} cannot be imported: {exc}") from None
        finally:
            if added:
                sys.path.remove(str(base_dir))
    obj = getattr(module, attr, None)
    if obj is None or not callable(obj):
        raise UsageError(f"factory {spec!r}: {module_name} has no callable {attr!r}")
    return obj
