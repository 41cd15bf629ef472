"""prune.structured on Hugging Face encoders: whole attention heads (and FFN channels) removed from a tiny
random BERT, widths written back into the modules and the meta, forward at several sequence lengths,
weights_only rebuilds (pass check, pass cache), export + ONNX Runtime parity with a dynamic sequence
axis and per-layer head counts in the graph's Reshapes, and bad option combinations caught at plan time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from shrink.testing import pass_input  # noqa: E402
from tests.test_hf import tiny_recipe, write_tiny_bert  # noqa: E402
from tests.test_torch_passes import write_recipe as write_cnn_recipe  # noqa: E402

HEAD_SIZE = 8  # hidden 32 / 4 heads


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("heads") / "tiny-bert")


class Harness:
    """The real plan, text data and huggingface source of a recipe (`shrink.testing.pass_input`); runs single
    passes on torch artifacts."""

    def __init__(self, tmp_path: Path, folder: Path, passes: list[dict[str, Any]]) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        made = pass_input(tiny_recipe(folder, tmp_path, passes=[*passes, {"pass": "export.onnx"}]), tmp_path / "work")
        self.plan, self.ctx, self.source = made.plan, made.ctx, made.artifact

    def run(self, index: int, artifact: Any) -> Any:
        return self.plan.steps[index].instance.run(artifact, self.ctx)


def tokens(vocab: int, batch: int, length: int, seed: int = 3) -> tuple[Any, Any]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, max(1, length // 2):] = 0
    return ids, mask


def assert_consistent(model: Any, heads: list[int], ffn: list[int]) -> None:
    """Every attention module's and Linear's widths agree with the recorded per-layer counts."""
    for layer, h, f in zip(model.bert.encoder.layer, heads, ffn):
        attention = layer.attention.self
        assert attention.num_attention_heads == h and attention.all_head_size == h * HEAD_SIZE
        assert attention.attention_head_size == HEAD_SIZE
        for linear in (attention.query, attention.key, attention.value):
            assert linear.out_features == h * HEAD_SIZE and linear.bias.shape == (h * HEAD_SIZE,)
        assert layer.attention.output.dense.in_features == h * HEAD_SIZE
        assert layer.intermediate.dense.out_features == f and layer.output.dense.in_features == f


# plan time --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("step", "fragment"), [
    ({"heads_ratio": 1.0}, "passes[0].heads_ratio: 1.0 is greater than or equal to the maximum of 1"),
    ({"heads_ratio": 0.5, "ratio": 0.3}, "ratio applies to channel pruning"),
    ({"heads_ratio": 0.5, "importance": "taylor"}, "importance 'taylor' does not apply to encoder pruning"),
    ({"heads_ratio": 0.5, "finetune_kd": False}, "finetune_kd cannot be false"),
    ({"ffn_ratio": 0.5, "global_pruning": True}, "global_pruning applies to encoders only with heads_ratio"),
    ({"heads_ratio": 0.5, "round_to": 8}, "round_to applies to encoders only with ffn_ratio"),
    ({}, "give heads_ratio and/or ffn_ratio"),
])
def test_bad_encoder_options_are_plan_errors(cli, tiny_bert, tmp_path, step, fragment):
    recipe = tiny_recipe(tiny_bert, tmp_path, passes=[{"pass": "prune.structured", **step}, {"pass": "export.onnx"}])
    result = cli("plan", recipe)
    assert result.code == 2, result.err
    assert "passes[0]" in result.err and fragment in result.err, result.err
    assert "Traceback" not in result.err


def test_heads_ratio_on_a_cnn_and_ablation_on_channels_are_plan_errors(cli, tmp_path):
    result = cli("plan", write_cnn_recipe(tmp_path, [{"pass": "prune.structured", "heads_ratio": 0.25}, {"pass": "export.onnx"}]))
    assert result.code == 2 and "torch models are pruned by channels" in result.err, result.err
    result = cli("plan", write_cnn_recipe(tmp_path, [{"pass": "prune.structured", "importance": "ablation"}, {"pass": "export.onnx"}]))
    assert result.code == 2 and "'ablation' applies only to encoder pruning" in result.err, result.err


def test_encoder_pruning_plans_on_unlabelled_text(cli, tiny_bert, tmp_path):
    recipe = tiny_recipe(tiny_bert, tmp_path, passes=[{"pass": "prune", "heads_ratio": 0.25}, {"pass": "export.onnx"}])
    result = cli("plan", recipe, "--json")
    assert result.code == 0, result.err
    assert result.json["plan"]["passes"][0]["options"]["heads_ratio"] == 0.25


# the pass on a tiny BERT ------------------------------------------------------------------------------

@pytest.mark.slow
def test_heads_removed_per_layer_written_back_and_rebuilt(tiny_bert, tmp_path):
    from shrink_huggingface.heads import rebuild
    from shrink_huggingface.model import restore, save

    h = Harness(tmp_path, tiny_bert, [{"pass": "prune.structured", "heads_ratio": 0.5, "ffn_ratio": 0.25,
                                                 "finetune_epochs": 1, "batch_size": 16}])
    before = {k: v.clone() for k, v in h.source.model.state_dict().items()}
    out = h.run(0, h.source)
    assert all(torch.equal(before[k], v) for k, v in h.source.model.state_dict().items()), "the input model was mutated"
    d = out.details
    assert d["heads_before"] == [4, 4, 4, 4] and d["heads_after"] == [2, 2, 2, 2]
    assert all(len(removed) == 2 for removed in d["pruned_heads"].values()) and len(d["pruned_heads"]) == 4
    assert d["ffn_before"] == [64] * 4 and d["ffn_after"] == [48] * 4
    assert d["params_after"] < d["params_before"] and d["rebuild"] == "ok" and len(d["rebuild_lengths"]) == 3
    assert -1 <= d["cosine_after_prune"] <= 1 and -1 <= d["cosine"] <= 1 and len(d["finetune_loss_per_epoch"]) == 1
    model = out.model
    assert out.meta["heads"] == [2, 2, 2, 2] and out.meta["ffn_sizes"] == [48] * 4
    assert out.meta["hf_config"]["num_attention_heads"] == 4  # fixes the head size; per-layer counts are in meta
    assert_consistent(model, out.meta["heads"], out.meta["ffn_sizes"])
    vocab = int(model.config.vocab_size)
    for length in (5, 23):
        ids, mask = tokens(vocab, 3, length)
        with torch.no_grad():
            assert model(ids, mask).shape == (3, 32)

    # rebuilt from config + recorded widths, weights loaded with weights_only=True
    torch.save(model.state_dict(), tmp_path / "pruned.pt")
    fresh = rebuild(out.meta["hf_config"], "sentence-embedding", True, None, out.meta["heads"], out.meta["ffn_sizes"])
    fresh.load_state_dict(torch.load(tmp_path / "pruned.pt", weights_only=True))
    assert_consistent(fresh, out.meta["heads"], out.meta["ffn_sizes"])
    ids, mask = tokens(vocab, 3, 17)
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids, mask), model(ids, mask), atol=1e-6, rtol=1e-5)

    # the pass cache hooks save and restore the pruned widths
    cache = tmp_path / "cache"
    cache.mkdir()
    descriptor = json.loads(json.dumps(save(model, cache)))
    restored = restore(descriptor, cache)
    assert_consistent(restored, out.meta["heads"], out.meta["ffn_sizes"])
    with torch.no_grad():
        torch.testing.assert_close(restored(ids, mask), model(ids, mask), atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_at_least_one_head_kept_and_global_ranking(tiny_bert, tmp_path):
    from shrink_huggingface.heads import heads_to_remove

    h = Harness(tmp_path, tiny_bert, [{"pass": "prune.structured", "heads_ratio": 0.95, "finetune_epochs": 0,
                                                 "importance": "ablation", "taylor_batches": 1, "batch_size": 16}])
    out = h.run(0, h.source)
    assert out.details["heads_after"] == [1, 1, 1, 1]  # 0.95 of 4 heads rounds to 4, capped at 3
    assert_consistent(out.model, [1, 1, 1, 1], [64] * 4)
    scores = out.details["head_scores"]
    assert len(scores) == 4 and all(len(s) == 4 and min(s) >= -1e-6 for s in scores)
    for layer, removed in out.details["pruned_heads"].items():  # the kept head is the one ablation ranks highest
        kept = next(i for i in range(4) if i not in removed)
        assert scores[int(layer)][kept] == max(scores[int(layer)])

    scores_t = [torch.tensor(s) for s in ([0.1, 0.2, 0.3, 0.4], [5.0, 6.0, 7.0, 8.0], [0.05, 0.01, 9.0, 9.0])]
    assert heads_to_remove(scores_t, 0.5, True, None) == [[0, 1, 2], [0], [0, 1]]  # 6 of 12, the cheapest, 1 kept per layer
    assert heads_to_remove(scores_t, 0.5, True, 0.5) == [[0, 1], [0, 1], [0, 1]]  # at most half of any layer
    assert heads_to_remove(scores_t, 0.25, False, None) == [[0], [0], [1]]


# export after head pruning ----------------------------------------------------------------------------

def reshape_head_counts(path: Path, ids: Any, mask: Any) -> list[int]:
    """The head axis of every Reshape to [batch, sequence, heads, head_size] in the graph, read from the
    shapes ONNX Runtime actually produces (each Reshape output is exposed as an extra graph output)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    reshaped = [node.output[0] for node in model.graph.node if node.op_type == "Reshape"]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in reshaped)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = sess.run(reshaped, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    return [v.shape[2] for v in values if v.ndim == 4 and v.shape[3] == HEAD_SIZE and v.shape[:2] == tuple(ids.shape)]


@pytest.mark.slow
def test_export_after_head_pruning_runs_with_dynamic_sequence(tiny_bert, tmp_path):
    import onnxruntime as ort

    h = Harness(tmp_path, tiny_bert, [{"pass": "prune.structured", "heads_ratio": 0.5, "global_pruning": True,
                                                 "finetune_epochs": 0}])
    pruned = h.run(0, h.source)
    heads = pruned.meta["heads"]
    assert sum(heads) == 8 and min(heads) >= 1
    exported = h.run(1, pruned)
    assert exported.format == "onnx" and exported.details["parity_max_abs"] <= 1e-4
    assert exported.meta["heads"] == heads  # the meta travels with the artifact
    sess = ort.InferenceSession(exported.model, providers=["CPUExecutionProvider"])
    vocab = int(pruned.model.config.vocab_size)
    for length in (4, 29):
        ids, mask = tokens(vocab, 2, length)
        expected = pruned.model(ids, mask).detach().numpy()
        (actual,) = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        np.testing.assert_allclose(actual, expected, atol=1e-5)
    found = reshape_head_counts(Path(exported.model), *tokens(vocab, 2, 11))
    assert found, "no rank-4 Reshape in the exported graph"
    assert sorted(set(found)) == sorted(set(heads)) and sum(found) == 3 * sum(heads)  # q, k, v per layer


@pytest.mark.slow
def test_compile_with_head_pruning_end_to_end_and_cached(cli, tiny_bert, tmp_path):
    passes = [{"pass": "prune.structured", "heads_ratio": 0.25, "finetune_epochs": 1, "batch_size": 16},
              {"pass": "export.onnx"}]
    recipe = tiny_recipe(tiny_bert, tmp_path, passes=passes)
    result = cli("compile", recipe, "-o", tmp_path / "bundle", "--json")
    assert result.code == 0, result.err
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    history = {step["name"]: step for step in manifest["history"]}
    prune = history["prune.structured"]
    assert prune["details"]["heads_after"] == [3, 3, 3, 3] and prune["details"]["rebuild"] == "ok"
    assert "cosine" in prune["metrics"] and history["export.onnx"]["details"]["parity_max_abs"] <= 1e-4
    assert cli("verify", tmp_path / "bundle").code == 0
    again = cli("compile", recipe, "-o", tmp_path / "again", "--json")
    assert again.code == 0, again.err
    cached = json.loads((tmp_path / "again" / "manifest.json").read_text())["history"]
    assert all(step["cached"] for step in cached)
    golden = (tmp_path / "again" / "model.onnx").read_bytes()
    assert golden == (tmp_path / "bundle" / "model.onnx").read_bytes()
