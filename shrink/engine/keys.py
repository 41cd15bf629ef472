"""Pass-cache keys: what each step's result depends on, hashed exactly.

A step's key hashes the key of the step before it (so, through the chain, the source's files and every
earlier pass), the step's name and plugin, its resolved options and every file, folder or factory
they name (for the source, also the files it says it reads: `Source.files`), the data fingerprint, the
seed and the target profile, plus:

* code: the sha256 of every file of the plugin package that holds the pass (or source), of the
  package of the model family that handles the artifact, and of the data provider's package, each
  with its import closure inside shrink (the shared built-in layer and the core modules those files
  import, followed statically). Editing the reports, the CLI or another family's files keeps every
  entry; editing the pass's own package, or a core module it imports, invalidates it;
* libraries: the installed versions of the distributions the pass, source, family and data provider
  declare (`libraries`), and of the libraries the core measures with.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
import os
import platform
import re
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.api.context import PlanContext
from shrink.support import ranks
from shrink.support.files import sha256_file
from shrink.support.versions import versions

if TYPE_CHECKING:
    from shrink.host.registry import Entry
    from shrink.plan.planner import Plan

_FACTORY = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):[A-Za-z_][\w.]*$")
_MAX_HASHED_FILES = 10_000
SHARED_PACKAGES = ("shrink", "shrink_common")  # import closures follow imports into these
CORE_LIBRARIES = ("numpy", "onnx", "onnxruntime")  # what the core measures and analyses with


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


def _by_content(options: Any, files: Mapping[str, str], resolve: Any) -> Any:
    """`options` with every recipe path among `files` replaced by what it names (`file.py:fn` keeps `:fn`), so a
    recipe written elsewhere with the same files (`shrink search`'s best.json) has the same keys."""
    if isinstance(options, Mapping):
        return {key: _by_content(value, files, resolve) for key, value in options.items()}
    if isinstance(options, list):
        return [_by_content(value, files, resolve) for value in options]
    if isinstance(options, str) and options in files:
        head, sep, attr = options.rpartition(":")
        if sep and head.endswith(".py") and resolve(head).is_file():
            return f"<file {files[options]}>:{attr}"
        if resolve(options).exists():
            return f"<file {files[options]}>"
    return options


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


def _content(path: Path) -> str | None:
    """A file's sha256, a folder's `_hash_tree`; None for a path that is neither."""
    return sha256_file(path) if path.is_file() else _hash_tree(path) if path.is_dir() else None


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


def _module_file(name: str) -> Path | None:
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    top, _, rest = name.partition(".")
    roots = getattr(sys.modules.get(top), "__path__", None)
    if origin is None and rest and roots:
        # found on disk under the imported package, so the lookup imports nothing (find_spec would import the
        # parents, and with them torch); a name that is no file is an attribute, not a module
        for root in roots:
            base = Path(root, *rest.split("."))
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
        return None
    if origin is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        origin = getattr(spec, "origin", None) if spec else None
    return Path(origin) if origin and str(origin).endswith(".py") and Path(origin).is_file() else None


_SCANS: dict[str, list[list[Any]]] = {}
"""Import statements by the sha256 of the file that holds them: `[level, module, names]`, level -1 for `import a, b`.
Kept beside the pass cache (`load_import_scans`/`save_import_scans`), so a recompile parses no unchanged file."""
_SCANS_ADDED: list[str] = []


def _statements(path: Path) -> list[list[Any]]:
    key = sha256_file(path)
    if key not in _SCANS:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            return []
        found: list[list[Any]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.append([-1, "", [alias.name for alias in node.names]])
            elif isinstance(node, ast.ImportFrom):
                found.append([node.level, node.module or "", [alias.name for alias in node.names]])
        _SCANS[key] = found
        _SCANS_ADDED.append(key)
    return _SCANS[key]


def load_import_scans(path: Path) -> None:
    """Read the import scans a previous compile kept at `path` (anything unreadable is ignored: they are redone)."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(loaded, dict) and loaded.get("python") == platform.python_version():
        scans = loaded.get("scans")
        if isinstance(scans, dict):
            _SCANS.update({k: v for k, v in scans.items() if isinstance(k, str) and _well_formed(v)})


def _well_formed(statements: Any) -> bool:
    return isinstance(statements, list) and all(
        isinstance(s, list) and len(s) == 3 and isinstance(s[0], int) and isinstance(s[1], str)
        and isinstance(s[2], list) and all(isinstance(n, str) for n in s[2]) for s in statements)


def save_import_scans(path: Path) -> None:
    """Write the scans to `path` when this process made new ones (atomically; a failure only costs time)."""
    if not _SCANS_ADDED:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}-{os.getpid()}")
        tmp.write_text(json.dumps({"python": platform.python_version(), "scans": _SCANS}), encoding="utf-8")
        os.replace(tmp, path)
        _SCANS_ADDED.clear()
    except OSError:
        pass


def _imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of the modules (and `from` targets that may be modules) a file imports, anywhere."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for level, name, names in _statements(path):
        if level < 0:
            found.update(names)
            continue
        base = name
        if level:
            parts = package.split(".")
            anchor = parts[:len(parts) - level + 1]
            base = ".".join(anchor + ([name] if name else []))
        found.add(base)
        found.update(f"{base}.{alias}" for alias in names)
    return found


@cache
def _closure(module: str) -> tuple[tuple[str, str], ...]:
    """(file, sha256) of the top-level package of `module` (its whole folder; a core module alone),
    plus every module of `SHARED_PACKAGES` reachable by imports from those files."""
    top = module.split(".")[0]
    seen: dict[str, Path] = {}
    queue: list[str] = []
    own = _module_file(top)
    if top in SHARED_PACKAGES or own is None or own.name != "__init__.py":
        queue.append(module)
    else:
        for path in sorted(own.parent.rglob("*.py")):
            if "__pycache__" not in path.parts:
                name = ".".join((top, *path.relative_to(own.parent).with_suffix("").parts)).removesuffix(".__init__")
                seen[name] = path
                queue.extend(_imported_modules(path, name))
    while queue:
        name = queue.pop()
        if name in seen or name.split(".")[0] not in SHARED_PACKAGES:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        queue.extend(_imported_modules(path, name))
        parent = name.rpartition(".")[0]  # importing a submodule runs its packages' __init__ first
        if parent:
            queue.append(parent)
    return tuple(sorted((name, sha256_file(path)) for name, path in seen.items()))


def code_hash(*objects: Any) -> str:
    """A digest of the code `objects` (classes or modules) come from: each one's plugin package and its
    import closure into shrink and the shared built-in layer (`_closure`)."""
    files: set[tuple[str, str]] = set()
    for obj in objects:
        name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", "")
        if name:
            files.update(_closure(name))
    return digest(sorted(files))


def library_versions(*declaring: Any) -> dict[str, str]:
    """Python's version and the installed versions of the core's libraries and of every distribution the
    `declaring` classes list in `libraries` (absent ones recorded as absent)."""
    names = set(CORE_LIBRARIES)
    for cls in declaring:
        names.update(getattr(cls, "libraries", ()) or ())
    return {"python": platform.python_version(), **versions(sorted(names))}


def components(plan: Plan, data: str | None) -> list[dict[str, Any]]:
    """What each step's result depends on: the source first, then one entry per pass (chained by key)."""
    family, provider = type(plan.family), type(plan.data) if plan.data is not None else None
    shared = {"data": data, "data_code": code_hash(provider) if provider else None, "seed": plan.recipe.seed,
              "target": plan.target.sha256, "family": plan.family.name, "family_code": code_hash(family),
              "shapes": dict(sorted(plan.shapes.items()))}
    if ranks.world_size() > 1:  # N ranks train a (BatchNorm, rounding) different model than one process
        shared["ranks"] = ranks.world_size()
    resolve = plan.recipe.resolve_path

    def component(name: str, entry: Entry, obj: Any) -> dict[str, Any]:
        options = obj.options.model_dump(mode="json")
        files = referenced_files(options, resolve)
        return {"step": name, "plugin": f"{entry.plugin.dist} {entry.plugin.version}", "code": code_hash(type(obj)),
                "options": _by_content(options, files, resolve), "files": sorted(files.values()),
                "libraries": library_versions(type(obj), family, provider), **shared}

    source = component(f"source:{plan.source_entry.name}", plan.source_entry, plan.source)
    context = PlanContext(plan.recipe, plan.target, family=plan.family, shapes=plan.shapes)
    source["source_files"] = {str(path): _content(path) for path in plan.source.files(context)}
    found = [source]
    for step in plan.steps:
        found.append({"input": digest(found[-1]), **component(step.name, step.entry, step.instance)})
    return found
