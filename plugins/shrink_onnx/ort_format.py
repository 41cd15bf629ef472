"""`export.ort`: ONNX Runtime's ORT format (mobile and minimal builds) beside the ONNX model in the bundle.

The conversion is onnxruntime's own tool (`onnxruntime.tools.convert_onnx_models_to_ort`); the `.ort`
file and the reduced-build operator config it writes go into the bundle through the artifact's
`bundle_files` meta, and the ONNX model stays the artifact's model. onnx and onnxruntime are imported
only inside `run()` and the helpers it calls.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from shrink import Artifact, Context, Pass, PassOptions, PlanContext

if TYPE_CHECKING:
    from collections.abc import Iterator

ORT_FILE = "model.ort"
LEVEL_ENV = "ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"  # the tool's documented level switch
PLATFORMS = {"aarch64": "arm", "arm64": "arm", "armv7": "arm", "armv7l": "arm", "x86_64": "amd64", "amd64": "amd64",
             "x86-64": "amd64"}


def target_platform(arch: str | None) -> str | None:
    """The tool's `target_platform` ('arm' or 'amd64') for a target profile's `isa.arch`."""
    if not arch:
        return None
    arch = arch.lower()
    return PLATFORMS.get(arch) or ("arm" if arch.startswith(("arm", "aarch")) else None)


class ExportOrtOptions(PassOptions):
    """Options of the `export.ort` pass."""

    optimization_style: Literal["fixed", "runtime"] = Field(
        "fixed", description="'fixed': optimizations applied at conversion for target_platform; 'runtime': basic "
                             "optimizations plus saved records that ORT replays at load when "
                             "session.enable_saved_runtime_optimizations is set")
    optimization_level: Literal["basic", "extended", "all"] | None = Field(
        None, description="graph optimization level of the conversion; default 'all' for arm (the converter leaves "
                          "out the x86-only NCHWc layouts) and 'extended' for amd64 ('all' there writes NCHWc "
                          "layouts for the compiling CPU's vector width, refused)")
    target_platform: Literal["arm", "amd64"] | None = Field(
        None, description="platform the optimizations are chosen for; default: from the target's isa.arch")
    type_reduction: bool = Field(False, description="write the operator config with the types each operator needs "
                                                    "(for --enable_reduced_operator_type_support builds)")
    tolerance: float = Field(1e-4, gt=0, le=1, description="largest allowed max |Δ| between the .ort and .onnx "
                                                           "models' outputs under ONNX Runtime")
    parity_samples: int = Field(64, ge=1, le=4096, description="inputs (eval data when it fits, else seeded random) "
                                                               "for the .ort vs .onnx check")


class ExportOrt(Pass[ExportOrtOptions]):
    """Convert the ONNX model to ORT format (onnxruntime's converter) and add model.ort to the bundle, output-checked."""

    name = "export.ort"
    consumes = ("onnx",)
    produces = "onnx"

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        target = plan.target
        problems = []
        formats = target.get("runtime", "formats") or []
        if "ort" not in formats:
            runtime = target.get("runtime", "name") or "its runtime"
            problems.append(f"target {target.name}'s runtime ({runtime}) does not load ORT-format models "
                            f"(runtime.formats: {', '.join(formats) or 'none'}); remove export.ort or choose a target "
                            "whose runtime.formats lists 'ort'")
            return problems
        later = (plan.recipe.raw.get("passes") or [])[plan.index + 1:] if plan.index is not None else []
        if later:
            names = ", ".join(str(step.get("pass")) if isinstance(step, dict) else "?" for step in later)
            problems.append(f"export.ort must be the last pass: model.ort would not reflect the later passes ({names})")
        platform = opts.target_platform or target_platform(target.get("isa", "arch"))
        if platform is None:
            problems.append(f"cannot tell the ORT target platform from {target.name}'s isa.arch "
                            f"{target.get('isa', 'arch')!r}; set target_platform ('arm' or 'amd64')")
        elif platform == "amd64" and opts.optimization_level == "all" and opts.optimization_style == "fixed":
            problems.append("optimization_level 'all' for amd64 writes NCHWc layouts specific to the compiling CPU's "
                            "vector width, so the .ort file is not portable; use 'extended'")
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import onnx

        from shrink_common.onnx_graph import inline_copy

        opts = self.options
        platform = opts.target_platform or target_platform(ctx.target.get("isa", "arch")) or "arm"
        level = opts.optimization_level or ("all" if platform == "arm" else "extended")
        source = inline_copy(Path(artifact.model), ctx, "ort-input")
        work = ctx.new_path("ort", "")
        (work / "in").mkdir(parents=True)
        model = work / "in" / "model.onnx"
        shutil.copyfile(source, model)
        out_dir = work / "out"
        ctx.report(0.1, f"converting to ORT format ({opts.optimization_style}, level {level}, {platform})")
        ort_path, config_path = convert(model, out_dir, opts.optimization_style, level, platform, opts.type_reduction)

        ctx.report(0.6, "checking the .ort model against the .onnx model")
        parity = check_outputs(source, ort_path, artifact, ctx, opts.parity_samples, opts.optimization_style == "runtime")
        if not parity["ort_parity_max_abs"] <= opts.tolerance:
            raise RuntimeError(f"the ORT-format model's outputs differ from the ONNX model's by max |Δ| = "
                               f"{parity['ort_parity_max_abs']:.3g} (tolerance {opts.tolerance:g}) on {parity['ort_parity_inputs']}")
        config_name = "model.required_operators_and_types.config" if opts.type_reduction else "model.required_operators.config"
        files = {**dict(artifact.meta.get("bundle_files") or {}), ORT_FILE: str(ort_path), config_name: str(config_path)}
        onnx_ops = sorted({n.op_type for n in onnx.load(str(source), load_external_data=False).graph.node})
        details: dict[str, Any] = {
            "converter": "onnxruntime.tools.convert_onnx_models_to_ort", "optimization_style": opts.optimization_style,
            "optimization_level": level, "target_platform": platform,
            "ort_file": ORT_FILE, "ort_bytes": ort_path.stat().st_size, "onnx_bytes": source.stat().st_size,
            "operator_config": config_name, "ort_operators": operators(config_path), "onnx_operators": ", ".join(onnx_ops),
            **parity,
        }
        return artifact.evolve(meta={"bundle_files": files,
                                     "ort_format": {"style": opts.optimization_style, "level": level, "platform": platform}},
                               details=details)

@contextmanager
def _level(level: str) -> Iterator[None]:
    """Set the converter's optimization level (read from the environment) for the duration of the call."""
    previous = os.environ.get(LEVEL_ENV)
    os.environ[LEVEL_ENV] = level
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LEVEL_ENV, None)
        else:
            os.environ[LEVEL_ENV] = previous


def convert(model: Path, out_dir: Path, style: str, level: str, platform: str, type_reduction: bool) -> tuple[Path, Path]:
    """Run onnxruntime's converter on one model; return the .ort file and its operator config."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    chosen = OptimizationStyle.Runtime if style == "runtime" else OptimizationStyle.Fixed
    try:
        with _level(level):
            convert_onnx_models_to_ort(model, output_dir=out_dir, optimization_styles=[chosen], target_platform=platform,
                                       enable_type_reduction=type_reduction)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "; optimization_style 'fixed' avoids ONNX Runtime's runtime-optimization records" if style == "runtime" else ""
        raise RuntimeError(f"onnxruntime's ORT-format converter failed ({style}, level {level}, {platform}): {first}{hint}") from exc
    orts = sorted(out_dir.glob("*.ort"))
    configs = sorted(out_dir.glob("*.config"))
    if len(orts) != 1 or len(configs) != 1:
        raise RuntimeError(f"the converter wrote {[p.name for p in sorted(out_dir.iterdir())]}, "
                           "expected one .ort file and one operator config")
    return orts[0], configs[0]


def operators(config: Path) -> str:
    """`domain;opset;Op,Op` lines of an operator config, joined for the report."""
    lines = [line.strip() for line in config.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return " | ".join(lines)


def check_outputs(onnx_path: Path, ort_path: Path, artifact: Artifact, ctx: Context, samples: int,
                  replay: bool) -> dict[str, Any]:
    """Load the .ort file in an InferenceSession and compare every output with the .onnx model's on the same inputs."""
    import numpy as np

    from shrink.api.data import run_feeds
    from shrink.support.ort import session
    from shrink_common.parity import parity_feeds, top1_agreement

    feeds, origin = parity_feeds(artifact, ctx, samples)
    replay_config = {"session.enable_saved_runtime_optimizations": "1"} if replay else None
    expected = run_feeds(onnx_path, artifact.inputs, feeds)
    actual = run_feeds(session(ort_path, config=replay_config), artifact.inputs, feeds)
    if [e.shape for e in expected] != [a.shape for a in actual]:
        raise RuntimeError(f"the ORT-format model's output shapes {[a.shape for a in actual]} differ from the ONNX "
                           f"model's {[e.shape for e in expected]}")
    max_abs = max(float(np.max(np.abs(e.astype(np.float64) - a.astype(np.float64)))) if e.size else 0.0
                  for e, a in zip(expected, actual))
    result: dict[str, Any] = {"ort_parity_inputs": origin, "ort_parity_max_abs": max_abs}
    agreement = top1_agreement(artifact, ctx, expected[0], actual[0])
    if agreement is not None:
        result["ort_parity_top1_agreement"] = round(agreement, 6)
    return result
