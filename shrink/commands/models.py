"""`verify` and `inspect` as Python functions: re-check a bundle or a bare ONNX model, or analyse one. Neither
needs torch nor runs recipe code.

    import shrink
    result = shrink.verify("dist/net", target="cortex-a55", budgets={"latency_ms": 2})
    result.ok, [(c.name, c.value, c.limit) for c in result.checks]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.commands import arguments
from shrink.commands.arguments import ShapesLike
from shrink.commands.results import InspectResult, VerifyResult
from shrink.errors import UsageError

if TYPE_CHECKING:
    from shrink.host.registry import Registry


def verify(path: str | os.PathLike[str], *, target: str | None = None, budgets: Mapping[str, Any] | None = None,
           shapes: ShapesLike | None = None, allow_incomplete: bool | str | Iterable[str] | None = None,
           data: str | os.PathLike[str] | None = None, registry: Registry | None = None,
           where: Mapping[str, str] | None = None) -> VerifyResult:
    """Re-check a bundle directory (every file's sha256 against its manifest first, then the checks against its own
    target or `target`, then the golden outputs, and with `data` its top-1 accuracy on that labelled data,
    preprocessed as its manifest records) or a bare `.onnx` model (`target` required; `shapes` pin its
    dynamic input dims). `budgets` add to or override the recipe's budget keys. `where` labels the arguments in
    messages (the command line says `--target`, `--budget`, `--shape`)."""
    from shrink.bundle.verify import read_manifest, verify_bundle, verify_model
    from shrink.bundle.write import MODEL_FILE

    labels = {"target": "target", "budgets": "budgets", "shapes": "shapes", "allow_incomplete": "allow_incomplete",
              **(where or {})}
    budget = arguments.budgets(budgets, labels["budgets"])
    pinned = arguments.shapes(shapes, labels["shapes"])
    allowed = arguments.allowances(allow_incomplete, labels["allow_incomplete"])
    reg = arguments.registry(registry)
    reg.ensure_consistent()
    path = Path(path)
    if path.is_dir():
        found = verify_bundle(path, reg, target, budget, allowed, labels["target"], Path(data) if data else None)
        model = path / str(read_manifest(path).get("model", {}).get("file", MODEL_FILE))
    elif path.exists():
        found = verify_model(path, reg, target, budget, pinned, allowed, labels["target"], Path(data) if data else None)
        model = path
    else:
        raise UsageError(f"no such bundle or model: {path}")
    return VerifyResult.of(path, path.is_dir(), model, found.target.name, found.checks, found.findings, found.data)


def inspect(model: str | os.PathLike[str], *, target: str | None = None, shapes: ShapesLike | None = None,
            registry: Registry | None = None, where: Mapping[str, str] | None = None) -> InspectResult:
    """The static analysis of an ONNX model (MACs, parameters, memory, ops, what could not be computed) and, with
    `target`, the checks against that target. Never gates."""
    from shrink.analysis import analyze
    from shrink.bundle.write import manifest_shapes

    labels = {"target": "target", "shapes": "shapes", **(where or {})}
    path = Path(model)
    pinned = {**manifest_shapes(path), **arguments.shapes(shapes, labels["shapes"])}
    analysis = analyze(path, pinned or None)  # a path, so messages name the file
    checks: list[Any] = []
    if target:
        from shrink.api.checks import Subject
        from shrink.checks.builtin import run_checks

        reg = arguments.registry(registry)
        reg.ensure_consistent()
        resolved = reg.catalog().resolve(target, labels["target"])
        subject = Subject(path, resolved, shapes=pinned, _analysis=analysis)
        checks = run_checks(subject, [e.obj for e in reg.entries["checks"].values()])
    return InspectResult(model=path, model_bytes=path.stat().st_size, analysis=analysis, target=target,
                         checks=tuple(checks))
