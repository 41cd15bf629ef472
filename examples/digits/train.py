"""Deterministically train the digits teacher (or, for a baseline, the student) on CPU.

Usage::

    python examples/digits/train.py                      # teacher -> examples/digits/teacher.pt
    python examples/digits/train.py --model student      # student baseline, not saved

Trains only on the "train" split of `digits_splits(image_size=32, seed=0)` and reports accuracy
on "eval". The saved file is a plain `state_dict` loadable with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from model import INPUT_SHAPE, student, teacher
from torch import nn

from shrink_common.classifier import count_macs
from shrink_common.torch_setup import count_params
from shrink_sklearn.digits import digits_splits

HERE = Path(__file__).resolve().parent
BUILDERS: dict[str, Callable[[], nn.Module]] = {"teacher": teacher, "student": student}
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
MAX_SHIFT = 2


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = MAX_SHIFT) -> torch.Tensor:
    """Shift each image by a random (dy, dx) in [-max_shift, max_shift], filling with zeros."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of `model` (in eval mode) on `(x, y)`."""
    model.eval()
    return (model(x).argmax(dim=1) == y).float().mean().item()


def train(
    model: nn.Module,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    eval_xy: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    seed: int,
) -> float:
    """Train with Adam + cosine LR and shift augmentation; return the final eval accuracy."""
    x_train, y_train = train_xy
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    steps_per_epoch = (len(x_train) + BATCH_SIZE - 1) // BATCH_SIZE
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=LEARNING_RATE, total_steps=epochs * steps_per_epoch
    )
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x_train), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            xb = random_shift(x_train[idx], generator)
            yb = y_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(dim=1) == yb).sum().item()
        eval_acc = accuracy(model, *eval_xy)
        print(
            f"epoch {epoch:2d}/{epochs}  loss {loss_sum / len(x_train):.4f}  "
            f"train_acc {correct / len(x_train):.4f}  eval_acc {eval_acc:.4f}",
            flush=True,
        )
    model.eval()
    return accuracy(model, *eval_xy)


def _tensors(xy: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy a read-only numpy split into torch tensors."""
    x, y = xy
    return torch.from_numpy(np.array(x, dtype=np.float32)), torch.from_numpy(np.array(y, dtype=np.int64))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, train, report and (for the teacher, by default) save the state_dict."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(BUILDERS), default="teacher", help="which model to train")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to save the state_dict (default: teacher.pt beside this script for the teacher; "
        "the student is saved only when --out is given)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for init, shuffling and augmentation")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    splits = digits_splits(image_size=32, seed=0)
    train_xy, eval_xy = _tensors(splits["train"]), _tensors(splits["eval"])
    model = BUILDERS[args.model]()
    print(
        f"{args.model}: {count_macs(model, torch.zeros(INPUT_SHAPE)):,} MACs, {count_params(model):,} params; "
        f"train {len(train_xy[0])}, eval {len(eval_xy[0])} images",
        flush=True,
    )

    started = time.perf_counter()
    final_acc = train(model, train_xy, eval_xy, args.epochs, args.seed)
    elapsed = time.perf_counter() - started
    print(f"final eval accuracy {final_acc:.4f} ({final_acc * len(eval_xy[0]):.0f}/{len(eval_xy[0])})")
    print(f"training time {elapsed:.1f} s; MACs {count_macs(model, torch.zeros(INPUT_SHAPE)):,}; params {count_params(model):,}")

    out = args.out if args.out is not None else (HERE / "teacher.pt" if args.model == "teacher" else None)
    if out is not None:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        torch.save(state, out)
        print(f"saved {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
