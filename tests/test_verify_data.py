"""Preprocessing records in the bundle and `shrink verify BUNDLE --data PATH` (issue 20): a trained tiny CNN on
digits compiled into a bundle, its eval split exported as an .npz (identical count) and as PNG files in label
folders (within 1%), scored by the bundle's own record under ONNX Runtime; data it was not trained for fails a
budget (exit 4); bad data is one line naming the file (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shrink.api.preprocessing import label_indices, record_problems
from shrink.cli.main import main
from shrink.errors import UsageError
from shrink.testing import TINY_FACTORY, run_subprocess

EVAL = 360  # sklearn.digits' eval split


def train_tiny(folder: Path, size: int = 8) -> Path:
    """The test factory's tiny CNN trained on sklearn's digits at `size`x`size` (a few seconds, one thread)."""
    import torch
    import torch.nn.functional as F

    from shrink_sklearn.digits import digits_splits

    namespace: dict[str, Any] = {}
    exec(TINY_FACTORY, namespace)  # noqa: S102 - the test factory's source, as tiny.py holds it
    (folder / "tiny.py").write_text(TINY_FACTORY)
    torch.set_num_threads(1)
    model = namespace["tiny"]()
    x, y = (torch.from_numpy(np.array(a)) for a in digits_splits(size)["train"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(6):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.save(model.eval().state_dict(), folder / "tiny.pt")
    return folder / "tiny.pt"


def recipe(folder: Path, data: dict[str, Any], name: str = "tiny-digits", **extra: Any) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({
        "schema_version": 1, "name": name,
        "model": {"source": "torch", "factory": "tiny.py:tiny", "weights": "tiny.pt", "input_shape": [1, 1, 8, 8]},
        "data": data, "target": "cortex-a53", "passes": [{"pass": "export.onnx"}], **extra}))
    return path


def compile_bundle(path: Path, out: Path) -> dict[str, Any]:
    assert main(["compile", str(path), "-o", str(out), "--no-cache"]) == 0
    return json.loads((out / "manifest.json").read_text())


def digit_pngs(root: Path, indices: np.ndarray, transform: Any = None) -> Path:
    """sklearn's 8x8 digits at `indices` as 8-bit PNG files in label folders (0-16 levels scaled to 0-255)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for i in indices:
        pixels = np.round(bunch.images[i] * 255 / 16).astype(np.uint8)
        path = root / str(bunch.target[i]) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(transform(pixels) if transform else pixels).save(path)
    return root


def eval_indices(seed: int = 0) -> np.ndarray:
    """The indices of sklearn.digits' eval split in `load_digits()` (the split `digits_splits` cuts)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    target = load_digits().target
    return train_test_split(np.arange(len(target)), test_size=EVAL, random_state=seed, stratify=target)[1]


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("digits-bundle")
    train_tiny(folder)
    manifest = compile_bundle(recipe(folder, {"source": "sklearn.digits", "image_size": 8}), folder / "bundle")
    return folder / "bundle", manifest


@pytest.fixture(scope="module")
def eval_pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digit_pngs(tmp_path_factory.mktemp("eval-pngs") / "digits", eval_indices())


def verify(cli: Any, bundle: Path, data: Path, *args: str) -> Any:
    return cli("verify", bundle, "--data", data, "--json", *args)


# the record --------------------------------------------------------------------------------------------

def test_digits_record_is_an_image_pipeline_with_label_names(digits_bundle, cli):
    _, manifest = digits_bundle
    record = manifest["preprocessing"]
    assert not record_problems(record, "manifest")
    assert record["kind"] == "image" and record["source"] == "sklearn.digits" and record["version"] == 1
    assert record["labels"] == [str(i) for i in range(10)] and record["task"] == "classification"
    assert record["decode"] == {"color": "gray"} and record["rescale_factor"] == pytest.approx(1 / 255)
    assert record["resize"]["method"] == "align-corners" and record["resize"]["interpolation"] == "bilinear"
    assert record["input"] == manifest["model"]["inputs"][0]["name"] and record["shape"] == [1, 8, 8]
    schema = cli("schema", "preprocessing").json
    assert schema["title"] == "shrink preprocessing record" and "image" in schema["$defs"]


def test_a_broken_record_is_named_by_the_schema():
    problems = record_problems({"version": 1, "kind": "image", "source": "x", "task": None, "labels": None,
                                "input": "x", "layout": "CWH"}, "manifest.json")
    assert any("layout" in p.where for p in problems) and any("decode" in p.message for p in problems)


def test_labels_map_by_name_never_by_position():
    labels = ["cat", "dog", "bird"]
    assert label_indices(["bird", "cat", 1], labels, "x").tolist() == [2, 0, 1]
    with pytest.raises(UsageError, match="'fish' is not one of the bundle's labels"):
        label_indices(["fish"], labels, "x")


# the scores ---------------------------------------------------------------------------------------------

def test_npz_of_the_eval_split_gives_the_compiles_count(digits_bundle, cli, tmp_path):
    from shrink_sklearn.digits import digits_splits

    bundle, manifest = digits_bundle
    x, y = digits_splits(8, 0)["eval"]
    np.savez(tmp_path / "eval.npz", input=x, labels=y)
    result = verify(cli, bundle, tmp_path / "eval.npz", "--budget", "accuracy=0.5")
    assert result.code == 0, result.err
    data = result.json["data"]
    reported = manifest["metrics"]["accuracy"]
    assert 0.5 < reported < 1.0  # a trained model that gets some wrong: the count is not trivially all
    assert data["samples"] == EVAL and data["correct"] == round(reported * EVAL)
    check = next(c for c in result.json["checks"] if c["name"] == "data_accuracy")
    assert check["ok"] and check["limit"] == 0.5 and check["value"] == data["accuracy"]
    assert f"{data['correct']} of {EVAL} samples correct" in check["cause"]


def test_png_files_in_label_folders_score_within_one_point(digits_bundle, eval_pngs, cli, tmp_path):
    bundle, manifest = digits_bundle
    result = verify(cli, bundle, eval_pngs, "--junit", tmp_path / "junit.xml")
    assert result.code == 0, result.err
    data = result.json["data"]
    assert data["samples"] == EVAL and abs(data["accuracy"] - manifest["metrics"]["accuracy"]) <= 0.01
    assert "360 images in 10 class folders" in data["origin"]
    assert 'name="data_accuracy"' in (tmp_path / "junit.xml").read_text()


def test_data_the_model_was_not_trained_for_fails_the_budget(digits_bundle, cli, tmp_path):
    bundle, manifest = digits_bundle
    inverted = digit_pngs(tmp_path / "inverted", eval_indices()[:120], lambda p: 255 - p)  # dark ink on white
    result = verify(cli, bundle, inverted, "--budget", "accuracy=0.8")
    assert result.code == 4, result.err
    check = next(c for c in result.json["checks"] if c["name"] == "data_accuracy")
    assert not check["ok"] and check["value"] < manifest["metrics"]["accuracy"] - 0.3
    assert "below the 80.00% budget" in check["cause"]
    text = cli("verify", bundle, "--data", inverted, "--budget", "accuracy=0.8")
    assert text.code == 4 and "FAIL data_accuracy" in text.out


def test_a_subset_of_the_labels_is_scored_by_name(digits_bundle, cli, tmp_path):
    bundle, _ = digits_bundle
    ones = tmp_path / "ones"
    shutil.copytree(digit_pngs(tmp_path / "all", eval_indices()[:60]) / "1", ones / "1")
    result = verify(cli, bundle, ones)
    assert result.code == 0 and result.json["data"]["samples"] == len(list((ones / "1").iterdir()))


# bad data: one line naming the place, exit 2 ------------------------------------------------------------

def test_a_label_the_bundle_does_not_know_names_the_folder(digits_bundle, eval_pngs, cli, tmp_path):
    bundle, _ = digits_bundle
    shutil.copytree(eval_pngs, tmp_path / "data")
    (tmp_path / "data" / "7").rename(tmp_path / "data" / "seven")
    result = verify(cli, bundle, tmp_path / "data")
    assert result.code == 2
    message = result.json["errors"][0]["message"]
    assert "seven" in message and "is not one of the bundle's labels" in message and len(result.json["errors"]) == 1


def test_an_unreadable_file_is_named(digits_bundle, cli, tmp_path):
    bundle, _ = digits_bundle
    digit_pngs(tmp_path / "data", eval_indices()[:20])
    broken = next((tmp_path / "data").rglob("*.png"))
    broken.write_bytes(b"not a png")
    result = verify(cli, bundle, tmp_path / "data")
    assert result.code == 2 and str(broken) in result.json["errors"][0]["message"]


@pytest.mark.parametrize("case", ["flat", "npz-no-labels", "npz-unknown-name", "npz-wrong-shape", "missing"])
def test_other_bad_data_is_exit_2(digits_bundle, cli, tmp_path, case):
    bundle, _ = digits_bundle
    x = np.zeros((4, 1, 8, 8), np.float32)
    if case == "flat":
        digit_pngs(tmp_path / "nested", eval_indices()[:3])
        data = tmp_path / "flat"
        data.mkdir()
        for i, png in enumerate((tmp_path / "nested").rglob("*.png")):
            shutil.copy(png, data / f"{i}.png")
        expected = "has no class subfolders"
    elif case == "npz-no-labels":
        np.savez(data := tmp_path / "x.npz", input=x)
        expected = "no label field 'labels'"
    elif case == "npz-unknown-name":
        np.savez(data := tmp_path / "x.npz", input=x, labels=np.array(["1", "2", "3", "ten"]))
        expected = "'ten' is not one of the bundle's labels"
    elif case == "npz-wrong-shape":
        np.savez(data := tmp_path / "x.npz", input=np.zeros((4, 1, 16, 16), np.float32), labels=np.arange(4))
        expected = "gives samples [1, 16, 16] for model input 'input', which takes [1, 8, 8]"
    else:
        data, expected = tmp_path / "nothing", "no such file or folder"
    result = verify(cli, bundle, data)
    assert result.code == 2, result.out
    assert expected in result.json["errors"][0]["message"]


def test_accuracy_drop_with_data_is_exit_2_with_a_hint(digits_bundle, eval_pngs, cli):
    bundle, _ = digits_bundle
    result = verify(cli, bundle, eval_pngs, "--budget", "accuracy_drop=0.01")
    assert result.code == 2
    error = result.json["errors"][0]
    assert error["where"] == "--budget" and "accuracy_drop" in error["message"] and "accuracy=0.9" in error["hint"]


def test_a_bare_model_or_a_bundle_without_a_record_cannot_take_data(digits_bundle, eval_pngs, cli, tmp_path):
    bundle, _ = digits_bundle
    result = cli("verify", bundle / "model.onnx", "--target", "cortex-a53", "--data", eval_pngs)
    assert result.code == 2 and "--data needs a bundle directory" in result.err
    copy = tmp_path / "old"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["preprocessing"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = verify(cli, copy, eval_pngs)
    assert result.code == 2 and "records no preprocessing" in result.json["errors"][0]["message"]
    manifest["preprocessing"] = {**json.loads((bundle / "manifest.json").read_text())["preprocessing"],
                                 "task": "sentence-embedding", "labels": None}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = verify(cli, copy, eval_pngs)
    assert result.code == 2 and "holds a 'sentence-embedding' model" in result.json["errors"][0]["message"]
    manifest["preprocessing"]["version"] = 2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = verify(cli, copy, eval_pngs)
    assert result.code == 2 and "upgrade shrink" in result.json["errors"][0]["hint"]


# budgets ------------------------------------------------------------------------------------------------

def test_the_accuracy_budget_gates_the_compile_and_verify(digits_bundle, cli):
    bundle, manifest = digits_bundle
    reported = manifest["metrics"]["accuracy"]
    passed = cli("verify", bundle, "--budget", f"accuracy={reported}", "--json")
    assert passed.code == 0 and next(c for c in passed.json["checks"] if c["name"] == "accuracy")["ok"]
    failed = cli("verify", bundle, "--budget", "accuracy=1", "--json")
    assert failed.code == 4 and "below the 100.00% budget" in next(c for c in failed.json["checks"] if c["name"] == "accuracy")["cause"]


def test_an_accuracy_budget_needs_labelled_data(make_recipe, cli):
    result = cli("plan", make_recipe(data={"source": "random", "distribution": "uniform", "range": [0, 1]},
                                     budget={"accuracy": 0.9}))
    assert result.code == 2 and "budget.accuracy" in result.err


def test_verify_with_data_imports_no_torch(digits_bundle, eval_pngs):
    bundle, _ = digits_bundle
    probe = ("import sys\nfrom shrink.cli.main import main\n"
             f"code = main(['verify', {str(bundle)!r}, '--data', {str(eval_pngs)!r}])\n"
             "heavy = [m for m in ('torch', 'transformers', 'nncf', 'sklearn') if m in sys.modules]\n"
             "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\nsys.exit(code)\n")
    result = run_subprocess(code=probe)
    assert result.code == 0 and "HEAVY=\n" in result.err, result.err


# the other data sources (slow: each trains or builds a model and compiles it) ------------------------------

def eval_files(recipe_path: Path) -> tuple[list[Path], Any]:
    """The files of the compile's eval split (images / audio source) and the split itself, as the engine loads it."""
    from shrink.api.context import Context
    from shrink.engine.compile import load_plan
    from shrink.host.registry import Registry

    plan = load_plan(recipe_path, Registry.load())
    ctx = Context(recipe=plan.recipe, target=plan.target, data=None, workdir=recipe_path.parent, inputs=plan.inputs)
    assert plan.data is not None
    data = plan.data.load(ctx)
    split = data.split("eval")
    folder, _ = plan.data._scan_all(ctx.path)
    files = folder["all"].files
    return [files[i] for i in split.inputs.order], split


def copy_by_label(files: list[Path], labels: list[str], root: Path) -> Path:
    for path, label in zip(files, labels):
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / label / path.name)
    return root


@pytest.mark.slow
def test_images_source_bundle_scores_its_eval_files_and_their_npz(cli, tmp_path):
    """A tiny CNN compiled from a folder of PNG files (the images source cuts eval from it): the eval files, copied
    into label folders, give the compile's count; so does their .npz."""
    train_tiny(tmp_path)
    digit_pngs(tmp_path / "digits", np.arange(1797))
    path = recipe(tmp_path, {"source": "images", "path": "digits"}, name="images")
    out = tmp_path / "bundle"
    assert cli("compile", path, "-o", out).code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["preprocessing"]
    assert record["source"] == "images" and record["resize"]["method"] == "pillow" and record["labels"][3] == "3"
    files, split = eval_files(path)
    names = [record["labels"][i] for i in split.labels]
    correct = round(manifest["metrics"]["accuracy"] * len(files))
    as_files = verify(cli, out, copy_by_label(files, names, tmp_path / "eval"))
    assert as_files.code == 0 and as_files.json["data"]["correct"] == correct and as_files.json["data"]["samples"] == len(files)
    np.savez(tmp_path / "eval.npz", input=np.asarray(split.inputs), labels=np.asarray(names))  # label names this time
    as_npz = verify(cli, out, tmp_path / "eval.npz")
    assert as_npz.code == 0 and as_npz.json["data"]["correct"] == correct


@pytest.mark.slow
def test_arrays_source_bundle_reads_its_recorded_fields_and_label_names(cli, tmp_path):
    """Compiled from an .npz whose field is 'pixels' and whose labels are names: the record keeps the field and the
    label names, and the eval rows as such an .npz (names in another order of rows) give the compile's count."""
    from shrink_sklearn.digits import digits_splits

    train_tiny(tmp_path)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    x, y = digits_splits(8, 0)["train"]
    np.savez(tmp_path / "train.npz", pixels=x, digit=np.asarray(names)[y])
    ex, ey = digits_splits(8, 0)["eval"]
    np.savez(tmp_path / "eval.npz", pixels=ex, digit=np.asarray(names)[ey])
    path = recipe(tmp_path, {"source": "arrays", "train": "train.npz", "eval": "eval.npz", "label_field": "digit",
                             "classes": names}, name="arrays")
    out = tmp_path / "bundle"
    assert cli("compile", path, "-o", out).code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["preprocessing"]
    assert record["kind"] == "arrays" and record["fields"] == {"input": "pixels"} and record["label_field"] == "digit"
    assert record["labels"] == names
    order = np.random.default_rng(0).permutation(len(ey))
    np.savez(tmp_path / "shuffled.npz", pixels=ex[order], digit=np.asarray(names)[ey][order])
    result = verify(cli, out, tmp_path / "shuffled.npz")
    assert result.code == 0 and result.json["data"]["correct"] == round(manifest["metrics"]["accuracy"] * len(ey))


TONES = {"low": 300.0, "mid": 900.0, "high": 2400.0}


def tone_wavs(root: Path, per_class: int = 20, rate: int = 16000) -> Path:
    import wave

    rng = np.random.default_rng(0)
    for label, freq in TONES.items():
        for i in range(per_class):
            seconds = rng.uniform(0.6, 1.2)
            t = np.arange(int(rate * seconds)) / rate
            signal = rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * freq * rng.uniform(0.95, 1.05) * t + rng.uniform(0, 6))
            signal += 0.05 * rng.standard_normal(len(t))
            path = root / label / f"{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(rate)
                out.writeframes((np.clip(signal, -1, 1) * 32767).astype(np.int16).tobytes())
    return root


TONE_NET = '''
import torch
from torch import nn


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 7 * 50, 3))
'''


@pytest.mark.slow
def test_audio_source_bundle_scores_its_eval_wavs_and_resamples_another_sample_rate(cli, tmp_path):
    import torch
    import torch.nn.functional as F

    tone_wavs(tmp_path / "tones")
    (tmp_path / "tone.py").write_text(TONE_NET)
    data = {"source": "audio", "path": "tones", "n_mels": 16, "eval_size": 15}
    path = tmp_path / "tones.json"
    path.write_text(json.dumps({"schema_version": 1, "name": "tones", "target": "cortex-a53", "data": data,
                                "model": {"source": "torch", "factory": "tone.py:net", "weights": "tone.pt",
                                          "input_shape": [1, 1, 16, 101]},
                                "budget": {"accuracy": 0.8}, "passes": [{"pass": "export.onnx"}]}))
    namespace: dict[str, Any] = {}
    exec(TONE_NET, namespace)  # noqa: S102
    model = namespace["net"]()
    torch.save(model.state_dict(), tmp_path / "tone.pt")  # the plan needs the file; trained weights replace it below
    from shrink.api.context import Context
    from shrink.engine.compile import load_plan
    from shrink.host.registry import Registry

    plan = load_plan(path, Registry.load())
    loaded = plan.data.load(Context(recipe=plan.recipe, target=plan.target, data=None, workdir=tmp_path, inputs=plan.inputs))
    train = loaded.split("train")
    x, y = torch.from_numpy(np.array(train.inputs)), torch.from_numpy(np.array(train.labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(model.eval().state_dict(), tmp_path / "tone.pt")

    out = tmp_path / "bundle"
    assert cli("compile", path, "-o", out).code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["preprocessing"]
    assert record["kind"] == "audio" and record["sample_rate"] == 16000 and record["features"]["n_mels"] == 16
    assert record["labels"] == ["high", "low", "mid"] and record["shape"] == [1, 16, 101]
    files, split = eval_files(path)
    names = [record["labels"][i] for i in split.labels]
    correct = round(manifest["metrics"]["accuracy"] * len(files))
    assert manifest["metrics"]["accuracy"] >= 0.8
    result = verify(cli, out, copy_by_label(files, names, tmp_path / "eval"), "--budget", "accuracy=0.8")
    assert result.code == 0 and result.json["data"]["correct"] == correct and result.json["data"]["samples"] == 15

    # files at another rate are resampled to the record's (the tones stay below 4 kHz), and the origin says so
    tone_wavs(tmp_path / "slow", per_class=5, rate=8000)
    resampled = verify(cli, out, tmp_path / "slow", "--budget", "accuracy=0.8")
    assert resampled.code == 0 and resampled.json["data"]["samples"] == 15
    assert "15 at 8000 Hz, resampled to 16000 Hz" in resampled.json["data"]["origin"]


@pytest.mark.slow
def test_text_classifier_bundle_scores_its_eval_rows(cli, tmp_path):
    """A (random) DistilBERT classifier compiled from a JSONL of labelled sentences: the eval rows give the
    compile's count, tokenized with the bundle's tokenizer file as its record says."""
    from tests.test_hf_models import write_text_model

    folder = write_text_model(tmp_path / "distilbert", "distilbert")
    rng = np.random.default_rng(0)
    phrases = {"lights": "turn the lights on", "music": "play some music", "time": "what time is it"}
    rows = [{"text": f"{phrases[label]} {' '.join(rng.choice(['please', 'now', 'you', 'can'], 3))}", "intent": label}
            for label in phrases for _ in range(20)]
    (tmp_path / "intents.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = tmp_path / "text.json"
    path.write_text(json.dumps({"schema_version": 1, "name": "intents", "target": "cortex-a53",
                                "model": {"source": "huggingface", "path": str(folder), "task": "classification",
                                          "max_length": 16, "allow_random_weights": True},
                                "data": {"source": "textfile", "path": "intents.jsonl", "label_column": "intent",
                                         "eval_size": 12},
                                "passes": [{"pass": "export.onnx"}]}))
    out = tmp_path / "bundle"
    assert cli("compile", path, "-o", out).code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["preprocessing"]
    assert record["kind"] == "text" and record["labels"] == ["lights", "music", "time"]
    assert record["tokenizer"] == {"file": "tokenizer.json", "max_length": 16, "truncation": "longest_first",
                                   "padding": "max_length", "pad_id": 0, "add_special_tokens": True}
    assert record["columns"] == {"text": "text", "label": "intent"}
    from shrink.api.context import Context
    from shrink.engine.compile import load_plan
    from shrink.host.registry import Registry

    plan = load_plan(path, Registry.load())
    split = plan.data.load(Context(recipe=plan.recipe, target=plan.target, data=None, workdir=tmp_path)).split("eval")
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps({"text": t, "intent": record["labels"][i]}) + "\n"
                                                 for t, i in zip(split.inputs, split.labels)))
    result = verify(cli, out, tmp_path / "eval.jsonl")
    assert result.code == 0, result.err
    assert result.json["data"]["correct"] == round(manifest["metrics"]["accuracy"] * 12)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "open the door", "intent": "door"}) + "\n")
    refused = verify(cli, out, tmp_path / "bad.jsonl")
    assert refused.code == 2 and "'door' is not one of the bundle's labels" in refused.json["errors"][0]["message"]


@pytest.mark.slow
def test_the_digits_example_bundle_scores_its_eval_split(cli, tmp_path):
    """The shipped digits recipe's bundle: the eval split as an .npz gives the compile's count exactly, as 8x8 PNG
    files (resized by the record's aligned-corners bilinear) within one point."""
    from shrink_sklearn.digits import digits_splits
    from tests.conftest import REPO

    out = tmp_path / "digits"
    assert cli("compile", REPO / "recipes" / "digits-cnn.json", "-o", out).code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocessing"]["resize"] == {"height": 32, "width": 32, "shorter_side": None,
                                                   "interpolation": "bilinear", "method": "align-corners"}
    x, y = digits_splits(32, 0)["eval"]
    np.savez(tmp_path / "eval.npz", x=x, labels=y)
    as_npz = verify(cli, out, tmp_path / "eval.npz", "--budget", "accuracy=0.95")
    assert as_npz.code == 0 and as_npz.json["data"]["correct"] == round(manifest["metrics"]["accuracy"] * EVAL)
    as_png = verify(cli, out, digit_pngs(tmp_path / "png", eval_indices()), "--budget", "accuracy=0.95")
    assert as_png.code == 0 and abs(as_png.json["data"]["accuracy"] - manifest["metrics"]["accuracy"]) <= 0.01
    inverted = verify(cli, out, digit_pngs(tmp_path / "inverted", eval_indices()[:100], lambda p: 255 - p),
                      "--budget", "accuracy=0.95")
    assert inverted.code == 4 and inverted.json["data"]["accuracy"] < 0.5


def test_the_guides_python_applies_the_record_as_verify_does(digits_bundle, cli, tmp_path):
    """docs/preprocessing.md's device code (numpy, Pillow, onnxruntime) classifies files as `verify --data` scores
    them: 16x16 PNG files, so that the record's aligned-corners resize runs."""
    from tests.conftest import REPO

    bundle, _ = digits_bundle
    doc = (REPO / "docs" / "preprocessing.md").read_text()
    code = doc.split("### Python")[1].split("```python\n")[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - the guide's own example
    data = digit_pngs(tmp_path / "big", eval_indices()[:100],
                      lambda p: np.asarray(Image.fromarray(p).resize((16, 16), Image.Resampling.BICUBIC)))
    files = sorted(data.rglob("*.png"))
    correct = sum(namespace["classify"](str(bundle), str(f)) == f.parent.name for f in files)
    assert correct > len(files) // 2  # the resized digits are still digits to the model
    result = verify(cli, bundle, data)
    assert result.code == 0 and result.json["data"]["correct"] == correct and result.json["data"]["samples"] == len(files)
