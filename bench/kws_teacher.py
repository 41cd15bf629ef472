"""Keyword-spotting teacher choices, made on training speakers only: the DS-CNN teacher trained as before (no
augmentation), with the `kws` source's `data.augment` (time shift + SpecAugment-style masks), and with augmentation
and label smoothing, side by side in one run, each scored on a validation split of held-out *training* voices.

    python bench/kws_teacher.py [--train-per-class 600] [--epochs 30]

The validation split never touches the test voices: it is the `kws` source restricted to the training accents and
variants of `recipes/kws-cortex-m4.json`, with 3 of those accents x 5 of those variants speaking only validation
(speaker-independent, as the real split), so every choice here leaves the recipe's eval voices unseen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VALIDATION_ACCENTS = ["en-gb-x-gbclan", "fr", "pl"]
VALIDATION_VARIANTS = ["m2", "klatt", "Gene", "linda", "f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--validation-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    import torch

    sys.path.insert(0, str(REPO / "examples" / "kws"))
    from model import teacher

    from shrink_common.classifier import evaluate, split_tensors, train
    from shrink_common.training import TrainConfig
    from shrink_data.kws import KeywordSpotting, KwsAugment, KwsOptions

    torch.set_num_threads(1)
    section = json.loads((REPO / "recipes" / "kws-cortex-m4.json").read_text())["data"]
    recipe = KwsOptions.model_validate({k: v for k, v in section.items() if k not in ("source", "description")})
    options = recipe.model_copy(update={
        "accents": [a for a in recipe.accents if a not in recipe.test_accents],
        "variants": [v for v in recipe.variants if v not in recipe.test_variants],
        "test_accents": VALIDATION_ACCENTS, "test_variants": VALIDATION_VARIANTS,
        "train_per_class": args.train_per_class, "eval_per_class": args.validation_per_class,
        "calibration_size": 1, "seed": 7})
    KwsOptions.model_validate(options.model_dump())  # the validation voices must be training voices of the recipe
    started = time.perf_counter()
    data = KeywordSpotting(options).load(None)  # type: ignore[arg-type]  # the kws source does not use the context
    print(f"data: {len(data.split('train').inputs)} train clips, {len(data.split('eval').inputs)} validation clips "
          f"(held-out training voices) in {time.perf_counter() - started:.0f} s")
    x, y = split_tensors(data.split("train"), "kws_teacher")
    augment = (recipe.augment or KwsAugment()).model_dump()
    variants = [("no augmentation (before)", None, 0.0), ("data.augment", augment, 0.0),
                ("data.augment + label smoothing 0.1", augment, 0.1)]
    base = None
    print(f"{'teacher':40} {'train loss':>10} {'validation':>10} {'vs before':>10} {'seconds':>8}")
    for name, spec, smoothing in variants:
        torch.manual_seed(0)
        model = teacher()
        cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, weight_decay=1e-3, augment=False,
                          feature_augment=spec, label_smoothing=smoothing)
        result = train(model, x, y, cfg, 0)
        accuracy = evaluate(model, data.split("eval"))
        base = accuracy if base is None else base
        print(f"{name:40} {result.final_loss:>10.4f} {accuracy:>10.2%} {(accuracy - base) * 100:>+9.2f}p "
              f"{result.seconds:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
