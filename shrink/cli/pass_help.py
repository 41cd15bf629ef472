"""`shrink passes NAME` as text: the pass's summary and help, its formats and needs, and a table of its options."""

from __future__ import annotations

import json
import textwrap

from rich.markup import escape
from rich.table import Table

from shrink.cli.console import Console
from shrink.commands.results import PassInfo

WIDE = 120  # columns from which the options are a table

NEEDS = {"data": "data (any split)", "train": "a train split", "calibration": "a calibration split",
         "eval": "an eval split", "labels": "labelled data"}


def _default(value: object, required: bool) -> str:
    if required:
        return "required"
    return "–" if value is None else json.dumps(value)


def render_pass(console: Console, info: PassInfo) -> None:
    kind = info.name.split(".", 1)[0]
    default = f" (the default {kind!r} pass)" if info.default else ""
    console.print(f"[bold]{escape(info.name)}[/]{escape(default)} from {escape(info.plugin)}")
    body = info.doc.split("\n", 1)[1].strip() if "\n" in info.doc else ""
    console.print(escape(info.summary))
    if body:
        console.print(escape(body))
    console.print(f"formats: {' or '.join(info.consumes)} → {info.produces}")
    needs = ", ".join(NEEDS.get(r, r) for r in info.requires) or "nothing beyond the model"
    console.print(f"needs: {escape(needs)}")
    if not info.options:
        console.print("options: none")
    elif console.out.width >= WIDE:
        table = Table(title="options", title_justify="left")
        for col in ("option", "type", "default", "bounds", "description"):
            table.add_column(col, overflow="fold")  # wrap values, never cut them
        for option in info.options:
            table.add_row(escape(option.name), escape(option.type), escape(_default(option.default, option.required)),
                          escape(option.bounds), escape(option.description))
        console.print(table)
    else:  # narrow terminals and pipes: one option per stanza, so long descriptions keep the full width
        console.print("options (option · type · default · bounds):")
        for option in info.options:
            facts = [option.name, option.type, _default(option.default, option.required)] + [option.bounds] * bool(option.bounds)
            console.print(f"  [bold]{escape(facts[0])}[/] · {escape(' · '.join(facts[1:]))}")
            if option.description:
                console.print(escape(textwrap.fill(option.description, max(40, console.out.width),
                                                   initial_indent=" " * 6, subsequent_indent=" " * 6)))
    console.print(f'every step also takes "description" (a note shrink ignores); `shrink schema recipe` has the '
                  f"JSON Schema, `shrink passes {info.name} --json` this as JSON")
