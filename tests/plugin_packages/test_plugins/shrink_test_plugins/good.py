"""A well-behaved plugin: an ONNX pass that renames the graph, and a vendor target profile."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shrink import Artifact, Context, Pass, PassOptions, hookimpl


class Rename(Pass):
    """Rename the ONNX graph (a small but real ONNX → ONNX transformation)."""

    name = "meta.rename"
    consumes = ("onnx",)
    produces = "onnx"

    class Options(PassOptions):
        graph_name: str = Field("renamed", min_length=1, description="new graph name")

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import onnx

        proto = onnx.load(artifact.model)
        proto.graph.name = self.options.graph_name  # type: ignore[attr-defined]
        path = ctx.new_path("renamed", ".onnx")
        onnx.save(proto, str(path))
        return artifact.evolve(model=str(path), details={"graph_name": proto.graph.name})


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [Rename]


@hookimpl
def shrink_register_targets() -> list[dict[str, Any]]:
    return [{"name": "vendor-board", "extends": "cortex-a53", "description": "a vendor's A53 board",
             "storage": {"bytes": 33554432}}]
