"""`shrink verify BUNDLE --data FOLDER` on a keyword-spotting bundle (issue 20): a tiny CNN trained on a few
synthesised keyword clips, compiled from the `kws` source to a full-int8 `.tflite`; the compile's own eval clips,
written as float32 WAV files into label folders, go through the bundle's record (CMSIS-DSP MFCCs, the train
split's standardization) and TFLite Micro, and give the compile's count exactly; a budget above it is exit 4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shrink_data.kws import KeywordSpotting, KwsOptions, missing_libraries
from shrink_tflite.options import missing

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing_libraries()), reason="the kws data source needs pip install -e '.[kws]'"),
              pytest.mark.skipif(missing() is not None, reason=f"export.tflite: {missing()}")]

KWS = {"source": "kws", "keywords": ["yes", "no"], "unknown_words": ["bed", "cat"], "train_per_class": 24,
       "eval_per_class": 10, "calibration_size": 12, "workers": 1}
FACTORY = '''
import torch
from torch import nn


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 49 * 10, 4))
'''


def _train(folder: Path, options: KwsOptions) -> None:
    """The tiny CNN trained on the source's own train split (a few seconds, one thread)."""
    import torch
    import torch.nn.functional as F

    namespace: dict[str, Any] = {}
    exec(FACTORY, namespace)  # noqa: S102 - the factory's source, as tiny.py holds it
    (folder / "tiny.py").write_text(FACTORY)
    torch.set_num_threads(1)
    train = KeywordSpotting(options).load(None).split("train")  # type: ignore[arg-type]  # unused context
    x, y = torch.from_numpy(np.array(train.inputs)), torch.from_numpy(np.array(train.labels))
    model = namespace["tiny"]()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(model.eval().state_dict(), folder / "tiny.pt")


@pytest.fixture(scope="module")
def kws_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """The compiled bundle, its manifest and the compile's eval clips as float32 WAV files in label folders."""
    from scipy.io import wavfile

    from shrink.cli.main import main
    from shrink_data.kws_synth import synthesize

    work = tmp_path_factory.mktemp("kws-verify")
    options = KwsOptions(**{k: v for k, v in KWS.items() if k != "source"})
    _train(work, options)
    recipe = {"schema_version": 1, "name": "tiny-kws",
              "model": {"source": "torch", "factory": "tiny.py:tiny", "weights": "tiny.pt", "input_shape": [1, 1, 49, 10]},
              "data": KWS, "target": "cortex-m4",
              "passes": [{"pass": "export.tflite", "parity_samples": 12, "calibration_samples": 12}]}
    (work / "recipe.json").write_text(json.dumps(recipe))
    assert main(["compile", str(work / "recipe.json"), "-o", str(work / "bundle"), "--no-cache"]) == 0
    # the eval split's clips, drawn as load() draws them (seed [seed, 2]), before the MFCCs
    waves, labels = synthesize(options, "eval", options.eval_per_class * len(options.classes), [options.seed, 2],
                               waves=True)
    folder = work / "eval-wavs"
    for index, (wave, label) in enumerate(zip(waves, labels)):
        (folder / options.classes[int(label)]).mkdir(parents=True, exist_ok=True)
        wavfile.write(folder / options.classes[int(label)] / f"{index:03d}.wav", options.sample_rate, wave)
    return work / "bundle", json.loads((work / "bundle" / "manifest.json").read_text()), folder


def test_the_record_says_what_the_device_computes(kws_bundle):
    _, manifest, _ = kws_bundle
    record = manifest["preprocessing"]
    assert record["kind"] == "audio" and record["labels"] == ["yes", "no", "_unknown_", "_silence_"]
    assert record["features"] == {"type": "cmsis-mfcc", "fft_length": 512, "hop_length": 320, "n_mels": 40,
                                  "n_mfcc": 10, "f_min": 20.0, "f_max": 4000.0}
    assert record["sample_rate"] == 16000 and record["clip_samples"] == 16000 and record["shape"] == [1, 49, 10]
    norm = record["normalization"]
    assert norm["type"] == "standardize" and len(norm["mean"]) == len(norm["std"]) == 10


def test_the_compiles_eval_clips_as_wav_give_its_count_under_tflite_micro(kws_bundle, cli):
    bundle, manifest, folder = kws_bundle
    assert manifest["model"]["file"] == "model.tflite"
    reported = manifest["metrics"]["accuracy"]
    assert 0.25 < reported < 1.0  # trained, and not trivially right on every clip
    result = cli("verify", bundle, "--data", folder, "--json")
    assert result.code == 0, result.err
    data = result.json["data"]
    assert data["samples"] == 40 and data["correct"] == round(reported * 40)
    failed = cli("verify", bundle, "--data", folder, "--budget", "accuracy=1.0", "--json")
    assert failed.code == 4
    check = next(c for c in failed.json["checks"] if c["name"] == "data_accuracy")
    assert not check["ok"] and check["value"] == data["accuracy"]
