"""Byte counts and ages for people: the one formatter the CLI, the checks and the reports share, and the
parsers of sizes and ages written on a command line or in an environment variable."""

from __future__ import annotations

import re

from shrink.errors import UsageError

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float, digits: int = 1) -> str:
    """`n` in the largest binary unit it reaches: `'312 B'`, `'59.1 MiB'` (`digits` after the point)."""
    value = float(n)
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            break
        value /= 1024
    return f"{value:,.0f} B" if unit == "B" else f"{value:,.{digits}f} {unit}"


_AGE = re.compile(r"\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])\s*", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str, where: str) -> int:
    """Bytes from `2GB`, `500MB` (powers of 1000), `1.5GiB` (powers of 1024) or a plain number of bytes.
    A value that is not a size is a `UsageError` at `where` (an option or environment variable)."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        return int(TypeAdapter(ByteSize).validate_python(text.strip()))
    except ValidationError:
        raise UsageError(f"{text!r} is not a size", where=where,
                         hint="write a number with a unit: 2GB, 500MB, 1.5GiB (or plain bytes)") from None


def parse_age(text: str, where: str) -> float:
    """Seconds from `30d`, `12h`, `90m`, `45s` or `2w`; anything else is a `UsageError` at `where`."""
    match = _AGE.fullmatch(text)
    if match is None:
        raise UsageError(f"{text!r} is not an age", where=where,
                         hint="write a number with a unit: 30d, 12h, 90m, 45s or 2w")
    return float(match["number"]) * _SECONDS[match["unit"].lower()]
