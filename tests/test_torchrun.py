"""Distillation under `torchrun`: two ranks (`--standalone`, gloo) train `distill.kd`, `distill.tinybert` and
`distill.mobilebert` data-parallel. Each rank reads a disjoint share of every batch, both end with the same
student, that student is the one-process run's (same global batch and seed) within 1e-5, and rank 0 alone
writes the pass cache and the bundle. `tests/distributed_worker.py` runs the passes in each rank and saves
the final model's weights and the sentence (or sample) indices each step of the rank trained on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, TINY_FACTORY
from tests.test_hf import tiny_recipe, write_tiny_bert

WORKER = REPO / "tests" / "distributed_worker.py"


def torchrun(*args: str | Path, ranks: int = 2, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc-per-node RANKS ARGS` (torch's launcher module, so no PATH lookup)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")})


def alone(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")})


def weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def max_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max(initial=0.0)) for k in a)


def check_data_parallel(recipe: Path, tmp_path: Path, samples: int) -> dict[str, float]:
    """Run `recipe` on two ranks and in one process; assert the shares and the students; the differences."""
    two, one = tmp_path / "two", tmp_path / "one"
    ran = torchrun(WORKER, recipe, two, cwd=recipe.parent)
    assert ran.returncode == 0, ran.stderr[-3000:]
    ran = alone(WORKER, recipe, one, cwd=recipe.parent)
    assert ran.returncode == 0, ran.stderr[-3000:]

    shares = [json.loads((two / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [s["world"] for s in shares] == [2, 2]
    first, second = (s["batches"] for s in shares)
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):  # every step: disjoint shares of (almost) equal size
        assert not set(a) & set(b) and abs(len(a) - len(b)) <= 1
    seen = sorted(i for a, b in zip(first, second) for i in (*a, *b))
    assert set(seen) == set(range(samples))  # together the ranks read every sample

    rank0, rank1, single = weights(two / "rank0.npz"), weights(two / "rank1.npz"), weights(one / "rank0.npz")
    assert max_difference(rank0, rank1) == 0.0  # both ranks hold the same student
    trained = max_difference(rank0, single)
    assert trained <= 1e-5, f"the 2-rank student differs from the 1-process one by {trained}"
    return {"ranks": max_difference(rank0, rank1), "single": trained}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert")


@pytest.mark.slow
def test_tinybert_on_two_ranks_equals_one_process(tiny_bert, tmp_path):
    # two epochs: rank 0 writes the teacher's targets once and both ranks read them; a high lr so that a wrong
    # loss normalisation (a per-rank mean instead of the global batch's) shows far above 1e-5
    passes = [{"pass": "distill.tinybert", "student": {"layers": 2}, "epochs": 2, "batch_size": 16, "lr": 2e-3,
               "precision": "float32"}, {"pass": "export.onnx"}]
    check_data_parallel(tiny_recipe(tiny_bert, tmp_path, passes=passes), tmp_path, samples=64)


@pytest.mark.slow
def test_mobilebert_on_two_ranks_equals_one_process(tiny_bert, tmp_path):
    passes = [{"pass": "distill.mobilebert", "student": {"layers": 2, "intra_size": 8, "heads": 4, "embedding_size": 16},
               "stage_epochs": 1, "epochs": 1, "batch_size": 16}, {"pass": "export.onnx"}]
    check_data_parallel(tiny_recipe(tiny_bert, tmp_path, passes=passes), tmp_path, samples=64)


def kd_recipe(tmp_path: Path, student: dict) -> Path:
    (tmp_path / "tiny.py").write_text(TINY_FACTORY)
    recipe = {"schema_version": 1, "name": "tiny",
              "model": {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8], "allow_random_weights": True},
              "data": {"source": "sklearn.digits", "image_size": 8}, "target": "cortex-a53",
              "passes": [{"pass": "distill.kd", **student, "epochs": 2, "batch_size": 32}, {"pass": "export.onnx"}]}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


def train_size(recipe: Path, workdir: Path) -> int:
    from shrink.testing import pass_input

    return len(pass_input(recipe, workdir).ctx.data.split("train"))


@pytest.mark.slow
def test_kd_on_two_ranks_equals_one_process(tmp_path):
    # a BatchNorm-free student (the teacher has BatchNorm: it is never wrapped); augmented and with the
    # training-without-teacher baseline, whose accuracy is evaluated across the ranks
    recipe = kd_recipe(tmp_path, {"student": {"factory": "tiny.py:mlp"}, "compare_scratch": True})
    check_data_parallel(recipe, tmp_path, samples=train_size(recipe, tmp_path / "work"))


@pytest.mark.slow
def test_torchrun_compile_rank0_writes_the_bundle(tiny_bert, tmp_path, private_pass_cache):
    passes = [{"pass": "distill.tinybert", "student": {"layers": 2}, "epochs": 2, "batch_size": 16, "precision": "float32"},
              {"pass": "export.onnx"}]
    recipe = tiny_recipe(tiny_bert, tmp_path, passes=passes)
    ran = torchrun("-m", "shrink", "compile", recipe, "-o", tmp_path / "two", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.count("bundle written to") == 1  # rank 0's line
    assert "rank 1: passes done; rank 0 checks the model and writes the bundle" in ran.stdout
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    details = next(h["details"] for h in manifest["history"] if h["name"] == "distill.tinybert")
    assert details["ranks"] == 2 and details["teacher_cache"].startswith("on:")
    assert manifest["verdict"] == "pass" and (tmp_path / "two" / "golden.npz").is_file()
    entries = sorted(p.parent.name for p in private_pass_cache.rglob("entry.json"))
    assert len(entries) == len(set(entries)) == 4  # source, two passes and the golden I/O, each stored once

    single = subprocess.run([sys.executable, "-m", "shrink", "compile", recipe, "-o", tmp_path / "one", "--no-cache"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    import onnx
    from onnx import numpy_helper

    def initializers(folder: Path) -> dict[str, np.ndarray]:
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(folder / "model.onnx")).graph.initializer}

    assert max_difference(initializers(tmp_path / "two"), initializers(tmp_path / "one")) <= 1e-5


def test_only_rank_0_writes_the_bundle_and_the_cache(cli, make_recipe, tmp_path, private_pass_cache, monkeypatch):
    """A rank other than 0 (the torchrun variables; export.onnx needs no process group) runs the passes but
    writes neither the bundle nor the pass cache."""
    recipe = make_recipe()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = cli("compile", recipe, "-o", tmp_path / "bundle")
    assert result.code == 0, result.err
    assert "rank 1: passes done; rank 0 checks the model and writes the bundle" in result.out
    assert not (tmp_path / "bundle").exists()
    assert not list(private_pass_cache.rglob("entry.json"))


def test_a_bad_rank_variable_is_one_line(cli, make_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    result = cli("compile", make_recipe(), "-o", tmp_path / "bundle")
    assert result.code == 2
    assert "WORLD_SIZE='two' is not an integer" in result.err and "Traceback" not in result.err
