"""Run a recipe's passes in this process (one rank of `torchrun`, or alone) and save what the test of
data-parallel distillation compares: the weights of the final (ONNX) model, the exported student, and
the sentence (or sample) indices each step of this rank trained on. Usage: `python tests/distributed_worker.py RECIPE OUT_DIR`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from shrink.commands import arguments
from shrink.engine.compile import load_plan
from shrink.engine.run import run_plan, workspace
from shrink_common import distributed


def main(recipe: Path, out: Path) -> None:
    seen: list[list[int]] = []
    shard = distributed.shard

    def recorded(batch):  # the indices this rank takes from each global batch
        mine = shard(batch)
        seen.append([int(i) for i in mine])
        return mine

    distributed.shard = recorded
    plan = load_plan(recipe, arguments.registry())
    with workspace() as workdir:
        result = run_plan(plan, arguments.registry(), workdir)
        weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(result.final.model)).graph.initializer}
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{distributed.rank()}.npz", **weights)
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps({"world": distributed.world(), "batches": seen}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
