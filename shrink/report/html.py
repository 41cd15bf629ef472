"""`report.html`: a self-contained page a person can read without opening the manifest.

Verdict banner, recipe and target, what each pass did, plots of size / latency / accuracy after every pass,
each budget as a bar against its limit, the checks, and the static analysis of the final model.

The page has no scripts and no external references: plots are inline SVG made with matplotlib (imported
lazily, object-oriented API, no pyplot and no global backend switch). Output is deterministic: no
timestamps, fixed SVG ids (`svg.hashsalt`), no SVG metadata, and no wall-clock figures (pass seconds,
host-measured latency: `shrink.report.markdown.is_volatile`), so recompiling a recipe gives the same bytes.
Every string that comes from a recipe, a profile or a plugin is escaped.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from shrink.api.checks import CheckResult
from shrink.checks.estimates import estimate
from shrink.report.markdown import VOLATILE_NOTE, stable
from shrink.report.markdown import cell as _num  # one number format for both reports
from shrink.support.units import human_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

OK_COLOR = "#2e7d32"
FAIL_COLOR = "#c62828"
LINE_COLOR = "#1f4e79"
MUTED = "#6b7280"

# Deterministic, self-contained SVG: fixed id salt, text kept as text (small, searchable; the page's
# sans-serif font draws it), no mathtext (a `$` in a pass name is just a dollar sign).
_RC: dict[str, Any] = {
    "svg.hashsalt": "shrink-report",
    "svg.fonttype": "none",
    "svg.image_inline": True,
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "figure.dpi": 72,
}
_SVG_METADATA: dict[str, None] = {"Date": None, "Creator": None, "Format": None, "Type": None}

CSS = """
:root { --ok: #2e7d32; --fail: #c62828; --muted: #6b7280; --line: #e5e7eb; --bg: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: #111827;
       font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
.banner { border-radius: 10px; padding: 18px 22px; color: #fff; display: flex; gap: 22px; align-items: center; }
.banner.pass { background: var(--ok); } .banner.fail { background: var(--fail); }
.banner .verdict { font-size: 34px; font-weight: 800; letter-spacing: 1px; }
.banner h1 { font-size: 22px; margin: 0; }
.banner p { margin: 2px 0 0; opacity: .92; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 14px; margin-top: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.card h3 { margin: 0 0 6px; font-size: 13px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 10px; margin: 6px 0 14px; }
.figures.wide { grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
.figure { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px; margin: 0; }
.figure { display: flex; justify-content: center; align-items: center; }
.figure svg { display: block; max-width: 100%; height: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); font-size: 13px; }
th, td { text-align: left; padding: 6px 9px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f1f5f9; font-weight: 600; white-space: nowrap; }
td.step { white-space: nowrap; }
td.cause { min-width: 260px; }
td.details { min-width: 300px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.fail td { background: #fdecea; }
.tag { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 700; color: #fff; }
.tag.ok { background: var(--ok); } .tag.fail { background: var(--fail); }
.details { font-size: 12px; color: #374151; }
.details span { display: inline-block; margin: 0 10px 2px 0; }
.details b { font-weight: 600; color: var(--muted); }
code { font: 12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #f1f5f9;
       padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.note { font-size: 12px; color: var(--muted); margin: 4px 0 0; }
footer { margin-top: 36px; font-size: 12px; color: var(--muted); }
"""


# formatting -----------------------------------------------------------------------------------------

def _with_unit(value: Any, unit: str) -> str:
    """A value for the checks table (the unit has its own column): bytes also in a binary unit, fractions in points."""
    if value is None:
        return "–"
    if unit == "bytes" and _is_number(value) and abs(value) >= 1024:
        return f"{_num(value)} ({human_bytes(value)})"
    if unit == "fraction" and _is_number(value) and value:
        points = value * 100
        return f"{_num(value)} ({points:.3g} point{'' if points == 1 else 's'})"
    return _num(value)


def _e(value: Any) -> str:
    return escape(_num(value))


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# plots ----------------------------------------------------------------------------------------------

def _svg(fig: Figure) -> str:
    """The figure as an inline `<svg>` element: no XML prolog, doctype, metadata or namespace URLs."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata=_SVG_METADATA, bbox_inches="tight", pad_inches=0.05)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = text.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "").replace(' xmlns="http://www.w3.org/2000/svg"', "")
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S).strip()


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def latency_estimates(manifest: dict[str, Any]) -> list[tuple[float, float] | None]:
    """(low, high) estimated ms on the target after each step, as the `latency` check computes it (from the
    step's MACs and nodes by dtype); steps with no MAC count get None."""
    profile = manifest.get("target", {}).get("profile") or {}
    estimates: list[tuple[float, float] | None] = []
    for step in manifest.get("history", []):
        metrics = step.get("metrics", {})
        macs, by_dtype = metrics.get("macs"), metrics.get("macs_by_dtype")
        if not _is_number(macs):
            estimates.append(None)
            continue
        found = estimate(profile, by_dtype if isinstance(by_dtype, dict) else {"float32": macs},
                         metrics.get("nodes_by_dtype") or {"float32": metrics.get("nodes", 0)})
        estimates.append((found.low, found.high) if found else None)
    return estimates


def _series(manifest: dict[str, Any], key: str) -> list[float | None]:
    return [m if _is_number(m := s.get("metrics", {}).get(key)) else None for s in manifest.get("history", [])]


def _plot_series(ax: Axes, xs: Sequence[int], values: Sequence[float | None], color: str, label: str,
                 marker: str = "o") -> bool:
    points = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
    if not points:
        return False
    ax.plot([p[0] for p in points], [p[1] for p in points], color=color, marker=marker, markersize=5,
            linewidth=1.6, label=label)
    return True


def _step_axis(ax: Axes, labels: Sequence[str]) -> None:
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([_short(n) for n in labels], rotation=30, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.4, len(labels) - 0.6)
    ax.grid(axis="x", visible=False)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=MUTED, fontsize=9)
    ax.set_yticks([])


def _byte_formatter(value: float, _pos: int) -> str:
    return human_bytes(value).replace(".0 ", " ")


def _byte_ticks(top: float) -> list[float]:
    """Round ticks in the binary unit that fits `top` (0, 16 KiB, 32 KiB, ... rather than 9.8 KiB, 19.5 KiB)."""
    from matplotlib.ticker import MaxNLocator

    scale = 1.0
    while top / scale >= 1024 and scale < 1024**3:
        scale *= 1024
    return [float(t) * scale for t in MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(0, top / scale)
            if 0 <= t * scale <= top * 1.001]


def _compact(value: float, _pos: int = 0) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{value:g}"


def progress_figures(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """One small figure per metric (size, parameters, latency, accuracy) over the passes: (title, svg)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

    history = manifest.get("history", [])
    if not history:
        return []
    labels = [str(s.get("name", "?")) for s in history]
    xs = list(range(len(labels)))
    figures: list[tuple[str, str]] = []

    def panel(title: str) -> tuple[Figure, Axes]:
        fig = _figure(5.0, 2.9)
        ax = fig.add_subplot()
        ax.set_title(title, loc="left")
        _step_axis(ax, labels)
        return fig, ax

    fig, ax = panel("Model size")
    sizes = _series(manifest, "model_bytes")
    if _plot_series(ax, xs, sizes, LINE_COLOR, "model file"):
        top = max(v for v in sizes if v is not None) * 1.1
        ax.set_yticks(_byte_ticks(top))
        ax.yaxis.set_major_formatter(FuncFormatter(_byte_formatter))
        ax.set_ylim(0, top)
    else:
        _empty(ax, "no model file measured")
    figures.append(("model size", _svg(fig)))

    fig, ax = panel("Parameters")
    params = [v for v in _series(manifest, "params") if v is not None]
    if _plot_series(ax, xs, _series(manifest, "params"), LINE_COLOR, "parameters"):
        if min(params) > 0 and max(params) / min(params) >= 10:  # orders of magnitude apart: log scale
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: ""))
        else:
            ax.set_ylim(0, max(params) * 1.15)
        ax.yaxis.set_major_formatter(FuncFormatter(_compact))
    else:
        _empty(ax, "not measured")
    figures.append(("parameters", _svg(fig)))

    fig, ax = panel(f"Latency on {manifest.get('target', {}).get('name', '?')} (ms, estimated)")
    estimates = latency_estimates(manifest)
    band = [(x, e) for x, e in zip(xs, estimates, strict=True) if e is not None]
    if band:
        ax.set_ylim(0, max(e[1] for _, e in band) * 1.2)
        ax.fill_between([x for x, _ in band], [e[0] for _, e in band], [e[1] for _, e in band], color=LINE_COLOR,
                        alpha=0.15, linewidth=0, label="estimate range")
        _plot_series(ax, xs, [e[1] if e else None for e in estimates], LINE_COLOR, "upper end (gated)")
        ax.legend(loc="lower left", fontsize=8, frameon=True, framealpha=0.9, edgecolor="none")
    else:
        _empty(ax, "no latency figures")
    figures.append(("latency", _svg(fig)))

    fig, ax = panel("Accuracy")
    if _plot_series(ax, xs, _series(manifest, "accuracy"), OK_COLOR, "accuracy"):
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
        low = min(v for v in _series(manifest, "accuracy") if v is not None)
        ax.set_ylim(max(0.0, min(low - 0.05, 0.9)), 1.02)
    else:
        _empty(ax, "no labelled eval data")
    figures.append(("accuracy", _svg(fig)))
    return figures


def budget_figures(checks: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each check with a numeric limit as a bar (green ok, red fail) against its limit line: (name, svg)."""
    from matplotlib.ticker import FuncFormatter

    figures: list[tuple[str, str]] = []
    for check in checks:
        limit, value, unit = check.get("limit"), check.get("value"), str(check.get("unit", ""))
        if not _is_number(limit) or not _is_number(value) or (limit == 0 and value == 0):
            continue  # nothing to draw (`ops`: none allowed, none found); the table has it
        color = OK_COLOR if check.get("ok") else FAIL_COLOR
        fig = _figure(2.55, 1.05)
        ax = fig.add_subplot()
        ax.barh([0], [value], height=0.55, color=color)
        ax.axvline(limit, color="#111827", linestyle="--", linewidth=1.4)
        span = max(float(value), float(limit)) * 1.18 or 1.0
        ax.set_xlim(0, span)
        ax.set_ylim(-0.6, 0.75)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.grid(axis="y", visible=False)
        share = f" ({value / limit:.0%})" if limit else ""
        title = f"{_short(str(check.get('name', '?')), 22)}: {_short_value(value, unit)} of {_short_value(limit, unit)}{share}"
        ax.set_title(title, loc="left", color=color)
        if unit == "bytes":
            ax.set_xticks(_byte_ticks(span))
            ax.xaxis.set_major_formatter(FuncFormatter(_byte_formatter))
        elif unit == "fraction":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v * 100:g} pt"))
            ax.locator_params(axis="x", nbins=4)
        else:
            ax.xaxis.set_major_formatter(FuncFormatter(_compact))
            ax.locator_params(axis="x", nbins=4, integer=unit not in ("ms", "mJ"))
        figures.append((str(check.get("name", "?")), _svg(fig)))
    return figures


def _short_value(value: float, unit: str) -> str:
    if unit == "bytes":
        return _byte_formatter(value, 0)
    if unit == "fraction":
        return f"{value * 100:.3g} pt"
    return f"{_compact(value)} {unit}" if len(unit) <= 5 else _compact(value)


# sections -------------------------------------------------------------------------------------------

def _kv(rows: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are already-escaped HTML."""
    return '<dl class="kv">' + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _banner(manifest: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    ok = all(c.get("ok") for c in checks)
    recipe, target = manifest.get("recipe", {}), manifest.get("target", {})
    failed = [c for c in checks if not c.get("ok")]
    if failed:
        summary = "failed: " + ", ".join(escape(str(c.get("name"))) for c in failed)
    else:
        summary = f"all {len(checks)} checks passed" if checks else "no checks ran"
    return (
        f'<header class="banner {"pass" if ok else "fail"}"><div class="verdict">{"PASS" if ok else "FAIL"}</div>'
        f'<div><h1>{escape(str(recipe.get("name", "?")))} for {escape(str(target.get("name", "?")))}</h1>'
        f"<p>{summary}</p></div></header>"
    )


def _step_label(step: dict[str, Any]) -> str:
    return "the source model" if step.get("index") is None else f"passes[{step['index']}] {step.get('name', '?')}"


def _compared(history: list[dict[str, Any]], key: str, fmt: Any) -> str | None:
    """The final value of metric `key`, compared with the source model (or, when the source has no such
    metric, the first step that has it, named) and with the previous step."""
    measured = [(s, s.get("metrics", {}).get(key)) for s in history]
    measured = [(s, v) for s, v in measured if _is_number(v)]
    if not measured or measured[-1][0] is not history[-1]:
        return None
    final = measured[-1][1]
    references = []
    if len(measured) > 1:
        references.append((f"than {_step_label(measured[0][0])}", measured[0][1]))
    if len(history) > 1 and history[-2] is not measured[0][0] and _is_number(history[-2].get("metrics", {}).get(key)):
        references.append(("than the previous step", history[-2]["metrics"][key]))
    text = f"<b>{escape(fmt(final))}</b>"
    if key == "accuracy":
        shown = [f"{escape(fmt(value))} {label.removeprefix('than ')}" for label, value in references]
        return text + (f" ({'; '.join(shown)})" if shown else "")
    return text + (f" ({'; '.join(_ratio(value, final, label) for label, value in references)})" if references else "")


def _ratio(before: float, after: float, label: str) -> str:
    """'85x smaller than the source model', 'same as the previous step', '1.3x larger than …'."""
    if before == after or (after and abs(before / after - 1) < 0.005):
        return f"same as {escape(label.removeprefix('than '))}"
    if not after or before > after:
        return f"{before / after:.3g}x smaller {escape(label)}" if after else f"0 (was {before:,}) {escape(label)}"
    return f"{after / before:.3g}x larger {escape(label)}"


def _summary(manifest: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    recipe, target = manifest.get("recipe", {}), manifest.get("target", {})
    raw, profile = recipe.get("raw") or {}, target.get("profile") or {}
    history = manifest.get("history", [])
    steps = [s for s in history if s.get("index") is not None]
    recipe_rows = [("name", f"<b>{escape(str(recipe.get('name', '?')))}</b>")]
    if raw.get("description"):
        recipe_rows.append(("description", escape(str(raw["description"]))))
    recipe_rows.append(("file", f"<code>{escape(str(recipe.get('path', '?')))}</code>"))
    model = raw.get("model") or {}
    if model:
        source = str(model.get("source", "?"))
        where = model.get("factory") or model.get("path") or model.get("name")
        recipe_rows.append(("model", escape(source) + (f" <code>{escape(str(where))}</code>" if where else "")))
    if steps:
        recipe_rows.append(("passes", " → ".join(escape(str(s.get("name"))) for s in steps)))
    budget = raw.get("budget") or {}
    recipe_rows.append(("budget", ", ".join(f"{escape(str(k))} {'≥' if k == 'accuracy' else '≤'} {_e(v)}"
                                            for k, v in budget.items()) or "none"))

    target_rows = [("name", f"<b>{escape(str(target.get('name', '?')))}</b>")]
    if profile.get("description"):
        target_rows.append(("description", escape(str(profile["description"]))))
    runtime = profile.get("runtime") or {}
    if runtime.get("name"):
        target_rows.append(("runtime", escape(f"{runtime['name']} {runtime.get('version', '')}".strip())))
    memory = profile.get("memory") or {}
    if memory:
        target_rows.append(("memory", ", ".join(f"{escape(str(k))} {escape(human_bytes(v.get('bytes', 0)))}"
                                                for k, v in memory.items() if isinstance(v, dict))))
    storage = profile.get("storage") or {}
    if isinstance(storage, dict) and storage.get("bytes"):
        target_rows.append(("storage", escape(human_bytes(storage["bytes"]))))
    target_rows.append(("profile", f"<code>{escape(str(target.get('origin', '?')))}</code>"))

    result_rows: list[tuple[str, str]] = []
    for key, label, fmt in (("model_bytes", "model file", human_bytes), ("weight_bytes", "weights", human_bytes),
                            ("params", "parameters", _num), ("macs", "MACs", _num),
                            ("accuracy", "accuracy", lambda v: f"{v:.2%}")):
        text = _compared(history, key, fmt)
        if text is not None:
            result_rows.append((label, text))
    latency = next((c for c in checks if c.get("name") == "latency"), None)
    if latency and _is_number(latency.get("value")):
        result_rows.append(("latency (estimate)", f"≤ {_e(latency['value'])} ms on {escape(str(target.get('name', '?')))}"))
    return (
        '<section class="cards">'
        f'<div class="card"><h3>Recipe</h3>{_kv(recipe_rows)}</div>'
        f'<div class="card"><h3>Target</h3>{_kv(target_rows)}</div>'
        f'<div class="card"><h3>Result</h3>{_kv(result_rows)}</div>'
        "</section>"
    )


def _checks_table(checks: list[dict[str, Any]]) -> str:
    rows = []
    for c in checks:
        ok = bool(c.get("ok"))
        unit = str(c.get("unit", ""))
        rows.append(
            f'<tr class="{"ok" if ok else "fail"}"><td><b>{escape(str(c.get("name", "?")))}</b></td>'
            f'<td><span class="tag {"ok" if ok else "fail"}">{"ok" if ok else "FAIL"}</span></td>'
            f'<td class="num">{escape(_with_unit(c.get("value"), unit))}</td>'
            f'<td class="num">{escape(_with_unit(c.get("limit"), unit))}</td>'
            f"<td>{escape(unit)}</td><td class=\"cause\">{escape(str(c.get('cause') or ''))}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="6" class="muted">no checks ran</td></tr>')
    return ('<div class="scroll"><table><thead><tr><th>check</th><th>verdict</th>'
            '<th class="num">value</th><th class="num">limit</th><th>unit</th>'
            "<th>cause</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


PASS_METRICS = (("params", "params", _num), ("macs", "MACs", _num), ("model_bytes", "model", human_bytes),
                ("accuracy", "accuracy", lambda v: f"{v:.2%}"))


def _passes_table(history: list[dict[str, Any]]) -> str:
    head = "".join(f'<th class="num">{escape(label)}</th>' for _, label, _ in PASS_METRICS)
    rows = []
    for step in history:
        index = "source" if step.get("index") is None else str(step["index"])
        metrics = step.get("metrics") or {}
        cells = "".join(
            f'<td class="num">{escape(fmt(v)) if _is_number(v := metrics.get(key)) else "–"}</td>'
            for key, _, fmt in PASS_METRICS
        )
        details = stable(step.get("details") or {})
        info = "".join(f"<span><b>{escape(str(k))}</b> {escape(_list(v))}</span>" for k, v in details.items())
        rows.append(
            f"<tr><td>{escape(index)}</td><td class=\"step\"><b>{escape(str(step.get('name', '?')))}</b>"
            f"<div class=\"muted\">{escape(str(step.get('plugin', '')))}</div></td>"
            f"{cells}"
            f'<td class="details">{info or "<span class=muted>–</span>"}</td></tr>'
        )
    return (f'<div class="scroll"><table><thead><tr><th>#</th><th>step</th>{head}<th>what it reports</th>'
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _list(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_list(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_list(v) for v in value)
    return _num(value)


def _analysis(analysis: dict[str, Any] | None) -> str:
    if not analysis:
        return '<p class="muted">no static analysis recorded</p>'
    by_dtype = analysis.get("weights_by_dtype") or {}
    dtype_rows = "".join(
        f'<tr><td>{escape(str(d))}</td><td class="num">{_e(r.get("params"))}</td>'
        f'<td class="num">{escape(human_bytes(r.get("bytes", 0)))}</td></tr>'
        for d, r in sorted(by_dtype.items())
    )
    dtype_table = ('<table><thead><tr><th>dtype</th><th class="num">parameters</th><th class="num">bytes</th></tr></thead>'
                   f"<tbody>{dtype_rows}</tbody></table>")
    macs_by_op = analysis.get("macs_by_op") or {}
    live = ", ".join(f"<code>{escape(str(t.get('name')))}</code> ({escape(human_bytes(t.get('bytes', 0)))})"
                     for t in (analysis.get("peak_live") or [])[:4])
    rows = [
        ("parameters", f"{_e(analysis.get('params'))} ({escape(human_bytes(analysis.get('weight_bytes', 0)))} of weights)"),
        ("MACs / inference", f"{_e(analysis.get('macs'))}"
         + (" (" + ", ".join(f"{escape(str(k))} {_e(v)}" for k, v in sorted(macs_by_op.items())) + ")" if macs_by_op else "")),
        ("peak activations", f"{escape(human_bytes(analysis.get('peak_activation_bytes', 0)))} (lower bound); "
                             f"arena plan {escape(human_bytes(analysis.get('arena_bytes', 0)))}"),
        ("peak node", f"<code>{escape(str(analysis.get('peak_node')))}</code>" + (f" with {live} live" if live else "")),
        ("input / output", escape(f"{human_bytes(analysis.get('input_bytes', 0))} / {human_bytes(analysis.get('output_bytes', 0))}")),
        ("nodes", _e(analysis.get("nodes"))),
        ("operators", ", ".join(f"{escape(str(o.get('op_type')))} [{escape(', '.join(map(str, o.get('dtypes') or [])))}] "
                                f"×{_e(o.get('count'))}" for o in analysis.get("ops") or [])),
        ("opsets", ", ".join(f"{escape(str(k))} {_e(v)}" for k, v in sorted((analysis.get("opsets") or {}).items()))),
    ]
    notes = "".join(f'<p class="note">{escape(str(n))}</p>' for n in analysis.get("notes") or [])
    return (f'<div class="cards"><div class="card"><h3>Final model</h3>{_kv(rows)}{notes}</div>'
            f'<div class="card"><h3>Parameters by dtype</h3>{dtype_table}</div></div>')


def _figures(figures: list[tuple[str, str]], css_class: str = "figures") -> str:
    return (f'<div class="{css_class}">'
            + "".join(f'<figure class="figure" aria-label="{escape(name)}">{svg}</figure>' for name, svg in figures)
            + "</div>")


def render_html(manifest: dict[str, Any], checks: list[CheckResult] | None = None) -> str:
    """The whole page; deterministic for a given manifest (and matplotlib version)."""
    from matplotlib import rc_context

    check_rows = [c.as_dict() for c in checks] if checks is not None else list(manifest.get("checks") or [])
    recipe, target = manifest.get("recipe", {}), manifest.get("target", {})
    verdict = "PASS" if all(c.get("ok") for c in check_rows) else "FAIL"
    with rc_context(cast(Any, _RC)):
        progress = progress_figures(manifest)
    with rc_context(cast(Any, {**_RC, "font.size": 8, "axes.titlesize": 9})):
        budgets = budget_figures(check_rows)
    history = manifest.get("history", [])
    versions = manifest.get("versions") or {}
    plugins = ", ".join(f"{p.get('name')} ({p.get('dist')} {p.get('version')})" for p in manifest.get("plugins") or [])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(str(recipe.get('name', '?')))} for {escape(str(target.get('name', '?')))}: {verdict} · shrink</title>",
        f"<style>{CSS}</style></head><body><main>",
        _banner(manifest, check_rows),
        _summary(manifest, check_rows),
        "<h2>Budgets and constraints</h2>",
        _figures(budgets) if budgets else "",
        '<p class="note">Bars are the measured value, the dashed line is the limit; '
        "green passed, red failed. Gates use deterministic figures (sizes, counts, the target's latency estimate).</p>"
        if budgets else "",
        _checks_table(check_rows),
        "<h2>Pass by pass</h2>",
        _figures(progress, "figures wide") if progress else "",
        '<p class="note">Latency is estimated from each step\'s MACs and the target profile\'s calibrated throughput '
        "(float32 before quantization); a step without a MAC count or throughput figure has no point.</p>" if progress else "",
        _passes_table(history),
        '<p class="note">' + re.sub(r"`([^`]*)`", r"<code>\1</code>", escape(VOLATILE_NOTE)) + "</p>",
        "<h2>Static analysis of the final model</h2>",
        _analysis(manifest.get("analysis")),
        "<footer>Compiled by shrink "
        f"{escape(str(versions.get('shrink', '?')))} on Python {escape(str(manifest.get('python', '?')))}; "
        + escape(", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if k != "shrink"))
        + (f"<br>plugins: {escape(plugins)}" if plugins else "")
        + f"<br>target profile sha256 <code>{escape(str(target.get('sha256', '?')))}</code>. "
        "The manifest (<code>manifest.json</code>) has every figure on this page.</footer>",
        "</main></body></html>",
        "",
    ]
    return "\n".join(p for p in parts if p)
