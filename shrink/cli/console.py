"""The one place the core prints: results to stdout, everything else (progress, problems) to stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console as RichConsole
from rich.markup import escape

from shrink.errors import Problem


class Console:
    """`out` is for results, `err` for progress and problems; with `json_mode` only `emit_json` writes stdout."""

    def __init__(self, json_mode: bool = False, debug: bool = False) -> None:
        self.json_mode = json_mode
        self.debug = debug
        self.out = RichConsole(file=sys.stdout, highlight=False, soft_wrap=True)
        self.err = RichConsole(file=sys.stderr, highlight=False, soft_wrap=True)

    def print(self, *objects: Any) -> None:
        if not self.json_mode:
            self.out.print(*objects)

    def info(self, text: str) -> None:
        self.err.print(escape(text))

    def problem(self, problem: Problem, label: str = "error") -> None:
        self.err.print(f"[bold red]{label}[/]: {escape(problem.line())}")
        if problem.hint:
            self.err.print(f"  [dim]hint:[/] {escape(problem.hint)}")

    def warn(self, text: str) -> None:
        self.err.print(f"[yellow]warning[/]: {escape(text)}")

    def emit_json(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
        sys.stdout.flush()

    @contextmanager
    def stdout_to_stderr(self) -> Iterator[None]:
        """While libraries run, send anything they print to stdout (Python or C level) to stderr."""
        if not self.json_mode:
            yield
            return
        sys.stdout.flush()
        try:
            saved = os.dup(1)
        except OSError:  # no real fd (e.g. captured by a test harness)
            old = sys.stdout
            sys.stdout = sys.stderr
            try:
                yield
            finally:
                sys.stdout = old
            return
        os.dup2(2, 1)
        old = sys.stdout
        sys.stdout = sys.stderr
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stdout = old
            os.dup2(saved, 1)
            os.close(saved)
