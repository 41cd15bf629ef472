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
    for _ in range(15):
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
    bundle, manifest = digits_bundle
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
