"""A keyword-spotting bundle on voices that neither its training nor its eval split used, as an outside scorer would
run it: `shrink verify BUNDLE --data FOLDER` on WAV files in label folders, beside the compile's own accuracy.

    python bench/kws_other_voices.py [BUNDLE] [--per-class 50] [--teacher] [--out /tmp/kws-other-voices] [--workers 2]

The voices are eSpeak NG's that the bundle's recipe lists nowhere (`bench/kws_teacher.py`'s `outside_voices`: of
its `MORE_ACCENTS`, European languages speaking the English words, x its `MORE_VARIANTS` less `rob`, on which the
eSpeak NG of espeakng-loader 0.2.4 segfaults, gd+rob saying "backward" at 124 wpm, those the recipe does not train
on; for recipes/kws-cortex-m4.json, 10 languages x 18 variants, the half it does not take). Three scenes of them and
one of the recipe's own eval voices, each written as WAV files (16 kHz float; scene 3: eSpeak NG's 22,050 Hz int16)
and scored by `verify --data` in a fresh process through the bundle's own record (CMSIS-DSP MFCCs, the train
split's standardization) under TFLite Micro, against the recipe's budgets:

1. the recipe's noise (5-30 dB SNR, 30% of clips through a cheap microphone);
2. louder noise and a worse microphone (0-15 dB SNR on every word clip, 80% of clips band-limited);
3. files as someone else would make them: eSpeak NG at its default rate and pitch, each word alone as eSpeak NG
   writes it (22,050 Hz 16-bit, 0.2-0.5 s: `verify` resamples and pads it), white noise at 10-20 dB SNR, other words
   than the recipe's for `_unknown_` and white noise alone for `_silence_`;
4. not other voices: the recipe's own eval voices (its `test_accents` x `test_variants`) with its noise, new clips
   (another draw than the compile's eval split): how much of a difference between two bundles on the compile's own
   figure is the draw of its clips.

Prints each scene's accuracy and verdict beside the compile's accuracy on its own eval voices. `--teacher` also
scores the recipe's fp32 teacher (torch) on the same files through the same record, and the bundle's drop from it:
the recipe's `accuracy_drop` budget, on these voices.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kws_teacher import eval_only, outside_voices  # bench/kws_teacher.py

REPO = Path(__file__).resolve().parents[1]
SCENES: dict[str, dict] = {
    "other voices, the recipe's noise": {},
    "other voices, 0-15 dB SNR, 80% band-limited": {"snr_db": (0.0, 15.0), "noise_probability": 1.0,
                                                    "band_limit_probability": 0.8},
}
PLAIN = "other voices, plain eSpeak NG files, white noise"
OWN = "its own eval voices, new clips"
OTHER_WORDS = ("hello", "computer", "banana", "morning", "table", "orange", "garden", "pencil", "river", "coffee")


def _write_scene(options: Any, scene: dict, per_class: int, folder: Path, workers: int, own: bool = False) -> int:
    """The scene's clips, spoken by the voices outside the KwsOptions `options` (`own`: by its eval voices), as WAV
    files in `folder/<label>/`; the number written."""
    import numpy as np
    from scipy.io import wavfile

    from shrink_data.kws import KwsOptions
    from shrink_data.kws_synth import synthesize

    voices = {} if own else eval_only(options, outside_voices(options))
    options = KwsOptions.model_validate({**options.model_dump(), **scene, **voices, "eval_per_class": per_class})
    waves, labels = synthesize(options, "eval", per_class * len(options.classes), [options.seed, 7], workers=workers,
                               waves=True)
    for index, (wave, label) in enumerate(zip(waves, labels)):
        target = folder / options.classes[int(label)]
        target.mkdir(parents=True, exist_ok=True)
        wavfile.write(target / f"{index:05d}.wav", options.sample_rate, wave.astype(np.float32))
    return len(labels)


def _write_plain(options: Any, per_class: int, folder: Path) -> int:
    """Scene 3: eSpeak NG's own 22,050 Hz output of each word alone, at its default rate (175 wpm) and pitch (50),
    by the voices outside `options`, with white noise at 10-20 dB SNR, as 16-bit WAV files in `folder/<label>/`."""
    import numpy as np
    from scipy.io import wavfile

    from shrink_data.kws import SILENCE
    from shrink_data.speech import Synthesizer, Voice

    accents, variants = outside_voices(options)
    words = [w for w in OTHER_WORDS if w not in (*options.keywords, *options.unknown_words)]
    synth, rng = Synthesizer.get(), np.random.default_rng(11)
    for label in options.classes:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            if label == SILENCE:
                wave = rng.standard_normal(synth.sample_rate) * rng.uniform(0.005, 0.1)
            else:
                word = label if label in options.keywords else words[index % len(words)]
                voice = Voice(str(rng.choice(accents)), str(rng.choice(variants)))
                wave = synth.say(word, voice, 175, 50, 50).astype(np.float64)
                noise = rng.standard_normal(len(wave))
                wave += noise * np.sqrt(np.mean(wave ** 2) / np.mean(noise ** 2) / 10 ** (rng.uniform(10, 20) / 10))
                wave *= 0.7 / max(1e-6, float(np.abs(wave).max()))
            wavfile.write(folder / label / f"{index:05d}.wav", synth.sample_rate, (wave * 32767).astype(np.int16))
    return per_class * len(options.classes)


def _digest(accents: list[str], variants: list[str]) -> str:
    """A short name for a voice set, for the folder its clips are written to."""
    return hashlib.sha256(json.dumps([accents, variants]).encode()).hexdigest()[:8]


def _teacher_scorer(manifest: dict, bundle: Path) -> Callable[[Path], float]:
    """The accuracy of the bundle's recipe's fp32 teacher (its `model.factory` and `model.weights`) on the WAV files
    in a folder, read through the bundle's preprocessing record as `verify --data` reads them."""
    import numpy as np
    import torch

    from shrink.api.factory import load_factory
    from shrink_data.readers import reader_for

    torch.set_num_threads(1)
    model, base = manifest["recipe"]["raw"]["model"], Path(manifest["recipe"]["path"]).parent
    net = load_factory(str(model["factory"]), base)()
    net.load_state_dict(torch.load(base / model["weights"], map_location="cpu", weights_only=True))
    net.eval()
    reader = reader_for(manifest["preprocessing"], bundle)

    def accuracy(folder: Path) -> float:
        samples = reader.read(folder)
        inputs = samples.inputs[reader.input]
        x = torch.from_numpy(np.stack([inputs[i] for i in range(len(samples))])).reshape(-1, *model["input_shape"][1:])
        with torch.no_grad():
            predicted = net(x).argmax(1).numpy()
        return float((predicted == np.asarray(samples.labels)).mean())

    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?", default=REPO / "dist" / "kws-cortex-m4")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kws-other-voices"))
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--teacher", action="store_true", help="also score the recipe's fp32 teacher (imports torch)")
    args = parser.parse_args()
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    from shrink_data.kws import KwsOptions

    data = manifest["recipe"]["raw"]["data"]
    options = KwsOptions.from_section({**data, "augment": None}, "source")
    accents, variants = outside_voices(options)
    voices, own = _digest(accents, variants), _digest(options.test_accents, options.test_variants)
    print(f"{len(accents)} accents x {len(variants)} variants outside the recipe's lists")
    print(f"{'scene':48} {'clips':>6} {'accuracy':>9} {'verdict':>8} {'seconds':>8}"
          + (f" {'teacher':>8} {'drop':>7}" if args.teacher else ""))
    print(f"{'the compile, its own eval voices':48} {'':>6} {manifest['metrics']['accuracy']:>9.2%} "
          f"{manifest['verdict']:>8}")
    teacher_accuracy = _teacher_scorer(manifest, args.bundle) if args.teacher else None
    for index, name in enumerate([*SCENES, PLAIN, OWN]):
        folder = args.out / f"voices-{own if name == OWN else voices}-{args.per_class}-scene{index}"
        if not folder.is_dir():
            if name == PLAIN:
                _write_plain(options, args.per_class, folder)
            else:
                _write_scene(options, SCENES.get(name, {}), args.per_class, folder, args.workers, own=name == OWN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "shrink", "verify", str(args.bundle), "--data", str(folder),
                               "--json"], capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode not in (0, 4) or not done.stdout:
            sys.exit(f"verify exited {done.returncode}:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        data = result["data"]
        verdict = "pass" if done.returncode == 0 else "fail"
        teacher = ""
        if teacher_accuracy:
            fp32 = teacher_accuracy(folder)
            teacher = f" {fp32:>8.2%} {(fp32 - data['accuracy']) * 100:>6.2f}p"
        print(f"{name:48} {data['samples']:>6} {data['accuracy']:>9.2%} {verdict:>8} {seconds:>8.0f}{teacher}", flush=True)


if __name__ == "__main__":
    main()
