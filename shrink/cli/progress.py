"""Progress on stderr while a recipe compiles: a rich progress bar on a terminal, plain lines otherwise.

Without a terminal (CI logs, pipes, `--json`) every report whose text changes is a line (the passes report at
least once an epoch), and a heartbeat line follows after `HEARTBEAT_S` seconds without one, so a long epoch
or a long library call still shows the job is alive and where it is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shrink.cli.console import Console

HEARTBEAT_S = 30.0


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """`progress(task, fraction, text)`: the engine's progress callback (task: `data`, `source`, `passes[2]`...)."""

    def __init__(self, console: Console, heartbeat: float = HEARTBEAT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.heartbeat = heartbeat
        self.clock = clock
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started: dict[str, float] = {}  # task -> when its first report came
        self._printed: dict[str, str] = {}  # task -> the last text printed for it
        self._current: tuple[str, float, str] | None = None  # the latest report, and when it came
        self._current_at = 0.0
        self._last_line = clock()
        if console.err.is_terminal:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console.err)

    def __enter__(self) -> Progress:
        if self.bar:
            self.bar.start()
        elif self.heartbeat > 0:
            self._thread = threading.Thread(target=self._beat_loop, name="shrink-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __call__(self, task: str, fraction: float, text: str) -> None:
        if self.bar is not None:
            if task not in self.tasks:
                self.tasks[task] = self.bar.add_task(text, total=1.0)
            self.bar.update(self.tasks[task], completed=fraction, description=text)
            return
        with self._lock:
            now = self.clock()
            self._started.setdefault(task, now)
            self._current = (task, fraction, text)
            self._current_at = now
            if self._printed.get(task) == text:
                return
            self._printed[task] = text
            if fraction <= 0.0:
                line = f"→ {text}"
            elif fraction >= 1.0:
                line = f"  {text}"
            else:
                line = f"  {task}: {text} ({fraction:.0%})"
            self._line(line, now)

    def beat(self) -> None:
        """Print where the job is when nothing was printed for `heartbeat` seconds (called by the heartbeat thread)."""
        with self._lock:
            now = self.clock()
            if self._current is None or now - self._last_line < self.heartbeat:
                return
            task, fraction, text = self._current
            if fraction >= 1.0:  # between steps (checks, golden outputs, writing the bundle)
                self._line(f"  … still running, {_elapsed(now - self._current_at)} after: {text}", now)
                return
            where = text if text == task else f"{task}: {text}"
            self._line(f"  … {where} ({fraction:.0%}; still running, {_elapsed(now - self._started[task])} "
                       "in this step)", now)

    def _line(self, text: str, now: float) -> None:
        self.console.info(text)
        self._last_line = now

    def _beat_loop(self) -> None:
        interval = min(self.heartbeat, 5.0)
        while not self._stop.wait(interval):
            self.beat()
