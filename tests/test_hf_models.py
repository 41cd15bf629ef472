"""Bring your own Hugging Face model (issue 14, section 5): tiny models built from transformers configs, saved
with `save_pretrained` into folders and compiled through the CLI. Image classifiers (ResNet, MobileNetV2, ViT),
text classifiers (DistilBERT, RoBERTa) and a DistilBERT sentence encoder load through transformers' Auto
classes and run their own forward; missing weights are an error unless allowed, and then reported; the passes
that do not apply to a model are refused at plan time. Each HF bug listed in the issue has a regression test
here (named `test_regression_*`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_hf import WORDS, write_tiny_bert

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

IMAGE = 16  # digits upsampled to 16x16, one channel
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]


# model folders -------------------------------------------------------------------------------------------

def image_config(kind: str, channels: int = 1, labels: int = 10) -> Any:
    from transformers import MobileNetV2Config, ResNetConfig, ViTConfig

    if kind == "resnet":
        return ResNetConfig(num_channels=channels, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                            downsample_in_first_stage=False, num_labels=labels)
    if kind == "mobilenet_v2":
        return MobileNetV2Config(num_channels=channels, image_size=IMAGE, depth_multiplier=0.35, finegrained_output=False,
                                 num_labels=labels)
    return ViTConfig(num_channels=channels, image_size=IMAGE, patch_size=4, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, num_labels=labels)


def write_image_classifier(folder: Path, kind: str, *, epochs: int = 0, channels: int = 1,
                           preprocessor: bool = True) -> Path:
    """A tiny image classifier from its config: convolutions re-initialised (kaiming: transformers' default init
    gives outputs around 1e-22), then trained `epochs` on 16x16 digits (which also sets the BatchNorm statistics),
    saved with `save_pretrained` beside a preprocessor_config.json that gives the image size."""
    import torch.nn.functional as F
    from torch import nn
    from transformers import AutoModelForImageClassification

    from shrink_sklearn.digits import digits_splits

    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(image_config(kind, channels))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if epochs:
        x, y = (torch.from_numpy(np.array(a)) for a in digits_splits(IMAGE)["train"])
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 64):
                idx = order[start:start + 64]
                loss = F.cross_entropy(model(pixel_values=x[idx]).logits, y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    model.eval().save_pretrained(str(folder))
    if preprocessor:
        (folder / "preprocessor_config.json").write_text(json.dumps({
            "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": IMAGE, "width": IMAGE},
            "do_rescale": False, "do_normalize": False}))
    return folder


def write_wordpiece(folder: Path) -> int:
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,?!'-", *LETTERS,
                                *(f"##{c}" for c in LETTERS), *WORDS]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 64}))
    return len(vocab)


def write_bpe_like(folder: Path) -> int:
    """A RoBERTa-style tokenizer.json (`<s> … </s>`, pad id 1), word-level for a tiny vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(dict.fromkeys(["<s>", "<pad>", "</s>", "<unk>", *".,?!'-", *LETTERS, *WORDS]))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer.save(str(folder / "tokenizer.json"))
    return len(vocab)


def write_text_model(folder: Path, kind: str) -> Path:
    """`distilbert` / `roberta` with a 3-way sequence-classification head; `distilbert-base`: no head."""
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertModel,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if kind.startswith("distilbert"):
        config = DistilBertConfig(vocab_size=write_wordpiece(folder), dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                  max_position_embeddings=64, num_labels=3)
        model = DistilBertModel(config) if kind == "distilbert-base" else DistilBertForSequenceClassification(config)
    else:
        config = RobertaConfig(vocab_size=write_bpe_like(folder), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=72, num_labels=3, pad_token_id=1,
                               bos_token_id=0, eos_token_id=2)
        model = RobertaForSequenceClassification(config)
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model folders, each written on first use."""
    root = tmp_path_factory.mktemp("hf-models")
    made: dict[str, Path] = {}

    class Lazy(dict):
        def __missing__(self, name: str) -> Path:
            folder = root / name
            if name == "resnet":  # trained: an accuracy to measure, a compile worth verifying
                made[name] = write_image_classifier(folder, "resnet", epochs=3)
            elif name == "vit":
                made[name] = write_image_classifier(folder, "vit", epochs=2)
            elif name in ("resnet-untrained", "vit-untrained"):  # enough for plans and exports
                made[name] = write_image_classifier(folder, name.split("-")[0])
            elif name == "resnet-no-size":
                made[name] = write_image_classifier(folder, "resnet", preprocessor=False)
            elif name == "mobilenet_v2-rgb":
                made[name] = write_image_classifier(folder, "mobilenet_v2", channels=3)
            elif name == "headless-bert":
                made[name] = write_tiny_bert(folder, layers=2)
            else:
                made[name] = write_text_model(folder, name)
            self[name] = made[name]
            return made[name]

    return Lazy()


def write_recipe(directory: Path, model: dict[str, Any], passes: list[dict[str, Any]], data: dict[str, Any] | None = None,
                 name: str = "hf-model") -> Path:
    recipe = {"schema_version": 1, "name": name, "model": {"source": "huggingface", **model},
              "target": "cortex-a53", "passes": passes}
    if data is not None:
        recipe["data"] = data
    path = directory / f"{name}.json"
    path.write_text(json.dumps(recipe))
    return path


DIGITS = {"source": "sklearn.digits", "image_size": IMAGE}


def text_data(directory: Path) -> dict[str, Any]:
    """Sentences from files (no built-in corpus: fast)."""
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))) + "." for _ in range(80)]
    (directory / "train.txt").write_text("\n".join(lines[:60]) + "\n")
    (directory / "eval.txt").write_text("\n".join(lines[60:]) + "\n")
    return {"source": "text", "corpus": "none", "file": "train.txt", "eval_file": "eval.txt", "calibration_size": 16}


def history(bundle: Path) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in json.loads((bundle / "manifest.json").read_text())["history"]}


# plan time: inputs and refusals ----------------------------------------------------------------------

def test_image_folder_declares_pixel_values_at_plan_time(cli, folders, tmp_path):
    recipe = write_recipe(tmp_path, {"path": str(folders["resnet-untrained"])}, [{"pass": "export.onnx"}], DIGITS)
    result = cli("plan", recipe, "--json")
    assert result.code == 0, result.err
    from shrink.api.context import PlanContext
    from shrink.engine.compile import load_plan
    from shrink.host.registry import Registry

    plan = load_plan(recipe, Registry.load())
    inputs = plan.source.inputs(PlanContext(plan.recipe, plan.target, family=plan.family))
    assert inputs == [{"name": "pixel_values", "shape": [1, 1, IMAGE, IMAGE], "dtype": "float32", "batch_axis": 0}]

    # a folder without a preprocessor or image_size leaves H and W to the recipe or --shape
    bare = write_recipe(tmp_path, {"path": str(folders["resnet-no-size"])}, [{"pass": "export.onnx"}], DIGITS, name="bare")
    result = cli("plan", bare)
    assert result.code == 2 and "input 'pixel_values' has dimensions nothing pins: [1, 1, ?, ?]" in result.err
    assert cli("plan", bare, "--shape", f"pixel_values=1x1x{IMAGE}x{IMAGE}").code == 0


def test_plan_refuses_what_does_not_apply_naming_what_would(cli, folders, tmp_path):
    cnn = {"path": str(folders["resnet-untrained"])}
    refusals = [
        (cnn, {"pass": "distill.tinybert", "student": {"layers": 1}}, "use distill.kd"),
        (cnn, {"pass": "distill.mobilebert"}, "takes images"),
        (cnn, {"pass": "prune.embeddings"}, "takes images"),
        (cnn, {"pass": "prune.structured", "heads_ratio": 0.5}, "is pruned by channels: use 'ratio'"),
        ({"path": str(folders["vit-untrained"])}, {"pass": "prune.structured", "ratio": 0.3}, "has attention layers"),
        ({"path": str(folders["vit-untrained"])}, {"pass": "distill.kd", "width": 0.5}, "give a 'student' factory"),
        ({**cnn, "task": "sentence-embedding"}, None, "use 'image-classification'"),
        ({**cnn, "max_length": 64}, None, "max_length apply to text models"),
        ({"path": str(folders["distilbert"])}, {"pass": "distill.tinybert", "student": {"layers": 1}}, "BERT's layers"),
        ({"path": str(folders["distilbert"])}, {"pass": "prune.structured", "heads_ratio": 0.5}, "BERT's layers"),
        ({"path": str(folders["distilbert"])}, {"pass": "distill.kd", "width": 0.5}, "use distill.tinybert"),
        ({"path": str(folders["roberta"])}, {"pass": "prune.embeddings"}, "WordPiece"),
        ({"path": str(folders["distilbert"]), "task": "image-classification"}, None, "is a text model"),
    ]
    for i, (model, step, expected) in enumerate(refusals):
        recipe = write_recipe(tmp_path, model, [*([step] if step else []), {"pass": "export.onnx"}], DIGITS, name=f"r{i}")
        result = cli("plan", recipe)
        assert result.code == 2 and expected in result.err, (model, step, result.err)
    # what they name works
    works = write_recipe(tmp_path, cnn, [{"pass": "prune.structured", "ratio": 0.3}, {"pass": "distill.kd", "width": 0.5},
                                         {"pass": "export.onnx"}], DIGITS, name="works")
    assert cli("plan", works).code == 0


# image classifiers --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_regression_vision_folder_compiles_and_verifies(cli, folders, tmp_path):
    """Vision folders were refused ('not a BERT-family encoder'); a CNN now compiles to static int8 and verifies."""
    recipe = write_recipe(tmp_path, {"path": str(folders["resnet"])}, [{"pass": "export.onnx"}, {"pass": "quantize.ptq"}],
                          DIGITS, name="resnet")
    out = tmp_path / "bundle"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code == 0, result.err
    steps = history(out)
    source = steps["source:huggingface"]
    assert source["details"]["architecture"] == "ResNetForImageClassification" and source["details"]["image_size"] == [IMAGE, IMAGE]
    assert source["metrics"]["accuracy"] > 0.5  # top-1 on the labelled eval split, by the model's own forward
    export = steps["export.onnx"]
    assert export["details"]["parity_max_abs"] <= 1e-4 and export["details"]["parity_inputs"].startswith("eval")
    assert export["metrics"]["accuracy"] == source["metrics"]["accuracy"]
    quant = steps["quantize.ptq"]["details"]
    assert quant["scheme"].startswith("static") and quant["parity_inputs"].startswith("eval")
    assert quant["parity_top1_agreement"] >= 0.95
    import onnx

    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["pixel_values"] and [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert cli("verify", out).code == 0


@pytest.mark.slow
def test_vit_compiles_and_verifies(cli, folders, tmp_path):
    recipe = write_recipe(tmp_path, {"path": str(folders["vit"])}, [{"pass": "export.onnx"}, {"pass": "quantize.ptq"}],
                          DIGITS, name="vit")
    out = tmp_path / "bundle"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code == 0, result.err
    steps = history(out)
    assert steps["source:huggingface"]["details"]["architecture"] == "ViTForImageClassification"
    assert steps["source:huggingface"]["metrics"]["accuracy"] > 0.5
    assert steps["export.onnx"]["details"]["parity_max_abs"] <= 1e-4
    assert steps["quantize.ptq"]["details"]["parity_top1_agreement"] >= 0.95
    assert (out / "preprocessor_config.json").is_file()  # travels with the model, like a tokenizer
    assert cli("verify", out).code == 0


def test_rgb_image_classifier_exports_with_its_three_channels(folders, tmp_path, make_pass_input):
    """pixel_values [1, 3, H, W] from the config and preprocessor, fed by array data of that shape (an in-test
    provider) and exported with a dynamic batch axis."""
    from shrink import DataProvider, Dataset, PassOptions, Split, hookimpl
    from shrink.testing import check_pass_contract
    from shrink_torch.export import ExportOnnx

    class RGB(DataProvider[PassOptions]):
        """Random RGB images with labels."""

        name = "test.rgb"

        def load(self, ctx: Any) -> Dataset:
            rng = np.random.default_rng(0)
            x = rng.uniform(0, 1, (48, 3, IMAGE, IMAGE)).astype(np.float32)
            y = rng.integers(0, 10, 48)
            return Dataset("test.rgb", "classification", {"train": Split(x, y), "eval": Split(x[:16], y[:16])}, "rgb-0")

    class Plugin:
        @hookimpl
        def shrink_register_datasets(self) -> list[type[DataProvider]]:
            return [RGB]

    recipe = write_recipe(tmp_path, {"path": str(folders["mobilenet_v2-rgb"])}, [{"pass": "export.onnx"}],
                          {"source": "test.rgb"}, name="rgb")
    given = make_pass_input(recipe, before=0, plugins=[("test-rgb", Plugin())])
    assert given.artifact.inputs[0]["shape"] == [1, 3, IMAGE, IMAGE]
    assert given.ctx.family(given.artifact).feeds(given.artifact, given.ctx, ("eval",), 4)[1] == "eval[:4]"
    result = check_pass_contract(ExportOnnx, given.artifact, given.ctx, options={})
    assert result.details["parity_inputs"] == "eval[:16]" and result.details["parity_max_abs"] <= 1e-4
    assert result.meta["outputs"] == [{"name": "logits"}]


@pytest.mark.slow
def test_cnn_prunes_by_channels_and_restores_from_the_pass_cache(cli, folders, tmp_path):
    recipe = write_recipe(tmp_path, {"path": str(folders["resnet"])},
                          [{"pass": "prune.structured", "ratio": 0.3, "finetune_epochs": 2},
                           {"pass": "export.onnx"}, {"pass": "quantize.ptq"}], DIGITS, name="pruned")
    out = tmp_path / "bundle"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code == 0, result.err
    pruned = history(out)["prune.structured"]
    details = pruned["details"]
    assert details["params_after"] < details["params_before"] and details["macs_after"] < details["macs_before"]
    assert "model.resnet.embedder.embedder.convolution: 16→" in details["channels"]
    assert details["rebuild"] == "ok" and details["finetune_kd"]
    assert pruned["metrics"]["accuracy"] == details["accuracy"] > 0.3
    assert cli("verify", out).code == 0

    # a changed export restores the pruned model from the cache (config + widths, no save_pretrained) and
    # gives the same accuracy
    raw = json.loads(recipe.read_text())
    raw["passes"][1]["parity_samples"] = 32
    recipe.write_text(json.dumps(raw))
    again = cli("compile", recipe, "-o", tmp_path / "again", "--json")
    assert again.code == 0, again.err
    steps = history(tmp_path / "again")
    assert steps["prune.structured"]["cached"] and not steps["export.onnx"]["cached"]
    assert steps["export.onnx"]["metrics"]["accuracy"] == pruned["metrics"]["accuracy"]


@pytest.mark.slow
def test_image_classifier_teaches_distill_kd(cli, folders, tmp_path):
    """Logit KD from an HF image classifier: a `width` student stays a Hugging Face model (cached by its widths);
    a factory's student is a torch-family model from then on (pruned and cached through its factory)."""
    (tmp_path / "student.py").write_text(
        "from torch import nn\n\n\ndef student():\n"
        "    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),\n"
        "                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))\n")
    width = write_recipe(tmp_path, {"path": str(folders["resnet"])},
                         [{"pass": "distill.kd", "width": 0.75, "epochs": 2}, {"pass": "export.onnx"}], DIGITS, name="width")
    factory = write_recipe(tmp_path, {"path": str(folders["resnet"])},
                           [{"pass": "distill.kd", "student": {"factory": "student.py:student"}, "epochs": 3},
                            {"pass": "prune.structured", "ratio": 0.25, "finetune_epochs": 1}, {"pass": "export.onnx"}],
                           DIGITS, name="factory")
    for recipe in (width, factory):
        out = tmp_path / recipe.stem
        result = cli("compile", recipe, "-o", out, "--json")
        assert result.code == 0, result.err
        steps = history(out)
        kd = steps["distill.kd"]["details"]
        assert kd["student_params"] < kd["teacher_params"] and kd["teacher_accuracy"] > 0.5
        assert steps["distill.kd"]["metrics"]["accuracy"] == kd["accuracy"]
    assert history(tmp_path / "factory")["prune.structured"]["details"]["rebuild"] == "ok"  # through the factory
    for recipe in (width, factory):  # both students restore from the pass cache
        result = cli("compile", recipe, "-o", tmp_path / f"{recipe.stem}-again", "--json")
        assert result.code == 0 and all(s["cached"] for s in history(tmp_path / f"{recipe.stem}-again").values())


# text models --------------------------------------------------------------------------------------------

TEXT_MODELS = [("distilbert", "sequence-classification"), ("roberta", "classification"),
               ("distilbert-base", "sentence-embedding")]


@pytest.mark.parametrize(("name", "task"), TEXT_MODELS)
def test_regression_text_models_run_their_own_forward(cli, folders, tmp_path, name, task):
    """DistilBERT classification failed ('DistilBertModel' object has no attribute 'encoder'), DistilBERT embedding
    failed (unexpected keyword argument 'add_pooling_layer'), RoBERTa classification failed in export (BERT's
    head hard-coded): each now exports, parity-gated, and the exported model is transformers' own forward."""
    import onnxruntime as ort
    from transformers import AutoModel, AutoModelForSequenceClassification

    from shrink_huggingface.tokens import encode, load_tokenizer

    recipe = write_recipe(tmp_path, {"path": str(folders[name]), "task": task, "max_length": 32}, [{"pass": "export.onnx"}],
                          text_data(tmp_path), name=name)
    out = tmp_path / "bundle"
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code == 0, result.err
    steps = history(out)
    assert steps["export.onnx"]["details"]["parity_max_abs"] <= 1e-4
    assert steps["export.onnx"]["details"]["parity_inputs"].startswith("eval")
    ids, mask = encode(load_tokenizer(out / "tokenizer.json", 32), ["turn off the lights please.", "play some music."])
    got = ort.InferenceSession(str(out / "model.onnx")).run(None, {"input_ids": ids, "attention_mask": mask})[0]
    feeds = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    with torch.no_grad():
        if task == "sentence-embedding":
            assert steps["source:huggingface"]["details"]["architecture"] == "DistilBertModel"
            hidden = AutoModel.from_pretrained(str(folders[name]))(**feeds).last_hidden_state
            weights = feeds["attention_mask"][..., None].float()
            expected = torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1).numpy()
        else:
            expected = AutoModelForSequenceClassification.from_pretrained(str(folders[name])).eval()(**feeds).logits.numpy()
            assert got.shape == (2, 3)
    assert np.abs(got - expected).max() < 1e-4


@pytest.mark.slow
def test_text_models_quantize_and_verify(cli, folders, tmp_path):
    for name, task in TEXT_MODELS:
        recipe = write_recipe(tmp_path, {"path": str(folders[name]), "task": task, "max_length": 32},
                              [{"pass": "export.onnx"}, {"pass": "quantize.ptq"}], text_data(tmp_path), name=name)
        out = tmp_path / name
        result = cli("compile", recipe, "-o", out, "--json")
        assert result.code == 0, result.err
        quant = history(out)["quantize.ptq"]
        assert quant["details"]["scheme"] == "dynamic-per-channel" and quant["details"]["parity_inputs"].startswith("eval")
        if task == "sentence-embedding":
            assert quant["metrics"]["cosine"] > 0.9
        assert cli("verify", out).code == 0


def test_regression_headless_model_as_classifier_is_an_error(cli, folders, tmp_path):
    """A headless BertModel folder compiled with task 'classification' PASSed with a randomly initialised head
    (transformers' 'newly initialized' warning silenced). Now exit 2 naming the tensors; allowed, it compiles and
    the report says which tensors are random."""
    model = {"path": str(folders["headless-bert"]), "task": "classification", "max_length": 32}
    recipe = write_recipe(tmp_path, model, [{"pass": "export.onnx"}], text_data(tmp_path), name="headless")
    result = cli("compile", recipe, "-o", tmp_path / "refused", "--json")
    assert result.code == 2, result.err
    message = result.json["errors"][0]["message"]
    assert "classifier.weight" in message and "classifier.bias" in message and "start random" in message
    assert "allow_random_weights" in result.json["errors"][0]["hint"] and not (tmp_path / "refused").exists()

    allowed = write_recipe(tmp_path, {**model, "allow_random_weights": True}, [{"pass": "export.onnx"}], text_data(tmp_path),
                           name="allowed")
    out = tmp_path / "bundle"
    result = cli("compile", allowed, "-o", out, "--json")
    assert result.code == 0, result.err
    details = history(out)["source:huggingface"]["details"]
    random = "bert.pooler.dense.bias, bert.pooler.dense.weight, classifier.bias, classifier.weight"  # saved without pooler
    assert details["random_weights"] == random and details["allow_random_weights"] is True
    assert f"random_weights = {random}" in (out / "report.md").read_text()

    # the same folder as a sentence encoder has every tensor it uses: no error, nothing random
    encoder = write_recipe(tmp_path, {**model, "task": "feature-extraction"}, [{"pass": "export.onnx"}], text_data(tmp_path),
                           name="encoder")
    result = cli("compile", encoder, "-o", tmp_path / "encoder", "--json")
    assert result.code == 0, result.err
    assert "random_weights" not in history(tmp_path / "encoder")["source:huggingface"]["details"]


def test_text_classifier_accuracy_on_labelled_text(folders, tmp_path, make_pass_input):
    """Classifiers of text are measured by top-1 on labelled eval sentences, tokenized as the family feeds them."""
    from shrink import DataProvider, Dataset, PassOptions, Split, hookimpl

    sentences = ["turn off the lights.", "play some music please.", "what time is it?", "call my mother.",
                 "set the music on.", "turn on the lights.", "return the list.", "what is the time?"]

    class Labelled(DataProvider[PassOptions]):
        """Sentences with labels."""

        name = "test.labelled-text"

        def load(self, ctx: Any) -> Dataset:
            labels = np.arange(len(sentences)) % 3
            return Dataset(self.name, "classification", {"train": Split(tuple(sentences), labels),
                                                          "eval": Split(tuple(sentences), labels)}, "labelled-0")

    class Plugin:
        @hookimpl
        def shrink_register_datasets(self) -> list[type[DataProvider]]:
            return [Labelled]

    recipe = write_recipe(tmp_path, {"path": str(folders["distilbert"]), "max_length": 32, "task": "classification"},
                          [{"pass": "export.onnx"}], {"source": "test.labelled-text"}, name="labelled")
    given = make_pass_input(recipe, before=0, plugins=[("test-labelled", Plugin())])
    metrics = given.artifact.metrics
    from shrink_huggingface.tokens import artifact_tokenizer, encode

    ids, mask = encode(artifact_tokenizer(given.artifact), sentences, 32)
    with torch.no_grad():
        logits = given.artifact.model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert metrics["accuracy"] == pytest.approx(float((logits.argmax(1) == np.arange(len(sentences)) % 3).mean()))


def test_image_size_comes_from_the_preprocessor_crop_resize_or_config():
    from shrink_huggingface.folder import trained_image_size

    crop = {"do_center_crop": True, "crop_size": {"height": 224, "width": 224}, "size": {"shortest_edge": 256}}
    assert trained_image_size({"image_size": 32}, crop) == (224, 224)
    assert trained_image_size({}, {**crop, "do_center_crop": False}) == (256, 256)
    assert trained_image_size({}, {"size": {"height": 96, "width": 128}}) == (96, 128)
    assert trained_image_size({"image_size": 32}, None) == (32, 32)
    assert trained_image_size({"image_size": [24, 40]}, {}) == (24, 40)
    assert trained_image_size({}, None) == (None, None)
