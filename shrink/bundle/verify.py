"""`shrink verify`: re-check a bundle (integrity first) or a bare ONNX model, without torch."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.analysis import load_model
from shrink.api.checks import CheckResult, Subject, allowed_incomplete
from shrink.api.target import Target
from shrink.bundle import golden
from shrink.bundle.scoring import DataScore, data_check, score
from shrink.bundle.write import MANIFEST, MANIFEST_KIND, MODEL_FILE, manifest_shapes
from shrink.checks.builtin import run_checks
from shrink.errors import Problem, UsageError
from shrink.host.catalog import target_schema
from shrink.host.registry import Registry
from shrink.plan.load import BUDGET_KEYS, budget_problems
from shrink.support.files import sha256_file
from shrink.support.validation import schema_problems


def parse_budgets(items: list[str]) -> dict[str, Any]:
    """`["latency_ms=2", "model_bytes=100000"]` → typed budget dict (validated like the recipe's)."""
    budget: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{item!r} is not KEY=VALUE", where="--budget", hint=f"keys: {', '.join(BUDGET_KEYS)}")
        try:
            budget[key] = json.loads(text)
        except ValueError:
            raise UsageError(f"{key}: {text!r} is not a number", where="--budget") from None
    problems = budget_problems(budget, "--budget")
    if problems:
        raise UsageError(problems)
    return budget


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / MANIFEST
    if not path.is_file():
        raise UsageError(f"{str(bundle)!r} is not a shrink bundle: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{MANIFEST} cannot be read: {exc}", where=str(path)) from None
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND or not isinstance(manifest.get("files"), dict):
        raise UsageError(f"{MANIFEST} is not a shrink bundle manifest", where=str(path))
    problems = schema_problems(manifest, _MANIFEST_SCHEMA, str(path))
    model_file = manifest.get("model", {}).get("file", MODEL_FILE) if not problems else MODEL_FILE
    if not problems and model_file not in manifest["files"]:
        problems.append(Problem(f"{path}: model.file", f"{model_file!r} is not one of the files the manifest records"))
    if problems:
        raise UsageError(problems)
    return manifest


_OBJECT: dict[str, Any] = {"type": "object"}
_MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "files": {"type": "object", "propertyNames": {"pattern": r"^[^/\\]+$", "not": {"enum": [".", ".."]}}},
        "model": {"type": "object", "properties": {
            "file": {"type": "string", "pattern": r"^[^/\\]+$"},
            "inputs": {"type": "array", "items": _OBJECT}, "outputs": {"type": "array", "items": _OBJECT}}},
        "recipe": {"type": "object", "properties": {"raw": {"type": "object", "properties": {
            "budget": {"type": "object", "additionalProperties": False, "properties": BUDGET_KEYS}}}}},
        "target": {"type": "object", "properties": {"profile": _OBJECT}},
        "metrics": _OBJECT,
        "preprocessing": {"type": ["object", "null"]},  # checked against its own schema when --data uses it
        "history": {"type": "array", "items": {"type": "object", "properties": {"metrics": _OBJECT}}},
        "golden": {  # null: the compile could not pin the inputs, so there is no golden file
            "type": ["object", "null"], "required": ["file", "inputs", "outputs"],
            "properties": {"file": {"type": "string"}, "samples": {"type": "integer", "minimum": 1},
                           "inputs": {"type": "array", "items": {"type": "string"}},
                           "outputs": {"type": "array", "items": {"type": "string"}},
                           "atol": {"type": "number", "minimum": 0}, "rtol": {"type": "number", "minimum": 0}}},
    },
}


def integrity(bundle: Path, manifest: dict[str, Any]) -> CheckResult:
    """Every file's sha256 and size against the manifest; missing and extra files fail too."""
    recorded: dict[str, Any] = manifest["files"]
    present = {p.name for p in bundle.iterdir() if p.name != MANIFEST}
    problems = [f"missing file {name}" for name in sorted(set(recorded) - present)]
    problems += [f"extra file {name}" for name in sorted(present - set(recorded))]
    for name in sorted(set(recorded) & present):
        path = bundle / name
        record = recorded[name]
        if not path.is_file():
            problems.append(f"{name} is not a regular file")
        elif not isinstance(record, dict) or path.stat().st_size != record.get("size") or sha256_file(path) != record.get("sha256"):
            problems.append(f"{name} does not match its sha256 in the manifest")
    return CheckResult("integrity", not problems, len(recorded), len(recorded) - len(problems), "files",
                       "; ".join(problems) or None)


def _bundle_target(manifest: dict[str, Any], bundle: Path) -> Target:
    stored = manifest.get("target", {})
    profile = stored.get("profile")
    if not isinstance(profile, dict) or schema_problems(profile, target_schema(), MANIFEST):
        raise UsageError("the manifest's target profile is missing or invalid", where=str(bundle / MANIFEST),
                         hint="pass --target to verify against an installed profile")
    return Target(profile["name"], profile, f"{bundle / MANIFEST}", (profile["name"],))


@dataclass(frozen=True)
class Verification:
    """What `verify` found: the target checked against, every check, what the analysis could not compute, and
    with `--data` the score on the user's data (also the check `data_accuracy`)."""

    target: Target
    checks: list[CheckResult]
    findings: tuple[str, ...] = ()
    data: DataScore | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def verify_bundle(bundle: Path, registry: Registry, target: str | None, budget: dict[str, Any],
                  allow_incomplete: Iterable[str] = (), target_where: str = "--target",
                  data: Path | None = None) -> Verification:
    """Integrity, the checks against the bundle's target (or `target`) and its budget with `budget` over it, the
    golden outputs, and with `data` the model's accuracy on that labelled data (`data_accuracy`, gated by the
    budget key `accuracy`; see `shrink.bundle.scoring`)."""
    if data is not None and "accuracy_drop" in budget:
        raise UsageError("accuracy_drop compares with the source model's accuracy on the compile's eval data, which "
                         "--data does not have", where="--budget",
                         hint="use --budget accuracy=0.9: the smallest top-1 accuracy allowed on --data")
    manifest = read_manifest(bundle)
    result = integrity(bundle, manifest)
    resolved = registry.catalog().resolve(target, target_where) if target else _bundle_target(manifest, bundle)
    model = bundle / manifest.get("model", {}).get("file", MODEL_FILE)
    recipe_budget = manifest.get("recipe", {}).get("raw", {}).get("budget", {})
    history = manifest.get("history") or [{}]
    budget = {**recipe_budget, **budget}
    accuracy = budget.pop("accuracy", None) if data is not None else None  # with --data, it gates data_accuracy
    subject = Subject(model, resolved, budget, dict(manifest.get("metrics", {})), dict(history[0].get("metrics", {})),
                      inputs=list(manifest.get("model", {}).get("inputs", [])),
                      allow_incomplete=allowed_incomplete(budget, allow_incomplete))
    if not result.ok:  # the other checks would measure files we can no longer trust
        return Verification(resolved, [result])
    checks = [result, *run_checks(subject, _extra_checks(registry))]
    reference = manifest.get("golden")
    if isinstance(reference, dict) and isinstance(reference.get("file"), str) and reference["file"] in manifest["files"]:
        checks.append(golden.check(model, bundle / reference["file"], reference))
    found = None
    if data is not None:
        found = score(bundle, manifest, model, data, registry)
        checks.append(data_check(found, accuracy))
    return Verification(resolved, checks, subject.findings(), found)


def verify_model(path: Path, registry: Registry, target: str | None, budget: dict[str, Any],
                 shapes: dict[str, list[int]] | None = None, allow_incomplete: Iterable[str] = (),
                 target_where: str = "--target", data: Path | None = None) -> Verification:
    if data is not None:
        raise UsageError("--data needs a bundle directory: its manifest records how data becomes the model's inputs",
                         where="--data", hint="compile the model with shrink, or verify the bundle it came in")
    if target is None:
        raise UsageError(f"verifying a bare model needs {target_where}", where=target_where,
                         hint="or verify a bundle directory")
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    if path.suffix == ".tflite":
        from shrink.analysis.tflite_model import read

        read(path)  # a file that is not a TFLite flatbuffer is bad input (exit 2)
    else:
        load_model(path)  # a file that is not ONNX is bad input (exit 2)
    resolved = registry.catalog().resolve(target, target_where)
    subject = Subject(path, resolved, budget, shapes={**manifest_shapes(path), **(shapes or {})},
                      allow_incomplete=allowed_incomplete(budget, allow_incomplete))
    checks = run_checks(subject, _extra_checks(registry))
    return Verification(resolved, checks, subject.findings())


def _extra_checks(registry: Registry) -> list[Any]:
    return [entry.obj for entry in registry.entries["checks"].values()]
