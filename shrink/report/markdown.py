"""`report.md`: what each pass did and how the final model measures against its budget."""

from __future__ import annotations

from typing import Any

from shrink.api.checks import CheckResult


def cell(value: Any) -> str:
    """A value as a report shows it: thousands separators, 4 significant digits, yes/no, – for none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


METRIC_COLUMNS = ("params", "macs", "model_bytes", "accuracy")
VOLATILE_NOTE = ("Wall-clock timings and host-measured latency change from run to run, so they are kept out of the "
                 "bundle's hashed files (this report included) and recorded only in manifest.json "
                 "(`history[].seconds`, `metrics.host_latency_ms`); compiling the same recipe again gives identical bytes.")


def is_volatile(key: str) -> bool:
    """Metrics and details that are measured wall-clock figures, not reproducible results."""
    return key == "seconds" or key.endswith("_seconds") or key.startswith("host_")


def stable(mapping: dict[str, Any]) -> dict[str, Any]:
    """`mapping` without its volatile entries: what reports (hashed bundle files) may show."""
    return {k: v for k, v in mapping.items() if not is_volatile(k)}


def render_markdown(manifest: dict[str, Any], checks: list[CheckResult]) -> str:
    verdict = "PASS" if all(c.ok for c in checks) else "FAIL"
    recipe = manifest["recipe"]
    lines = [
        f"# {recipe['name']} for {manifest['target']['name']}: {verdict}",
        "",
        f"Compiled by shrink {manifest['versions'].get('shrink', '?')} from `{recipe['path']}`.",
        "",
        "## Passes",
        "",
        "| # | step | plugin | " + " | ".join(METRIC_COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(METRIC_COLUMNS),
    ]
    for step in manifest["history"]:
        index = "–" if step["index"] is None else str(step["index"])
        metrics = step["metrics"]
        cells = " | ".join(cell(metrics.get(k)) for k in METRIC_COLUMNS)
        lines.append(f"| {index} | {step['name']} | {step['plugin']} | {cells} |")
    lines += ["", VOLATILE_NOTE]
    details = [(s["name"], stable(s["details"])) for s in manifest["history"] if stable(s.get("details") or {})]
    if details:
        lines += ["", "## What the passes report", ""]
        for name, info in details:
            lines.append(f"- **{name}**: " + ", ".join(f"{k} = {cell(v)}" for k, v in info.items()))
    analysis = manifest.get("analysis")
    if analysis:
        lines += [
            "", "## Final model", "",
            f"- parameters: {analysis['params']:,} ({analysis['weight_bytes']:,} bytes of weights: "
            + ", ".join(f"{d} {r['params']:,}" for d, r in sorted(analysis["weights_by_dtype"].items())) + ")",
            f"- MACs per inference: {analysis['macs']:,} (FLOPs = 2 x MACs)",
            f"- peak activations: {analysis['peak_activation_bytes']:,} bytes (lower bound), arena plan "
            f"{analysis['arena_bytes']:,} bytes, peak at node `{analysis['peak_node']}`",
            "- operators: " + ", ".join(f"{o['op_type']} [{', '.join(o['dtypes'])}] x{o['count']}" for o in analysis["ops"]),
        ]
        lines += [f"- incomplete: {reason}" for reason in analysis.get("incomplete") or []]
        lines += [f"- note: {note}" for note in analysis.get("notes") or []]
    accepted = manifest.get("accepted_incomplete") or []
    if accepted:
        lines += ["", "## Accepted incomplete figures", "",
                  "These checks gated on a lower bound because the analysis was incomplete and the recipe or command "
                  f"line accepted it (`allow_incomplete`): {', '.join(accepted)}."]
    lines += ["", "## Checks", "", "| check | verdict | value | limit | unit | cause |", "|---|---|---|---|---|---|"]
    for check in checks:
        lines.append(
            f"| {check.name} | {'ok' if check.ok else '**FAIL**'} | {cell(check.value)} | {cell(check.limit)} "
            f"| {check.unit} | {check.cause or ''} |"
        )
    if not checks:
        lines.append("| (none) | | | | | |")
    lines.append("")
    return "\n".join(lines)
