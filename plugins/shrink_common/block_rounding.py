"""Block-wise 4-bit rounding in torch, exactly as ONNX Runtime's weight-only quantizer rounds (`quantize.weight_only`,
algorithm 'rtn', symmetric), and the per-tensor 8-bit rounding of its dynamic int8 kernels' inputs, so that a model
can train through them (`RoundedWeights`).

ONNX Runtime (MLAS) gives each block of `block` consecutive weights along the reduction axis (a table: along its
width) one scale: the block's largest-magnitude value over -2^(bits-1). That value is kept exactly (level -8) and
the others round to the nearest of the 16 levels -8..7 times the scale; an all-zero block stays zero. A weight that
is already on its block's grid comes back unchanged, so a model whose weights this module rounded quantizes without
loss. A torch `nn.Linear` holds `[out, in]`, the transpose of the ONNX MatMul weight `[K, N]`: its blocks run along
its last axis, as a table's do.
"""

from __future__ import annotations

import fnmatch

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


def round_blocks(weight: torch.Tensor, block: int, bits: int = 4) -> torch.Tensor:
    """`weight` rounded to `bits`-bit levels in blocks of `block` along its last axis (zero-padded to whole blocks)."""
    width = weight.shape[-1]
    pad = -width % block
    x = F.pad(weight, (0, pad)) if pad else weight
    x = x.reshape(*x.shape[:-1], -1, block)
    peak = x.gather(-1, x.abs().argmax(-1, keepdim=True))
    low = -(2 ** (bits - 1))
    scale = peak / low
    levels = torch.clamp(torch.round(x / torch.where(scale == 0, torch.ones_like(scale), scale)), low, -low - 1)
    return (levels * scale).reshape(*weight.shape[:-1], -1)[..., :width]


def round_activations(x: torch.Tensor) -> torch.Tensor:
    """`x` through ONNX's DynamicQuantizeLinear and back: one uint8 scale and zero point for the whole tensor, from
    its range widened to include 0 (what ONNX Runtime's dynamic int8 MatMul does to a linear layer's input)."""
    x = x.float()
    low, high = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
    scale = (high - low) / 255
    if scale == 0:
        return torch.zeros_like(x)
    zero = torch.clamp(torch.round(-low / scale), 0, 255)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def _activation_hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    x = args[0]
    return (x + (round_activations(x.detach()).to(x.dtype) - x.detach()), *args[1:])


class _StraightThrough(nn.Module):
    """A weight parametrization: forward sees the rounded weight, backward passes the gradient unchanged."""

    def __init__(self, block: int, bits: int) -> None:
        super().__init__()
        self.block, self.bits = block, bits

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (round_blocks(weight.detach(), self.block, self.bits) - weight.detach())


class RoundedWeights:
    """The linear weights and embedding tables of `model` seen through their block rounding while it trains.

    Each `nn.Linear` weight gets a straight-through parametrization (`block`); each `nn.Embedding` table is
    rounded once (`table_block`) and frozen, since a lookup's gradient would only move rows off their grid
    (`tables=False` leaves the tables alone). With `activations`, each linear layer's input is also seen through
    `round_activations` (straight through), as ONNX Runtime's dynamic int8 kernels quantize it. Modules whose
    qualified name matches an `exclude` pattern (fnmatch) keep float weights; a pattern matching no linear or table
    is an error. `bake()` ends the training: the parametrizations go, and every rounded weight holds exactly its
    rounded value."""

    def __init__(self, model: nn.Module, block: int, table_block: int, bits: int = 4, tables: bool = True,
                 exclude: tuple[str, ...] = (), activations: bool = False) -> None:
        self.block, self.table_block, self.bits = block, table_block, bits
        candidates = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear | nn.Embedding)}
        unmatched = [p for p in exclude if not any(fnmatch.fnmatchcase(name, p) for name in candidates)]
        if unmatched:
            raise ValueError(f"exclude pattern(s) {', '.join(map(repr, unmatched))} match no linear layer or embedding "
                             f"table (names look like {next(iter(candidates), 'none')!r})")
        chosen = {name: m for name, m in candidates.items() if not any(fnmatch.fnmatchcase(name, p) for p in exclude)}
        self.kept_float = sorted(set(candidates) - set(chosen))
        self.linears = {name: m for name, m in chosen.items() if isinstance(m, nn.Linear)}
        self.tables = {name: m for name, m in chosen.items() if isinstance(m, nn.Embedding) and tables}
        for module in self.linears.values():
            parametrize.register_parametrization(module, "weight", _StraightThrough(block, bits))
        self._hooks = [m.register_forward_pre_hook(_activation_hook) for m in self.linears.values()] if activations else []
        with torch.no_grad():
            for module in self.tables.values():
                module.weight.copy_(round_blocks(module.weight, table_block, bits))
                module.weight.requires_grad_(False)

    def bake(self) -> None:
        """Remove the parametrizations (and activation hooks), leaving each linear weight at exactly its rounded value."""
        for hook in self._hooks:
            hook.remove()
        for module in self.linears.values():
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            with torch.no_grad():
                module.weight.copy_(round_blocks(module.weight, self.block, self.bits))
        for module in self.tables.values():
            module.weight.requires_grad_(True)

    def off_grid(self) -> list[str]:
        """Names of rounded weights that are not on their block grid (none after `bake()`)."""
        return [name for name, m in {**self.linears, **self.tables}.items()
                if not torch.equal(m.weight, round_blocks(m.weight, self.block if name in self.linears else self.table_block,
                                                           self.bits))]
