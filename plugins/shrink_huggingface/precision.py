"""The arithmetic a distillation trains in: bfloat16 autocast where the CPU multiplies bf16 natively, else
float32. Weights, optimizer state and the losses stay float32 either way; autocast runs the matrix products
(and what follows them until a float32 op) in bf16, twice as many per instruction on such CPUs. Where bf16 is
emulated it is slower than float32, so `auto` asks the CPU."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator

import torch


def native_bf16() -> str | None:
    """The CPU feature that runs bfloat16 matrix products natively (`AMX`, `AVX512-BF16`, `Arm BF16`), or None."""
    cpu = getattr(torch, "cpu", None)
    for probe, name in (("_is_amx_tile_supported", "AMX"), ("_is_avx512_bf16_supported", "AVX512-BF16")):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return name
        except (RuntimeError, AttributeError):  # pragma: no cover - a build without the probe
            continue
    if platform.machine().lower() in ("aarch64", "arm64"):
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return "Arm BF16"
        except (RuntimeError, AttributeError):  # pragma: no cover
            return None
    return None


def resolve_precision(requested: str) -> tuple[str, str]:
    """(`float32` or `bfloat16`, why) for a pass's `precision` option (`auto`, `float32`, `bfloat16`)."""
    if requested != "auto":
        return requested, "set in the recipe"
    feature = native_bf16()
    if feature:
        return "bfloat16", f"auto: the CPU multiplies bfloat16 natively ({feature})"
    return "float32", "auto: the CPU has no native bfloat16 matrix products (AVX512-BF16, AMX or Arm BF16)"


@contextlib.contextmanager
def autocast(precision: str) -> Iterator[None]:
    """bfloat16 autocast on the CPU for `bfloat16`; nothing for `float32`."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        yield
