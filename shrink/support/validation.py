"""JSON Schema validation with one `Problem` per error, named by file and JSON path, with hints."""

from __future__ import annotations

import reprlib
from typing import Any

from shrink.errors import Problem
from shrink.support.jsonio import json_path


def schema_problems(instance: Any, schema: dict[str, Any], label: str, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    """Validate with jsonschema; one `Problem` per error, each named by file and JSON path."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        path = prefix + tuple(error.absolute_path)
        message = _shorten(error.message, error.instance)
        if error.validator == "additionalProperties":
            message = _unknown_keys_message(error)
        problems.append(Problem(f"{label}: {json_path(path)}", message, _hint_for(error)))
    return problems


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxdict, _BRIEF.maxlist, _BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 2, 4, 4, 60, 60, 40


def brief(value: Any) -> str:
    """A repr short enough for a one-line message (long strings, numbers and nested values elided)."""
    return _BRIEF.repr(value)


def _shorten(message: str, instance: Any) -> str:
    """jsonschema quotes the whole offending value; keep messages to one readable line."""
    try:
        full = repr(instance)
    except (RecursionError, ValueError):
        return message
    if len(full) > 80 and full in message:
        message = message.replace(full, brief(instance), 1)
    if len(message) > 500:
        message = message[:497] + "..."
    return message


def _unknown_keys_message(error: Any) -> str:
    allowed = sorted(error.schema.get("properties", {}))
    extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
    if not extra:
        return error.message
    return ", ".join(f"unknown key {brief(key)}" for key in extra)


def _hint_for(error: Any) -> str | None:
    import difflib

    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        hints = []
        for key in sorted(set(error.instance) - set(allowed)):
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {close[0]!r} instead of {brief(key)}?")
        if hints:
            return " ".join(hints)
        return "allowed keys: " + ", ".join(allowed) if allowed else None
    if error.validator == "enum":
        close = difflib.get_close_matches(str(error.instance), [str(v) for v in error.validator_value], n=1)
        if close:
            return f"did you mean {close[0]!r}?"
    return None
