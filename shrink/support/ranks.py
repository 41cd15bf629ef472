"""Which process of a data-parallel launch this is, read from the variables `torchrun` sets (`RANK`,
`WORLD_SIZE`). Torch-free, so the core can let one process (rank 0, the writer) write the pass cache and
the bundle while the other ranks only take part in the passes. Without those variables (a plain compile)
the process is rank 0 of 1."""

from __future__ import annotations

import os

from shrink.errors import UsageError


def _read(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not an integer", where=f"environment variable {name}",
                         hint="torchrun sets RANK and WORLD_SIZE; unset them to compile in one process") from None


def world_size() -> int:
    """The number of processes of the launch (1 without torchrun)."""
    return max(_read("WORLD_SIZE", 1), 1)


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return _read("RANK", 0) if world_size() > 1 else 0


def is_writer() -> bool:
    """Whether this process writes the pass cache and the bundle: rank 0, or the only process."""
    return rank() == 0
