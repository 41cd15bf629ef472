"""Data-parallel training under `torchrun` for the distillation passes (`distill.kd`, `distill.tinybert`,
`distill.mobilebert`): the process group, each rank's share of a batch, the loss normalisation that
makes N ranks train the student a single process would, evaluation and loss sums across ranks, and
rank 0's files shared with the others.

Without torchrun's variables every function is the identity (or a no-op), so a plain compile runs the
code it always ran, bit for bit.

How N ranks equal one process (within float rounding): every rank draws the same global batches (the
same seeded generator, the same data), takes a disjoint share of each (`shard`: every N-th sample), and
DDP averages the gradients. A loss that is a mean over the batch's samples (or tokens, or token pairs)
is divided by the *global* count over the ranks, times N (`mean_count`), so the averaged gradient is
the one-process batch's. What does not carry over: BatchNorm batch statistics (each rank normalises
over its share; a GPU-resident module is converted to SyncBatchNorm by `wrap`, but torch has no CPU
SyncBatchNorm and the passes train on the CPU, so a BatchNorm student equals a run whose BatchNorm sees
batch/N samples at a time, "ghost batch norm"; DDP keeps rank 0's running statistics on every rank) and
dropout masks (each rank
draws its own); the passes' defaults (dropout 0 for the BERT students) keep the equality.

torch's `DistributedSampler` deals samples from its own permutation, so it cannot reproduce the
one-process batches (length-grouped for TinyBERT, augmentation drawn per global batch for KD) nor keep
the plain run's order; `shard` splits the same global batches instead, which also re-shuffles every
epoch through the shared generator (what `set_epoch` is for).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from shrink.errors import UsageError
from shrink.support import ranks

Item = TypeVar("Item")


def active() -> bool:
    """Whether this process is one of several ranks of a torchrun launch."""
    return ranks.world_size() > 1


def world() -> int:
    return ranks.world_size()


def rank() -> int:
    return ranks.rank()


def is_writer() -> bool:
    return ranks.is_writer()


def backend() -> str:
    """gloo for CPU tensors, and NCCL for CUDA tensors where there is a GPU (torch routes each collective
    by its tensors' device)."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init(batch_size: int | None = None, who: str = "") -> None:
    """Join torchrun's process group (once per process; the environment names the rendezvous); a no-op
    without torchrun. Each rank needs at least one sample of every batch."""
    if not active():
        return
    if batch_size is not None and batch_size < world():
        raise UsageError(f"batch_size {batch_size} is below the {world()} ranks: each rank needs a share of every batch",
                         where=who or None)
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend())


def single_node() -> bool:
    """Whether every rank runs on this machine (rank 0's files are then readable by all)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", world())) == world()


def positions() -> slice:
    """Which rows of a global batch are this rank's: every N-th from the rank's position (disjoint, together
    the whole batch; balanced in length when the batch is sorted by length)."""
    return slice(rank(), None, world()) if active() else slice(None)


def shard(batch: Sequence[Item] | Any) -> Any:
    """This rank's share of a global batch (`positions`)."""
    return batch[positions()]


def share_weight(local: int, total: int) -> float:
    """The factor that turns the mean loss over this rank's `local` samples into its part of the mean over
    the global batch of `total` samples (DDP averages the ranks' gradients): local·N/total; 1 alone."""
    return local * world() / total if active() else 1.0


def mean_count(count: torch.Tensor) -> torch.Tensor:
    """The divisor of a mean over a sharded batch: the count summed over the ranks divided by N (so DDP's
    average of the ranks' gradients is the gradient of the global mean); `count` itself alone."""
    if not active():
        return count
    total = count.detach().clone().float()
    dist.all_reduce(total)
    return total / world()


def wrap(module: nn.Module, unused: bool = False) -> nn.Module:
    """`module` under DistributedDataParallel (its structure final: wrap after pruning or freezing), or
    itself alone. `unused`: some parameters may get no gradient in a step (switched-off loss terms,
    blocks a stage does not run)."""
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    on_gpu = any(p.is_cuda for p in module.parameters())
    if on_gpu:  # torch's SyncBatchNorm runs on GPUs only
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return DistributedDataParallel(module, device_ids=[torch.cuda.current_device()] if on_gpu else None,
                                   find_unused_parameters=unused)


def same_buffers(module: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics: DDP sends them before each forward,
    so after the last step each rank holds those of its own last share)."""
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def sum_across(values: Sequence[float]) -> list[float]:
    """Each value summed over the ranks (float64); the values alone."""
    if not active():
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def from_writer(value: Any) -> Any:
    """Rank 0's `value` on every rank (any picklable object)."""
    if not active():
        return value
    box = [value if is_writer() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every rank gets here."""
    if active():
        dist.barrier()
