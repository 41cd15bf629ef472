"""`shrink init`: a starter recipe for the user's own model and data.

The installed sources and data providers say which of them reads what the user named (`Source.claims`,
`DataProvider.claims`); the passes follow the target: an export when the source gives a framework model,
quantization with the target's scheme when there is data to calibrate on (a data-free scheme, said so,
when there is none), and a graph fusion for ONNX Runtime targets. Every choice is explained in a
`description`. The recipe is then planned, so what `init` writes is what `compile` accepts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shrink.api.context import PlanContext
from shrink.api.passes import summary
from shrink.api.recipe import Recipe
from shrink.api.target import Target
from shrink.errors import UsageError
from shrink.host.registry import Registry

DATA_FREE_SCHEME = "dynamic-per-channel"


def _claimed(registry: Registry, kind: str, value: str, what: str) -> tuple[str, dict[str, Any]]:
    found = []
    for name in registry.names(kind):
        section = registry.get(kind, name).obj.claims(value)  # type: ignore[union-attr]
        if section is not None:
            found.append((name, section))
    if not found:
        names = ", ".join(registry.names(kind))
        raise UsageError(f"no installed {what} reads {value!r}", where=f"--{what.split()[0]}",
                         hint=f"installed {what}s: {names}")
    if len(found) > 1:
        raise UsageError(f"{value!r} is read by several {what}s ({', '.join(n for n, _ in found)}); write the recipe "
                         "by hand and pick one", where=f"--{what.split()[0]}")
    return found[0]


def _relative(section: dict[str, Any], keys: tuple[str, ...], base: Path) -> dict[str, Any]:
    """Paths the user gave (relative to the working directory) rewritten relative to the recipe's folder; a
    `file.py:callable` keeps its callable, a `package.module:callable` is left alone, and so is a path inside an
    installed distribution the section names (`package`)."""
    out = dict(section)
    if out.get("package"):
        return out
    for key in keys:
        value = out.get(key)
        if not isinstance(value, str) or not value:
            continue
        head, colon, tail = value.partition(":") if ".py:" in value else (value, "", "")
        if colon or Path(head).exists():
            out[key] = os.path.relpath(Path(head).resolve(), base.resolve()) + colon + tail
    return out


def starter_recipe(registry: Registry, model: str, target: Target, data: str | None, shapes: dict[str, list[int]],
                   recipe_path: Path, weights: str | None = None) -> dict[str, Any]:
    """The recipe `shrink init` writes (not yet planned)."""
    base = recipe_path.parent
    source_name, model_section = _claimed(registry, "sources", model, "model source")
    source = registry.get("sources", source_name).obj  # type: ignore[union-attr]
    if weights:
        model_section["weights"] = weights
    model_section = _relative(model_section, ("path", "factory", "weights"), base)
    if shapes:
        model_section["inputs"] = [{"name": name, "shape": dims} for name, dims in shapes.items()]
    shown = model
    if model_section.get("package"):  # not the installation's absolute path: the recipe works on other machines
        shown = f"{model_section['path']} from package {model_section['package']}" if model_section.get("path") \
            else f"the model of package {model_section['package']}"
    recipe: dict[str, Any] = {
        "schema_version": 1,
        "name": _name(model),
        "description": f"written by `shrink init` for {shown} on {target.name}; edit it freely",
        "model": {"source": source_name, **model_section, "description": f"{shown}, read by the {source_name!r} source"},
        "target": target.name,
    }
    if data is not None:
        provider_name, data_section = _claimed(registry, "datasets", data, "data source")
        recipe["data"] = {"source": provider_name, **_relative(data_section, ("path", "train", "calibration", "eval"), base),
                          "description": f"{data}: training, calibration and eval samples"}
    inputs, meta = _facts(source, recipe, target, shapes, recipe_path)
    loadable = target.get("runtime", "formats") or []
    if loadable and "onnx" not in loadable:  # a microcontroller runtime: one pass that makes its format
        recipe["passes"] = [_deploy_pass(registry, source.produces, target, loadable)]
    else:
        recipe["passes"] = _passes(source.produces, target, data is not None, inputs, meta)
    _deployable(registry, target, _final_format(registry, source.produces, recipe["passes"]))
    if meta.get("not_quantizable"):
        recipe["description"] += f"; no int8: {meta['not_quantizable']}"
    elif data is None and not meta.get("quantization") and not any(p["pass"] == "quantize" for p in recipe["passes"]):
        recipe["description"] += "; no int8 without calibration data: run init again with --data SAMPLES to quantize"
    return recipe


def _facts(source: Any, recipe: dict[str, Any], target: Target, shapes: dict[str, list[int]],
           recipe_path: Path) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """What the source knows about the model before loading it: its inputs and plan-time meta (None, {} when
    the section does not validate yet: planning the written recipe then says why)."""
    from pydantic import ValidationError

    try:
        instance = source(source.Options.from_section(recipe["model"], "source"))
    except ValidationError:
        return None, {}
    plan = PlanContext(Recipe(recipe_path.resolve(), recipe), target, shapes=shapes)
    if instance.check(plan):
        return None, {}
    return instance.inputs(plan), instance.plan_meta(plan)


ACCURACY_BUDGET = {"accuracy_drop": 0.02,
                   "description": "the compile fails if top-1 accuracy on the eval split drops by more than 2 points"}


def _name(model: str) -> str:
    stem = Path(model.split(":")[0]).stem or "model"
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip("-._") or "model"
    return cleaned[:100] if cleaned[0].isalnum() else f"m{cleaned}"[:100]


def _deploy_pass(registry: Registry, produces: str, target: Target, loadable: list[str]) -> dict[str, Any]:
    """The step that turns the source's format into one the target's runtime loads (`export.tflite` for TensorFlow
    Lite Micro); exit 2 when none is installed, or when it needs an optional extra (its install command)."""
    runtime = target.get("runtime", "name", default="its runtime")
    found = [registry.get("passes", n) for n in registry.names("passes")]
    fits = [e for e in found if e is not None and e.obj.produces in loadable and produces in e.obj.consumes]
    if not fits:
        raise UsageError(f"no installed pass turns a {produces} model into {' or '.join(loadable)}, which {target.name}'s "
                         f"runtime {runtime} loads", where="--target")
    entry = fits[0]
    missing = entry.obj.unavailable()
    if missing:
        raise UsageError(f"{target.name} needs {entry.name}, which is not available: {missing}", where="--target")
    return {"pass": entry.name, "description": f"{produces} → {entry.obj.produces} for {runtime}: {summary(entry.obj)}"}


def _passes(produces: str, target: Target, calibrated: bool, inputs: list[dict[str, Any]] | None,
            meta: dict[str, Any]) -> list[dict[str, Any]]:
    runtime = target.get("runtime", "name")
    passes: list[dict[str, Any]] = []
    if produces != "onnx":
        passes.append({"pass": "export", "description": f"{produces} → ONNX, parity-checked against the {produces} model"})
    scheme = target.get("quantization", "scheme")
    token_inputs = any(not str(spec.get("dtype", "float32")).startswith(("float", "bool")) for spec in inputs or [])
    if meta.get("quantization") or meta.get("not_quantizable"):
        pass  # already quantized, or the source says why int8 cannot apply (the recipe's description repeats it)
    elif calibrated:
        passes.append({"pass": "quantize", "description": f"int8 with {target.name}'s scheme ({scheme or 'static'}), "
                                                          "calibrated on the data"})
    elif runtime == "onnxruntime" and token_inputs:
        passes.append({"pass": "quantize", "scheme": DATA_FREE_SCHEME,
                       "description": f"int8 without data ({DATA_FREE_SCHEME}: the MatMul and Gather weights of a "
                                      "model fed token ids). Give --data for calibrated int8"})
    if runtime == "onnxruntime":
        passes.append({"pass": "fuse", "description": "ONNX Runtime's portable graph optimizations (fused ops)"})
    if not passes:
        passes.append({"pass": "export", "description": "the deployable format"})
    return passes


def _final_format(registry: Registry, produces: str, passes: list[dict[str, Any]]) -> str:
    fmt = produces
    for step in passes:
        entry = registry.get("passes", step["pass"]) or registry.default_pass(step["pass"])
        fmt = entry.obj.produces if entry is not None else fmt  # type: ignore[union-attr]
    return fmt


def _deployable(registry: Registry, target: Target, fmt: str) -> None:
    """Refuse (before writing anything) a target whose runtime loads no format the installed passes can produce."""
    loadable = target.get("runtime", "formats", default=None) or []
    if not loadable or fmt in loadable:
        return
    if any(registry.get("passes", n).obj.produces in loadable for n in registry.names("passes")):  # type: ignore[union-attr]
        return
    catalog = registry.catalog()
    others = [n for n in catalog.names() if fmt in (catalog.resolve(n).get("runtime", "formats", default=None) or [fmt])]
    wanted = " or ".join(loadable)
    raise UsageError(f"{target.name}'s runtime {target.get('runtime', 'name', default='')} loads {wanted} models, and no "
                     f"installed pass produces {wanted}", where="--target",
                     hint=f"install a plugin with a pass that produces {wanted} (`shrink passes` lists the installed "
                          f"ones), or choose a target whose runtime loads {fmt}: {', '.join(others)}")


def write(recipe: dict[str, Any], path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} exists", where="--output", hint="choose another file, or pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recipe, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
