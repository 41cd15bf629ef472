"""The Hugging Face family on a tiny random BERT saved to a folder with a WordPiece vocab: the source
(sha256 check, tokenizer files into the bundle), the text dataset, the encoder metrics, export with
dynamic axes and parity, the TinyBERT losses and mapping, a CLI compile end to end, and the runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_subprocess

WORDS = ("the a an is are was of to and in on for with this that it be can you me my please what how time "
         "set turn off lights music play call return value list file name function module class object string "
         "number data default error message when if not by from as at or use used which new first one two").split()


def write_tiny_bert(folder: Path, layers: int = 4, hidden: int = 32, heads: int = 4) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,?!'-", *letters, *(f"##{c}" for c in letters), *WORDS]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 64}))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert")


def tiny_recipe(folder: Path, directory: Path, passes: list[dict] | None = None, **model: object) -> Path:
    recipe = {
        "schema_version": 1, "name": "tiny-bert",
        "model": {"source": "huggingface", "path": str(folder), "max_length": 32, **model},
        "data": {"source": "text", "train_size": 64, "eval_size": 48, "calibration_size": 16},
        "target": "cortex-a53",
        "passes": passes if passes is not None else [
            {"pass": "distill.tinybert", "student": {"layers": 2}, "epochs": 1, "batch_size": 16},
            {"pass": "export.onnx"},
            {"pass": "quantize.ptq"},
        ],
    }
    path = directory / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


def text_ctx(tmp_path: Path, data: dict | None = None):
    from shrink_huggingface.text import TextData

    class Ctx:
        def path(self, value: str) -> Path:
            return tmp_path / value

    provider = TextData(TextData.Options(**(data or {"train_size": 300, "eval_size": 120})))
    return provider, Ctx()


# the text dataset ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_text_dataset_is_deterministic_and_held_out(tmp_path):
    provider, ctx = text_ctx(tmp_path)
    first, second = provider.load(ctx), provider.load(ctx)
    assert first.fingerprint == second.fingerprint
    assert first.split("train").inputs == second.split("train").inputs
    assert provider.fingerprint(ctx) == provider.fingerprint(ctx)
    train, held = set(first.split("train").inputs), set(first.split("eval").inputs)
    assert len(train) == 300 and len(held) == 120 and not train & held
    assert set(first.meta["eval_groups"]) == {"packages", "requests"}
    from shrink_huggingface.corpus import requests, stdlib_sentences

    assert len(stdlib_sentences()) > 3000  # several thousand training sentences in the built-in corpus
    assert not set(stdlib_sentences()) & set(requests())
    for sentence in list(train)[:100]:
        assert 5 <= len(sentence.split()) <= 60 and sentence[-1] in ".?!"
    other = TextData_with_seed(1).load(ctx)
    assert other.split("train").inputs != first.split("train").inputs


def TextData_with_seed(seed: int):
    from shrink_huggingface.text import TextData

    return TextData(TextData.Options(train_size=300, eval_size=120, seed=seed))


def test_text_dataset_from_user_files(tmp_path):
    (tmp_path / "mine.txt").write_text("# my sentences\nTurn on the lights.\nPlay some music.\n\nTurn on the lights.\n")
    (tmp_path / "held.txt").write_text("Call my mother.\n")
    provider, ctx = text_ctx(tmp_path, {"corpus": "none", "file": "mine.txt", "eval_file": "held.txt"})
    data = provider.load(ctx)
    assert sorted(data.split("train").inputs) == ["Play some music.", "Turn on the lights."]
    assert data.split("eval").inputs == ("Call my mother.",)
    from pydantic import ValidationError

    from shrink_huggingface.text import TextData

    with pytest.raises(ValidationError, match="needs 'file'"):
        TextData.Options(corpus="none")


# metrics ---------------------------------------------------------------------------------------------

def test_fidelity_metrics():
    from shrink_huggingface.metrics import fidelity

    rng = np.random.default_rng(0)
    teacher = rng.standard_normal((40, 16))
    same = fidelity(teacher, teacher)
    assert same["cosine"] == pytest.approx(1.0) and same["spearman"] == pytest.approx(1.0)
    noisy = fidelity(teacher + 0.5 * rng.standard_normal((40, 16)), teacher)
    assert 0.5 < noisy["cosine"] < 0.99 and 0.2 < noisy["spearman"] < 0.99
    unrelated = fidelity(rng.standard_normal((40, 16)), teacher)
    assert abs(unrelated["cosine"]) < 0.2


# TinyBERT: mapping, losses, shapes -------------------------------------------------------------------

def load_encoder(folder: Path, task: str = "sentence-embedding"):
    from shrink_huggingface.model import load_folder

    return load_folder(folder, task)


def batch(vocab_size: int):
    import torch

    torch.manual_seed(1)
    ids = torch.randint(5, vocab_size, (3, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    return ids, mask


def options(**values):
    from shrink_huggingface.tinybert import DistillTinyBERT

    return DistillTinyBERT.Options(**values)


def test_layer_mapping():
    from shrink_huggingface.tinybert_train import uniform_map

    assert uniform_map(2, 6) == [2, 5]
    assert uniform_map(3, 6) == [1, 3, 5]
    assert uniform_map(4, 4) == [0, 1, 2, 3]
    assert uniform_map(1, 6) == [5]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="2 entries for a 3-layer student"):
        options(student={"layers": 3}, layer_map=[1, 2])
    with pytest.raises(ValidationError, match="exactly one"):
        options(student={"layers": 2}, keep_layers=[0, 1])


def test_keep_layers_student_copies_teacher_layers(tiny_bert):
    import torch

    from shrink_huggingface.tinybert_train import build_student

    teacher = load_encoder(tiny_bert)
    student, mapping, sources, described = build_student(options(keep_layers=[0, 3]), teacher)
    assert mapping == [0, 3] and sources == [0, 3] and described["layers"] == 2
    ids, mask = batch(teacher.config.vocab_size)
    with torch.no_grad():
        t = teacher.hidden(ids, mask, output_hidden_states=True).hidden_states
        s = student.hidden(ids, mask, output_hidden_states=True).hidden_states
    torch.testing.assert_close(s[0], t[0])
    torch.testing.assert_close(s[1], t[1])  # student layer 0 is teacher layer 0
    _, uniform, _, _ = build_student(options(student={"layers": 2}), teacher)
    assert uniform == [1, 3]
    _, explicit, _, _ = build_student(options(student={"layers": 2}, layer_map=[0, 2]), teacher)
    assert explicit == [0, 2]
    from shrink import UsageError

    with pytest.raises(UsageError, match="do not exist"):
        build_student(options(keep_layers=[0, 9]), teacher)


@pytest.mark.parametrize("task", ["sentence-embedding", "classification"])
def test_every_loss_term_is_zero_when_student_is_teacher(tiny_bert, tmp_path, task):
    import torch

    from shrink_huggingface.tinybert_train import TERMS, Losses, build_student

    folder = tiny_bert
    if task == "classification":  # the same body with a (random) classification head
        from transformers import BertForSequenceClassification

        torch.manual_seed(0)
        folder = tmp_path / "cls"
        BertForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=3).save_pretrained(str(folder))
    teacher = load_encoder(folder, task)
    student, mapping, _, _ = build_student(options(keep_layers=[0, 1, 2, 3]), teacher)
    losses = Losses(student, teacher, mapping, dict.fromkeys(TERMS, 1.0), temperature=2.0)
    ids, mask = batch(teacher.config.vocab_size)
    student.eval()
    terms = losses(student, losses.targets(teacher, ids, mask), ids, mask)
    losses.close()
    for name in (*TERMS, "total"):
        assert float(terms[name].detach()) == pytest.approx(0.0, abs=1e-6), name
    # and each term is positive once the student differs
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    losses = Losses(student, teacher, mapping, dict.fromkeys(TERMS, 1.0), temperature=2.0)
    terms = losses(student, losses.targets(teacher, ids, mask), ids, mask)
    losses.close()
    for name in TERMS:
        assert float(terms[name].detach()) > 0, name


def test_attention_scores_are_pre_softmax_and_padding_masked(tiny_bert):
    import torch

    from shrink_huggingface.tinybert_train import ScoreCapture, attention_mse

    teacher = load_encoder(tiny_bert)
    ids, mask = batch(teacher.config.vocab_size)
    capture = ScoreCapture(teacher)
    with torch.no_grad():
        out = teacher.hidden(ids, mask, output_attentions=True)
    scores = capture.scores(0)
    capture.close()
    assert scores.shape == (3, 4, 10, 10)
    extended = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    torch.testing.assert_close(torch.softmax(scores + extended, -1), out.attentions[0], atol=1e-5, rtol=1e-4)
    changed = scores.clone()
    changed[2, :, 5:, :] += 100.0  # padded query rows of sample 2 (3 real tokens)
    changed[1, :, :, 7:] -= 100.0  # padded key columns of sample 1
    assert float(attention_mse(changed, scores, mask)) == 0.0


def test_teacher_targets_read_back_what_the_teacher_gives(tiny_bert, tmp_path):
    """The once-computed store gives each batch the live teacher's targets (float16 on disk), zero-padded
    where the batch is longer than a sentence; the losses from either are the same."""
    import torch

    from shrink_huggingface.teacher_targets import TeacherTargets, prefix_masks
    from shrink_huggingface.tinybert_train import TERMS, Losses, build_student

    teacher = load_encoder(tiny_bert)
    student, mapping, _, _ = build_student(options(student={"layers": 2}), teacher)
    losses = Losses(student, teacher, mapping, dict.fromkeys(TERMS, 1.0), temperature=1.0)
    rng = np.random.default_rng(0)
    lengths = np.array([3, 10, 7, 1, 10, 5])
    ids_all = np.zeros((6, 12), dtype=np.int64)
    mask_all = (np.arange(12)[None, :] < lengths[:, None]).astype(np.int64)
    ids_all[mask_all == 1] = rng.integers(5, teacher.config.vocab_size, int(lengths.sum()))
    assert prefix_masks(mask_all) and not prefix_masks(mask_all[:, ::-1])
    store = TeacherTargets.build(teacher, losses.teacher_scores, ids_all, mask_all, losses.layers, losses.score_layers,
                                 tmp_path / "targets", token_budget=16)
    assert isinstance(store, TeacherTargets)
    assert store.nbytes - store.prediction.nbytes == TeacherTargets.size_estimate(lengths, 3, 32, 4, 2)
    idx = np.array([2, 0, 4])
    ids, mask = torch.from_numpy(ids_all[idx, :10]), torch.from_numpy(mask_all[idx, :10])
    live, stored = losses.targets(teacher, ids, mask), store.batch(idx, 10)
    torch.testing.assert_close(stored.prediction, live.prediction)
    for got, want in zip(stored.hidden, live.hidden):
        real = mask[..., None].bool().expand_as(want)
        torch.testing.assert_close(got[real], want[real], atol=2e-3, rtol=2e-3)
        assert float(got[~real].abs().max()) == 0.0
    pairs = (mask[:, None, :, None] * mask[:, None, None, :]).bool()
    for j in losses.score_layers:
        real = pairs.expand_as(live.scores[j])
        torch.testing.assert_close(stored.scores[j][real], live.scores[j][real], atol=2e-3, rtol=2e-3)
    a, b = losses(student, live, ids, mask), losses(student, stored, ids, mask)
    for name in TERMS:
        assert float(a[name].detach()) == pytest.approx(float(b[name].detach()), rel=1e-3, abs=1e-6), name
    store.close()
    losses.close()
    assert not (tmp_path / "targets").exists()


def test_word_table_trains_by_rows(tiny_bert):
    """The word table gets sparse gradients and SparseAdam: one step moves the rows of the batch's tokens and
    leaves every other row as it was; everything else trains under AdamW."""
    import torch

    from shrink_huggingface.model import word_table
    from shrink_huggingface.tinybert_train import TERMS, Losses, TimedOptimizer, build_student, optimizers

    teacher = load_encoder(tiny_bert)
    student, mapping, _, _ = build_student(options(student={"layers": 2, "embedding_size": 16}), teacher)
    losses = Losses(student, teacher, mapping, dict.fromkeys(TERMS, 1.0), temperature=1.0)
    steppers, name = optimizers(student, losses, lr=1e-2, weight_decay=0.01)
    assert [type(o).__name__ for o in steppers] == ["AdamW", "RowAdam"] and "SparseAdam" in name
    table = word_table(student)
    assert sum(len(group["params"]) for group in steppers[0].param_groups) == len(list(student.parameters())) - 1 + \
        len(list(losses.parameters()))
    before = table.weight.detach().clone()
    ids, mask = batch(teacher.config.vocab_size)
    timed = TimedOptimizer(steppers)
    timed.zero_grad()
    losses(student, losses.targets(teacher, ids, mask), ids, mask)["total"].backward()
    losses.close()
    assert table.weight.grad.is_sparse
    timed.step()
    moved = set(torch.nonzero((table.weight.detach() - before).abs().sum(1)).flatten().tolist())
    seen = set(ids[mask == 1].tolist())
    assert moved and moved <= seen


def test_narrow_student_shapes(tiny_bert):
    import torch

    from shrink_huggingface.tinybert_train import TERMS, Losses, build_student

    teacher = load_encoder(tiny_bert)
    student, mapping, _, described = build_student(options(student={"layers": 2, "hidden_size": 16, "heads": 2, "ffn_size": 24}), teacher)
    assert described["hidden_size"] == 16 and "tensors copied" in described["init"]
    ids, mask = batch(teacher.config.vocab_size)
    with torch.no_grad():
        assert student(ids, mask).shape == (3, 32)  # projected into the teacher's embedding space
    losses = Losses(student, teacher, mapping, dict.fromkeys(TERMS, 1.0), temperature=1.0)
    terms = losses(student, losses.targets(teacher, ids, mask), ids, mask)
    losses.close()
    terms["total"].backward()
    assert isinstance(losses.project_hidden, torch.nn.Linear) and losses.project_hidden.weight.grad is not None
    assert all(torch.isfinite(terms[name]) for name in TERMS)


# the CLI, end to end ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_compile_tiny_bert_end_to_end(cli, tiny_bert, tmp_path):
    recipe = tiny_recipe(tiny_bert, tmp_path)
    out = tmp_path / "bundle"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code == 0, result.err
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "model.onnx", "golden.npz"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    history = {h["name"]: h for h in manifest["history"]}
    assert list(history) == ["source:huggingface", "distill.tinybert", "export.onnx", "quantize.ptq"]
    record = manifest["preprocessing"]  # what embed.py below tokenizes by
    assert record["kind"] == "text" and record["task"] == "sentence-embedding" and record["labels"] is None
    assert record["tokenizer"]["file"] == "tokenizer.json" and record["tokenizer"]["padding"] == "longest"
    assert record["inputs"] == {"input_ids": "input_ids", "attention_mask": "attention_mask"}
    source = history["source:huggingface"]
    assert len(source["details"]["sha256"]) == 64 and source["metrics"]["cosine"] == pytest.approx(1.0)
    distill = history["distill.tinybert"]["details"]
    assert distill["layer_map"] == [1, 3] and set(distill["final_losses"]) >= {"embedding", "hidden", "attention", "prediction"}
    export = history["export.onnx"]["details"]
    assert export["input_shapes"] == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    assert export["parity_max_abs"] <= 1e-4 and export["parity_inputs"].startswith("eval")
    quant = history["quantize.ptq"]["details"]
    assert quant["scheme"] == "dynamic-per-channel" and "MatMulInteger" in quant["quantized_ops"]
    assert quant["parity_inputs"].startswith("eval")
    for step in ("distill.tinybert", "export.onnx", "quantize.ptq"):
        metrics = history[step]["metrics"]
        assert -1 <= metrics["cosine"] <= 1 and "spearman" in metrics and "cosine_requests" in metrics
    assert history["quantize.ptq"]["metrics"]["host_latency_ms"] > 0
    assert manifest["golden"]["inputs"] == ["input_ids", "attention_mask"]
    with np.load(out / "golden.npz") as golden:
        assert golden["input_0"].max() < 200 and golden["input_1"].min() == 1  # ids in the vocabulary, a full mask
    assert cli("verify", out).code == 0

    # recompiling restores the distilled student from the pass cache
    again = cli("compile", recipe, "-o", tmp_path / "again", "--json")
    assert again.code == 0, again.err
    cached = json.loads((tmp_path / "again" / "manifest.json").read_text())["history"]
    assert all(step["cached"] for step in cached)

    # the runner embeds sentences from the bundle alone, without importing torch
    probe = (f"import runpy, sys\nsys.argv = ['embed.py', {str(out)!r}, 'Turn off the lights.', 'Play some music please.']\n"
             f"try:\n    runpy.run_path({str(REPO / 'examples/minilm/embed.py')!r}, run_name='__main__')\n"
             "except SystemExit as exc:\n    assert not exc.code\n"
             "sys.stderr.write('HEAVY=' + ','.join(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    ran = run_subprocess(code=probe)
    assert ran.code == 0, ran.err
    assert "HEAVY=" in ran.err and "HEAVY=torch" not in ran.err and "transformers" not in ran.err.split("HEAVY=")[1]
    lines = [json.loads(line) for line in ran.out.splitlines()]
    assert lines[0]["dim"] == 32 and lines[0]["norm"] == pytest.approx(1.0, abs=1e-4) and "cosine" in lines[2]


def test_sha256_mismatch_is_a_usage_error(cli, tiny_bert, tmp_path):
    recipe = tiny_recipe(tiny_bert, tmp_path, passes=[{"pass": "export.onnx"}], sha256="0" * 64)
    without_data = {k: v for k, v in json.loads(recipe.read_text()).items() if k != "data"}  # fails before data loads
    recipe.write_text(json.dumps(without_data))
    result = cli("compile", recipe, "-o", tmp_path / "out", "--json")
    assert result.code == 2, result.err
    message = result.json["errors"][0]["message"]
    assert "sha256" in message and "0" * 64 in message and "Traceback" not in result.err


def test_source_plan_time_problems(cli, tmp_path):
    recipe = tiny_recipe(tmp_path / "missing", tmp_path, passes=[{"pass": "export.onnx"}])
    result = cli("plan", recipe)
    assert result.code == 2 and "has no config.json" in result.err
    missing_package = json.loads(recipe.read_text())
    missing_package["model"] = {"source": "huggingface", "package": "no-such-model-package"}
    recipe.write_text(json.dumps(missing_package))
    result = cli("plan", recipe)
    assert result.code == 2 and "is not installed" in result.err


def test_minilm_recipe_plans(cli):
    result = cli("plan", REPO / "recipes" / "minilm-tinybert.json", "--json")
    assert result.code == 0, result.err
    plan = result.json["plan"]
    assert plan["source"]["source"] == "huggingface" and plan["data"] == "text"
    assert [p["pass"] for p in plan["passes"]] == ["distill.tinybert", "prune.embeddings", "export.onnx", "quantize.ptq"]


def test_length_batches_cover_every_sentence_once_and_cut_padding():
    import torch

    from shrink_huggingface.tinybert_train import length_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=1000)
    mask = (np.arange(128)[None, :] < lengths[:, None]).astype(np.int64)
    order = rng.permutation(1000)
    batches = length_batches(order, mask, 32, torch.Generator().manual_seed(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in batches) and len(batches) == 32  # ceil(1000 / 32): the schedule's step count
    padded = sum(int(lengths[b].max()) * len(b) for b in batches)
    random_padded = sum(int(lengths[order[i:i + 32]].max()) * len(order[i:i + 32]) for i in range(0, 1000, 32))
    assert padded < 0.7 * random_padded
    again = length_batches(order, mask, 32, torch.Generator().manual_seed(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert [int(lengths[b].max()) for b in batches] != sorted((int(lengths[b].max()) for b in batches), reverse=True)


def test_text_inputs_fit_the_position_table_and_a_longer_max_length_is_refused(cli, tiny_bert, tmp_path):
    """A small config's 64 positions (RoBERTa-style models: 64 - pad - 1) cap the default 128 tokens; before, the
    export ran at 128 and ONNX Runtime failed in the embeddings (exit 3, exit 1 from the golden run)."""
    import shutil

    from shrink_huggingface.folder import read_folder
    from shrink_huggingface.source import HuggingFaceSourceOptions, declared_inputs

    assert declared_inputs(read_folder(tiny_bert, None), HuggingFaceSourceOptions(path="x"), {})[0]["shape"] == [1, 64]
    roberta = shutil.copytree(tiny_bert, tmp_path / "roberta")
    config = json.loads((roberta / "config.json").read_text())
    (roberta / "config.json").write_text(json.dumps({**config, "model_type": "roberta", "pad_token_id": 1}))
    shapes = [i["shape"] for i in declared_inputs(read_folder(roberta, None), HuggingFaceSourceOptions(path="x"), {})]
    assert shapes == [[1, 62], [1, 62]]
    result = cli("plan", tiny_recipe(tiny_bert, tmp_path, passes=[{"pass": "export.onnx"}], max_length=100))
    assert result.code == 2 and "max_length: 100 tokens" in result.err and "at most 64" in result.err
    assert cli("plan", tiny_recipe(tiny_bert, tmp_path, passes=[{"pass": "export.onnx"}], max_length=64)).code == 0


def test_the_text_corpus_key_does_not_depend_on_the_working_folder(tmp_path, monkeypatch):
    """`python -m shrink` in a source checkout also sees its shrink.egg-info through the working folder: a second
    copy of an installed distribution must not change the corpus digest (the data's cache key), or every compile
    started there re-distils."""
    from importlib import metadata

    from shrink_huggingface import corpus

    before = corpus.source_digest()
    info = tmp_path / f"shrink-{metadata.version('shrink')}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: shrink\nVersion: {metadata.version('shrink')}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sum((d.metadata["Name"] or "").lower() == "shrink" for d in metadata.distributions()) >= 2
    assert corpus.source_digest() == before


def test_the_conversations_source_reads_the_dialogue_wheel():
    """`train_sources: "conversations"`: the English turns of chatterbot-corpus (a core dependency), short
    everyday questions and answers, offered by the recipe schema exactly as the corpus names its sources."""
    import typing

    from shrink_huggingface import corpus
    from shrink_huggingface.text import TextDataOptions

    turns = corpus.conversation_sentences()
    assert len(turns) > 1500 and len({t.lower() for t in turns}) == len(turns)
    assert all(len(t.split()) >= corpus.CONVERSATIONS_MIN_WORDS and t == " ".join(t.split()) for t in turns)
    assert turns[0] == "What is AI?" and sum(t.endswith("?") and len(t.split()) <= 8 for t in turns) > 300
    offered = typing.get_args(typing.get_args(TextDataOptions.model_fields["train_sources"].annotation)[0])
    assert offered == corpus.TRAIN_SOURCES


def test_the_conversations_source_without_its_package_is_refused_at_plan_time(cli, tiny_bert, tmp_path, monkeypatch):
    """Without chatterbot-corpus the plan names the option and the install command (exit 2, no traceback);
    a direct call of the reader says the same."""
    import sys

    from shrink import UsageError
    from shrink_huggingface import corpus

    recipe = json.loads(tiny_recipe(tiny_bert, tmp_path, passes=[{"pass": "export.onnx"}]).read_text())
    recipe["data"]["train_sources"] = ["templates", "conversations"]
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    assert cli("plan", tmp_path / "recipe.json").code == 0
    monkeypatch.setitem(sys.modules, "chatterbot_corpus", None)  # as if not installed
    result = cli("plan", tmp_path / "recipe.json")
    assert result.code == 2 and "Traceback" not in result.err
    assert "train_sources: 'conversations' needs the chatterbot-corpus package (pip install chatterbot-corpus)" in result.err
    corpus.conversation_sentences.cache_clear()
    try:
        with pytest.raises(UsageError, match="pip install chatterbot-corpus"):
            corpus.conversation_sentences()
    finally:
        corpus.conversation_sentences.cache_clear()
