"""The layout rules of docs/architecture.md, read from the source with `ast` (nothing is imported):
no import from one built-in family into another, no import circle among `shrink/` modules (type-only
and function-level imports included), and every package of Python code lives in a folder named as
its import name."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_WORDS = ("common", "shared", "base", "util")


def package_dirs() -> dict[str, Path]:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items() if name}


def modules() -> dict[str, Path]:
    """Every module of every mapped package, by import name."""
    found = {}
    for package, folder in package_dirs().items():
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = [*package.split("."), *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path, module: str) -> Iterator[str]:
    """Every module name a file imports, anywhere in it (relative imports resolved), with `from` targets."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def owner(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that `name` is or lies inside."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in known:
            return ".".join(parts[:i])
    return None


def families() -> dict[str, str]:
    """Built-in plugin packages (folders under plugins/) by import name: family name."""
    return {name: folder.name for name, folder in package_dirs().items() if folder.parent == ROOT / "plugins"}


def test_every_package_folder_is_named_as_its_import_name() -> None:
    wrong = [f"{name} lives in {folder.relative_to(ROOT)}" for name, folder in package_dirs().items()
             if any(len([line for line in f.read_text().splitlines() if line.strip()]) > 3 for f in folder.rglob("*.py"))
             and folder.name != name.split(".")[-1]]
    assert not wrong


def test_plugins_folder_holds_only_family_packages() -> None:
    mapped = {folder for folder in package_dirs().values()}
    loose = [p.name for p in (ROOT / "plugins").iterdir() if p.name != "__pycache__" and p not in mapped]
    assert not loose, f"plugins/ holds {loose}: every folder must be a mapped package, and plugins/ itself is not one"


def test_no_family_imports_another() -> None:
    known = modules()
    by_package = families()
    crossings = []
    for module, path in known.items():
        mine = by_package.get(module.split(".")[0])
        if mine is None:
            continue
        for target in imports(path, module):
            theirs = by_package.get(target.split(".")[0])
            if theirs is None or theirs == mine:
                continue
            if any(word in theirs for word in SHARED_WORDS) and not any(word in mine for word in SHARED_WORDS):
                continue  # any family may use the shared layer; the shared layer uses no family
            crossings.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not crossings, "\n".join(sorted(set(crossings)))


def test_the_core_imports_no_plugin() -> None:
    known = modules()
    plugin_packages = set(families())
    found = [f"{path.relative_to(ROOT)} imports {target}" for module, path in known.items() if module.split(".")[0] == "shrink"
             for target in imports(path, module) if target.split(".")[0] in plugin_packages]
    assert not found, "\n".join(found)


def core_graph() -> dict[str, set[str]]:
    known = {m: p for m, p in modules().items() if m == "shrink" or m.startswith("shrink.")}
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        if path.name == "__init__.py":
            continue  # package __init__ files only re-export
        edges = set()
        for target in imports(path, module):
            found = owner(target, known)
            if found and found != module and known[found].name != "__init__.py":
                edges.add(found)
        graph[module] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_in_the_core() -> None:
    assert not circles(core_graph())


@pytest.mark.parametrize("graph", [{"a": {"b"}, "b": {"c"}, "c": {"a"}}, {"a": {"b"}, "b": {"a"}, "c": set()}])
def test_the_circle_finder_finds_circles(graph: dict[str, set[str]]) -> None:
    assert circles(graph)


def test_the_family_check_sees_a_crossing(tmp_path: Path) -> None:
    plugin = tmp_path / "mod.py"
    plugin.write_text("def f():\n    from shrink_torch.runtime import predict\n")
    assert "shrink_torch.runtime" in set(imports(plugin, "shrink_onnx.mod"))
