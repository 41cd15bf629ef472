from __future__ import annotations

from shrink import Artifact, Context, Pass, hookimpl


class Liar(Pass):
    """Declares onnx → onnx but returns a 'torch' artifact."""

    name = "test.liar"
    consumes = ("onnx",)
    produces = "onnx"

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        return artifact.evolve(format="torch")


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [Liar]
