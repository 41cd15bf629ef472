"""Byte counts for people: the one formatter the CLI, the checks and the reports share."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float, digits: int = 1) -> str:
    """`n` in the largest binary unit it reaches: `'312 B'`, `'59.1 MiB'` (`digits` after the point)."""
    value = float(n)
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            break
        value /= 1024
    return f"{value:,.0f} B" if unit == "B" else f"{value:,.{digits}f} {unit}"
