"""The torch passes (distill.kd, prune.structured, fuse.bn) on tiny real models and 8x8 digits, through the real engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from shrink.testing import pass_input  # noqa: E402

FACTORY = '''
import torch
from torch import nn


def cnn(width: int = 8) -> nn.Module:
    """Two conv blocks on 8x8 inputs, a hidden Linear and the 10-class output Linear."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * width * 16, 16), nn.ReLU(), nn.Linear(16, 10),
    )


def small() -> nn.Module:
    return cnn(width=4)


class Branchy(nn.Module):
    """Not a Sequential: conv1 → bn1 is foldable; conv2's output also feeds a skip path, so it is not."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 64, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        y = self.conv2(x)
        x = torch.relu(self.bn2(y)) + y
        return self.head(x.flatten(1))


def branchy() -> nn.Module:
    return Branchy()


class Untraceable(nn.Sequential):
    """Data-dependent control flow: torch.fx cannot trace it, so fuse.bn falls back to Sequential order."""

    def forward(self, x):
        if x.sum() > -1e9:
            return super().forward(x)
        return super().forward(-x)


def untraceable() -> nn.Module:
    return Untraceable(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))


def separable() -> nn.Module:
    """A depthwise-separable block: a 3x3 Conv, a 3x3 depthwise Conv, a 1x1 pointwise Conv, then the Linear."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                         nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
'''


def write_recipe(tmp_path: Path, passes: list[dict[str, Any]], factory: str = "nets.py:cnn", **extra: Any) -> Path:
    (tmp_path / "nets.py").write_text(FACTORY)
    recipe = {
        "schema_version": 1, "name": "tiny-torch",
        "model": {"source": "torch", "factory": factory, "input_shape": [1, 1, 8, 8], "allow_random_weights": True},
        "data": {"source": "sklearn.digits", "image_size": 8},
        "target": "cortex-a53", "passes": passes, **extra,
    }
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class Harness:
    """Real plan, data and source from a recipe (`shrink.testing.pass_input`); runs single passes so tests can
    look at torch artifacts."""

    def __init__(self, tmp_path: Path, passes: list[dict[str, Any]], factory: str = "nets.py:cnn", seed: int = 0) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        made = pass_input(write_recipe(tmp_path, [*passes, {"pass": "export.onnx"}], factory, seed=seed), tmp_path / "work")
        self.plan, self.ctx, self.source = made.plan, made.ctx, made.artifact

    def run(self, index: int = 0, artifact: Any = None) -> Any:
        return self.plan.steps[index].instance.run(artifact or self.source, self.ctx)

    def eval_inputs(self, n: int = 64) -> Any:
        return torch.from_numpy(self.ctx.data.split("eval").inputs[:n].copy())


def state(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# plan time --------------------------------------------------------------------------------------

def test_ratio_out_of_range_is_a_plan_error(cli, tmp_path):
    result = cli("plan", write_recipe(tmp_path, [{"pass": "prune.structured", "ratio": 1.5}, {"pass": "export.onnx"}]))
    assert result.code == 2, result.err
    assert "passes[0].ratio" in result.err and "0.95" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(("step", "fragment"), [
    ({"pass": "prune.structured", "finetune_epochs": 0, "finetune_kd": True}, "finetune_kd needs finetune_epochs > 0"),
    ({"pass": "prune.structured", "ratio": 0.6, "max_layer_ratio": 0.5}, "ratio 0.6 is greater than max_layer_ratio 0.5"),
    ({"pass": "prune.structured", "taylor_batches": 2}, "taylor_batches applies only to importance 'taylor'"),
    ({"pass": "distill.kd", "width": 0.5, "student": {"factory": "nets.py:small"}}, "give exactly one of 'student'"),
    ({"pass": "distill.kd"}, "give exactly one of 'student'"),
    ({"pass": "distill.kd", "student": {"factory": "nets.py:small"}, "init": "random"}, "'init' applies only to a 'width' student"),
    ({"pass": "distill.kd", "student": {"factory": "missing.py:small"}}, "student: factory file"),
    ({"pass": "distill.kd", "student": {"factory": "nets.py:small", "kwarg": {}}}, "passes[0].student: unknown key 'kwarg'"),
    ({"pass": "distill.kd", "width": 1.5}, "passes[0].width: 1.5 is greater than or equal to the maximum of 1"),
    ({"pass": "compress.cluster", "layers": ["conv"], "clusters_by_kind": {"linear": 8}},
     "clusters_by_kind: linear layers are not clustered (layers: conv)"),
    ({"pass": "compress.cluster", "clusters_by_kind": {"pointwise": 8}}, "passes[0].clusters_by_kind"),
    ({"pass": "compress.cluster", "clusters_by_kind": {"depthwise": 1}}, "passes[0].clusters_by_kind.depthwise"),
    ({"pass": "compress.cluster", "finetune": "weights", "finetune_epochs": 0}, "finetune 'weights' needs finetune_epochs > 0"),
])
def test_cross_field_and_plan_checks(cli, tmp_path, step, fragment):
    result = cli("plan", write_recipe(tmp_path, [step, {"pass": "export.onnx"}]))
    assert result.code == 2, result.err
    assert "recipe.json: passes[0]" in result.err
    assert fragment in result.err, result.err


def test_format_contract_and_defaults(cli, tmp_path):
    result = cli("plan", write_recipe(tmp_path, [{"pass": "distill", "student": {"factory": "nets.py:small"}},
                                                  {"pass": "prune"}, {"pass": "fuse.bn"}, {"pass": "export.onnx"}]), "--json")
    assert result.code == 0, result.err
    steps = result.json["plan"]["passes"]
    assert [s["pass"] for s in steps] == ["distill.kd", "prune.structured", "fuse.bn", "export.onnx"]
    assert [(s["consumes"], s["produces"]) for s in steps[:3]] == [("torch", "torch")] * 3
    assert steps[1]["options"]["ratio"] == 0.5 and steps[1]["options"]["finetune_epochs"] == 3
    assert steps[0]["options"]["temperature"] == 2.0
    result = cli("plan", write_recipe(tmp_path, [{"pass": "export.onnx"}, {"pass": "fuse.bn"}]))
    assert result.code == 2
    assert "passes[1].pass: fuse.bn consumes torch but receives onnx here" in result.err


def test_passes_listed_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys, json; from shrink.cli.main import main; main(['passes', '--json']); "
            "sys.stderr.write(json.dumps(sorted(m for m in ('torch', 'torch_pruning') if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["passes"]}
    assert rows["distill.kd"]["default"] and rows["prune.structured"]["default"] and not rows["fuse.bn"]["default"]
    assert rows["prune.structured"]["requires"] == ["labels", "train"]
    assert proc.stderr.strip().endswith("[]"), proc.stderr


# prune.structured --------------------------------------------------------------------------------

def test_prune_reduces_params_and_shapes_rebuild_weights_only(tmp_path):
    from shrink_torch.runtime import rebuild

    h = Harness(tmp_path, [{"pass": "prune.structured", "ratio": 0.5, "finetune_epochs": 1, "round_to": 2}])
    before = state(h.source.model)
    out = h.run()
    assert same_state(before, state(h.source.model)), "the input model was mutated"
    d = out.details
    assert d["params_after"] < 0.5 * d["params_before"] and d["macs_after"] < d["macs_before"]
    assert d["ignored"] == ["10"] and d["rebuild"] == "ok"
    shapes = out.meta["pruned_shapes"]
    assert shapes["0"]["out"] == 4 and shapes["3"] == {"in": 4, "out": 8, "groups": 1} and shapes["10"]["out"] == 10
    assert all(s["out"] % 2 == 0 for name, s in shapes.items() if name != "10")
    path = tmp_path / "pruned.pt"
    torch.save(out.model.state_dict(), path)
    from shrink.api.factory import load_factory

    fresh = rebuild(load_factory("nets.py:cnn", tmp_path)(), shapes)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    x = h.eval_inputs()
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), out.model.eval()(x), atol=1e-6)


@pytest.mark.parametrize("importance", ["taylor", "bn_scale"])
def test_other_importances_prune(tmp_path, importance):
    h = Harness(tmp_path, [{"pass": "prune.structured", "ratio": 0.5, "importance": importance,
                                      "finetune_epochs": 1, "finetune_kd": False}])
    out = h.run()
    assert out.details["params_after"] < out.details["params_before"]
    assert out.details["finetune_kd"] is False


def test_prune_unknown_ignore_name_is_a_clear_error(tmp_path):
    from shrink import UsageError

    h = Harness(tmp_path, [{"pass": "prune.structured", "ignore": ["9x"], "finetune_epochs": 0}])
    with pytest.raises(UsageError, match="no module '9x'"):
        h.run()


def test_prune_is_deterministic(tmp_path):
    step = [{"pass": "prune.structured", "ratio": 0.4, "finetune_epochs": 1}]
    a, b = Harness(tmp_path / "a", step), Harness(tmp_path / "b", step)
    out_a, out_b = a.run(), b.run()
    assert out_a.details["accuracy"] == out_b.details["accuracy"]
    assert same_state(state(out_a.model), state(out_b.model))


# fuse.bn -------------------------------------------------------------------------------------------

def test_fuse_bn_removes_batchnorm_keeps_outputs_and_rebuilds(tmp_path):
    from shrink_torch.runtime import rebuild

    h = Harness(tmp_path, [{"pass": "fuse.bn"}])
    for m in h.source.model.modules():  # non-trivial statistics so folding really changes the weights
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    out = h.run()
    assert out.details["fused"] == 2 and out.details["batchnorm_left"] == 0
    assert out.details["max_abs_change"] < 1e-4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in out.model.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in h.source.model.modules()) == 2, "input mutated"
    assert out.meta["fused_bn"] == [["0", "1"], ["3", "4"]]
    x = h.eval_inputs()
    with torch.no_grad():
        assert torch.allclose(out.model(x), h.source.model.eval()(x), atol=1e-4)
    path = tmp_path / "fused.pt"
    torch.save(out.model.state_dict(), path)
    from shrink.api.factory import load_factory

    fresh = rebuild(load_factory("nets.py:cnn", tmp_path)(), None, out.meta["fused_bn"])
    fresh.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), out.model(x), atol=1e-6)


def test_fuse_bn_traces_custom_modules_and_skips_shared_outputs(tmp_path):
    h = Harness(tmp_path, [{"pass": "fuse.bn"}], factory="nets.py:branchy")
    out = h.run()
    assert out.details["method"] == "fx"
    assert out.meta["fused_bn"] == [["conv1", "bn1"]]
    assert isinstance(out.model.bn2, torch.nn.BatchNorm2d) and out.details["batchnorm_left"] == 1


def test_fuse_bn_falls_back_to_sequential_order(tmp_path):
    h = Harness(tmp_path, [{"pass": "fuse.bn"}], factory="nets.py:untraceable")
    out = h.run()
    assert out.details["method"] == "sequential" and out.meta["fused_bn"] == [["0", "1"]]
    assert out.details["batchnorm_left"] == 0


def test_cluster_gives_each_kind_of_layer_its_count(tmp_path):
    """clusters_by_kind: the depthwise kernel shares 4 values (2-bit indices), the other layers `clusters` (16)."""
    h = Harness(tmp_path, [{"pass": "fuse.bn"}, {"pass": "compress.cluster", "clusters": 16, "finetune_epochs": 0,
                                                 "min_weights": 1, "clusters_by_kind": {"depthwise": 4}}],
                factory="nets.py:separable")
    out = h.run(1, h.run(0))
    distinct = {name: int(m.weight.detach().unique().numel()) for name, m in out.model.named_modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    assert distinct == {"0": 16, "2": 4, "4": 16, "7": 16}
    assert out.details["index_bits"] == "2, 4" and out.details["clusters_by_kind"] == {"depthwise": 4}
    weights = {"0": 72, "2": 72, "4": 64, "7": 5120}
    bits = {"0": 4, "2": 2, "4": 4, "7": 4}
    assert out.details["coded_weight_bytes"] == sum(-(-weights[n] * bits[n] // 8) + 4 * (1 << bits[n]) for n in weights)


def test_cluster_aware_training_moves_weights_between_shared_values():
    """finetune 'weights': the forward pass sees each weight's nearest shared value, the weight gets the gradient
    straight through and each shared value the sum over the weights it holds."""
    from shrink_torch.cluster import NearestShared

    shared = NearestShared(torch.tensor([0.5, -1.0, 0.0]))  # unsorted on purpose
    weight = torch.tensor([-0.9, -0.4, 0.2, 0.3, 2.0], requires_grad=True)
    out = shared(weight)
    assert out.tolist() == [-1.0, 0.0, 0.0, 0.5, 0.5]
    out.backward(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert weight.grad.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert shared.centroids.grad.tolist() == [9.0, 1.0, 5.0]
    with torch.no_grad():
        weight[1] = -0.8  # nearer to -1.0 now: it moves to that cluster
    assert shared(weight).tolist()[1] == -1.0


def test_cluster_density_init_puts_shared_values_where_the_weights_are():
    """init 'density' starts k-means at the weights' quantiles, 'linear' evenly over [min, max]: on a bell of weights
    with one rare large weight, density keeps more shared values inside the bell (the recipe's choice for KWS) and
    linear keeps the large weight exact (Deep Compression's argument for it)."""
    from shrink_torch.cluster import _tie

    torch.manual_seed(0)
    shared = {}
    for init in ("linear", "density"):
        layer = torch.nn.Linear(64, 64, bias=False)
        with torch.no_grad():
            layer.weight.normal_(0.0, 0.1)
            layer.weight[0, 0] = 1.0
        _tie(layer, 8, init, seed=0)
        shared[init] = sorted(layer.parametrizations.weight[0].centroids.detach().tolist())
    inside = {init: sum(abs(v) <= 0.1 for v in values) for init, values in shared.items()}
    assert inside["density"] > inside["linear"]
    assert shared["linear"][-1] == pytest.approx(1.0) and shared["density"][-1] < 0.5


def test_cluster_aware_fine_tune_moves_weights_and_keeps_the_sharing(tmp_path):
    """From the same k-means: 'centroids' keeps every weight in its cluster (the same partition), 'weights' moves
    some to another; both leave at most `clusters` plain values per layer."""
    common = {"pass": "compress.cluster", "clusters": 8, "min_weights": 1, "lr": 0.01}
    h = Harness(tmp_path, [{"pass": "fuse.bn"}, {**common, "finetune_epochs": 0},
                           {**common, "finetune_epochs": 2, "finetune": "centroids"},
                           {**common, "finetune_epochs": 2, "finetune": "weights"}], factory="nets.py:separable")
    fused = h.run(0)
    kmeans, centroids, weights = (h.run(i, fused) for i in (1, 2, 3))

    def partitions(model: Any) -> dict[str, set[tuple[int, int]]]:
        found = {}
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                assert module.weight.detach().unique().numel() <= 8, name
                assert not hasattr(module, "parametrizations"), name  # a plain weight again
                found[name] = module.weight.detach().flatten().unique(return_inverse=True)[1]
        return found

    def same_partition(a: Any, b: Any) -> bool:
        pairs = set(zip(a.tolist(), b.tolist()))
        return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))

    before, kept, moved = partitions(kmeans.model), partitions(centroids.model), partitions(weights.model)
    assert all(same_partition(before[n], kept[n]) for n in before)
    assert any(not same_partition(before[n], moved[n]) for n in before)
    assert weights.details["finetune"] == "weights" and centroids.details["finetune"] == "centroids"


def test_fuse_bn_gate_raises_beyond_tolerance(tmp_path):
    from shrink_torch.fuse import FusionError

    h = Harness(tmp_path, [{"pass": "fuse.bn", "tolerance": 1e-12}])
    for m in h.source.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(1e-3)  # large folded scales: float rounding shows
            m.running_mean.fill_(0.3)
    with pytest.raises(FusionError, match="tolerance 1e-12"):
        h.run()


# distill.kd ----------------------------------------------------------------------------------------

def test_distill_produces_the_student_architecture(tmp_path):
    h = Harness(tmp_path, [{"pass": "distill.kd", "student": {"factory": "nets.py:cnn", "kwargs": {"width": 2}},
                                      "epochs": 1, "compare_scratch": True}])
    before = state(h.source.model)
    out = h.run()
    assert same_state(before, state(h.source.model))
    from shrink.api.factory import load_factory

    expected = load_factory("nets.py:cnn", tmp_path)(width=2)
    assert {k: v.shape for k, v in out.model.state_dict().items()} == {k: v.shape for k, v in expected.state_dict().items()}
    assert out.meta["factory"] == "nets.py:cnn" and out.meta["factory_kwargs"] == {"width": 2}
    d = out.details
    assert d["student_params"] < d["teacher_params"] and d["student_macs"] < d["teacher_macs"]
    assert 0 <= d["accuracy"] <= 1 and 0 <= d["accuracy_without_teacher"] <= 1 and "kd_gain" in d


def test_distill_width_student_is_rebuildable(tmp_path):
    from shrink_torch.runtime import rebuild

    h = Harness(tmp_path, [{"pass": "distill.kd", "width": 0.5, "epochs": 1}])
    out = h.run()
    shapes = out.meta["pruned_shapes"]
    assert shapes["0"]["out"] == 4 and shapes["8"] == {"in": 128, "out": 8} and shapes["10"]["out"] == 10
    assert out.details["rebuild"] == "ok"
    path = tmp_path / "student.pt"
    torch.save(out.model.state_dict(), path)
    from shrink.api.factory import load_factory

    fresh = rebuild(load_factory("nets.py:cnn", tmp_path)(), shapes)
    fresh.load_state_dict(torch.load(path, weights_only=True))


def test_distill_same_seed_same_accuracy(tmp_path):
    step = [{"pass": "distill.kd", "student": {"factory": "nets.py:small"}, "epochs": 1}]
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        runs.append(Harness(tmp_path / name, step, seed=seed).run())
    assert runs[0].details["accuracy"] == runs[1].details["accuracy"]
    assert same_state(state(runs[0].model), state(runs[1].model))
    assert not same_state(state(runs[0].model), state(runs[2].model))


# the whole chain through the CLI -------------------------------------------------------------------

def test_compile_distill_prune_fuse_export(cli, tmp_path):
    recipe = write_recipe(tmp_path, [
        {"pass": "distill.kd", "student": {"factory": "nets.py:small"}, "epochs": 1},
        {"pass": "prune.structured", "ratio": 0.25, "finetune_epochs": 1},
        {"pass": "fuse.bn"},
        {"pass": "export.onnx"},
    ])
    out = tmp_path / "bundle"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.json["exit_code"] in (0, 4), result.err
    manifest = json.loads((out / "manifest.json").read_text())
    history = {h["name"]: h for h in manifest["history"]}
    assert history["distill.kd"]["details"]["student_params"] < history["distill.kd"]["details"]["teacher_params"]
    assert history["prune.structured"]["details"]["params_after"] < history["prune.structured"]["details"]["params_before"]
    assert history["prune.structured"]["details"]["rebuild"] == "ok"
    assert history["fuse.bn"]["details"]["fused"] == 2
    assert history["export.onnx"]["metrics"]["params"] < history["source:torch"]["metrics"]["params"]
