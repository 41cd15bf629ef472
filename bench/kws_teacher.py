"""Keyword-spotting teacher choices, made on training speakers only: the DS-CNN teacher trained as before (no
augmentation), with the `kws` source's `data.augment` (time shift + SpecAugment-style masks), with augmentation
and label smoothing, mixup or a channel offset, with stronger masks, on clips spoken by more training voices
(`MORE_ACCENTS`, `MORE_VARIANTS`), on clips with wider speaking rate, pitch and tempo ranges or more band limiting,
and a larger teacher, side by side in one run, each scored on a validation split of held-out *training* voices.

    python bench/kws_teacher.py [--train-per-class 600] [--epochs 30] [--split matched] [--variant NAME ...]
                                [--other-voices PER_CLASS] [--save DIR] [--workers 1]

The validation split never touches the test voices: it is the `kws` source restricted to the training accents and
variants of `recipes/kws-cortex-m4.json`, with some of those accents x some of those variants speaking only
validation (`--split`: "before" 3 x 5, "matched" 4 x 7 built like the test voices; speaker-independent, as the real
split), so every choice here leaves the recipe's eval voices unseen. Variants that change the clips (ranges, band
limiting) keep the same validation clips. `--save DIR` writes each teacher for `bench/kws_validation.py --teacher`.
`--other-voices N` also scores each teacher on N clips per class spoken by voices outside the recipe's lists
(`outside_voices`: the half of `MORE_ACCENTS` x `MORE_VARIANTS` that the recipe does not train on).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Validation voices, all training voices of the recipe (never a test accent or variant), held out from training here.
# "before": 3 accents x 5 variants, as the first choices were made. "matched": built like the test voices (2 English
# dialects and 2 other languages; 1 numbered, 1 klatt and 5 named variants, where "before" had 2 named): 4 x 7 voices.
SPLITS = {"before": (["en-gb-x-gbclan", "fr", "pl"], ["m2", "klatt", "Gene", "linda", "f1"]),
          "matched": (["en-gb-x-gbclan", "en-us-nyc", "fr", "pl"], ["m2", "klatt", "Gene", "linda", "Michael", "anika", "max"])}
# More training voices: the eSpeak NG languages of Europe written in the Latin script that the recipe did not list
# (fo has no dictionary in the wheel), and every variant without `breath` noise (which would make the data differ
# from run to run) except robots, names with spaces and the relatives of a test or validation variant (AnxiousAndy,
# iven2-4, Gene2). None of them is a test or validation voice.
MORE_ACCENTS = ["af", "bs", "ca", "cy", "et", "eu", "ga", "gd", "hr", "hu", "is", "lb", "lt", "lv", "mt", "nb", "ro", "sk",
                "sl", "sq"]
MORE_VARIANTS = ["Andrea", "Diogo", "Henrique", "Hugo", "Marco", "Mario", "Mike", "Nguyen", "RicishayMax", "Tweaky",
                 "announcer", "antonio", "aunty", "ed", "edward2", "fast", "grandma", "grandpa", "gustave", "ian",
                 "kaukovalta", "klatt5", "marcelo", "michel", "miguel", "mike2", "pablo", "paul", "pedro", "quincy", "rob",
                 "robert", "shelby", "steph", "steph2", "steph3", "travis", "zac"]
MORE_VOICES = {"accents": MORE_ACCENTS, "variants": MORE_VARIANTS}
# Those voices in two halves: one that recipes/kws-cortex-m4.json trains on (every other one, listed in its
# `data.accents` and `data.variants`), the other (`outside_voices`) to score on voices outside the recipe's lists that
# nothing trains on. Without `rob`: eSpeak NG segfaults on gd+rob "backward" at some rates (bench/kws_other_voices.py).
SPEAKABLE_MORE_VARIANTS = [v for v in MORE_VARIANTS if v != "rob"]
HALF_MORE_VOICES = {"accents": MORE_ACCENTS[0::2], "variants": SPEAKABLE_MORE_VARIANTS[0::2]}


def outside_voices(recipe: Any) -> tuple[list[str], list[str]]:
    """The accents and variants of `MORE_ACCENTS` x `SPEAKABLE_MORE_VARIANTS` that the KwsOptions `recipe` lists
    nowhere: voices neither its training nor its eval split uses."""
    return ([a for a in MORE_ACCENTS if a not in recipe.accents],
            [v for v in SPEAKABLE_MORE_VARIANTS if v not in recipe.variants])


def eval_only(options: Any, voices: tuple[list[str], list[str]]) -> dict[str, list[str]]:
    """KwsOptions fields that add `voices` (accents, variants) to `options`' and let them speak only the eval split."""
    return {"accents": [*options.accents, *voices[0]], "test_accents": list(voices[0]),
            "variants": [*options.variants, *voices[1]], "test_variants": list(voices[1])}


def restandardized(inputs: Any, labels: Any, old: dict, new: dict) -> Any:
    """A `Split` of MFCCs standardized with the constants `old`, standardized with `new` instead."""
    import numpy as np

    from shrink import Split

    raw = np.asarray(inputs) * np.asarray(old["std"]) + np.asarray(old["mean"])
    return Split(((raw - np.asarray(new["mean"])) / np.asarray(new["std"])).astype(np.float32), labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--validation-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--variant", action="append", help="only these (repeatable; names as printed)")
    parser.add_argument("--split", choices=list(SPLITS), default="matched", help="the validation voices")
    parser.add_argument("--workers", type=int, default=None, help="synthesis processes (default: the CPU count)")
    parser.add_argument("--other-voices", type=int, default=0, metavar="PER_CLASS",
                        help="also score each teacher on this many clips per class spoken by outside_voices (0: not)")
    parser.add_argument("--save", type=Path, help="write each teacher's state_dict here (for kws_validation.py --teacher)")
    args = parser.parse_args()

    import torch

    sys.path.insert(0, str(REPO / "examples" / "kws"))
    import model as models  # examples/kws/model.py

    from shrink import Split
    from shrink_common.classifier import evaluate, split_tensors, train
    from shrink_common.training import TrainConfig
    from shrink_data.kws import KeywordSpotting, KwsAugment, KwsOptions

    torch.set_num_threads(1)
    section = json.loads((REPO / "recipes" / "kws-cortex-m4.json").read_text())["data"]
    recipe = KwsOptions.from_section(section, "source")
    options = recipe.model_copy(update={
        "accents": [a for a in recipe.accents if a not in recipe.test_accents],
        "variants": [v for v in recipe.variants if v not in recipe.test_variants],
        "test_accents": SPLITS[args.split][0], "test_variants": SPLITS[args.split][1],
        "train_per_class": args.train_per_class, "eval_per_class": args.validation_per_class,
        "calibration_size": 1, "seed": 7, "workers": args.workers})
    KwsOptions.model_validate(options.model_dump())  # the validation voices must be training voices of the recipe
    augment = (recipe.augment or KwsAugment()).model_dump()
    # name -> (data.augment or None, label smoothing, data options changed: "accents" and "variants" are added to the
    # recipe's training voices, others replace the recipe's[, the model's factory in examples/kws/model.py])
    variants = {"no augmentation (before)": (None, 0.0, {}), "data.augment": (augment, 0.0, {}),
                "data.augment + label smoothing 0.1": (augment, 0.1, {}),
                "data.augment + more voices": (augment, 0.0, MORE_VOICES),
                "data.augment + mixup 0.2": ({**augment, "mixup": 0.2}, 0.0, {}),
                "data.augment + mixup 0.5": ({**augment, "mixup": 0.5}, 0.0, {}),
                "data.augment + channel offset 0.3": ({**augment, "channel_offset": 0.3}, 0.0, {}),
                "data.augment + channel offset 0.6": ({**augment, "channel_offset": 0.6}, 0.0, {}),
                "data.augment + mixup 0.2 + channel offset 0.3": ({**augment, "mixup": 0.2, "channel_offset": 0.3}, 0.0, {}),
                "stronger masks": ({**augment, "time_masks": 3, "time_mask": 8, "feature_masks": 2, "feature_mask": 2},
                                   0.0, {}),
                # the data's own speaker and channel ranges widened (clips synthesised again)
                "data.augment + tempo 0.8-1.25": (augment, 0.0, {"tempo": (0.8, 1.25)}),
                "data.augment + pitch 0-99": (augment, 0.0, {"pitch": (0.0, 99.0)}),
                "data.augment + tempo 0.8-1.25, pitch 0-99, rate 80-280": (
                    augment, 0.0, {"tempo": (0.8, 1.25), "pitch": (0.0, 99.0), "rate_wpm": (80.0, 280.0)}),
                "data.augment + band limit 0.6": (augment, 0.0, {"band_limit_probability": 0.6}),
                # a larger teacher (examples/kws/model.py:large_teacher): room for what augmentation asks of it
                "data.augment, large teacher": (augment, 0.0, {}, "large_teacher")}
    loaded: dict[str, Any] = {}

    def data_for(more: dict) -> tuple:
        key = json.dumps(more)
        if key not in loaded:
            voices = {k: [*getattr(options, k), *(v for v in more[k] if v not in getattr(options, k))]
                      for k in ("accents", "variants") if k in more}
            # options other than the voices would change the validation clips too: those keep the recipe's
            # validation clips (standardized again with the new training clips' constants), so all compare alike
            other = set(more) - {"accents", "variants"}
            extended = options.model_copy(update={**more, **voices, **({"eval_per_class": 1} if other else {})})
            KwsOptions.model_validate(extended.model_dump())
            started = time.perf_counter()
            data = KeywordSpotting(extended).load(None)  # type: ignore[arg-type]  # the kws source does not use the context
            validation = data.split("eval")
            if other:
                base_validation = data_for({})[2]
                validation = restandardized(base_validation.inputs, base_validation.labels,
                                            loaded["standardization", json.dumps({})], data.meta["standardization"])
            print(f"data ({len(extended.voices('train'))} training voices): {len(data.split('train').inputs)} train clips, "
                  f"{len(validation.inputs)} validation clips (held-out training voices) in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            loaded[key] = (*split_tensors(data.split("train"), "kws_teacher"), validation)
            loaded["standardization", key] = data.meta["standardization"]
        return loaded[key]

    def other_voices(more: dict) -> Split:
        """`--other-voices` clips per class spoken by outside_voices, standardized as the teacher's training clips."""
        if "other" not in loaded:
            other = options.model_copy(update={**eval_only(options, outside_voices(recipe)), "train_per_class": 50,
                                               "eval_per_class": args.other_voices})
            data = KeywordSpotting(KwsOptions.model_validate(other.model_dump())).load(None)  # type: ignore[arg-type]
            loaded["other"] = data.split("eval"), data.meta["standardization"]
        clips, own = loaded["other"]
        return restandardized(clips.inputs, clips.labels, own, loaded["standardization", json.dumps(more)])

    unknown = sorted(set(args.variant or []) - set(variants))
    if unknown:
        sys.exit(f"--variant: unknown {', '.join(unknown)} (known: {'; '.join(variants)})")
    base = None
    print(f"{'teacher':40} {'train loss':>10} {'validation':>10} {'vs first':>10} {'seconds':>8}"
          + (f" {'other voices':>12}" if args.other_voices else ""))
    for name in args.variant or list(variants):
        spec, smoothing, more, *factory = variants[name]
        x, y, validation = data_for(more)
        torch.manual_seed(0)
        model = getattr(models, factory[0] if factory else "teacher")()
        cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, weight_decay=1e-3, augment=False,
                          feature_augment=spec, label_smoothing=smoothing)
        result = train(model, x, y, cfg, 0)
        accuracy = evaluate(model, validation)
        base = accuracy if base is None else base
        other = f" {evaluate(model, other_voices(more)):>12.2%}" if args.other_voices else ""
        print(f"{name:40} {result.final_loss:>10.4f} {accuracy:>10.2%} {(accuracy - base) * 100:>+9.2f}p "
              f"{result.seconds:>8.0f}{other}", flush=True)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), args.save / f"{args.split}-{name.replace(' ', '_').replace('+', 'and')}.pt")


if __name__ == "__main__":
    main()
