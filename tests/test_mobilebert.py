"""`distill.mobilebert` on a tiny random BERT teacher: the bottleneck student's shapes and embedding
factorization, each transfer term is zero when student = teacher, progressive stages train only their
block, export + int8 + pass cache through the CLI; and the widened `text` training sources stay
disjoint from the held-out ones."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_hf import batch, load_encoder, tiny_recipe, write_tiny_bert


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("mb") / "tiny-bert")


def options(**values):
    from shrink_huggingface.mobilebert import options as make

    return make(**values)


def small(**student):
    return options(student={"layers": 2, "intra_size": 8, "heads": 4, **student})


def test_bottleneck_student_shapes(tiny_bert):
    import torch

    from shrink_huggingface.mobilebert_train import StateCapture, build_student

    teacher = load_encoder(tiny_bert)
    student, mapping, described = build_student(small(ffn_size=16, embedding_size=16), teacher)
    assert mapping == [1, 3] and described["inter_block_size"] == 32 and described["intra_size"] == 8
    assert type(student.model).__name__ == "MobileBertModel"
    block = student.bert.encoder.layer[0]
    assert block.bottleneck.input.dense.weight.shape == (8, 32)  # teacher width -> intra width
    assert block.output.bottleneck.dense.weight.shape == (32, 8)  # and back
    assert block.attention.self.query.weight.shape == (8, 8) and block.intermediate.dense.weight.shape == (16, 8)
    assert student.bert.embeddings.word_embeddings.weight.shape == (teacher.config.vocab_size, 16)
    assert "rank-16 SVD" in described["init"]
    ids, mask = batch(teacher.config.vocab_size)
    capture = StateCapture(student)
    with torch.no_grad():
        out, states = capture.run(student, ids, mask, 2)
        assert student(ids, mask).shape == (3, 32)  # the teacher's embedding space, no projection
    capture.close()
    assert [tuple(s.shape) for s in states] == [(3, 10, 32)] * 3  # every block's output has the teacher's width
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())


def test_embeddings_copied_or_factorized(tiny_bert):
    import torch

    from shrink_huggingface.mobilebert_train import build_student

    teacher = load_encoder(tiny_bert)
    full, _, described = build_student(small(), teacher)
    assert "factorized" not in described["init"]
    torch.testing.assert_close(full.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    factored, _, _ = build_student(small(embedding_size=31), teacher)
    with torch.no_grad():  # rank 31 of a 32-wide table: nearly the teacher's table back
        e = factored.bert.embeddings
        table = e.embedding_transformation(e.word_embeddings.weight)
    error = (table - teacher.bert.embeddings.word_embeddings.weight).norm() / teacher.bert.embeddings.word_embeddings.weight.norm()
    assert float(error.detach()) < 0.2
    from shrink import UsageError

    with pytest.raises(UsageError, match="not a multiple of 4 heads"):
        build_student(options(student={"intra_size": 10}), teacher)
    with pytest.raises(UsageError, match="teacher has 4 layers"):
        build_student(options(student={"layers": 2, "intra_size": 8}, layer_map=[0, 7]), teacher)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a multiple of heads"):
        options(student={"intra_size": 10, "heads": 4})
    with pytest.raises(ValidationError, match="nothing would be trained"):
        options(stage_epochs=0, epochs=0)


def test_transfer_terms_are_zero_when_student_is_teacher(tiny_bert):
    import torch

    from shrink_huggingface.mobilebert_train import TERMS, Transfer, attention_kl, build_student

    student, mapping, _ = build_student(small(embedding_size=16), load_encoder(tiny_bert))
    teacher = copy.deepcopy(student)  # a bottleneck teacher identical to the student, mapped block to block
    transfer = Transfer(student, teacher, [0, 1])
    ids, mask = batch(student.config.vocab_size)
    every = dict.fromkeys(TERMS, 1.0)
    for blocks, embeddings_only in (([], True), ([0], False), ([1], False), ([0, 1], False)):
        terms = transfer(student, teacher, ids, mask, every, blocks, embeddings_only)
        for name in (*TERMS, "total"):
            assert float(terms[name].detach()) == pytest.approx(0.0, abs=1e-6), (blocks, name)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    terms = transfer(student, teacher, ids, mask, every, [0, 1])
    transfer.close()
    for name in ("feature_map", "attention", "prediction"):
        assert float(terms[name].detach()) > 0, name
    # attention KL ignores padded keys and padded query rows, and head-averages across head counts
    scores = torch.randn(3, 4, 10, 10)
    changed = scores.clone()
    changed[2, :, 5:, :] += 50.0
    changed[1, :, :, 7:] -= 50.0
    assert float(attention_kl(changed, scores, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(attention_kl(scores[:, :2], scores, mask)) >= 0


def test_progressive_stages_train_only_their_block(tiny_bert):
    import torch

    from shrink_huggingface.mobilebert_train import Transfer, build_student, stages, train_stage

    teacher = load_encoder(tiny_bert)
    opts = small(embedding_size=16)
    student, mapping, _ = build_student(opts, teacher)
    plan = stages(student, opts, factorized=True)
    assert [s["stage"] for s in plan] == ["embeddings", "block 0", "block 1", "final"]
    rng = np.random.default_rng(0)
    ids = rng.integers(5, teacher.config.vocab_size, size=(8, 10)).astype(np.int64)
    mask = np.ones_like(ids)
    transfer = Transfer(student, teacher, mapping)
    generator = torch.Generator().manual_seed(0)

    def snapshot():
        return {name: p.detach().clone() for name, p in student.named_parameters()}

    def changed(before):
        return {name for name, p in student.named_parameters() if not torch.equal(p, before[name])}

    before = snapshot()
    result = train_stage(plan[2], student, teacher, transfer, (ids, mask), opts, generator, lambda *a: None)
    moved = changed(before)
    assert moved and all(name.startswith("model.encoder.layer.1.") for name in moved)
    assert result["stage"] == "block 1" and set(result["loss_per_epoch"][0]) == {"feature_map", "attention", "total"}
    before = snapshot()
    train_stage(plan[-1], student, teacher, transfer, (ids, mask), opts, generator, lambda *a: None)
    moved = changed(before)
    assert any(".layer.0." in n for n in moved) and any("embeddings" in n for n in moved)
    transfer.close()


@pytest.mark.slow
def test_mobilebert_compiles_exports_and_quantizes(cli, tiny_bert, tmp_path):
    passes = [{"pass": "distill.mobilebert", "student": {"layers": 2, "intra_size": 8, "heads": 4, "embedding_size": 16},
               "stage_epochs": 1, "epochs": 1, "batch_size": 16},
              {"pass": "export.onnx"}, {"pass": "quantize.ptq"}]
    recipe = tiny_recipe(tiny_bert, tmp_path, passes=passes)
    out = tmp_path / "bundle"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code == 0, result.err
    manifest = json.loads((out / "manifest.json").read_text())
    history = {h["name"]: h for h in manifest["history"]}
    distill = history["distill.mobilebert"]["details"]
    assert [s["stage"] for s in distill["stages"]] == ["embeddings", "block 0", "block 1", "final"]
    assert all(s["loss_per_epoch"] for s in distill["stages"]) and distill["student"]["inter_block_size"] == 32
    assert history["export.onnx"]["details"]["parity_max_abs"] <= 1e-4
    quant = history["quantize.ptq"]["details"]
    assert quant["scheme"] == "dynamic-per-channel" and "MatMulInteger" in quant["quantized_ops"]
    assert -1 <= history["quantize.ptq"]["metrics"]["cosine"] <= 1 and (out / "tokenizer.json").is_file()
    assert cli("verify", out).code == 0
    again = cli("compile", recipe, "-o", tmp_path / "again", "--json")  # the student comes back from the pass cache
    assert again.code == 0, again.err
    assert all(step["cached"] for step in json.loads((tmp_path / "again" / "manifest.json").read_text())["history"])


@pytest.mark.slow
def test_training_sources_are_disjoint_from_held_out(tmp_path):
    from shrink_huggingface import corpus
    from shrink_huggingface.templates import generate
    from shrink_huggingface.text import TextData

    assert generate(300, 0) == generate(300, 0) and len(set(generate(300, 0))) == 300

    class Ctx:
        def path(self, value: str) -> Path:
            return tmp_path / value

    # every source but site-packages (10+ s to parse; the same dedupe covers it, checked below on a sample)
    sources = [s for s in corpus.TRAIN_SOURCES if s != "site-packages"]
    data = TextData(TextData.Options(train_sources=sources, eval_size=100_000)).load(Ctx())
    train = {s.lower() for s in data.split("train").inputs}
    held = {s.lower() for s in data.split("eval").inputs}
    assert len(held) == sum(data.meta["eval_groups"].values()) and not train & held
    assert list(data.meta["train_source_sizes"]) == sources and len(train) > 12_000
    described = {s.lower() for s in corpus.package_sentences()}  # METADATA descriptions: held out, never trained on
    assert not train & described and not train & {s.lower() for s in corpus.requests()}
    site = corpus.site_sentences(20)  # docstrings of installed modules, a few per distribution (the dataset drops
    assert len(site) > 200  # the rare one that a package's description repeats, as for every source above)


def test_minilm_mobilebert_recipe_plans(cli):
    from tests.conftest import REPO

    result = cli("plan", REPO / "recipes" / "minilm-mobilebert.json", "--json")
    assert result.code == 0, result.err
    assert [p["pass"] for p in result.json["plan"]["passes"]] == ["distill.mobilebert", "prune.embeddings", "export.onnx", "quantize.ptq"]
