"""Golden I/O in the bundle, checked by `shrink verify`; byte-identical bundles from identical compiles."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from shrink.bundle.golden import npz_bytes
from shrink.support.files import sha256_file
from tests.conftest import run_subprocess

TRAINING = [
    {"pass": "distill.kd", "student": {"factory": "tiny.py:tiny", "kwargs": {"width": 2}}, "epochs": 2},
    {"pass": "fuse.bn"},
    {"pass": "export.onnx"},
    {"pass": "quantize.ptq"},
]

# a pass that trains after fuse.bn, and an export after compress.cluster (which registers the weight again)
PARTLY_CACHED = [
    {"pass": "distill.kd", "student": {"factory": "tiny.py:tiny", "kwargs": {"width": 4}}, "epochs": 2},
    {"pass": "fuse.bn"},
    {"pass": "compress.cluster", "clusters": 8, "min_weights": 1, "finetune": "weights", "finetune_epochs": 2},
    {"pass": "export.onnx"},
]


@pytest.fixture
def bundle(cli, make_recipe, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    result = cli("compile", make_recipe(), "-o", out)
    assert result.code == 0, result.err
    return out


def _rewrite(bundle: Path, name: str, content: bytes) -> None:
    """Replace a bundle file and fix up its manifest record, so only the golden check can notice."""
    (bundle / name).write_bytes(content)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_file(bundle / name), "size": len(content)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_bundle_carries_golden_io_from_eval_samples(bundle: Path):
    manifest = json.loads((bundle / "manifest.json").read_text())
    record = manifest["golden"]
    assert record["file"] == "golden.npz" and "golden.npz" in manifest["files"]
    assert record["samples"] == 8 and record["inputs"] == ["input"]
    with np.load(bundle / "golden.npz", allow_pickle=False) as stored:
        assert stored["input_0"].shape == (8, 1, 1, 8, 8)
        assert stored["output_0"].shape == (8, 1, 10)


def test_verify_runs_the_golden_inputs(cli, bundle: Path):
    result = cli("verify", bundle, "--json")
    assert result.code == 0, result.err
    (golden,) = [c for c in result.json["checks"] if c["name"] == "golden"]
    assert golden["ok"] and golden["value"] <= golden["limit"]


def test_changed_golden_output_fails_verify_with_exit_4(cli, bundle: Path):
    with np.load(bundle / "golden.npz", allow_pickle=False) as stored:
        arrays = {k: stored[k].copy() for k in stored.files}
    arrays["output_0"][3, 0, 7] += 0.5
    _rewrite(bundle, "golden.npz", npz_bytes(arrays))
    result = cli("verify", bundle, "--json")
    assert result.code == 4
    (golden,) = [c for c in result.json["checks"] if c["name"] == "golden"]
    assert not golden["ok"] and "drifted by 0.5" in golden["cause"]
    assert all(c["ok"] for c in result.json["checks"] if c["name"] != "golden")


def test_unreadable_golden_file_fails_the_check(cli, bundle: Path):
    _rewrite(bundle, "golden.npz", b"not a zip")
    result = cli("verify", bundle, "--json")
    assert result.code == 4
    (golden,) = [c for c in result.json["checks"] if c["name"] == "golden"]
    assert "cannot be read" in golden["cause"]


def test_golden_file_is_deterministic():
    arrays = {"input_0": np.arange(6, dtype=np.float32).reshape(2, 3), "output_0": np.ones((2, 1), np.int64)}
    assert npz_bytes(arrays) == npz_bytes(dict(reversed(list(arrays.items()))))
    with np.load(__import__("io").BytesIO(npz_bytes(arrays))) as loaded:
        assert np.array_equal(loaded["input_0"], arrays["input_0"])


@pytest.mark.slow
def test_same_recipe_twice_gives_identical_bundle_bytes(make_recipe, tmp_path: Path):
    """Two compiles in separate processes (training, pruning-free KD, export and int8 quantization)."""
    recipe = make_recipe(passes=TRAINING, budget={"accuracy_drop": 1.0})
    hashes = []
    for run in ("a", "b"):
        out = tmp_path / run
        result = run_subprocess("compile", recipe, "-o", out, "--no-cache", env={"SHRINK_TORCH_THREADS": "1"})
        assert result.code == 0, result.err
        manifest = json.loads((out / "manifest.json").read_text())
        hashes.append({name: record["sha256"] for name, record in manifest["files"].items()})
    assert {"model.onnx", "golden.npz", "report.md"} <= set(hashes[0])
    assert hashes[0] == hashes[1]


def test_bundle_without_golden_and_malformed_golden_records(cli, bundle: Path):
    manifest = json.loads((bundle / "manifest.json").read_text())
    bad = {**manifest, "golden": {**manifest["golden"], "atol": "abc"}}
    (bundle / "manifest.json").write_text(json.dumps(bad))
    result = cli("verify", bundle)
    assert result.code == 2 and "golden.atol" in result.err and "Traceback" not in result.err

    (bundle / "golden.npz").unlink()
    del manifest["files"]["golden.npz"]
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "golden": None}))
    result = cli("verify", bundle, "--json")
    assert result.code == 0, result.err
    assert "golden" not in [c["name"] for c in result.json["checks"]]


def _readme_reproducibility() -> tuple[set[str], list[str]]:
    """The files the README says are byte-identical across compiles, and the manifest fields it says may differ."""
    from tests.conftest import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    paragraph = text[text.index("Compiling the same recipe file again"):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    names = re.findall(r"`([^`]+)`", paragraph)
    files = {n for n in names if re.fullmatch(r"[\w.]+\.(onnx|npz|config|md|html)", n)}
    fields = [n for n in names if n not in files | {"manifest.json"} and re.fullmatch(r"[a-z_]+(\[\])?(\.[a-z_*]+(\[\])?)*", n)]
    return files, fields


def _leaves(node: object, path: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _leaves(value, f"{path}.{key}" if path else key).items()}
    if isinstance(node, list):
        return {k: v for i, value in enumerate(node) for k, v in _leaves(value, f"{path}[{i}]").items()}
    return {path: node}


@pytest.mark.slow
def test_the_readme_says_exactly_what_is_identical_across_compiles(make_recipe, tmp_path: Path):
    """Three compiles of one recipe: fresh, from the pass cache, and with --no-cache. The files the README names are
    byte-identical; the manifests differ in no field but those the README names (and in each of those it names)."""
    files, fields = _readme_reproducibility()
    assert files == {"model.onnx", "golden.npz", "required_operators.config", "report.md", "report.html"}
    recipe = make_recipe(passes=TRAINING, budget={"accuracy_drop": 1.0})
    env = {"SHRINK_TORCH_THREADS": "1"}
    for run, extra in (("a", ()), ("b", ()), ("c", ("--no-cache",))):
        result = run_subprocess("compile", recipe, "-o", tmp_path / run, *extra, env=env)
        assert result.code == 0, result.err
    bundles = [tmp_path / run for run in "abc"]
    assert {p.name for p in bundles[0].iterdir()} == files | {"manifest.json"}
    for name in files:
        assert len({sha256_file(b / name) for b in bundles}) == 1, name
    patterns = [re.compile(re.escape(f).replace(r"\[\]", r"\[\d+\]").replace(r"\*", r"[^.\[]*") + r"($|[.\[])")
                for f in fields]
    manifests = [_leaves(json.loads((b / "manifest.json").read_text())) for b in bundles]
    differing = {key for other in manifests[1:] for key in set(manifests[0]) | set(other)
                 if manifests[0].get(key) != other.get(key)}
    unexplained = sorted(k for k in differing if not any(p.match(k) for p in patterns))
    assert not unexplained, f"manifest fields that differ but the README does not name: {unexplained}"
    for field, pattern in zip(fields, patterns):
        if "host_latency_ms" in field or field.endswith("seconds"):
            # a wall-clock figure rounded to 1 ms or 0.1 µs can come out the same in three runs (both have, once in
            # CI): the README must name a field the manifest has, which may differ
            assert any(pattern.match(k) for m in manifests for k in m), f"the README names {field}, which no manifest has"
        else:
            assert any(pattern.match(k) for k in differing), f"the README names {field}, which never differed"


@pytest.mark.slow
def test_passes_after_cached_ones_give_the_bytes_of_a_fresh_compile(make_recipe, tmp_path: Path, private_pass_cache: Path):
    """The pass cache restores a model that trains and exports as the one the passes made: compiles that take the
    first 3 steps, then the first 4, from the cache write the model.onnx of a compile that ran everything (fuse.bn
    once left torch's new biases frozen where the cache restores them trainable, and compress.cluster put the weight
    after the bias, so the export named its initializers in another order)."""
    recipe = make_recipe(passes=PARTLY_CACHED)
    env = {"SHRINK_TORCH_THREADS": "1"}
    cached = []
    for run, drop in (("fresh", ()), ("fuse-cached", ("passes[2]", "passes[3]")), ("cluster-cached", ("passes[3]",))):
        for entry in list(private_pass_cache.rglob("entry.json")):
            if json.loads(entry.read_text()).get("step") in (*drop, "golden"):
                shutil.rmtree(entry.parent)
        result = run_subprocess("compile", recipe, "-o", tmp_path / run, env=env)
        assert result.code == 0, result.err
        cached.append([h["cached"] for h in json.loads((tmp_path / run / "manifest.json").read_text())["history"]])
    assert cached == [[False] * 5, [True, True, True, False, False], [True, True, True, True, False]]
    assert len({sha256_file(tmp_path / run / "model.onnx") for run in ("fresh", "fuse-cached", "cluster-cached")}) == 1
