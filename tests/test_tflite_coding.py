"""`export.tflite`'s coding stage on small int8 `.tflite` files built with TensorFlow Lite Micro's own model editor
(two FULLY_CONNECTED layers whose weights share 16 values, quantized per channel or per tensor): stripping what
TFLite Micro never reads, per-tensor and per-channel LUT coding, the choice of what to code and the byte breakdown,
each checked by running the files under TFLite Micro's interpreter. Fast (no conversion, no training); skipped
without the extra (`pip install -e '.[dev,tflite]'`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shrink_tflite.options import missing

pytestmark = pytest.mark.skipif(missing() is not None, reason=f"export.tflite: {missing()}")


def tiny_tflite(per_channel: bool, sizes: tuple[int, ...] = (64, 48, 10), shared: int = 16, seed: int = 0) -> bytes:
    """An int8 MLP (FULLY_CONNECTED layers) whose weights take `shared` int8 values per layer; weight and bias
    scales per output channel (zero points all zero, as a quantizer writes them) or one per layer."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    rng = np.random.default_rng(seed)
    quant = me.Quantization
    x = me.Tensor(shape=(1, sizes[0]), dtype=fb.TensorType.INT8, quantization=quant(0.05, 0), name="input")
    tensors, ops, prev, in_scale = [x], [], x, 0.05
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        levels = np.sort(rng.choice(np.arange(-127, 128), shared, replace=False))
        weights = levels[rng.integers(0, shared, (n_out, n_in))].astype(np.int8)
        scales = rng.uniform(0.002, 0.01, n_out) if per_channel else np.array([0.005])
        biases = (in_scale * scales).tolist()
        zeros = [0] * len(scales)
        weight = me.Tensor(shape=(n_out, n_in), dtype=fb.TensorType.INT8, data=weights,
                           quantization=quant(scales.tolist(), zeros, 0) if per_channel else quant(float(scales[0]), 0))
        bias = me.Tensor(shape=(n_out,), dtype=fb.TensorType.INT32, data=rng.integers(-500, 500, n_out).astype(np.int32),
                         quantization=quant(biases, zeros, 0) if per_channel else quant(biases[0], 0))
        out = me.Tensor(shape=(1, n_out), dtype=fb.TensorType.INT8, quantization=quant(0.1, 3),
                        name="output" if i == len(sizes) - 2 else f"hidden{i}")
        tensors += [weight, bias, out]
        ops.append(me.Operator(opcode=fb.BuiltinOperator.FULLY_CONNECTED, inputs=[prev, weight, bias], outputs=[out]))
        prev, in_scale = out, 0.1
    graph = me.Subgraph(tensors=tensors, operators=ops, inputs=[x], outputs=[prev])
    return bytes(me.Model(subgraphs=[graph], description="tiny").build())


def _outputs(data: bytes, path: Path) -> list[np.ndarray]:
    from shrink.support.tflite_run import TflmModel

    path.write_bytes(data)
    model = TflmModel(path)
    return [model([np.random.default_rng(k).normal(0, 2, (1, 64)).astype(np.float32)])[0] for k in range(8)]


def _identical(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("per_channel", [True, False])
def test_strip_keeps_outputs_bit_identical_and_cuts_zero_points(per_channel: bool, tmp_path: Path) -> None:
    from shrink_tflite import coding

    plain = tiny_tflite(per_channel)
    stripped = coding.strip(plain)
    assert _identical(_outputs(plain, tmp_path / "a.tflite"), _outputs(stripped, tmp_path / "b.tflite"))
    before, after = coding.breakdown(plain), coding.breakdown(stripped)
    if per_channel:  # 2 x (48 + 10) int64 zero points of weights and biases become 4 single values
        assert before["quantization"] - after["quantization"] == 8 * 2 * ((48 - 1) + (10 - 1))
        assert len(stripped) < len(plain)
    else:
        assert before["quantization"] == after["quantization"]
    assert after["names"] < before["names"]  # "hidden0" is dropped; the graph's input and output keep theirs


@pytest.mark.parametrize("per_channel", [True, False])
def test_lut_coding_decodes_bit_identically_with_the_tables_the_quantization_allows(per_channel: bool,
                                                                                    tmp_path: Path) -> None:
    from shrink_tflite import coding

    plain = coding.strip(tiny_tflite(per_channel))
    shared, weight_tensors = coding.shared_weights(plain, 4)
    assert weight_tensors == 2 and [s.bits for s in shared] == [4, 4]
    # one value table per tensor only where the tensor has one scale: DECODE counts its tables by the scales
    assert {s.axis for s in shared} == ({0} if per_channel else {None})
    chosen, coded = coding.choose(plain, shared)
    assert coded is not None and chosen and len(coded) < len(plain)
    assert _identical(_outputs(plain, tmp_path / "plain.tflite"), _outputs(coded, tmp_path / "coded.tflite"))
    rows = coding.breakdown(coded)
    assert sum(v for k, v in rows.items() if k != "total") == rows["total"] == len(coded)
    assert rows["weights"] < coding.breakdown(plain)["weights"]
    # the analysis counts a coded weight's decoded elements as parameters, its indices and tables as bytes
    from shrink.analysis.tflite_model import analyze_tflite

    a, b = analyze_tflite(tmp_path / "plain.tflite"), analyze_tflite(tmp_path / "coded.tflite")
    assert a.params == b.params == 64 * 48 + 48 + 48 * 10 + 10
    assert b.weight_bytes < a.weight_bytes


def test_a_per_tensor_table_under_per_channel_scales_decodes_wrongly(tmp_path: Path) -> None:
    """Why `shared_weights` gives per-channel tensors per-channel tables even when every channel shares the same int8
    values (as here): TFLite Micro's DECODE reads one table per scale of the decoded tensor."""
    from shrink_tflite import coding

    plain = coding.strip(tiny_tflite(per_channel=True))
    shared, _ = coding.shared_weights(plain, 4)
    forced = [coding.Shared(s.tensor, s.name, None, s.bits, s.values) for s in shared]
    assert all(len(np.unique(s.values)) <= 16 for s in forced)  # one table would hold every value
    assert not _identical(_outputs(plain, tmp_path / "plain.tflite"),
                          _outputs(coding.lut_compress(plain, forced), tmp_path / "forced.tflite"))


def test_choose_codes_only_the_tensors_that_make_the_file_smaller() -> None:
    from shrink_tflite import coding

    # a 48x64 layer's 4-bit indices pay for their DECODE operator; a 10x48 layer's per-channel tables do not
    plain = coding.strip(tiny_tflite(per_channel=True))
    shared, _ = coding.shared_weights(plain, 4)
    chosen, coded = coding.choose(plain, shared)
    assert [s.values.shape for s in chosen] == [(48, 64)]
    assert coded is not None and len(coded) < len(coding.lut_compress(plain, shared))
    # nothing pays: no coded file
    small = coding.strip(tiny_tflite(per_channel=True, sizes=(4, 3)))
    assert coding.choose(small, coding.shared_weights(small, 4)[0]) == ([], None)


def test_breakdown_of_a_plain_file_adds_up() -> None:
    from shrink_tflite import coding

    plain = tiny_tflite(per_channel=True)
    rows = coding.breakdown(plain)
    assert rows["total"] == len(plain) and rows["structure"] > 0
    assert rows["weights"] == (4 + 48 * 64) + (4 + 10 * 48) and rows["biases"] == (4 + 48 * 4) + (4 + 10 * 4)
    # a float scale and an int64 zero point per channel of each weight and bias, one of each per activation
    per_channel = sum(2 * ((4 + 4 * n) + (4 + 8 * n)) for n in (48, 10))
    assert rows["quantization"] == per_channel + 3 * ((4 + 4) + (4 + 8))


def test_weight_scales_are_per_tensor_only_when_every_layer_is_shared() -> None:
    import torch
    from torch import nn

    from shrink_tflite.export import _all_shared

    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            values = torch.linspace(-1, 1, 16)
            layer.weight.copy_(values[torch.randint(0, 16, layer.weight.shape)])
    assert _all_shared(model, 4) and not _all_shared(model, 3)
    with torch.no_grad():
        model[2].weight.add_(torch.randn_like(model[2].weight) * 1e-3)  # one layer left unclustered
    assert not _all_shared(model, 4)
