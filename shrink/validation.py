"""JSON Schema validation with one `Problem` per error, named by file and JSON path, with hints."""

from __future__ import annotations

from typing import Any

from shrink.errors import Problem
from shrink.jsonio import json_path


def schema_problems(instance: Any, schema: dict[str, Any], label: str, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    """Validate with jsonschema; one `Problem` per error, each named by file and JSON path."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        path = prefix + tuple(error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties":
            message = _unknown_keys_message(error)
        problems.append(Problem(f"{label}: {json_path(path)}", message, _hint_for(error)))
    return problems


def _unknown_keys_message(error: Any) -> str:
    allowed = sorted(error.schema.get("properties", {}))
    extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
    if not extra:
        return error.message
    return ", ".join(f"unknown key {key!r}" for key in extra)


def _hint_for(error: Any) -> str | None:
    import difflib

    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        hints = []
        for key in sorted(set(error.instance) - set(allowed)):
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {close[0]!r} instead of {key!r}?")
        if hints:
            return " ".join(hints)
        return "allowed keys: " + ", ".join(allowed) if allowed else None
    if error.validator == "enum":
        close = difflib.get_close_matches(str(error.instance), [str(v) for v in error.validator_value], n=1)
        if close:
            return f"did you mean {close[0]!r}?"
    return None
