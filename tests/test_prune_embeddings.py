"""`prune.embeddings` on a tiny random BERT whose WordPiece vocab holds tokens no text can reach: the
rules, the renumbered tokenizer files in the bundle, unchanged outputs, the position table and the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_hf import WORDS, tiny_recipe

UNREACHABLE = {"[unused0]": "split by the pre-tokenizer", "[unused1]": "split by the pre-tokenizer",
               "##!": "continuation of an isolated character", "##中": "continuation of an isolated character",
               "Éa": "normalized away", "The": "normalized away", "a.b": "split by the pre-tokenizer",
               "##x,": "split by the pre-tokenizer"}


def write_bert_with_dead_tokens(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = list(dict.fromkeys(["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,?!'-", "中",
                                *letters, *(f"##{c}" for c in letters), *WORDS, *(t for t in UNREACHABLE if not t.startswith("[")),
                                "##ing", "world"]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 64}))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab) + 3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)  # 3 rows past the vocabulary, as some models pad
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def dead_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bert_with_dead_tokens(tmp_path_factory.mktemp("hf") / "dead-bert")


def _tokenizer(folder: Path):
    from tokenizers import Tokenizer

    from shrink_huggingface.tokens import tokenizer_from_vocab

    return Tokenizer.from_file(str(tokenizer_from_vocab(folder / "vocab.txt", True, folder.parent / "tok.json")))


def test_rules_find_exactly_the_unreachable_tokens(dead_bert):
    from shrink_huggingface.embeddings import emitted, probes, unreachable

    tokenizer = _tokenizer(dead_bert)
    found = {tokenizer.id_to_token(i): reason for i, reason in unreachable(tokenizer).items()}
    assert found == UNREACHABLE
    # no probe built from any token, nor ordinary text, ever produces one of them
    texts = probes(tokenizer) + ["The [unused0] Éa a.b x,y 中中 hello!!", "THE WORLD, ÉA!"]
    assert not emitted(tokenizer, texts, set(unreachable(tokenizer)))
    assert "中" not in found  # a CJK character is its own pre-token: reachable alone, never as a ## piece


@pytest.mark.slow
def test_compile_prunes_rows_keeps_outputs_and_renumbers_the_tokenizer(cli, dead_bert, tmp_path):
    passes = [{"pass": "prune.embeddings", "positions": True}, {"pass": "export.onnx"}]
    recipe = tiny_recipe(dead_bert, tmp_path, passes)
    out = tmp_path / "out"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code == 0, result.err
    manifest = json.loads((out / "manifest.json").read_text())
    step = next(s for s in manifest["history"] if s["name"] == "prune.embeddings")
    details = step["details"]
    vocab = (dead_bert / "vocab.txt").read_text().split("\n")[:-1]
    assert details["tokens"]["removed"] == len(UNREACHABLE) + 3 and details["tokens"]["vocab_before"] == len(vocab) + 3
    assert details["positions"] == {"before": 64, "after": 32, "max_length": 32}
    assert details["max_abs_diff"] == 0.0 and details["checked_sentences"] > 0
    assert details["params_removed"] == (len(UNREACHABLE) + 3 + 32) * 32
    assert step["metrics"]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert manifest["metrics"]["cosine"] == pytest.approx(1.0, abs=1e-5)
    # the bundle's tokenizer files agree with the model: same tokens as before, renumbered
    bundled = (out / "vocab.txt").read_text().split("\n")[:-1]
    assert bundled == [t for t in vocab if t not in UNREACHABLE]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    old = _tokenizer(dead_bert)
    text = "The world is playing music, please!"
    assert tokenizer.encode(text).tokens == old.encode(text).tokens
    assert tokenizer.encode(text).ids == [bundled.index(t) for t in old.encode(text).tokens]
    import onnx

    graph = onnx.load(str(out / "model.onnx")).graph
    shapes = sorted(tuple(d.dims) for d in graph.initializer if len(d.dims) == 2 and d.dims[1] == 32)
    assert (len(bundled), 32) in shapes and (32, 32) in shapes  # word table and position table, sliced
    assert cli("verify", out).code == 0
    # restored from the pass cache with the smaller tables
    again = cli("compile", recipe, "-o", tmp_path / "again", "--json")
    assert again.code == 0, again.err
    cached = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert all(s.get("cached") for s in cached["history"])
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()


@pytest.mark.slow
def test_runner_embeds_from_a_pruned_bundle(cli, dead_bert, tmp_path):
    from tests.conftest import REPO, run_subprocess

    recipe = tiny_recipe(dead_bert, tmp_path, [{"pass": "prune.embeddings"}, {"pass": "export.onnx"}])
    out = tmp_path / "out"
    assert cli("compile", recipe, "-o", out).code == 0
    result = run_subprocess(code=f"import runpy, sys; sys.argv = ['embed.py', {str(out)!r}, 'The world, please.']; "
                                 f"runpy.run_path({str(REPO / 'examples/minilm/embed.py')!r}, run_name='__main__')")
    assert result.code == 0, result.err
    assert json.loads(result.out.splitlines()[0])["dim"] == 32


def test_options_and_misuse(cli, dead_bert, tmp_path):
    recipe = tiny_recipe(dead_bert, tmp_path, [{"pass": "prune.embeddings", "tokens": False, "positions": False}])
    result = cli("plan", recipe)
    assert result.code == 2 and "nothing to do" in result.err
    digits = json.loads((Path(__file__).parents[1] / "recipes" / "digits-cnn.json").read_text())
    digits["passes"] = [{"pass": "prune.embeddings"}, {"pass": "export.onnx"}]
    for key in ("factory", "weights"):
        digits["model"][key] = str((Path(__file__).parents[1] / "recipes" / digits["model"][key]).resolve())
    path = tmp_path / "digits.json"
    path.write_text(json.dumps(digits))
    result = cli("plan", path)  # refused at plan time, before anything runs
    assert result.code == 2 and "needs a Hugging Face text encoder" in result.err


def test_unchanged_when_nothing_is_unreachable(tmp_path):
    from shrink_huggingface.embeddings import unreachable
    from tests.test_hf import write_tiny_bert

    folder = write_tiny_bert(tmp_path / "clean", layers=1)
    assert unreachable(_tokenizer(folder)) == {}


def test_other_pre_tokenizers_are_refused(dead_bert):
    from tokenizers.pre_tokenizers import Whitespace

    from shrink import UsageError
    from shrink_huggingface.embeddings import unreachable

    tokenizer = _tokenizer(dead_bert)
    tokenizer.pre_tokenizer = Whitespace()  # groups "!!" into one pre-token: "##!" becomes reachable
    assert "##!" in tokenizer.encode("a!!").tokens
    with pytest.raises(UsageError, match="BertPreTokenizer"):
        unreachable(tokenizer)


@pytest.mark.slow
def test_factorized_student_word_table(cli, dead_bert, tmp_path):
    """distill.tinybert with `embedding_size`: an SVD-initialised factorized word table that prune.embeddings
    slices, that exports, quantizes and restores from the pass cache."""
    passes = [{"pass": "distill.tinybert", "student": {"layers": 1, "embedding_size": 16}, "epochs": 1, "batch_size": 16},
              {"pass": "prune.embeddings"}, {"pass": "export.onnx"}, {"pass": "quantize.ptq"}]
    recipe = tiny_recipe(dead_bert, tmp_path, passes)
    out = tmp_path / "out"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code in (0, 4), result.err
    manifest = json.loads((out / "manifest.json").read_text())
    distilled = next(s for s in manifest["history"] if s["name"] == "distill.tinybert")
    assert distilled["details"]["student"]["embedding_size"] == 16
    assert "SVD" in distilled["details"]["student"]["word_table"]
    rows = len((dead_bert / "vocab.txt").read_text().split("\n")) - 1 + 3
    pruned = next(s for s in manifest["history"] if s["name"] == "prune.embeddings")
    kept = pruned["details"]["tokens"]["vocab_after"]
    assert kept == rows - len(UNREACHABLE) - 3
    import onnx
    from onnx import numpy_helper

    shapes = [numpy_helper.to_array(t).shape for t in onnx.load(str(out / "model.onnx")).graph.initializer]
    assert (kept, 16) in shapes and (rows, 32) not in shapes and (kept, 32) not in shapes
    assert cli("verify", out).code in (0, 4)
    again = cli("compile", recipe, "-o", tmp_path / "again", "--json")
    assert again.code == result.code
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()


def test_embedding_size_must_factorize():
    from pydantic import ValidationError

    from shrink_huggingface.tinybert import StudentShape

    with pytest.raises(ValidationError, match="below hidden_size"):
        StudentShape(layers=2, hidden_size=64, embedding_size=64)
