"""A keyword-spotting bundle on voices that neither its training nor its eval split used, as an outside scorer would
run it: `shrink verify BUNDLE --data FOLDER` on WAV files in label folders, beside the compile's own accuracy.

    python bench/kws_other_voices.py [BUNDLE] [--per-class 50] [--voices all] [--out /tmp/kws-other-voices] [--workers 2]

The voices are eSpeak NG's that the recipe lists nowhere (`bench/kws_teacher.py`'s `MORE_ACCENTS` x
`MORE_VARIANTS`: 20 European languages speaking the English words, 37 voice variants: not `rob`, on which the eSpeak
NG of espeakng-loader 0.2.4 segfaults, gd+rob saying "backward" at 124 wpm). `--voices "other half"` takes only the
half of them (`OTHER_VOICES`) that a recipe trained on the other half has never heard. Two scenes, each written as
16 kHz float WAV files and scored by `verify --data` in a fresh process through the bundle's own record (CMSIS-DSP
MFCCs, the train split's standardization) under TFLite Micro, against the recipe's budgets:

1. the recipe's noise (5-30 dB SNR, 30% of clips through a cheap microphone);
2. louder noise and a worse microphone (0-15 dB SNR on every word clip, 80% of clips band-limited).

Prints each scene's accuracy and verdict beside the compile's accuracy on its own eval voices.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from kws_teacher import MORE_ACCENTS, OTHER_VOICES, SPEAKABLE_MORE_VARIANTS, eval_only  # bench/kws_teacher.py

REPO = Path(__file__).resolve().parents[1]
SCENES: dict[str, dict] = {
    "other voices, the recipe's noise": {},
    "other voices, 0-15 dB SNR, 80% band-limited": {"snr_db": (0.0, 15.0), "noise_probability": 1.0,
                                                    "band_limit_probability": 0.8},
}


def _write_scene(recipe: dict, scene: dict, per_class: int, folder: Path, workers: int,
                 voices: tuple[list[str], list[str]]) -> int:
    """The scene's clips as WAV files in `folder/<label>/`; the number written."""
    import numpy as np
    from scipy.io import wavfile

    from shrink_data.kws import KwsOptions
    from shrink_data.kws_synth import synthesize

    data = {k: v for k, v in recipe["data"].items() if k not in ("source", "description", "augment")}
    options = KwsOptions.model_validate(data)
    options = KwsOptions.model_validate({**options.model_dump(), **scene, **eval_only(options, voices),
                                         "eval_per_class": per_class})
    waves, labels = synthesize(options, "eval", per_class * len(options.classes), [options.seed, 7], workers=workers,
                               waves=True)
    for index, (wave, label) in enumerate(zip(waves, labels)):
        target = folder / options.classes[int(label)]
        target.mkdir(parents=True, exist_ok=True)
        wavfile.write(target / f"{index:05d}.wav", options.sample_rate, wave.astype(np.float32))
    return len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?", default=REPO / "dist" / "kws-cortex-m4")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kws-other-voices"))
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--voices", choices=("all", "other half"), default="all",
                        help="all the more voices, or the half that kws_teacher.py's 'half the more voices' never trains on")
    args = parser.parse_args()
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    recipe = manifest["recipe"]["raw"]
    print(f"{'scene':48} {'clips':>6} {'accuracy':>9} {'verdict':>8} {'seconds':>8}")
    print(f"{'the compile, its own eval voices':48} {'':>6} {manifest['metrics']['accuracy']:>9.2%} "
          f"{manifest['verdict']:>8}")
    for index, (name, scene) in enumerate(SCENES.items()):
        folder = args.out / f"{args.voices.replace(' ', '-')}-{args.per_class}-scene{index}"
        if not folder.is_dir():
            _write_scene(recipe, scene, args.per_class, folder, args.workers,
                         (MORE_ACCENTS, SPEAKABLE_MORE_VARIANTS) if args.voices == "all" else OTHER_VOICES)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "shrink", "verify", str(args.bundle), "--data", str(folder),
                               "--json"], capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode not in (0, 4) or not done.stdout:
            sys.exit(f"verify exited {done.returncode}:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        data = result["data"]
        verdict = "pass" if done.returncode == 0 else "fail"
        print(f"{name:48} {data['samples']:>6} {data['accuracy']:>9.2%} {verdict:>8} {seconds:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
