"""Shapes measured by one onnxruntime run, for tensors that shape inference leaves unknown.

A graph (the main graph, or an If/Loop/Scan body made standalone by `scopes`) runs once on zero inputs
with the wanted tensors exposed as outputs; their types and shapes are read off the results. Shapes that
depend on the data are then those of zeros. onnxruntime is imported only here, and only when needed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, TensorProto

from shrink.analysis.shapes import _runtime_inputs, _Type
from shrink.support.ort import session as ort_session

RUN_SECONDS = 20.0  # a Loop that runs until its condition turns false may never stop on zeros

def _ort_types(model: ModelProto, names: list[str], base_dir: Path | None,
               feeds: Mapping[str, np.ndarray] | None = None) -> dict[str, _Type]:
    """Run `model` once, exposing `names` as outputs, and read their types and shapes.

    Inputs without an entry in `feeds` get zeros of their declared (fully pinned) shape. The run is
    stopped after `RUN_SECONDS`. Raises whatever onnxruntime raises when the model cannot be loaded or
    run, or is stopped.
    """
    import onnxruntime as ort
    from onnx.external_data_helper import load_external_data_for_model

    exposed = ModelProto()
    exposed.CopyFrom(model)
    if base_dir is not None:
        load_external_data_for_model(exposed, str(base_dir))
    wanted = set(names)
    kept = [v for v in exposed.graph.value_info if v.name not in wanted]
    del exposed.graph.value_info[:]
    exposed.graph.value_info.extend(kept)
    outputs = {o.name for o in exposed.graph.output}
    weights = {t.name for t in exposed.graph.initializer}
    given = dict(feeds or {})
    inputs = {v.name: given[v.name] if v.name in given else _zeros(v) for v in _runtime_inputs(exposed.graph)}
    for name in names:
        if name not in outputs and name not in inputs and name not in weights:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort_session(exposed.SerializeToString(), optimize=False)
    out_names = [o.name for o in session.get_outputs()]
    options = ort.RunOptions()
    options.log_severity_level = 4  # the failure is reported by the caller, not logged
    timer = threading.Timer(RUN_SECONDS, lambda: setattr(options, "terminate", True))
    timer.start()
    try:
        values = session.run(out_names, inputs, options)
    except Exception as exc:
        if options.terminate:
            raise TimeoutError(f"stopped after {RUN_SECONDS:g} s (a Loop that never ends on zero inputs?)") from exc
        raise
    finally:
        timer.cancel()
    types = {n: _array_type(v) for n, v in zip(out_names, values) if isinstance(v, np.ndarray)}
    types.update({n: _array_type(v) for n, v in inputs.items()})
    return types


def _zeros(value: onnx.ValueInfoProto) -> np.ndarray:
    tensor_type = value.type.tensor_type
    shape = [int(d.dim_value) for d in tensor_type.shape.dim]
    if tensor_type.elem_type == TensorProto.STRING:
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))


def _array_type(array: np.ndarray) -> _Type:
    elem = TensorProto.STRING if array.dtype == object else onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    return _Type(elem, tuple(int(d) for d in array.shape))
