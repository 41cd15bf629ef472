"""`compress.cluster`: Deep Compression's weight sharing (Han et al. 2016, stage 3): each layer's weights are
clustered into `clusters` shared values (or its kind's count in `clusters_by_kind`: depthwise, other conv, linear)
by k-means (scikit-learn, 1-D, linear or density initialisation), then fine-tuned with KD from the unclustered
model: `finetune: "centroids"` trains the shared values (centroids) while every weight stays tied to its cluster
(the gradient of a centroid is the sum over its weights); `finetune: "weights"` is clustering-aware training (as
TensorFlow Model Optimization's clustering): the forward pass uses each weight's nearest centroid, the weight
trains straight through and may change cluster, and the centroids train as above.

The result is a torch model whose Conv/Linear weights take at most `clusters` distinct values per layer. Storage
is `ceil(log2 clusters)` index bits per weight plus the codebook; `export.tflite` codes it as TFLite Micro
look-up tables where the target decodes them, and reports the sizes. BatchNorm must be folded first (`fuse.bn`):
folding it afterwards scales each channel and undoes the sharing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from shrink import Artifact, Context, Pass, PlanContext, UsageError
from shrink_common.options import TrainingOptions

if TYPE_CHECKING:
    import torch
    from torch import nn


class ClusterOptions(TrainingOptions):
    """Options of the `compress.cluster` pass."""

    search_space = {"clusters": {"choice": [8, 16, 32, 64]}, "finetune_epochs": {"int": [0, 10]}}

    clusters: int = Field(16, ge=2, le=256, description="shared values per layer (16: 4-bit indices)")
    clusters_by_kind: dict[Literal["conv", "depthwise", "linear"], Annotated[int, Field(ge=2, le=256)]] = Field(
        default_factory=dict, description="shared values for the layers of a kind instead of `clusters`: 'depthwise' "
                                          "(a Conv whose groups equal its input channels), 'conv' (every other Conv), "
                                          "'linear'; e.g. {\"depthwise\": 8}: 3-bit indices for depthwise kernels")
    init: Literal["linear", "density"] = Field(
        "linear", description="k-means initialisation: 'linear' (evenly over [min, max], keeps the rare large weights: "
                              "Deep Compression's choice) or 'density' (at the weights' quantiles)")
    layers: list[Literal["conv", "linear"]] = Field(["conv", "linear"], min_length=1, max_length=2,
                                                    description="layer types whose weights are shared (biases never)")
    ignore: list[str] = Field(default_factory=list, max_length=1000, description="module names left unclustered")
    min_weights: int = Field(64, ge=1, le=10**9, description="leave layers with fewer weights than this unclustered")
    finetune_epochs: int = Field(3, ge=0, le=1000, description="fine-tune epochs ('finetune'; 0: k-means only)")
    finetune_kd: bool = Field(True, description="fine-tune with Hinton KD from the unclustered model")
    finetune: Literal["centroids", "weights"] = Field(
        "centroids", description="what the fine-tune trains: 'centroids' (Deep Compression: the shared values, every "
                                 "weight tied to its cluster) or 'weights' (clustering-aware training, as TensorFlow Model "
                                 "Optimization's: each weight trains straight through its rounding to the nearest shared "
                                 "value and may move to another cluster; the shared values train too)")
    lr: float = Field(1e-3, gt=0, le=10, description="fine-tune peak learning rate")

    @model_validator(mode="after")
    def _kinds_clustered(self) -> ClusterOptions:
        # a depthwise layer is a Conv: clustered when `layers` has "conv"
        stray = sorted(kind for kind in self.clusters_by_kind if ("conv" if kind == "depthwise" else kind) not in self.layers)
        if stray:
            raise ValueError(f"clusters_by_kind: {', '.join(stray)} layers are not clustered (layers: {', '.join(self.layers)})")
        if self.finetune == "weights" and not self.finetune_epochs:
            raise ValueError("finetune 'weights' needs finetune_epochs > 0 (with 0 nothing trains)")
        return self

    def clusters_for(self, module: Any) -> int:
        """The shared values for `module`: its kind's count in `clusters_by_kind`, else `clusters`."""
        return self.clusters_by_kind.get(layer_kind(module), self.clusters)


class ClusterCompress(Pass[ClusterOptions]):
    """Share weights per layer by k-means (Deep Compression), then fine-tune the shared values (or the weights,
    clustering-aware) with KD."""

    name = "compress.cluster"
    consumes = ("torch",)
    produces = "torch"
    requires = frozenset({"train", "labels"})
    libraries = ("torch", "scikit-learn")

    def check(self, plan: PlanContext) -> list[str]:
        passes = plan.recipe.raw.get("passes") or []
        earlier = [p.get("pass") for p in passes[:plan.index or 0] if isinstance(p, dict)]
        later = [p.get("pass") for p in passes[(plan.index or 0) + 1:] if isinstance(p, dict)]
        problems = []
        if "fuse.bn" not in earlier:
            problems.append("compress.cluster needs BatchNorm folded first: put a 'fuse.bn' pass before it (folding "
                            "it afterwards, as every export does, would scale each channel and undo the sharing)")
        if any(name in ("distill.kd", "prune.structured", "prune.magnitude", "quantize.qat") for name in later):
            problems.append("compress.cluster must come after the passes that retrain the weights (distill, prune, "
                            "qat): they would untie the shared values")
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import copy

        from shrink.api.data import labelled_eval
        from shrink_common.classifier import data_augment, evaluate, split_tensors, train
        from shrink_common.training import TrainConfig
        from shrink_common.torch_setup import setup_torch
        from shrink_torch.sparsity import select_layers

        opts = self.options
        seed = ctx.seed + opts.seed
        setup_torch(seed)
        original: nn.Module = artifact.model
        evaluation = labelled_eval(ctx.data)
        model = copy.deepcopy(original).eval()
        _refuse_batchnorm(model)
        names = {id(m): n for n, m in model.named_modules()}
        targets = [(m, names[id(m)]) for m, _ in select_layers(model, list(opts.layers), list(opts.ignore))
                   if m.weight.numel() >= opts.min_weights]
        if not targets:
            raise UsageError(f"compress.cluster: no Conv/Linear layer has {opts.min_weights} weights or more to cluster")
        counts = [opts.clusters_for(module) for module, _ in targets]
        shared = "/".join(map(str, sorted(set(counts))))
        ctx.report(0.05, f"k-means into {shared} shared values per layer ({len(targets)} layers)")
        tied = [_tie(module, k, opts.init, seed, opts.finetune == "weights") for (module, _), k in zip(targets, counts)]
        after_kmeans = evaluate(model, evaluation)
        result = None
        if opts.finetune_epochs:
            x, y = split_tensors(ctx.require_data("train", self.name), self.name)
            cfg = TrainConfig(epochs=opts.finetune_epochs, batch_size=opts.batch_size, lr=opts.lr, optimizer=opts.optimizer,
                              weight_decay=0.0, schedule=opts.schedule, augment=opts.augment, max_shift=opts.max_shift,
                              temperature=opts.temperature, alpha=opts.alpha, channels_last=False,
                              feature_augment=data_augment(ctx.data, opts.augment))
            teacher = copy.deepcopy(original).eval() if opts.finetune_kd else None
            label = ("clustering-aware training" if opts.finetune == "weights" else "fine-tuning the shared values") + (
                " with KD" if teacher is not None else "")
            result = train(model, x, y, cfg, seed, teacher=teacher, report=ctx.report, label=label, progress=(0.1, 0.95))
        layers = [_untie(module, parametrization) for (module, _), parametrization in zip(targets, tied)]
        model.eval()
        bits = [math.ceil(math.log2(k)) for k in counts]
        weights = sum(n for n, _ in layers)
        clustered = {name: {"weights": n, "values": v} for (_, name), (n, v) in zip(targets, layers)}
        index_bits = ", ".join(f"{b}" for b in sorted(set(bits)))
        details: dict[str, Any] = {
            "clusters": opts.clusters, "init": opts.init, "clustered_layers": len(targets), "clustered_weights": weights,
            "index_bits": bits[0] if len(set(bits)) == 1 else index_bits,
            "layer_values": ", ".join(f"{name}: {c['values']}" for name, c in clustered.items()),
            "coded_weight_bytes": sum(math.ceil(n * b / 8) + 4 * k for (n, _), b, k in zip(layers, bits, counts)),
            "float32_weight_bytes": 4 * weights,
            "storage_encoding": f"{index_bits}-bit index per weight + a float32 codebook per layer (its shared values)",
            "accuracy_before": evaluate(original, evaluation), "accuracy_after_kmeans": after_kmeans,
            "finetune_epochs": opts.finetune_epochs, "finetune_kd": bool(opts.finetune_kd and opts.finetune_epochs),
            "finetune": opts.finetune,
        }
        if result is not None:
            details["finetune_loss"] = result.final_loss
        details["accuracy"] = evaluate(model, evaluation)
        if opts.clusters_by_kind:
            details["clusters_by_kind"] = dict(opts.clusters_by_kind)
        meta = {"weight_sharing": {"clusters": opts.clusters, "layers": sorted(clustered)}}
        return artifact.evolve(model=model, meta=meta, details=details)


def layer_kind(module: Any) -> str:
    """'depthwise' (a Conv whose groups equal its input channels, more than one), 'conv' or 'linear'."""
    from torch import nn

    if isinstance(module, nn.Linear):
        return "linear"
    return "depthwise" if module.groups > 1 and module.groups == module.in_channels else "conv"


def _refuse_batchnorm(model: nn.Module) -> None:
    from torch import nn

    found = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if found:
        raise UsageError(f"compress.cluster: the model still has BatchNorm layers ({', '.join(found[:3])}"
                         f"{', ...' if len(found) > 3 else ''}); put 'fuse.bn' before compress.cluster")


def _initial(values: Any, clusters: int, init: str) -> Any:
    import numpy as np

    if init == "linear":
        return np.linspace(values.min(), values.max(), clusters)
    return np.quantile(values, (np.arange(clusters) + 0.5) / clusters)


def _tie(module: nn.Module, clusters: int, init: str, seed: int, nearest: bool = False) -> Any:
    """Cluster `module.weight` and parametrize it as `centroids[index]`: centroids trainable, indices fixed, or with
    `nearest` each weight's index its nearest centroid at every forward pass (the weight trains straight through)."""
    import numpy as np
    import torch
    from sklearn.cluster import KMeans
    from torch.nn.utils import parametrize

    values = module.weight.detach().cpu().numpy().reshape(-1, 1).astype(np.float64)
    k = min(clusters, len(np.unique(values)))
    kmeans = KMeans(n_clusters=k, init=_initial(values, k, init).reshape(-1, 1), n_init=1, random_state=seed)
    index = kmeans.fit_predict(values)
    centroids = torch.tensor(kmeans.cluster_centers_.ravel(), dtype=module.weight.dtype)
    if nearest:
        shared = NearestShared(centroids)
    else:
        shared = SharedWeight(centroids, torch.from_numpy(index.astype(np.int64)).reshape(module.weight.shape))
    parametrize.register_parametrization(module, "weight", shared)
    return shared


def _untie(module: nn.Module, shared: Any) -> tuple[int, int]:
    """Make the tied weight a plain parameter again; (weights, distinct values)."""
    from torch.nn.utils import parametrize

    parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    for name in [n for n in module._parameters if n != "weight"]:  # weight first again, as the factory built it: the
        module._parameters[name] = module._parameters.pop(name)  # export's initializer order, cached or not
    return int(module.weight.numel()), int(module.weight.detach().unique().numel())


def _shared_module() -> type:
    import torch
    from torch import nn

    class _Shared(nn.Module):
        """`weight = centroids[index]`: the centroids train, the assignment of weights to clusters does not."""

        def __init__(self, centroids: torch.Tensor, index: torch.Tensor) -> None:
            super().__init__()
            self.centroids = nn.Parameter(centroids)
            self.register_buffer("index", index)

        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            return self.centroids[self.index]

    return _Shared


def SharedWeight(centroids: torch.Tensor, index: torch.Tensor) -> Any:  # noqa: N802 - builds the torch module lazily
    return _shared_module()(centroids, index)


def _nearest_module() -> type:
    import torch
    from torch import nn

    class _Nearest(nn.Module):
        """`weight -> centroids[nearest(weight)]` in value; the gradient reaches the weight unchanged (straight
        through) and each centroid as the sum over the weights it now holds."""

        def __init__(self, centroids: torch.Tensor) -> None:
            super().__init__()
            self.centroids = nn.Parameter(centroids)

        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            order = torch.argsort(self.centroids.detach(), stable=True)
            ordered = self.centroids.detach()[order]
            index = order[torch.bucketize(weight.detach(), (ordered[1:] + ordered[:-1]) / 2)]
            return self.centroids[index] + (weight - weight.detach())

    return _Nearest


def NearestShared(centroids: torch.Tensor) -> Any:  # noqa: N802 - builds the torch module lazily
    return _nearest_module()(centroids)
