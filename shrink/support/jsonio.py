"""Strict JSON: syntax errors with line and column, no NaN/Infinity, no duplicate keys.

Python's `json` accepts `NaN`/`Infinity` literals and silently keeps the last of duplicate keys;
a recipe or profile with either is almost always a mistake, so both are errors here, reported with
the JSON path where they occur.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shrink.errors import Problem, UsageError

MAX_DEPTH = 64  # objects and arrays nested deeper than this are refused (no recipe or profile needs it)
MAX_NUMBER_CHARS = 400  # longer numeric literals are refused before Python converts them


class _Invalid:
    """A value JSON's grammar allows (or Python's `json` accepts) that a recipe or profile must not hold."""

    def __init__(self, message: str) -> None:
        self.message = message


def _constant(text: str) -> _Invalid:
    return _Invalid(f"{text} is not valid JSON (use a number or null)")


def _brief_number(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}…{text[-6:]} ({len(text)} characters)"


def _int(text: str) -> int | _Invalid:
    if len(text) > MAX_NUMBER_CHARS:
        return _Invalid(f"number {_brief_number(text)} is too large")
    return int(text)


def _float(text: str) -> float | _Invalid:
    if len(text) > MAX_NUMBER_CHARS:
        return _Invalid(f"number {_brief_number(text)} is too long")
    value = float(text)
    if not math.isfinite(value):
        return _Invalid(f"number {_brief_number(text)} is out of range (it overflows to infinity)")
    return value


class _Object(dict):
    duplicates: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def json_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """`("passes", 1, "ratio")` → `passes[1].ratio`; the empty path is `(root)`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _strictness_problems(value: Any, path: tuple[str | int, ...], label: str) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(value, _Invalid):
        problems.append(Problem(f"{label}: {json_path(path)}", value.message))
    elif isinstance(value, (dict, list)) and len(path) >= MAX_DEPTH:
        problems.append(Problem(f"{label}: {json_path(path)}", f"nested more than {MAX_DEPTH} levels deep"))
    elif isinstance(value, dict):
        for key in getattr(value, "duplicates", []):
            problems.append(Problem(f"{label}: {json_path(path + (key,))}", f"duplicate key {key!r}"))
        for key, item in value.items():
            problems.extend(_strictness_problems(item, path + (key,), label))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems.extend(_strictness_problems(item, path + (i,), label))
    return problems


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def loads_strict(text: str, label: str) -> Any:
    """Parse `text`; `label` names the source in messages (usually the file name)."""
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_int=_int, parse_float=_float)
    except json.JSONDecodeError as exc:
        raise UsageError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", where=label) from None
    except RecursionError:
        raise UsageError(f"invalid JSON: nested more than {MAX_DEPTH} levels deep", where=label) from None
    problems = _strictness_problems(value, (), label)
    if problems:
        raise UsageError(problems)
    return _plain(value)


def load_strict(path: Path, label: str | None = None) -> Any:
    """Read and parse a JSON file strictly; unreadable files are a `UsageError` too."""
    label = label or path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a JSON file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"not UTF-8 text (byte {exc.start})", where=label) from None
    return loads_strict(text, label)


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
