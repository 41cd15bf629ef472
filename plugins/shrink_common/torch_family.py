"""`TorchModelFamily`: what every family whose models are torch modules does alike in the `"torch"` format
(parameter counts and bytes, the in-place-change fingerprint); families subclass it and add the rest. torch is
imported only when a method runs on a torch model."""

from __future__ import annotations

from typing import Any

from shrink import Artifact, Context, ModelFamily


class TorchModelFamily(ModelFamily):
    """A family of `torch.nn.Module` models (in the `"torch"` format before export; ONNX after)."""

    libraries = ("torch",)

    def measure(self, artifact: Artifact, ctx: Context) -> dict[str, Any]:
        if artifact.format != "torch":
            return super().measure(artifact, ctx)
        from shrink_common.torch_setup import count_params, weight_bytes

        return {"params": count_params(artifact.model), "weight_bytes": weight_bytes(artifact.model)}

    def fingerprint(self, artifact: Artifact) -> str | None:
        if artifact.format != "torch":
            return super().fingerprint(artifact)
        from shrink_common.torch_setup import state_fingerprint

        return state_fingerprint(artifact.model)
