"""The widths of a torch model's layers, recorded and re-applied: what a pruned model needs to be rebuilt from
its original architecture (a factory, a Hugging Face config) so its weights load with `weights_only=True`.
Imported only from `run()` and the pass-cache hooks (it imports torch)."""

from __future__ import annotations

import torch

Widths = dict[str, dict[str, int]]


def set_submodule(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    """Replace the submodule at dotted path `name` (works inside nn.Sequential / ModuleList too)."""
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, module)


def record_shapes(model: torch.nn.Module) -> Widths:
    """The widths of every Conv, Linear, BatchNorm and 1-D LayerNorm: `{name: {"in", "out"[, "groups"]}}`."""
    nn = torch.nn
    shapes: dict[str, dict[str, int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            shapes[name] = {"in": module.in_channels, "out": module.out_channels, "groups": module.groups}
        elif isinstance(module, nn.Linear):
            shapes[name] = {"in": module.in_features, "out": module.out_features}
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            shapes[name] = {"in": module.num_features, "out": module.num_features}
        elif isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
            shapes[name] = {"in": module.normalized_shape[0], "out": module.normalized_shape[0]}
    return shapes


def _resized(module: torch.nn.Module, spec: dict[str, int]) -> torch.nn.Module:
    nn = torch.nn
    cin, cout = int(spec["in"]), int(spec["out"])
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return type(module)(cin, cout, module.kernel_size, stride=module.stride, padding=module.padding,
                            output_padding=module.output_padding, groups=int(spec.get("groups", module.groups)),
                            bias=module.bias is not None, dilation=module.dilation, padding_mode=module.padding_mode)
    if isinstance(module, nn.modules.conv._ConvNd):
        return type(module)(cin, cout, module.kernel_size, stride=module.stride, padding=module.padding,
                            dilation=module.dilation, groups=int(spec.get("groups", module.groups)),
                            bias=module.bias is not None, padding_mode=module.padding_mode)
    if isinstance(module, nn.Linear):
        return type(module)(cin, cout, bias=module.bias is not None)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return type(module)(cout, eps=module.eps, momentum=module.momentum, affine=module.affine,
                            track_running_stats=module.track_running_stats)
    if isinstance(module, nn.LayerNorm):
        return type(module)(cout, eps=module.eps, elementwise_affine=module.elementwise_affine,
                            bias=getattr(module, "bias", None) is not None)
    raise TypeError(f"cannot resize a {type(module).__name__}")


def record_shapes_of(module: torch.nn.Module) -> dict[str, int]:
    """`record_shapes` for one module ({} for a module without recorded widths)."""
    wrapper = torch.nn.Module()
    wrapper.add_module("m", module)
    return record_shapes(wrapper).get("m", {})


def resize_modules(model: torch.nn.Module, shapes: Widths) -> torch.nn.Module:
    """Replace each module of `model` whose widths differ from `shapes` (from `record_shapes`) by a fresh one of
    the recorded widths, in place; the new modules' parameters are placeholders until `load_state_dict`. A
    name `model` does not have is a `KeyError`."""
    for name, spec in shapes.items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise KeyError(name) from None
        current = record_shapes_of(old)
        if current != {k: int(v) for k, v in spec.items() if k in current}:
            set_submodule(model, name, _resized(old, spec))
    return model
