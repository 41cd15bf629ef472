"""torch set-up every family's passes share: threads and seeds, parameter counts, and the fingerprint the
engine compares to catch a pass that modifies its input model. Imported only from `run()`/`load()`."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch

THREADS_ENV = "SHRINK_TORCH_THREADS"


def setup_torch(seed: int) -> None:
    """One intra-op thread by default (small models run several times slower with more on few cores)."""
    torch.set_num_threads(int(os.environ.get(THREADS_ENV, "1")))
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def count_params(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer as stored (what an fp32 export would carry as weights)."""
    return int(sum(t.numel() * t.element_size() for t in model.state_dict().values()))


def state_fingerprint(model: torch.nn.Module) -> str:
    """Changes whenever a parameter or buffer is replaced or modified in place (torch counts in-place
    writes per tensor), without reading the weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict(keep_vars=True).items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}:{tensor.data_ptr()}:{tensor._version};".encode())
    return digest.hexdigest()
