"""ONNX element types: numpy-style names and storage sizes (sub-byte types packed, strings 8 bytes)."""

from __future__ import annotations

import onnx
from onnx import TensorProto

_SUBBYTE_BITS = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.FLOAT4E2M1: 4,
                 TensorProto.INT2: 2, TensorProto.UINT2: 2,
                 TensorProto.FLOAT6E2M3: 6, TensorProto.FLOAT6E3M2: 6}
_DTYPE_RENAMES = {"FLOAT": "float32", "DOUBLE": "float64"}


def dtype_name(elem_type: int) -> str:
    """numpy-style name of an ONNX element type: `float32`, `int8`, `bool`, `bfloat16`, ..."""
    raw = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else "UNDEFINED"
    return _DTYPE_RENAMES.get(raw, raw.lower())


def _itemsize_bits(elem_type: int) -> int:
    if elem_type in _SUBBYTE_BITS:
        return _SUBBYTE_BITS[elem_type]
    if elem_type == TensorProto.STRING:
        return 64
    return 8 * onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize


def _nbytes(elem_type: int, count: int) -> int:
    return (count * _itemsize_bits(elem_type) + 7) // 8
