"""`compile`: recipe → plan → run → checks → bundle, the whole flow in one place."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.api.artifact import Artifact
from shrink.api.checks import CheckResult, Subject, allowed_incomplete
from shrink.bundle import golden
from shrink.bundle.write import MODEL_FILE, check_output_dir, write_bundle
from shrink.checks.builtin import ACCEPTED, run_checks
from shrink.engine.cache import PassCache
from shrink.engine.record import preprocessing_record
from shrink.engine.run import Progress, run_plan, workspace
from shrink.errors import PluginError, ShrinkError
from shrink.host.registry import Registry
from shrink.plan.load import load_recipe
from shrink.plan.planner import Plan, make_plan
from shrink.report.html import render_html
from shrink.report.markdown import render_markdown
from shrink.support import ranks
from shrink.support.jsonio import jsonable
from shrink.support.versions import library_versions


@dataclass(frozen=True)
class CompileOutcome:
    plan: Plan
    bundle: Path
    checks: list[CheckResult]
    final: Artifact
    findings: tuple[str, ...] = ()  # what the final model's analysis could not compute, and its notes

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def model_file(fmt: str) -> str:
    """The bundle's deployable model file for a final format: `model.onnx`, `model.tflite`."""
    return MODEL_FILE if fmt == "onnx" else f"model.{fmt}"


def default_output(plan: Plan) -> Path:
    return Path("dist") / f"{plan.recipe.name}-{plan.target.name}"


def load_plan(recipe_path: Path, registry: Registry, target: str | None = None,
              shapes: dict[str, list[int]] | None = None) -> Plan:
    return make_plan(load_recipe(recipe_path), registry, target, shapes)


def final_checks(plan: Plan, registry: Registry, subject: Subject) -> list[CheckResult]:
    extra = [entry.obj for entry in registry.entries["checks"].values()]
    try:
        return run_checks(subject, extra)
    except ShrinkError:
        raise
    except Exception as exc:
        raise PluginError(f"a check raised {type(exc).__name__}: {exc}") from exc


def required_operators(analysis: Any) -> str:
    """ONNX Runtime's reduced-build operator config (`domain;opset;Op1,Op2`) for the final model."""
    by_domain: dict[tuple[str, int], set[str]] = {}
    for use in analysis.ops:
        by_domain.setdefault((use.domain, use.opset), set()).add(use.op_type)
    lines = [f"# Operators {MODEL_FILE} needs: build ONNX Runtime with --include_ops_by_config <this file>"]
    lines += [f"{domain};{opset};{','.join(sorted(ops))}" for (domain, opset), ops in sorted(by_domain.items())]
    return "\n".join(lines) + "\n"


def compile_plan(plan: Plan, registry: Registry, output: Path | None = None, progress: Progress | None = None,
                 cache: PassCache | None = None, allow_incomplete: Iterable[str] = ()) -> CompileOutcome:
    """Run `plan` and write its bundle to `output`; `cache` reuses and stores pass results, and is pruned to
    its `max_bytes` afterwards; `allow_incomplete` names checks that may gate on an incomplete analysis figure
    (beside the recipe's `budget.allow_incomplete`). The manifest's `from_cache` lists each step (and the golden
    I/O) restored from the cache: its key and the sha256 of every file that was loaded."""
    out = output or default_output(plan)
    check_output_dir(out)  # refuse before spending minutes on the passes
    try:
        with workspace() as workdir:
            result = run_plan(plan, registry, workdir, progress, cache)
            if not ranks.is_writer():  # a torchrun rank other than 0 took part in the passes; rank 0 writes
                return CompileOutcome(plan, out, [], result.final)
            model_path = Path(result.final.model)
            subject = Subject(model_path, plan.target, plan.recipe.budget, dict(result.final.metrics),
                              dict(result.source.metrics), inputs=list(result.final.meta.get("inputs", [])),
                              allow_incomplete=allowed_incomplete(plan.recipe.budget, allow_incomplete))
            checks = final_checks(plan, registry, subject)
            manifest = build_manifest(plan, registry, result.final, checks)
            manifest["analysis"] = subject.analysis.as_dict()
            manifest["preprocessing"] = preprocessing_record(result)
            reference = result.golden()
            manifest["golden"] = reference[1] if reference else None
            manifest["from_cache"] = result.from_cache
            files: dict[str, Path | bytes | str] = {model_file(result.final.format): model_path,
                                                     "report.md": render_markdown(manifest, checks),
                                                     "report.html": render_html(manifest, checks)}
            if reference:
                files[golden.GOLDEN_FILE] = reference[0]
            if plan.target.get("runtime", "name") == "onnxruntime":
                files["required_operators.config"] = required_operators(subject.analysis)
            for name, path in result.final.meta.get("bundle_files", {}).items():
                files[name] = Path(path)
            write_bundle(out, files, manifest)
            result.mark_used()
    finally:
        if cache is not None and ranks.is_writer():
            cache.apply_bound()
    return CompileOutcome(plan, out, checks, result.final, subject.findings())


def build_manifest(plan: Plan, registry: Registry, final: Artifact, checks: list[CheckResult]) -> dict[str, Any]:
    return jsonable({
        "verdict": "pass" if all(c.ok for c in checks) else "fail",
        "versions": library_versions(),
        "python": platform.python_version(),
        "plugins": [{"name": p.name, "dist": p.dist, "version": p.version} for p in registry.plugins
                    if not p.error and not p.disabled],
        "recipe": {"path": str(plan.recipe.path), "name": plan.recipe.name, "raw": plan.recipe.raw,
                   "plan": plan.describe()},
        "target": {"name": plan.target.name, "sha256": plan.target.sha256, "origin": plan.target.origin,
                   "profile": plan.target.profile},
        "model": {"file": model_file(final.format), "format": final.format,
                  "inputs": list(final.meta.get("inputs", [])), "outputs": list(final.meta.get("outputs", [])),
                  **({"quantized_io": final.meta["quantized_io"]} if final.meta.get("quantized_io") else {})},
        "metrics": dict(final.metrics),
        "history": [
            {"index": s.index, "name": s.name, "plugin": s.plugin, "seconds": round(s.seconds, 3), "cached": s.cached,
             "metrics": dict(s.metrics), "details": dict(s.details)}
            for s in final.history
        ],
        "checks": [c.as_dict() for c in checks],
        "accepted_incomplete": [c.name for c in checks if (c.cause or "").startswith(ACCEPTED)],
    })
