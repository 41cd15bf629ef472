"""Deterministically train the keyword-spotting teacher (or, for a baseline, another DS-CNN) on CPU.

Usage::

    python examples/kws/train.py --augment           # the recipe's teacher -> examples/kws/teacher.pt
    python examples/kws/train.py --model student     # a baseline, not saved (unless --out FILE)

The data is the `kws` source with the options of `recipes/kws-cortex-m4.json` (eSpeak NG voices, noise, CMSIS-DSP
MFCCs, synthesised on the fly): it trains on the train voices and reports accuracy on the eval voices, which share no
accent and no voice variant with them. `--model` defaults to the recipe's teacher (its `model.factory` in
`examples/kws/model.py`). The shipped teacher is `--augment` (the recipe's `data.augment`: time shift and
SpecAugment-style masks, drawn afresh for every batch) with the other defaults; `--label-smoothing` and
`--weight-decay` are the other regularisers (`bench/kws_teacher.py` compares them on held-out training voices). The
saved file is a plain `state_dict` (`torch.load(..., weights_only=True)`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import model as models  # examples/kws/model.py
import torch

from shrink_common.classifier import count_macs, evaluate, split_tensors, train
from shrink_common.training import TrainConfig
from shrink_data.kws import KeywordSpotting, KwsOptions

HERE = Path(__file__).resolve().parent
RECIPE = HERE.parent.parent / "recipes" / "kws-cortex-m4.json"


def recipe_data(recipe: dict) -> KwsOptions:
    """The data section of the KWS recipe, so the teacher sees exactly the data the compile uses."""
    return KwsOptions.from_section(recipe["data"], "source")


def main() -> None:
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--recipe", type=Path, default=RECIPE, help="whose data and teacher (default: the KWS recipe)")
    recipe = json.loads(first.parse_known_args()[0].recipe.read_text())
    recipe_teacher = str(recipe["model"]["factory"]).rsplit(":", 1)[1]  # its function in examples/kws/model.py
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[first])
    parser.add_argument("--model", default=recipe_teacher,
                        choices=("teacher", "large_teacher", "wide_student", "student", "large_student"),
                        help="the DS-CNN of examples/kws/model.py (default: the recipe's teacher)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true", help="train with the recipe's data.augment")
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--train-per-class", type=int, default=None, help="train clips per class (default: the recipe's)")
    parser.add_argument("--workers", type=int, default=None, help="synthesis processes (default: the CPU count)")
    parser.add_argument("--out", type=Path, help="where to save the state_dict (default: examples/kws/teacher.pt for the "
                                                 "KWS recipe's teacher; anything else is saved only with --out)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    options = recipe_data(recipe)
    changes = {"train_per_class": args.train_per_class, "workers": args.workers}
    options = KwsOptions.model_validate({**options.model_dump(), **{k: v for k, v in changes.items() if v is not None}})
    data = KeywordSpotting(options).load(None)  # type: ignore[arg-type]  # the kws source does not use the context
    print(f"data: {', '.join(f'{k} {len(v)}' for k, v in data.splits.items())} in {time.perf_counter() - started:.1f} s")
    model = getattr(models, args.model)()
    x, y = split_tensors(data.split("train"), "train.py")
    # --augment: the recipe's data.augment (masks and a time shift, fresh every batch), as the compile's passes use it
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, weight_decay=args.weight_decay, augment=False,
                      feature_augment=data.meta.get("augment") if args.augment else None,
                      label_smoothing=args.label_smoothing)
    result = train(model, x, y, cfg, args.seed, report=lambda _f, line: print(line, flush=True))
    accuracy = evaluate(model, data.split("eval"))
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {params:,} parameters, {count_macs(model, torch.zeros(models.INPUT_SHAPE)):,} MACs, "
          f"eval accuracy (unseen voices) {accuracy:.2%}, {result.seconds:.0f} s")
    out = args.out or (HERE / "teacher.pt" if args.model == recipe_teacher and args.recipe == RECIPE else None)
    if out is not None:
        torch.save(model.state_dict(), out)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
