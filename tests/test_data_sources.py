"""The built-in data sources of `shrink_data` (images, arrays, audio, textfile, random) on real files written into
tmp_path: loading, deterministic splits, plan-time checks against the model's declared inputs (exit 2 naming both
sides), streaming of large folders, fingerprints without decoding, and compiles that calibrate on them."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shrink.api.context import Context
from shrink.api.data import Dataset, array_feeds
from shrink.engine.compile import load_plan
from shrink.host.registry import Registry
from shrink.plan.planner import Plan
from tests.conftest import run_subprocess

CNN = {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}


def torch_model(shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    """The tiny CNN's factory with another declared input (plans never load the model)."""
    return {**CNN, "input_shape": shape or CNN["input_shape"], **extra}


TOKENS = {"source": "torch", "factory": "tiny.py:tiny", "allow_random_weights": True,
          "inputs": [{"name": "ids", "shape": [1, 16], "dtype": "int64"}]}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def loaded(recipe: Path, registry: Registry) -> tuple[Plan, Context, Dataset]:
    """The recipe's plan and its data as the engine loads it (the model is not loaded)."""
    plan = load_plan(recipe, registry)
    ctx = Context(recipe=plan.recipe, target=plan.target, data=None, workdir=recipe.parent, inputs=plan.inputs)
    assert plan.data is not None
    ctx.data = plan.data.load(ctx)
    return plan, ctx, ctx.data


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def image_folder(root: Path, classes: int = 10, per_class: int = 6, size: int = 16, mode: str = "RGB") -> Path:
    """`root/classN/i.png`: class N is brighter than class N-1 (so a model's logits differ between classes)."""
    rng = np.random.default_rng(0)
    depth = (3,) if mode == "RGB" else ()
    for c in range(classes):
        for i in range(per_class):
            write_png(root / f"class{c}" / f"{i}.png", rng.integers(0, 40, (size, size, *depth)) + 20 * c)
    return root


def write_wav(path: Path, freq: float, seconds: float, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(tone, channels).tobytes())


# splits ------------------------------------------------------------------------------------------------

def test_cut_holds_out_eval_stratified_and_draws_calibration_from_train():
    from shrink_data.options import SplitOptions
    from shrink_data.splits import cut

    labels = np.arange(100) % 4
    found = cut(labels, 100, SplitOptions(path="x", eval_size=0.2, calibration_size=8, seed=3))
    assert (len(found["train"]), len(found["eval"]), len(found["calibration"])) == (80, 20, 8)
    assert np.bincount(labels[found["eval"]]).tolist() == [5, 5, 5, 5]
    assert np.bincount(labels[found["calibration"]]).tolist() == [2, 2, 2, 2]
    assert set(found["calibration"]) <= set(found["train"]) and not set(found["train"]) & set(found["eval"])
    again = cut(labels, 100, SplitOptions(path="x", eval_size=0.2, calibration_size=8, seed=3))
    assert all(np.array_equal(found[k], again[k]) for k in found)
    counted = cut(None, 10, SplitOptions(path="x", eval_size=3, calibration_size=0.5))
    assert (len(counted["train"]), len(counted["eval"]), len(counted["calibration"])) == (7, 3, 4)
    assert set(cut(None, 10, SplitOptions(path="x", eval_size=0))) == {"train", "calibration"}


@pytest.mark.parametrize(("data", "message"), [
    ({"path": "a", "train": "b"}, "give either 'path'"),
    ({"train": "a", "eval_size": 0.1}, "eval_size applies to 'path'"),
    ({"calibration": "a", "calibration_size": 5}, "'calibration' is declared"),
    ({"path": "a", "eval_size": 1.5}, "eval_size")])
def test_split_options_are_checked_at_plan_time(make_recipe, cli, data, message):
    result = cli("plan", make_recipe(data={"source": "images", **data}))
    assert result.code == 2 and message in result.err, result.err


# images ------------------------------------------------------------------------------------------------

def test_images_load_labelled_folder_with_stratified_deterministic_splits(tmp_path, make_recipe, registry):
    image_folder(tmp_path / "pics", classes=10, per_class=6)
    recipe = make_recipe(data={"source": "images", "path": "pics", "eval_size": 0.5, "calibration_size": 10})
    _, _, data = loaded(recipe, registry)
    assert data.task == "classification" and data.meta["classes"] == [f"class{c}" for c in range(10)]
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 30, "eval": 30, "calibration": 10}
    train, held, calibration = (data.split(n).inputs.order for n in ("train", "eval", "calibration"))
    assert not set(train) & set(held) and set(calibration) <= set(train)
    assert sorted(data.split("eval").labels) == sorted(list(range(10)) * 3)  # stratified: three per class
    assert sorted(data.split("calibration").labels) == list(range(10))  # one per class
    x = np.asarray(data.split("eval").inputs[:4])
    assert x.shape == (4, 1, 8, 8) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1  # defaults: the model's
    again = loaded(recipe, registry)[2]
    assert np.array_equal(again.split("eval").inputs.order, held)
    other = loaded(make_recipe("other.json", data={"source": "images", "path": "pics", "eval_size": 0.5, "seed": 1}),
                   registry)[2]
    assert not np.array_equal(other.split("eval").inputs.order, held)


@pytest.mark.parametrize(("shape", "sample"), [([1, 3, 24, 20], (3, 24, 20)), ([1, 12, 10, 3], (12, 10, 3)),
                                                ([1, 28, 28], (28, 28)), ([1, 1, 8, 8], (1, 8, 8))])
def test_images_default_their_size_channels_and_layout_from_the_model_input(tmp_path, make_recipe, registry, shape, sample):
    image_folder(tmp_path / "pics", classes=2, per_class=3)
    _, _, data = loaded(make_recipe(model=torch_model(shape), data={"source": "images", "path": "pics"}), registry)
    assert data.split("train").inputs[0].shape == sample


def test_image_preprocessing_scale_mean_std_bgr_and_center_crop(tmp_path, make_recipe, registry):
    pixels = np.zeros((20, 40, 3))
    pixels[:, :, 0], pixels[:, :, 1], pixels[:, :, 2] = 51, 102, 153  # RGB 0.2, 0.4, 0.6
    pixels[:, 20:, :] = 255  # the right half white
    write_png(tmp_path / "one" / "a.png", pixels)
    write_png(tmp_path / "one" / "b.png", pixels)
    data = {"source": "images", "path": "one", "eval_size": 0, "size": 16, "resize": 16, "channels": "bgr",
            "interpolation": "nearest", "mean": [0.5], "std": [0.25, 0.5, 1.0], "layout": "NHWC"}
    _, _, loaded_data = loaded(make_recipe(model=torch_model([1, 16, 16, 3]), data=data), registry)
    x = loaded_data.split("train").inputs[0]
    assert x.shape == (16, 16, 3)
    # the shorter side 20 → 16 (40 → 32 wide), then a centered 16x16 crop: columns 8..23 of 32, half dark, half white
    np.testing.assert_allclose(x[:, :8, :], np.broadcast_to([(0.6 - 0.5) / 0.25, (0.4 - 0.5) / 0.5, (0.2 - 0.5) / 1.0],
                                                             (16, 8, 3)), atol=1e-6)
    np.testing.assert_allclose(x[:, 8:, :], np.broadcast_to([0.5 / 0.25, 0.5 / 0.5, 0.5], (16, 8, 3)), atol=1e-6)


def test_images_that_do_not_fit_the_model_are_a_plan_error_naming_both_sides(tmp_path, make_recipe, cli):
    image_folder(tmp_path / "rgb", classes=2, per_class=3, size=32)
    result = cli("plan", make_recipe(data={"source": "images", "path": "rgb", "size": 32, "channels": "rgb"}))
    assert result.code == 2
    assert "data:" in result.err and "[3, 32, 32] float32" in result.err and "'input' takes [1, 8, 8]" in result.err
    # left to its defaults, the same folder is converted for the model (grayscale, 8x8)
    assert cli("plan", make_recipe(data={"source": "images", "path": "rgb"})).code == 0


def test_digits_for_an_rgb_224_model_is_a_plan_error_not_a_plugin_error(make_recipe, cli):
    result = cli("plan", make_recipe(model=torch_model([1, 3, 224, 224]), data={"source": "sklearn.digits"}))
    assert result.code == 2, result.err
    assert "sklearn.digits" in result.err and "[1, 32, 32]" in result.err and "[3, 224, 224]" in result.err


def test_a_large_folder_streams_only_the_samples_asked_for(tmp_path, make_recipe, registry):
    image_folder(tmp_path / "big", classes=4, per_class=10)
    plan, _, data = loaded(make_recipe(data={"source": "images", "path": "big"}), registry)
    calibration = data.split("calibration").inputs
    assert calibration.decoder.decoded == 0  # listing and splitting read no image
    folder = sorted((tmp_path / "big").rglob("*.png"))
    keep = {folder[i] for i in calibration.order[:3]}
    for path in folder:  # every other image becomes unreadable: asking for 3 samples must not touch them
        if path not in keep:
            path.write_bytes(b"not an image")
    feeds, origin = array_feeds(plan.inputs, data, ("calibration",), 3)
    assert feeds["input"].shape == (3, 1, 8, 8) and origin == "calibration[:3]"
    assert calibration.decoder.decoded == 3


def test_image_folder_problems_are_one_line_each_naming_the_option_and_the_file(tmp_path, make_recipe, cli):
    (tmp_path / "empty").mkdir()
    image_folder(tmp_path / "holes", classes=2, per_class=3)
    (tmp_path / "holes" / "class9").mkdir()
    image_folder(tmp_path / "few", classes=3, per_class=1)
    image_folder(tmp_path / "split" / "train", classes=2, per_class=2)
    image_folder(tmp_path / "split" / "val", classes=2, per_class=2)
    cases = {"nothere": "path: no such folder", "empty": "has no images", "holes": "class9' has no images",
             "few": "has only 1 sample", "split": "declare them as 'train'"}
    for folder, message in cases.items():
        result = cli("plan", make_recipe(data={"source": "images", "path": folder}))
        assert result.code == 2 and message in result.err, (folder, result.err)
        assert str(tmp_path / folder) in result.err


def test_an_unreadable_image_is_a_usage_error_naming_its_file(tmp_path, make_recipe, registry, cli, monkeypatch):
    from shrink import UsageError
    from shrink_data import folders

    image_folder(tmp_path / "pics", classes=2, per_class=4)
    (tmp_path / "pics" / "class0" / "0.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "pics" / "class1" / "3.png").write_bytes(b"")
    recipe = make_recipe(data={"source": "images", "path": "pics", "eval_size": 0})
    result = cli("compile", recipe, "-o", tmp_path / "out")  # found when the data loads, before any pass: exit 2
    assert result.code == 2 and "recipe.json: data.path: cannot read '" in result.err
    assert "class0/0.png'" in result.err and "(and 1 more unreadable files)" in result.err
    monkeypatch.setattr(folders, "VERIFY_LIMIT", 0)  # a folder too large to verify up front: named when decoded
    _, _, data = loaded(recipe, registry)
    with pytest.raises(UsageError, match=r"data\.path: cannot read '.*/class\d/\d\.png'"):
        np.asarray(data.split("train").inputs)


def test_a_flat_folder_is_unlabelled_calibration_and_refuses_an_accuracy_budget(tmp_path, make_recipe, cli, registry):
    rng = np.random.default_rng(0)
    for i in range(5):
        write_png(tmp_path / "flat" / f"{i}.jpg" if i % 2 else tmp_path / "flat" / f"{i}.png", rng.integers(0, 255, (9, 9, 3)))
    _, _, data = loaded(make_recipe(data={"source": "images", "path": "flat"}), registry)
    assert data.task == "images" and data.split("calibration").labels is None and len(data.split("eval")) == 1
    result = cli("plan", make_recipe(data={"source": "images", "path": "flat"}, budget={"accuracy_drop": 0.01}))
    assert result.code == 2 and "budget.accuracy_drop" in result.err


def test_declared_split_folders(tmp_path, make_recipe, registry):
    image_folder(tmp_path / "train", classes=3, per_class=4)
    image_folder(tmp_path / "val", classes=3, per_class=2)
    _, _, data = loaded(make_recipe(data={"source": "images", "train": "train", "eval": "val", "calibration_size": 3}),
                        registry)
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 12, "eval": 6, "calibration": 3}
    assert sorted(data.split("calibration").labels) == [0, 1, 2]
    assert data.split("calibration").inputs.decoder is data.split("train").inputs.decoder


def test_fingerprint_lists_files_without_decoding_and_follows_changes(tmp_path, make_recipe, registry):
    image_folder(tmp_path / "pics", classes=2, per_class=3)
    plan, ctx, data = loaded(make_recipe(data={"source": "images", "path": "pics"}), registry)
    first = plan.data.fingerprint(ctx)
    assert first == data.fingerprint and first == plan.data.fingerprint(ctx)
    write_png(tmp_path / "pics" / "class1" / "new.png", np.zeros((4, 4, 3)))
    assert plan.data.fingerprint(ctx) != first


def conv_net(path: Path) -> Path:
    """An ONNX conv net nobody here wrote: pixel_values [batch, 3, 16, 16] → Conv → Relu → pool → Gemm → 10 logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
               for name, shape in (("w", (8, 3, 3, 3)), ("b", (8,)), ("fc", (10, 8)), ("fcb", (10,)))]
    nodes = [helper.make_node("Conv", ["pixel_values", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT,
                                                                          ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_an_onnx_conv_net_calibrates_static_int8_on_a_flat_photo_folder(tmp_path, make_recipe, cli):
    rng = np.random.default_rng(1)
    for i in range(30):  # photos of another size and format: resized to the model's 16x16 RGB
        write_png(tmp_path / "photos" / f"{i:02d}.{'png' if i % 3 else 'bmp'}", rng.integers(0, 255, (24, 30, 3)))
    recipe = make_recipe(model={"source": "onnx", "path": str(conv_net(tmp_path / "net.onnx"))},
                         data={"source": "images", "path": "photos"},
                         passes=[{"pass": "quantize.ptq", "scheme": "static-qdq-per-channel", "min_agreement": 0.5}])
    result = cli("compile", recipe, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    details = json.loads((tmp_path / "out" / "manifest.json").read_text())["history"][-1]["details"]
    assert details["calibration_inputs"] == "calibration[:24]"


# arrays ------------------------------------------------------------------------------------------------

def test_npz_fields_labels_and_classes(tmp_path, make_recipe, registry):
    rng = np.random.default_rng(0)
    names = np.array(["cat", "dog", "owl"])[np.arange(30) % 3]
    np.savez(tmp_path / "d.npz", pixels=rng.random((30, 1, 8, 8), dtype=np.float32), labels=names)
    _, _, data = loaded(make_recipe(data={"source": "arrays", "path": "d.npz", "eval_size": 6}), registry)
    assert data.meta["classes"] == ["cat", "dog", "owl"] and data.task == "classification"
    eval_split = data.split("eval")
    assert sorted(eval_split.labels) == [0, 0, 1, 1, 2, 2]
    assert np.asarray(eval_split.inputs).shape == (6, 1, 8, 8)


def test_npy_is_one_memory_mapped_unlabelled_array(tmp_path, make_recipe, registry):
    np.save(tmp_path / "x.npy", np.arange(20 * 64, dtype=np.float64).reshape(20, 1, 8, 8))
    plan, _, data = loaded(make_recipe(data={"source": "arrays", "path": "x.npy", "eval_size": 0}), registry)
    rows = data.split("train").inputs
    assert isinstance(rows.array, np.memmap) and data.split("train").labels is None and not plan.data.labels
    feeds, _ = array_feeds(plan.inputs, data, ("calibration",), 5)
    assert feeds["input"].dtype == np.float32 and feeds["input"].shape == (5, 1, 8, 8)


def test_arrays_that_do_not_fit_the_model_are_plan_errors(tmp_path, make_recipe, cli):
    np.savez(tmp_path / "d.npz", a=np.zeros((10, 4), np.float32), b=np.zeros((10, 3), np.float32))
    two = torch_model(inputs=[{"name": "a", "shape": [1, 4]}, {"name": "b", "shape": [1, 4]}])
    del two["input_shape"]
    result = cli("plan", make_recipe(model=two, data={"source": "arrays", "path": "d.npz"}))
    assert result.code == 2 and "field 'b' gives samples [3] float32, but model input 'b' takes [4]" in result.err
    np.savez(tmp_path / "e.npz", x=np.zeros((10, 4), np.float32), labels=np.zeros(9, np.int64))
    result = cli("plan", make_recipe(data={"source": "arrays", "path": "e.npz"}))
    assert result.code == 2 and "different numbers of samples: x 10, labels 9" in result.err
    result = cli("plan", make_recipe(data={"source": "arrays", "path": "e.npz", "fields": ["y"]}))
    assert result.code == 2 and "has no field 'y'" in result.err


def test_file_sources_fingerprint_their_content(tmp_path, make_recipe, registry):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 1, 8, 8), np.float32))
    (tmp_path / "t.txt").write_text("a\nb\nc\nd\ne\n")
    for data, change in (({"source": "arrays", "path": "d.npz"},
                          lambda: np.savez(tmp_path / "d.npz", x=np.ones((10, 1, 8, 8), np.float32))),
                         ({"source": "textfile", "path": "t.txt"}, lambda: (tmp_path / "t.txt").write_text("a\nb\nc\nd\nf\n"))):
        plan, ctx, loaded_data = loaded(make_recipe(model=TOKENS if data["source"] == "textfile" else CNN, data=data), registry)
        before = plan.data.fingerprint(ctx)
        assert before == loaded_data.fingerprint == plan.data.fingerprint(ctx)
        change()
        assert plan.data.fingerprint(ctx) != before


@pytest.mark.slow
def test_a_two_input_npz_calibrates_static_int8_through_each_inputs_field(tmp_path, make_recipe, cli):
    (tmp_path / "two.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass Two(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        torch.manual_seed(0)\n"
        "        self.a, self.b = nn.Linear(16, 8), nn.Linear(6, 8)\n        self.out = nn.Linear(8, 4)\n\n"
        "    def forward(self, image, extra):\n        return self.out(torch.relu(self.a(image) + self.b(extra)))\n\n\n"
        "def two():\n    return Two()\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "two.npz", pixels=rng.random((64, 16), dtype=np.float32),
             side=rng.random((64, 6), dtype=np.float32), labels=np.arange(64) % 4)
    model = {"source": "torch", "factory": "two.py:two", "allow_random_weights": True, "inputs": [
        {"name": "image", "shape": [1, 16], "field": "pixels"}, {"name": "extra", "shape": [1, 6], "field": "side"}]}
    recipe = make_recipe(model=model, data={"source": "arrays", "path": "two.npz"},
                         passes=[{"pass": "export.onnx"},
                                 {"pass": "quantize.ptq", "scheme": "static-qdq-per-tensor", "min_agreement": 0.5}])
    result = cli("compile", recipe, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    history = json.loads((tmp_path / "out" / "manifest.json").read_text())["history"]
    assert history[-1]["details"]["calibration_inputs"] == "calibration[:51]"


# audio -------------------------------------------------------------------------------------------------

@pytest.fixture
def wavs(tmp_path: Path) -> Path:
    """Two classes of tones: 'high' 2 kHz, 'low' 300 Hz; one file at 8 kHz, one stereo, lengths 0.5 to 1.5 s."""
    for i in range(4):
        write_wav(tmp_path / "wavs" / "low" / f"{i}.wav", 300, 0.5 + i / 3, rate=8000 if i == 0 else 16000)
        write_wav(tmp_path / "wavs" / "high" / f"{i}.wav", 2000, 0.5 + i / 3, channels=2 if i == 1 else 1)
    return tmp_path / "wavs"


def test_audio_log_mel_fits_the_model_layout_and_hears_the_tones(wavs, make_recipe, registry):
    recipe = make_recipe(model=torch_model([1, 1, 40, 101]), data={"source": "audio", "path": "wavs", "eval_size": 2})
    _, _, data = loaded(recipe, registry)
    assert data.meta["classes"] == ["high", "low"]
    split = data.split("train")
    x = np.asarray(split.inputs)
    assert x.shape == (6, 1, 40, 101) and np.isfinite(x).all()  # 1 s at 16 kHz, hop 160: 101 frames (channel axis from the model)
    band = x[:, 0, :, :20].mean(axis=2).argmax(axis=1)  # the loudest mel band in the first 0.2 s
    assert all(b > 20 for b in band[split.labels == 0]) and all(b < 15 for b in band[split.labels == 1])


@pytest.mark.parametrize(("options", "shape", "sample"), [
    ({"features": "mfcc"}, [1, 101, 13], (101, 13)),
    ({"features": "mfcc", "n_mfcc": 10, "hop_length": 320, "duration": 0.5}, [1, 10, 26], (10, 26)),
    ({"features": "waveform", "sample_rate": 8000}, [1, 8000], (8000,))])
def test_audio_features_and_sizes(wavs, make_recipe, registry, options, shape, sample):
    recipe = make_recipe(model=torch_model(shape), data={"source": "audio", "path": "wavs", "eval_size": 2, **options})
    _, _, data = loaded(recipe, registry)
    x = data.split("eval").inputs[0]
    assert x.shape == sample and x.dtype == np.float32 and np.isfinite(x).all()


def test_audio_for_a_model_that_takes_a_short_waveform_window_reads_that_many_samples(wavs, make_recipe, registry):
    """A VAD's [1, 512] input: the waveform, 512 samples, without the recipe saying so (it got 40x101 log-mel)."""
    _, _, data = loaded(make_recipe(model=torch_model([1, 512]), data={"source": "audio", "path": "wavs"}), registry)
    x = data.split("train").inputs[0]
    assert x.shape == (512,) and np.abs(x).max() > 0.1


def test_audio_resamples_and_pads_to_the_clip_length(wavs, make_recipe, registry):
    data_options = {"source": "audio", "train": "wavs/low", "features": "waveform", "calibration_size": 1}
    _, _, data = loaded(make_recipe(model=torch_model([1, 16000]), data=data_options), registry)
    split = data.split("train")
    first = split.inputs[int(np.flatnonzero(split.inputs.order == 0)[0])]  # 0.5 s at 8 kHz → 8,000 samples at 16 kHz
    assert np.abs(first[:7900]).max() > 0.4 and not first[8100:].any()


def test_audio_that_does_not_fit_the_model_is_a_plan_error(wavs, make_recipe, cli):
    result = cli("plan", make_recipe(data={"source": "audio", "path": "wavs", "eval_size": 2}))
    assert result.code == 2 and "log-mel, 40 mels x 101 frames" in result.err and "takes [1, 8, 8]" in result.err


# text files --------------------------------------------------------------------------------------------

def test_text_lines_csv_and_jsonl(tmp_path, make_recipe, registry):
    (tmp_path / "lines.txt").write_text("".join(f"sentence number {i}\n\n" for i in range(10)))
    (tmp_path / "rows.csv").write_text("text,label\n" + "".join(f'"a, row {i}",{i % 3}\n' for i in range(30)))
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"body": f"r{i}", "mood": ["sad", "glad"][i % 2]}) + "\n"
                                                 for i in range(8)))
    _, _, lines = loaded(make_recipe(model=TOKENS, data={"source": "textfile", "path": "lines.txt"}), registry)
    assert lines.task == "text" and len(lines.split("train")) == 8 and isinstance(lines.split("eval").inputs[0], str)
    _, _, rows = loaded(make_recipe(model=TOKENS, data={"source": "textfile", "path": "rows.csv", "eval_size": 6}), registry)
    assert rows.meta["classes"] == ["0", "1", "2"] and sorted(rows.split("eval").labels) == [0, 0, 1, 1, 2, 2]
    assert all(text.startswith("a, row ") for text in rows.split("train").inputs)
    _, _, objects = loaded(make_recipe(model=TOKENS, data={"source": "textfile", "path": "rows.jsonl", "eval_size": 2,
                                                           "text_column": "body", "label_column": "mood"}), registry)
    assert objects.meta["classes"] == ["glad", "sad"] and sorted(objects.split("eval").labels) == [0, 1]


def test_text_file_problems_are_plan_errors(tmp_path, make_recipe, cli):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    result = cli("plan", make_recipe(model=TOKENS, data={"source": "textfile", "path": "bad.jsonl"}))
    assert result.code == 2 and "bad.jsonl" in result.err and "line 2 is not JSON" in result.err
    (tmp_path / "ok.txt").write_text("one\ntwo\nthree\n")
    result = cli("plan", make_recipe(data={"source": "textfile", "path": "ok.txt"}))  # the CNN takes float images
    assert result.code == 2 and "gives text samples" in result.err and "'input' takes [1, 8, 8]" in result.err


# random ------------------------------------------------------------------------------------------------

def test_random_data_is_declared_per_input_and_says_it_is_random(tmp_path, make_recipe, registry, cli):
    model = torch_model(inputs=[{"name": "x", "shape": [1, 1, 8, 8]}, {"name": "ids", "shape": [1, 5], "dtype": "int64"}])
    del model["input_shape"]
    options = {"source": "random", "distribution": "normal", "mean": 0.5, "std": 0.1, "count": 20,
               "inputs": {"ids": {"distribution": "uniform", "range": [3, 7]}}}
    plan, _, data = loaded(make_recipe(model=model, data=options), registry)
    assert data.meta["random"] is True and not plan.data.labels and data.task == "random"
    feeds, origin = array_feeds(plan.inputs, data, ("calibration",), 200)
    assert feeds["x"].shape == (20, 1, 8, 8) and abs(float(feeds["x"].mean()) - 0.5) < 0.02
    assert feeds["ids"].dtype == np.int64 and set(np.unique(feeds["ids"])) <= {3, 4, 5, 6}
    assert "random data" in origin and "seed 0" in origin
    assert cli("plan", make_recipe(data={"source": "random"})).code == 2  # nothing declared
    result = cli("plan", make_recipe(data={"source": "random", "distribution": "uniform", "range": [0, 1]},
                                     budget={"accuracy_drop": 0.01}))
    assert result.code == 2 and "budget.accuracy_drop" in result.err


# end to end --------------------------------------------------------------------------------------------

def test_tiny_cnn_calibrates_static_int8_on_a_png_folder_of_ten_classes(tmp_path, make_recipe, cli):
    image_folder(tmp_path / "digits", classes=10, per_class=8, size=12, mode="L")
    recipe = make_recipe(data={"source": "images", "path": "digits"},
                         passes=[{"pass": "export.onnx"}, {"pass": "quantize.ptq", "scheme": "static-qdq-per-channel"}])
    result = cli("compile", recipe, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    step = manifest["history"][-1]
    assert step["name"] == "quantize.ptq" and step["details"]["calibration_inputs"] == "calibration[:64]"
    assert "accuracy" in step["metrics"]  # labelled eval: the engine measures top-1 after every step


def test_random_calibration_is_reported_as_random(tmp_path, make_recipe, cli):
    recipe = make_recipe(data={"source": "random", "distribution": "uniform", "range": [0, 1], "count": 16},
                         passes=[{"pass": "export.onnx"},
                                 {"pass": "quantize.ptq", "scheme": "static-qdq-per-channel", "min_agreement": 0.5}])
    result = cli("compile", recipe, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    details = json.loads((tmp_path / "out" / "manifest.json").read_text())["history"][-1]["details"]
    assert details["calibration_inputs"] == "calibration[:16] of random data (uniform [0, 1), seed 0)"
    assert "random data" in (tmp_path / "out" / "report.md").read_text()


def test_planning_folder_recipes_imports_no_heavy_library(tmp_path, make_recipe, wavs):
    image_folder(tmp_path / "pics", classes=2, per_class=3)
    recipes = [str(make_recipe("images.json", data={"source": "images", "path": "pics"})),
               str(make_recipe("audio.json", model=torch_model([1, 1, 40, 101]),
                               data={"source": "audio", "path": "wavs", "eval_size": 2}))]
    probe = ("import sys\nfrom shrink.cli.main import main\n"
             f"codes = [main(['plan', recipe]) for recipe in {recipes!r}]\n"
             "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'scipy', 'PIL') if m in sys.modules]\n"
             "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\nsys.exit(max(codes))\n")
    result = run_subprocess(code=probe)
    assert result.code == 0 and "HEAVY=\n" in result.err, result.err
