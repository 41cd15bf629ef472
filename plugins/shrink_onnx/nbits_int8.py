"""4-bit weights stored, int8 kernels run: `MatMulNBits` nodes rewritten for ONNX Runtime's dynamic int8 MatMul.

On x86, ONNX Runtime's `MatMulNBits` is a kernel for one token at a time: over a sequence (a whole sentence
through an encoder) it runs 2-3x slower than the dynamic int8 kernel `quantize.ptq` uses (onnxruntime issue
23004; measured by bench/minilm.py). `to_int8_kernels` keeps what the weight-only quantizer computed (each
block's 4-bit values, scale and zero point; RTN, HQQ or GPTQ) and changes only how it runs:

- the 4-bit values are stored two per byte (`uint8`, the first half of the rows in the low nibbles, the second
  half in the high ones) with one factor per block, and a small subgraph of standard ops (BitwiseAnd, BitShift,
  Concat, Cast, Sub, Mul, Reshape, Round) turns them into an int8 weight with one scale per output column;
- that subgraph depends on weights alone, so ONNX Runtime folds it into an int8 initializer when it loads the
  model (constant folding), and the product is the graph ONNX Runtime's own `quantize_dynamic` writes
  (DynamicQuantizeLinear, MatMulInteger, Cast, Mul), which it fuses into `DynamicQuantizeMatMul`.

The file keeps 4-bit size; loaded, each weight takes one byte, and the int8 weight adds a second rounding (to
1/127 of the column's largest dequantized value, ~1/18 of a 4-bit step). A session with graph optimizations
disabled still computes the same outputs, but decodes the weights on every run. onnx and numpy are imported by the
caller's `run()` path only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shrink_common.onnx_graph import fresh_names

MS = "com.microsoft"


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _blocks(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(values [N, blocks, block] 0..15, zero points [N, blocks], scales [N, blocks], K) of a 4-bit MatMulNBits."""
    attrs = _attrs(node)
    k, n, block = int(attrs["K"]), int(attrs["N"]), int(attrs["block_size"])
    packed = numpy_helper.to_array(inits[node.input[1]]).reshape(n, -1, block // 2)
    values = np.empty((*packed.shape[:2], block), dtype=np.uint8)
    values[..., 0::2] = packed & 0x0F
    values[..., 1::2] = packed >> 4
    blocks = values.shape[1]
    scales = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32).reshape(n, blocks)
    zero = node.input[3] if len(node.input) > 3 else ""
    if not zero:
        zeros = np.full((n, blocks), 8.0, dtype=np.float32)
    else:
        z = numpy_helper.to_array(inits[zero])
        if z.dtype == np.uint8:  # packed like B: two per byte, each row padded to a whole byte
            z = z.reshape(n, -1)
            unpacked = np.empty((n, z.shape[1] * 2), dtype=np.uint8)
            unpacked[:, 0::2], unpacked[:, 1::2] = z & 0x0F, z >> 4
            zeros = unpacked[:, :blocks].astype(np.float32)
        else:
            zeros = z.astype(np.float32).reshape(n, blocks)
    return values, zeros, scales, k


def convertible(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> str | None:
    """Why a MatMulNBits node cannot be rewritten (not 4-bit, weights not constant, float16, act-order), or None."""
    attrs = _attrs(node)
    if int(attrs.get("bits", 4)) != 4:
        return f"{attrs.get('bits')}-bit weights"
    if node.input[1] not in inits or node.input[2] not in inits or (len(node.input) > 3 and node.input[3]
                                                                     and node.input[3] not in inits):
        return "weights that are not constant"
    if inits[node.input[2]].data_type != TensorProto.FLOAT:
        return "scales that are not float32 (the int8 kernels take float32 activations)"
    if len(node.input) > 4 and node.input[4]:
        return "a group index (act-order GPTQ)"
    return None


def to_int8_kernels(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int, int]:
    """`model` with every main-graph 4-bit MatMulNBits rewritten as a foldable int4 decode + dynamic int8 MatMul,
    how many, and the bytes of the int8 weights ONNX Runtime will hold; raises ValueError naming a node that
    cannot be."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    fresh = fresh_names(graph)

    def const(name: str, array: np.ndarray) -> str:
        name = fresh(name)
        graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    nodes: list[onnx.NodeProto] = []
    quantized_inputs: dict[str, tuple[str, str, str]] = {}  # one DynamicQuantizeLinear per activation
    used: set[str] = set()
    count = loaded = 0
    for node in graph.node:
        if node.op_type != "MatMulNBits" or node.domain != MS:
            nodes.append(node)
            continue
        why = convertible(node, inits)
        if why:
            raise ValueError(f"MatMulNBits node {node.name or node.output[0]!r} has {why}; it cannot run on int8 kernels")
        values, zeros, scales, k = _blocks(node, inits)
        n, blocks, block = values.shape
        label = node.name or node.output[0]
        # dequantized weight [K, N] and the int8 scale of each output column
        dequantized = ((values.astype(np.float32) - zeros[..., None]) * scales[..., None]).reshape(n, -1)[:, :k].T
        col_scale = np.abs(dequantized).max(axis=0) / 127.0
        col_scale[col_scale == 0] = 1.0
        col_scale = col_scale.astype(np.float32)
        # storage: rows [K', N] with K' = blocks * block (padded), the first half in the low nibbles
        rows = np.ascontiguousarray(values.transpose(1, 2, 0).reshape(blocks * block, n))
        if rows.shape[0] % 2:
            rows = np.concatenate([rows, np.full((1, n), 8, np.uint8)])
        half = rows.shape[0] // 2
        packed = (rows[:half] | (rows[half:] << 4)).astype(np.uint8)
        factor = (scales / col_scale[:, None]).T[:, None, :].astype(np.float16)  # [blocks, 1, N]; half: ~1e-3 of a step
        p = const(f"{label}_int4", packed)
        low = fresh(f"{label}_low")
        high = fresh(f"{label}_high")
        both = fresh(f"{label}_values")
        as_float = fresh(f"{label}_values_f")
        shaped = fresh(f"{label}_blocks")
        centred = fresh(f"{label}_centred")
        scaled = fresh(f"{label}_scaled")
        flat = fresh(f"{label}_kn")
        rounded = fresh(f"{label}_rounded")
        factor_f = fresh(f"{label}_factor")
        weight = fresh(f"{label}_int8")
        decode = [
            helper.make_node("BitwiseAnd", [p, const(f"{label}_mask", np.array(0x0F, np.uint8))], [low], name=fresh(f"{label}/low")),
            helper.make_node("BitShift", [p, const(f"{label}_four", np.array(4, np.uint8))], [high], direction="RIGHT",
                             name=fresh(f"{label}/high")),
            helper.make_node("Concat", [low, high], [both], axis=0, name=fresh(f"{label}/rows")),
        ]
        if rows.shape[0] != blocks * block:  # drop the padding row
            cut = fresh(f"{label}_rows")
            decode.append(helper.make_node("Slice", [both, const(f"{label}_from", np.array([0], np.int64)),
                                                     const(f"{label}_to", np.array([blocks * block], np.int64)),
                                                     const(f"{label}_axis", np.array([0], np.int64))],
                                           [cut], name=fresh(f"{label}/unpad")))
            both = cut
        decode.append(helper.make_node("Cast", [both], [as_float], to=TensorProto.FLOAT, name=fresh(f"{label}/float")))
        decode.append(helper.make_node("Reshape", [as_float, const(f"{label}_block_shape", np.array([blocks, block, n], np.int64))],
                                       [shaped], name=fresh(f"{label}/blocks")))
        if np.all(zeros == 8.0):
            zero = const(f"{label}_zero", np.array(8.0, np.float32))
        elif np.all(zeros == np.round(zeros)) and zeros.min() >= 0 and zeros.max() <= 15:
            stored = const(f"{label}_zero_u8", zeros.T[:, None, :].astype(np.uint8))
            zero = fresh(f"{label}_zero")
            decode.append(helper.make_node("Cast", [stored], [zero], to=TensorProto.FLOAT, name=fresh(f"{label}/zero")))
        else:
            zero = const(f"{label}_zero", zeros.T[:, None, :].astype(np.float32))
        decode += [
            helper.make_node("Sub", [shaped, zero], [centred], name=fresh(f"{label}/centre")),
            helper.make_node("Cast", [const(f"{label}_factor16", factor)], [factor_f], to=TensorProto.FLOAT,
                             name=fresh(f"{label}/factor")),
            helper.make_node("Mul", [centred, factor_f], [scaled], name=fresh(f"{label}/scale")),
            helper.make_node("Reshape", [scaled, const(f"{label}_kn_shape", np.array([blocks * block, n], np.int64))],
                             [flat], name=fresh(f"{label}/kn")),
        ]
        if blocks * block != k:
            cut = fresh(f"{label}_k")
            decode.append(helper.make_node("Slice", [flat, const(f"{label}_k0", np.array([0], np.int64)),
                                                     const(f"{label}_k1", np.array([k], np.int64)),
                                                     const(f"{label}_k_axis", np.array([0], np.int64))],
                                           [cut], name=fresh(f"{label}/k")))
            flat = cut
        decode += [
            helper.make_node("Round", [flat], [rounded], name=fresh(f"{label}/round")),
            helper.make_node("Cast", [rounded], [weight], to=TensorProto.INT8, name=fresh(f"{label}/int8")),
        ]
        nodes += decode
        # the product, as onnxruntime.quantization.quantize_dynamic writes it (per-channel int8 weights)
        a = node.input[0]
        if a not in quantized_inputs:
            quantized_inputs[a] = (fresh(f"{a}_quantized"), fresh(f"{a}_scale"), fresh(f"{a}_zero_point"))
            nodes.append(helper.make_node("DynamicQuantizeLinear", [a], list(quantized_inputs[a]),
                                          name=fresh(f"{a}_QuantizeLinear")))
        a_q, a_scale, a_zero = quantized_inputs[a]
        product, product_f, scale, out = fresh(f"{label}_int32"), fresh(f"{label}_float"), fresh(f"{label}_out_scale"), node.output[0]
        bias = node.input[5] if len(node.input) > 5 and node.input[5] else None
        scaled_out = fresh(f"{label}_unbiased") if bias else out
        nodes += [
            helper.make_node("MatMulInteger", [a_q, weight, a_zero, const(f"{label}_int8_zero", np.zeros(n, np.int8))],
                             [product], name=fresh(f"{label}/MatMulInteger")),
            helper.make_node("Cast", [product], [product_f], to=TensorProto.FLOAT, name=fresh(f"{label}/cast")),
            helper.make_node("Mul", [a_scale, const(f"{label}_int8_scale", col_scale)], [scale], name=fresh(f"{label}/scales")),
            helper.make_node("Mul", [product_f, scale], [scaled_out], name=node.name or fresh(f"{label}/output")),
        ]
        if bias:
            nodes.append(helper.make_node("Add", [scaled_out, bias], [out], name=fresh(f"{label}/bias")))
        used.update(i for i in node.input[1:4] if i)
        count += 1
        loaded += k * n
    del graph.node[:]
    graph.node.extend(nodes)
    still = {i for nd in graph.node for i in nd.input}
    keep = [t for t in graph.initializer if t.name not in used or t.name in still]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    if count and not any(imp.domain in ("", "ai.onnx") and imp.version >= 18 for imp in model.opset_import):
        raise ValueError("BitwiseAnd needs ai.onnx opset 18 or newer")
    return model, count, loaded
