"""Factories named in recipes: `package.module:callable` or `relative/file.py:callable`."""

from __future__ import annotations

import ast
import difflib
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


def check_factory(spec: str, base_dir: Path, resolve: bool = True) -> str | None:
    """Plan-time check: the factory is well-formed, its file exists and (with `resolve`) its module defines the
    callable, read from the source with `ast` (nothing is imported: planning stays free of the model's
    libraries), with a did-you-mean. Returns a problem or None."""
    module, attr = split_factory(spec)
    if not module or not _ATTR.match(attr):
        return f"factory {spec!r} must look like 'package.module:callable' or 'path/to/file.py:callable'"
    if is_file_factory(spec):
        path = Path(module) if Path(module).is_absolute() else base_dir / module
        if not path.is_file():
            return f"factory file {str(path)!r} does not exist"
    if resolve:
        source = _source_file(spec, base_dir)
        if source is None:
            return None if not is_file_factory(spec) else f"factory file {module!r} cannot be read"
        try:
            names = _top_level_names(source)
        except (OSError, SyntaxError, UnicodeDecodeError) as exc:
            return f"factory {spec!r}: {source} cannot be parsed: {type(exc).__name__}: {exc}"
        if attr not in names:
            close = difflib.get_close_matches(attr, sorted(names), n=1)
            return f"factory {spec!r}: {source.name} defines no {attr!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    return None


def _source_file(spec: str, base_dir: Path) -> Path | None:
    """The `.py` file that defines a factory's module, found without running it (None: not found, e.g. a
    compiled module, or a package the import system cannot locate without importing)."""
    module, _ = split_factory(spec)
    if is_file_factory(spec):
        path = Path(module) if Path(module).is_absolute() else base_dir / module
        return path if path.is_file() else None
    added = str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        found = importlib.util.find_spec(module)
    except Exception:  # noqa: BLE001 - a parent package failed to import; compile reports it with its traceback
        return None
    finally:
        if added:
            sys.path.remove(str(base_dir))
    origin = getattr(found, "origin", None) if found else None
    return Path(origin) if origin and str(origin).endswith(".py") else None


def _top_level_names(path: Path) -> set[str]:
    """Names a module binds at its top level: defs, classes, assignments and imports."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def load_factory(spec: str, base_dir: Path) -> Callable[..., Any]:
    """Import the callable named by `spec`; relative files resolve against `base_dir` (the recipe's)."""
    problem = check_factory(spec, base_dir, resolve=False)
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
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
        close = difflib.get_close_matches(attr, names, n=1)
        raise UsageError(f"factory {spec!r}: {module_name} has no callable {attr!r}",
                         hint=f"did you mean {close[0]!r}?" if close else None)
    return obj
