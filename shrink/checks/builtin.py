"""The built-in checks of a final model against its target and the recipe's budget (`shrink.api.checks`
describes the shape of their results)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from shrink.api.checks import Check, CheckResult, Subject
from shrink.checks.estimates import latency_estimate
from shrink.support.ort_ops import version_problem
from shrink.support.units import human_bytes

if TYPE_CHECKING:
    from shrink.api.target import Target


CANNOT_VERIFY = "cannot verify: "
ACCEPTED = "accepted as a lower bound: "


def gated(subject: Subject, result: CheckResult) -> CheckResult:
    """`result` of a check whose figure comes from the static analysis, failed closed when that figure is
    incomplete (unknown shapes, uncounted subgraphs, ops without a cost model): "cannot verify", unless the
    recipe or command line accepts an incomplete figure for this check, which then gates on the lower bound
    and says so."""
    reasons = subject.analysis.incomplete
    if not reasons:
        return result
    why = "; ".join(reasons)
    if subject.accepts_incomplete(result.name):
        return CheckResult(result.name, result.ok, result.limit, result.value, result.unit,
                           f"{ACCEPTED}{why}" + (f" — {result.cause}" if result.cause else ""))
    return CheckResult(result.name, False, result.limit, None, result.unit,
                       f"{CANNOT_VERIFY}the analysis is incomplete ({why}); the figure would be a lower bound "
                       f"({result.value} {result.unit})")


class StorageCheck(Check):
    """Model file plus the runtime's storage overhead against the target's storage (less reserved)."""

    name = "storage"

    def run(self, subject: Subject) -> list[CheckResult]:
        storage = subject.target.get("storage")
        if not storage:
            return []
        overhead = int(subject.target.get("runtime", "storage_overhead_bytes", default=0))
        limit = int(storage["bytes"]) - int(storage.get("reserved_bytes", 0))
        value = subject.model_bytes + overhead
        ok = value <= limit
        parts = f"model file {human_bytes(subject.model_bytes)}"
        if overhead:
            parts += f" + {subject.target.get('runtime', 'name', default='runtime')} allowance {human_bytes(overhead)}"
        cause = (f"{parts} of {subject.target.name} storage {human_bytes(limit)}" if ok else
                 f"{parts} exceeds {subject.target.name} storage {human_bytes(limit)} by {human_bytes(value - limit)}")
        coding = subject.metrics.get("coding") if subject.format == "tflite" else None
        if isinstance(coding, dict) and coding.get("lut_bytes"):
            if coding.get("deployed") == "lut":
                cause += (f"; the file is LUT-coded ({human_bytes(coding['lut_bytes'])}, plain int8 "
                          f"{human_bytes(coding['int8_bytes'])}), decoded on the device by TFLite Micro's DECODE operator")
            else:
                why = coding.get("not_deployed") or f"{subject.target.name}'s runtime does not decode LUT-coded tensors"
                cause += (f"; the plain int8 file is deployed ({why}); LUT-coded it would take "
                          f"{human_bytes(coding['lut_bytes'])}")
        return [CheckResult("storage", ok, limit, value, "bytes", cause)]


class ModelBytesBudget(Check):
    """The recipe's `model_bytes` budget against the model file size."""

    name = "model_bytes"

    def run(self, subject: Subject) -> list[CheckResult]:
        limit = subject.budget.get("model_bytes")
        if limit is None:
            return []
        value = subject.model_bytes
        ok = value <= limit
        cause = None if ok else f"model file is {human_bytes(value)}, {human_bytes(value - limit)} over the budget"
        return [CheckResult("model_bytes", ok, limit, value, "bytes", cause)]


class AccuracyDropBudget(Check):
    """The recipe's `accuracy_drop` budget: source accuracy minus final accuracy (absolute)."""

    name = "accuracy_drop"

    def run(self, subject: Subject) -> list[CheckResult]:
        limit = subject.budget.get("accuracy_drop")
        if limit is None:
            return []
        before, after = subject.source_metrics.get("accuracy"), subject.metrics.get("accuracy")
        if before is None or after is None:
            return [CheckResult("accuracy_drop", False, limit, None, "fraction",
                                "accuracy was not measured (the recipe needs labelled eval data)")]
        drop = round(float(before) - float(after), 6)
        ok = drop <= limit
        cause = None if ok else f"accuracy fell from {before:.2%} to {after:.2%} ({drop * 100:.2f} points; budget {limit * 100:.2f})"
        return [CheckResult("accuracy_drop", ok, limit, drop, "fraction", cause)]


class AccuracyBudget(Check):
    """The recipe's `accuracy` budget: the final model's top-1 accuracy on the eval split, at least this (absolute).
    (`shrink verify --data` gates its `data_accuracy` with the same key instead.)"""

    name = "accuracy"

    def run(self, subject: Subject) -> list[CheckResult]:
        limit = subject.budget.get("accuracy")
        if limit is None:
            return []
        value = subject.metrics.get("accuracy")
        if value is None:
            return [CheckResult("accuracy", False, limit, None, "fraction",
                                "accuracy was not measured (the recipe needs labelled eval data"
                                + (f"; {subject.metrics['arena_unavailable']}" if subject.metrics.get("arena_unavailable") else "")
                                + ")")]
        ok = float(value) >= limit
        cause = None if ok else f"top-1 accuracy {float(value):.2%} is below the {limit:.2%} budget"
        return [CheckResult("accuracy", ok, limit, round(float(value), 6), "fraction", cause)]


def model_region(target: Target) -> tuple[str, dict[str, Any]] | None:
    """The memory region the model runs in: `ram`, else `sram`, else the first one listed."""
    memory = target.get("memory") or {}
    for name in ("ram", "sram", *memory):
        if name in memory:
            return name, memory[name]
    return None


def measured_arena(subject: Subject) -> dict[str, int] | None:
    """The arena TFLite Micro allocated for a `.tflite` model, as measured at compile time (`arena_measured` in the
    metrics, which `verify` reads from the manifest), or None."""
    record = subject.metrics.get("arena_measured") if subject.format == "tflite" else None
    if isinstance(record, dict) and all(isinstance(record.get(k), int) for k in ("total", "head", "tail")):
        return record
    return None


def ram_estimate(subject: Subject) -> tuple[int, str]:
    """Bytes of RAM the model needs on the target, and how they add up: for a `.tflite` model, the arena TFLite Micro
    was measured to allocate when it was, else its static estimate (TFLite Micro's greedy plan of the tensors + its
    persistent data, `tflm_tail_estimate`); for other models the greedy arena plan, padded, + the runtime's
    allowance."""
    measured = measured_arena(subject)
    if measured is not None:
        from shrink.support.tflm import describe

        return measured["total"], f"arena measured under TFLite Micro {describe(measured)}"
    a = subject.analysis
    if subject.format == "tflite":
        from shrink.analysis.tflite_model import tflm_arena_estimate

        total, tail, prepare = tflm_arena_estimate(subject.model_path, a.arena_bytes)
        why = subject.metrics.get("arena_unavailable") or "not measured"
        tensors = (f"planned tensors {human_bytes(a.arena_bytes)}" if a.arena_bytes >= prepare else
                   f"kernels' temporary tensors while preparing {human_bytes(prepare)}")
        return total, (f"static arena estimate {human_bytes(total)} ({why}): {tensors} + TFLite Micro's persistent "
                       f"data ~{human_bytes(tail)}")
    runtime = subject.target.get("runtime") or {}
    folded = a.folded_weight_bytes if runtime.get("weights_in_ram", True) else 0
    weights = a.weight_bytes + folded if runtime.get("weights_in_ram", True) else 0
    arena = math.ceil(a.arena_bytes * (1 + float(runtime.get("arena_overhead", 0.0))))
    overhead = int(runtime.get("ram_overhead_bytes", 0))
    parts = [f"arena {human_bytes(arena)}"]
    if weights:
        parts.insert(0, f"weights {human_bytes(weights)}" + (
            f" ({human_bytes(a.weight_bytes)} stored {'+' if folded > 0 else '-'} {human_bytes(abs(folded))} as "
            "constant folding leaves them at load)" if folded else ""))
    if overhead:
        parts.append(f"{runtime.get('name', 'runtime')} allowance {human_bytes(overhead)}")
    return weights + arena + overhead, " + ".join(parts)


def _peak_cause(subject: Subject) -> str:
    a = subject.analysis
    live = ", ".join(f"{t.name} ({human_bytes(t.bytes)})" for t in a.peak_live[:4])
    return f"activations peak at node {a.peak_node!r} with {live} live"


class RamCheck(Check):
    """Weights (where the runtime keeps them in RAM) + planned arena + runtime overhead vs the memory region."""

    name = "ram"

    def run(self, subject: Subject) -> list[CheckResult]:
        region = model_region(subject.target)
        if region is None:
            return []
        name, spec = region
        limit = int(spec["bytes"]) - int(spec.get("reserved_bytes", 0))
        value, parts = ram_estimate(subject)
        ok = value <= limit
        cause = (f"{parts} = {human_bytes(value)} of {subject.target.name} {name} {human_bytes(limit)}" if ok else
                 f"{parts} = {human_bytes(value)} exceeds {subject.target.name} {name} {human_bytes(limit)} "
                 f"by {human_bytes(value - limit)}; {_peak_cause(subject)}")
        result = CheckResult("ram", ok, limit, value, "bytes", cause)
        return [result if measured_arena(subject) is not None else gated(subject, result)]


def _allowed(target: Target, domain: str, op_type: str, opset: int, dtypes: tuple[str, ...]) -> str | None:
    """Why the target cannot run this op, or None if it can."""
    opsets = target.get("opset") or {}
    if opsets:
        if domain not in opsets:
            return f"domain {domain} is not supported"
        if not opsets[domain]["min"] <= opset <= opsets[domain]["max"]:
            return f"{domain} opset {opset} is outside {opsets[domain]['min']}–{opsets[domain]['max']}"
    table = (target.get("ops") or {}).get(domain)
    if table is None:
        return None
    if op_type not in table:
        return "no kernel for this op"
    spec = table[op_type]
    accepted = spec.get("dtypes", ["*"]) if isinstance(spec, dict) else spec
    if "*" in accepted:
        return None
    bad = sorted(set(dtypes) - set(accepted))
    return f"dtype {', '.join(bad)} not accepted (accepts {', '.join(accepted)})" if bad else None


def tflite_kernels(target: Target) -> dict[str, set[str]]:
    """The TFLite Micro builtins a profile's kernel table names (`maps_to`, 'A|B' for alternatives) and the dtypes
    each accepts: those of the plain ONNX ops mapping to it (the QLinear* rows list float32 for their scales, not
    for float kernels)."""
    kernels: dict[str, set[str]] = {}
    for op_type, spec in ((target.get("ops") or {}).get("ai.onnx") or {}).items():
        if not isinstance(spec, dict) or not spec.get("maps_to") or op_type.startswith("QLinear"):
            continue
        for builtin in str(spec["maps_to"]).split("|"):
            kernels.setdefault(builtin, set()).update(spec.get("dtypes", ["*"]))
    return kernels


def _tflite_allowed(target: Target, kernels: dict[str, set[str]], op_type: str, dtypes: tuple[str, ...]) -> str | None:
    if op_type.startswith("CUSTOM:"):
        if op_type == "CUSTOM:TFLM_DECODE" and "lut" in (target.get("runtime", "decodes") or []):
            return None
        return "no kernel for this custom operator (runtime.decodes does not list the coding)" \
            if op_type == "CUSTOM:TFLM_DECODE" else "no kernel for this custom operator"
    if op_type not in kernels:
        return "no TFLite Micro kernel in the target's table"
    accepted = kernels[op_type]
    if "*" in accepted:
        return None
    bad = sorted(set(dtypes) - accepted)
    return f"dtype {', '.join(bad)} not accepted (accepts {', '.join(sorted(accepted))})" if bad else None


class OpsCheck(Check):
    """The model's format against the formats the target's runtime loads, and every (domain, op, opset,
    dtype) of the graph against the target's op set and the oldest runtime release it admits (an op newer than
    that release fails: `shrink.support.ort_ops`)."""

    name = "ops"

    def run(self, subject: Subject) -> list[CheckResult]:
        target = subject.target
        runtime = target.get("runtime", "name", default="the runtime")
        loadable = target.get("runtime", "formats")
        problems: list[str] = []
        if loadable and subject.format not in loadable:
            problems.append(f"{runtime} on {target.name} loads {', '.join(loadable)} models, not {subject.format} "
                            f"({subject.model_path.name})")
        if not problems and not target.get("opset") and not target.get("ops"):
            return []
        if subject.format == "tflite" and not problems:
            return [self._tflite(subject, runtime)]
        offending: list[str] = []
        count = 0
        # A target with explicit kernel tables runs a converted graph, where QDQ groups become int8 kernels.
        inventory = subject.analysis.qdq_ops if target.get("ops") else subject.analysis.ops
        for use in inventory:
            why = _allowed(target, use.domain, use.op_type, use.opset, use.dtypes) or version_problem(
                target.get("runtime"), target.name, use.domain, use.op_type,
                [dtype for dtype, _ in use.macs_by_dtype] if use.macs_by_dtype else None)
            if why:
                count += use.count
                nodes = ", ".join(use.nodes[:5]) + (f" (+{len(use.nodes) - 5} more)" if len(use.nodes) > 5 else "")
                offending.append(f"{use.op_type} [{', '.join(use.dtypes)}]: {why}: {nodes}")
        if offending:
            problems.append(f"{count} node(s) {runtime} on {target.name} cannot run: " + "; ".join(offending))
        return [CheckResult("ops", not problems, 0, count, "unsupported nodes", "; ".join(problems) or None)]


    @staticmethod
    def _tflite(subject: Subject, runtime: str) -> CheckResult:
        """Every TFLite operator (with its data dtypes) against the TFLite Micro kernels the target's table maps to."""
        target = subject.target
        kernels = tflite_kernels(target)
        offending, count = [], 0
        for use in subject.analysis.ops:
            why = _tflite_allowed(target, kernels, use.op_type, use.dtypes)
            if why:
                count += use.count
                offending.append(f"{use.op_type} [{', '.join(use.dtypes)}]: {why}: {', '.join(use.nodes[:5])}")
        cause = (f"{count} operator(s) {runtime} on {target.name} cannot run: " + "; ".join(offending)) if offending else \
            f"{subject.analysis.nodes} operators, all with {runtime} kernels on {target.name}"
        return CheckResult("ops", not offending, 0, count, "unsupported nodes", cause if offending else None)


class ArenaCheck(Check):
    """A `.tflite` model's arena measured again under TFLite Micro, against the figure recorded at compile time
    (which the `ram` check gates on): it passes when the recorded figure still covers what TFLite Micro allocates.
    Without TFLite Micro's interpreter it cannot verify."""

    name = "arena"

    def run(self, subject: Subject) -> list[CheckResult]:
        if subject.format != "tflite":
            return []
        from shrink.support import tflm

        recorded = measured_arena(subject)
        limit = recorded["total"] if recorded else None
        try:
            arena = tflm.measure(subject.model_path)
        except tflm.ArenaUnavailable as exc:
            return [CheckResult("arena", False, limit, None, "bytes", f"{CANNOT_VERIFY}{exc}")]
        how = (f"TFLite Micro needs {arena.describe()}; static plan {human_bytes(subject.analysis.arena_bytes)} of "
               "tensors")
        if recorded is None:
            return [CheckResult("arena", False, None, arena.total, "bytes",
                                f"no measured arena was recorded for the model to compare with; {how}")]
        ok = arena.total <= recorded["total"]
        cause = f"{how}; recorded {human_bytes(recorded['total'])}"
        return [CheckResult("arena", ok, recorded["total"], arena.total, "bytes",
                            cause if ok else f"{cause}: the recorded figure is too small")]


class LatencyCheck(Check):
    """Estimated latency on the target (a range: the MACs of each dtype at its calibrated throughput, plus per-call
    and per-node overheads); the budget gates the upper end."""

    name = "latency"

    def run(self, subject: Subject) -> list[CheckResult]:
        estimate = latency_estimate(subject)
        budget = subject.budget.get("latency_ms")
        if estimate is None:
            if budget is None:
                return []
            return [CheckResult("latency_ms", False, budget, None, "ms",
                                f"{subject.target.name} has no throughput figures to estimate latency from")]
        how = f"{estimate.describe()} ({estimate.split()})"
        high = round(estimate.high, 4)
        results = [gated(subject, CheckResult("latency", True, None, high, "ms", how))]
        if budget is not None:
            ok = estimate.high <= budget
            results.append(gated(subject, CheckResult("latency_ms", ok, budget, high, "ms",
                                                       how if ok else f"{how}: over the {budget} ms budget")))
        return results


class EnergyCheck(Check):
    """Estimated energy per inference where the profile has an energy figure; the budget gates it."""

    name = "energy"

    def run(self, subject: Subject) -> list[CheckResult]:
        nj = subject.target.get("energy", "nj_per_mac")
        budget = subject.budget.get("energy_mj")
        if nj is None:
            if budget is None:
                return []
            return [CheckResult("energy_mj", False, budget, None, "mJ", f"{subject.target.name} has no energy figure")]
        value = round(subject.analysis.macs * float(nj) * 1e-6, 6)
        how = f"{subject.analysis.macs:,} MACs x {nj} nJ/MAC"
        results = [gated(subject, CheckResult("energy", True, None, value, "mJ", how))]
        if budget is not None:
            ok = value <= budget
            results.append(gated(subject, CheckResult("energy_mj", ok, budget, value, "mJ",
                                                      None if ok else f"{how} is over the budget")))
        return results


class MacsBudget(Check):
    """The recipe's `macs` budget."""

    name = "macs"

    def run(self, subject: Subject) -> list[CheckResult]:
        limit = subject.budget.get("macs")
        if limit is None:
            return []
        value = subject.analysis.macs
        ok = value <= limit
        return [gated(subject, CheckResult("macs", ok, limit, value, "MACs",
                                           None if ok else f"{value:,} MACs, {value - limit:,} over the budget"))]


class RamBudget(Check):
    """The recipe's `ram_bytes` budget against the same estimate as the `ram` check."""

    name = "ram_bytes"

    def run(self, subject: Subject) -> list[CheckResult]:
        limit = subject.budget.get("ram_bytes")
        if limit is None:
            return []
        value, parts = ram_estimate(subject)
        ok = value <= limit
        cause = None if ok else f"{parts} = {human_bytes(value)}, over the budget; {_peak_cause(subject)}"
        return [gated(subject, CheckResult("ram_bytes", ok, limit, value, "bytes", cause))]


BUILTIN_CHECKS: tuple[type[Check], ...] = (
    StorageCheck, RamCheck, ArenaCheck, OpsCheck, LatencyCheck, EnergyCheck,
    ModelBytesBudget, RamBudget, MacsBudget, AccuracyDropBudget, AccuracyBudget,
)


def run_checks(subject: Subject, extra: list[type[Check]] = ()) -> list[CheckResult]:  # type: ignore[assignment]
    results: list[CheckResult] = []
    for cls in (*BUILTIN_CHECKS, *extra):
        results.extend(cls().run(subject))
    return results
