"""The tensor arena a `.tflite` model really needs under TensorFlow Lite Micro, measured with TFLM's own Python
interpreter (the `tflite-micro` wheel, optional: `pip install -e '.[tflite]'`).

The model is loaded with a generous arena and run once on zero inputs; TFLM's `RecordingMicroAllocator` then
reports the arena it allocated (the head: planned tensors; the tail: persistent interpreter data). The model is
loaded again with that many bytes and run; the report leaves out kernels' temporary memory while they prepare, so
where it is not enough the smallest arena that runs is searched for (16-byte steps): the figure is one that works. The probe runs in a child
process: TFLM prints its allocations on the C++ stderr, and a too-small arena may abort the process.

The figure is TFLM's reference kernels on this 64-bit host: on a 32-bit Cortex-M the persistent structures are
smaller, and optimized kernels (CMSIS-NN) may request scratch buffers the reference kernels do not.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALL = "pip install -e '.[tflite]'"
PROBE_TIMEOUT_S = 300


class ArenaUnavailable(RuntimeError):
    """The arena cannot be measured here (the runtime is not installed, or the model does not run)."""


@dataclass(frozen=True)
class Arena:
    """Bytes of the arena TFLM needs: `total` = `head` (planned tensors) + `tail` (persistent data), as its
    allocator reports them, + `temp` (what running needed beyond the report: kernels' temporary memory while they
    prepare, alignment)."""

    total: int
    head: int
    tail: int
    temp: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "head": self.head, "tail": self.tail, "temp": self.temp}

    def describe(self) -> str:
        return describe(self.as_dict())


def describe(arena: dict[str, int]) -> str:
    """`arena` (`Arena.as_dict()`) in words: its total and what it is made of."""
    from shrink.support.units import human_bytes

    temp = int(arena.get("temp", 0))
    return (f"{human_bytes(arena['total'])} (tensors {human_bytes(arena['head'])} + persistent "
            f"{human_bytes(arena['tail'])}" + (f" + {human_bytes(temp)} while preparing" if temp else "") + ")")


def available() -> str | None:
    """Why TFLM's interpreter cannot run here (with the install command), or None."""
    if importlib.util.find_spec("tflite_micro") is None:
        return f"TensorFlow Lite Micro's Python interpreter is not installed: {INSTALL}"
    return None


def measure(model: Path) -> Arena:
    """The arena `model` needs under TFLM (see the module docstring); `ArenaUnavailable` says why not."""
    why = available()
    if why:
        raise ArenaUnavailable(why)
    result = _child(model, None)
    if "error" in result:
        raise ArenaUnavailable(f"TFLM cannot run {model.name}: {result['error']}")
    reported = int(result["total"])
    total = _smallest(model, reported)
    return Arena(total, int(result["head"]), int(result["tail"]), total - reported)


def _child(model: Path, arena: int | None) -> dict[str, object]:
    """Run the probe in a fresh interpreter: TFLM's state after a failed allocation is not safe to reuse (a later
    run fails or crashes), so each try gets a process of its own."""
    command = [sys.executable, "-m", "shrink.support.tflm", str(model), *([str(arena)] if arena else [])]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ArenaUnavailable(f"TFLM did not finish running {model.name} within {PROBE_TIMEOUT_S} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return {"error": detail}


ALIGN = 16  # TFLM aligns arena allocations to 16 bytes
MAX_SEARCH = 4


def _smallest(model: Path, reported: int) -> int:
    """The smallest arena (in steps of `ALIGN` bytes) from `reported` up that runs the model. The report leaves out
    the temporary memory kernels take while they prepare (and the arena's start alignment), so the reported total
    alone can fail; a working figure is found by doubling the margin, then bisecting."""

    def works(size: int) -> bool:
        return "error" not in _child(model, size)

    if works(reported):
        return reported
    low, margin = reported, ALIGN
    while not works(reported + margin):
        low = reported + margin
        margin *= 2
        if margin > reported * MAX_SEARCH:
            raise ArenaUnavailable(f"TFLM cannot run {model.name} in any arena up to {MAX_SEARCH}x the "
                                   f"{reported} bytes its allocator reported")
    high = reported + margin
    while high - low > ALIGN:
        middle = low + (high - low) // (2 * ALIGN) * ALIGN
        low, high = (low, middle) if works(middle) else (middle, high)
    return high


_REPORT = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def _run_once(data: bytes, arena: int) -> None:
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(data, arena_size=arena)
    index = 0
    while True:
        try:
            details = interpreter.get_input_details(index)
        except Exception:  # past the last input
            break
        interpreter.set_input(np.zeros(details["shape"], details["dtype"]), index)
        index += 1
    interpreter.invoke()
    interpreter.print_allocations()


def _probe(path: str, arena: int | None) -> None:
    """Child process: with `arena`, run once in that many bytes and print `{"ok": true}`; without, run in a generous
    arena and print TFLM's report `{"total", "head", "tail"}`; `{"error"}` when the model does not run."""
    import os
    import tempfile

    data = Path(path).read_bytes()
    size = arena or max(len(data) * 10, 1 << 20) + (16 << 20)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            _run_once(data, size)
            sys.stderr.flush()
        except Exception as exc:
            os.dup2(saved, 2)
            print(json.dumps({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}))
            return
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        found = {kind: int(value) for kind, value in _REPORT.findall(capture.read().decode(errors="replace"))}
    if arena:
        print(json.dumps({"ok": True}))
    elif set(found) != {"total", "head", "tail"}:
        print(json.dumps({"error": "TFLM's allocation report was not found"}))
    else:
        print(json.dumps(found))


if __name__ == "__main__":
    _probe(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
