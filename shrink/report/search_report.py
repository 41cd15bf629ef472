"""The search report: `search.md` (the front, the chosen recipe, every trial, cache use) and `front.png`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORT = "search.md"
PLOT = "front.png"


def _cell(objective: Any, value: float | None) -> str:
    return objective.format(value)


def write(folder: Path, name: str, target: str, spaces: Sequence[Any], objectives: Sequence[Any], searched: Any,
          result: Any) -> None:
    lines = [f"# Search: {name} on {target}", ""]
    lines.append(f"{len(searched.records)} trials ({searched.ran} run now, {searched.seconds:.1f} s), "
                 f"{result.feasible} feasible, {len(searched.front)} on the front; pass-cache hit rate "
                 f"{'–' if result.hit_rate is None else f'{result.hit_rate:.0%}'} of the steps run now. "
                 f"Study: `{searched.storage}`.")
    lines += ["", "## Spaces", ""] + [f"- `{s.name}`: {s.describe()}{' (declared by the pass)' if s.declared else ''}"
                                       for s in spaces]
    heads = [o.name + (" ↑" if o.direction == "maximize" else " ↓") for o in objectives]
    lines += ["", "## Objectives", ""] + [f"- `{o.name}` ({o.direction}): {o.description}" for o in objectives]
    lines += ["", "The chosen trial is the front's best on the first objective, ties broken by the next ones in order."]
    lines += ["", "## Pareto front (feasible trials)", ""]
    if searched.front:
        lines += ["| trial | " + " | ".join(heads) + " | values |", "|---" * (len(heads) + 2) + "|"]
        for r in searched.front:
            values = ", ".join(f"{k}={json.dumps(v)}" for k, v in r.params.items())
            mark = " (chosen)" if searched.best is r else ""
            lines.append(f"| {r.number}{mark} | " + " | ".join(_cell(o, r.figures.get(o.name)) for o in objectives)
                         + f" | {values} |")
        lines += ["", f"![front]({PLOT})"]
    else:
        lines.append("No trial is feasible." + (f" The closest is trial {result.closest['trial']}." if result.closest else ""))
    if searched.best is not None:
        lines += ["", "## Chosen", "", f"Trial {searched.best.number}: `best.json`, compiled again into `best/` "
                  f"({'the same model, sha256 ' + str(searched.best.model_sha256)[:12] if result.reproduced else 'a DIFFERENT model'})."]
    lines += ["", "## Trials", "", "| trial | " + " | ".join(heads) + " | feasible | failed checks | cached steps | s |",
              "|---" * (len(heads) + 5) + "|"]
    for r in searched.records:
        failed = r.error or ", ".join(f["check"] for f in r.failed) or ""
        lines.append(f"| {r.number}{' (recipe)' if r.baseline else ''} | "
                     + " | ".join(_cell(o, r.figures.get(o.name)) for o in objectives)
                     + f" | {'yes' if r.feasible else 'no'} | {failed.replace('|', '/')} | {r.cached_steps}/{r.steps} | {r.seconds:.1f} |")
    (folder / REPORT).write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(folder / PLOT, objectives, searched)


def _plot(path: Path, objectives: Sequence[Any], searched: Any) -> None:
    """Each trial on the first two objectives (or the first against the trial number), the front marked: joined when
    there are two objectives; with a third, feasible trials are coloured by it and the front is ringed (a front in
    three objectives is no staircase in two)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in searched.records if r.error is None]
    fig, ax = plt.subplots(figsize=(6.5 if len(objectives) > 2 else 6, 4), dpi=100)
    x_of = (lambda r: r.figures[objectives[1].name]) if len(objectives) > 1 else (lambda r: r.number)

    def y_of(r: Any) -> Any:
        return r.figures[objectives[0].name]

    infeasible = [r for r in scored if not r.feasible]
    feasible = [r for r in scored if r.feasible]
    if infeasible:
        ax.scatter([x_of(r) for r in infeasible], [y_of(r) for r in infeasible], c="#bbbbbb", marker="x", label="infeasible")
    if feasible:
        third = objectives[2] if len(objectives) > 2 else None
        colour: dict[str, Any] = ({"c": [r.figures[third.name] for r in feasible], "cmap": "viridis"} if third
                                  else {"c": "#1f77b4"})
        dots = ax.scatter([x_of(r) for r in feasible], [y_of(r) for r in feasible], marker="o", label="feasible", **colour)
        if third:
            fig.colorbar(dots, ax=ax, label=f"{third.name} ({third.unit})")
    if searched.front and len(objectives) > 2:
        ax.scatter([x_of(r) for r in searched.front], [y_of(r) for r in searched.front], s=140, facecolors="none",
                   edgecolors="#d62728", linewidths=1.5, label="front")
    elif searched.front:
        ordered = sorted(searched.front, key=x_of)
        ax.plot([x_of(r) for r in ordered], [y_of(r) for r in ordered], c="#d62728", marker="o", label="front")
    ax.set_xlabel(f"{objectives[1].name} ({objectives[1].unit})" if len(objectives) > 1 else "trial")
    ax.set_ylabel(f"{objectives[0].name} ({objectives[0].unit})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
