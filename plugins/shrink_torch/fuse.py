"""`fuse.bn`: fold eval-mode BatchNorm into the convolution that feeds it (torch → torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from shrink import Artifact, Context, Pass, PassOptions

if TYPE_CHECKING:
    from torch import nn


class FusionError(RuntimeError):
    """Folding BatchNorm changed the model's outputs beyond the tolerance."""


class FuseBatchNormOptions(PassOptions):
    """Options of the `fuse.bn` pass."""

    tolerance: float = Field(1e-4, gt=0, le=1, description="largest allowed max-abs change of the outputs on eval inputs")
    samples: int = Field(64, ge=1, le=4096, description="eval inputs used to measure the output change")


class FuseBatchNorm(Pass[FuseBatchNormOptions]):
    """Fold BatchNorm into the preceding Conv (eval mode) and gate on the output change."""

    name = "fuse.bn"
    consumes = ("torch",)
    produces = "torch"

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import copy

        import numpy as np

        from shrink_common.classifier import predict
        from shrink_common.parity import parity_feeds
        from shrink_common.torch_setup import setup_torch

        opts = self.options
        setup_torch(ctx.seed)
        model = copy.deepcopy(artifact.model).eval()
        ctx.report(0.1, "finding Conv → BatchNorm pairs")
        feeds, origin = parity_feeds(artifact, ctx, opts.samples)
        example = feeds[artifact.inputs[0]["name"]]
        fused, pairs, method = fuse_conv_bn(model)
        ctx.report(0.7, f"folded {len(pairs)} BatchNorm layer(s); checking outputs")
        before = predict(artifact.model, example)
        after = predict(fused, example)
        max_abs = float(np.max(np.abs(before - after))) if before.size else 0.0
        if not max_abs < opts.tolerance:
            raise FusionError(f"folding BatchNorm changed the outputs by max |Δ| = {max_abs:.3g} "
                              f"(tolerance {opts.tolerance:g}) on {len(example)} inputs")
        remaining = sum(1 for m in fused.modules() if _is_bn(m))
        previous = [list(p) for p in artifact.meta.get("fused_bn") or []]
        return artifact.evolve(
            model=fused,
            meta={"fused_bn": previous + [list(p) for p in pairs]},
            details={"fused": len(pairs), "batchnorm_left": remaining, "method": method,
                     "max_abs_change": max_abs, "inputs": len(example), "inputs_from": origin},
        )

def _is_bn(module: Any) -> bool:
    from torch import nn

    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _is_conv(module: Any) -> bool:
    from torch import nn

    return isinstance(module, nn.modules.conv._ConvNd)


def conv_bn_pairs(model: nn.Module) -> tuple[list[tuple[str, str]], str]:
    """(conv, bn) module-name pairs where the conv's output feeds only that BN, and how they were found.

    Traced with torch.fx when possible (any module structure); otherwise adjacent children of
    `nn.Sequential` containers, whose order is their execution order.
    """
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        return _sequential_pairs(model), "sequential"
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not _is_bn(modules.get(node.target)):
            continue
        (src, *rest) = node.args or (None,)
        if rest or node.kwargs or not isinstance(src, torch.fx.Node) or src.op != "call_module":
            continue
        if not _is_conv(modules.get(src.target)) or len(src.users) != 1:
            continue
        if calls.get(src.target) != 1 or calls.get(node.target) != 1:
            continue  # a shared module: folding would change its other uses
        pairs.append((str(src.target), str(node.target)))
    return pairs, "fx"


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    from torch import nn

    pairs = []
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (a_name, a), (b_name, b) in zip(children, children[1:]):
            if _is_conv(a) and _is_bn(b):
                join = f"{prefix}." if prefix else ""
                pairs.append((join + a_name, join + b_name))
    return pairs


def fuse_conv_bn(model: nn.Module) -> tuple[nn.Module, list[tuple[str, str]], str]:
    """Fold each (conv, bn) pair in place (`model` must be a copy in eval mode): the conv gets the
    folded weights and a bias, the BatchNorm becomes `nn.Identity`, so module names stay stable."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from shrink_common.widths import set_submodule

    model.eval()
    pairs, method = conv_bn_pairs(model)
    done = []
    for conv_name, bn_name in pairs:
        conv = model.get_submodule(conv_name)
        bn = model.get_submodule(bn_name)
        if bn.running_mean is None or bn.running_var is None or conv.out_channels != bn.num_features:
            continue
        transpose = isinstance(conv, nn.modules.conv._ConvTransposeNd)
        fused = fuse_conv_bn_eval(conv, bn, transpose=transpose)
        # torch leaves a bias it had to create frozen; trainable like the weight, as in the model the pass cache
        # restores (`rebuild`), so a pass that trains after this one does the same either way
        fused.bias.requires_grad_(fused.weight.requires_grad)
        set_submodule(model, conv_name, fused)
        set_submodule(model, bn_name, nn.Identity())
        done.append((conv_name, bn_name))
    return model, done, method


def fused_for_inference(model: nn.Module) -> nn.Module:
    """A fast inference-only copy for teachers: BN folded, channels-last memory format."""
    import copy

    import torch

    fast = copy.deepcopy(model).eval()
    try:
        fast, _, _ = fuse_conv_bn(fast)
    except Exception:
        fast = copy.deepcopy(model).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast.to(memory_format=torch.channels_last)
