"""`report.md`: what each pass did and how the final model measures against its budget."""

from __future__ import annotations

from typing import Any

from shrink.checks import CheckResult


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


METRIC_COLUMNS = ("params", "macs", "model_bytes", "accuracy", "host_latency_ms")


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
        "| # | step | plugin | seconds | " + " | ".join(METRIC_COLUMNS) + " |",
        "|---|---|---|---|" + "---|" * len(METRIC_COLUMNS),
    ]
    for step in manifest["history"]:
        index = "–" if step["index"] is None else str(step["index"])
        metrics = step["metrics"]
        cells = " | ".join(_cell(metrics.get(k)) for k in METRIC_COLUMNS)
        lines.append(f"| {index} | {step['name']} | {step['plugin']} | {step['seconds']:.2f} | {cells} |")
    details = [(s["name"], s["details"]) for s in manifest["history"] if s.get("details")]
    if details:
        lines += ["", "## What the passes report", ""]
        for name, info in details:
            lines.append(f"- **{name}**: " + ", ".join(f"{k} = {_cell(v)}" for k, v in info.items()))
    analysis = manifest.get("analysis")
    if analysis:
        lines += [
            "", "## Final model", "",
            f"- parameters: {analysis['params']:,} ({analysis['weight_bytes']:,} bytes of weights: "
            + ", ".join(f"{d} {r['params']:,}" for d, r in sorted(analysis["weights_by_dtype"].items())) + ")",
            f"- MACs per inference: {analysis['macs']:,} (FLOPs = 2 x MACs)",
            f"- peak activations: {analysis['peak_activation_bytes']:,} bytes (lower bound), arena plan "
            f"{analysis['arena_bytes']:,} bytes, peak at node `{analysis['peak_node']}`",
            "- operators: " + ", ".join(f"{o['op_type']} x{o['count']}" for o in analysis["ops"]),
        ]
    lines += ["", "## Checks", "", "| check | verdict | value | limit | unit | cause |", "|---|---|---|---|---|---|"]
    for check in checks:
        lines.append(
            f"| {check.name} | {'ok' if check.ok else '**FAIL**'} | {_cell(check.value)} | {_cell(check.limit)} "
            f"| {check.unit} | {check.cause or ''} |"
        )
    if not checks:
        lines.append("| (none) | | | | | |")
    lines.append("")
    return "\n".join(lines)
