from __future__ import annotations

from shrink import Artifact, Context, Pass, hookimpl


class Explode(Pass):
    """A pass whose run() raises."""

    name = "test.explode"
    consumes = ("onnx",)
    produces = "onnx"

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        raise RuntimeError("kaboom inside the plugin")


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [Explode]
