"""Calibrate an x86-64 host's latency figures for a target profile: fp32 / int8 throughput and
ONNX Runtime's per-call and per-node overheads, with one intra-op thread.

Run: `python bench/host_calibration.py` (about a minute on one core). Prints the measured figures
and the profile fields they calibrate (`throughput`, `overhead_ms`, `node_overhead_us`).

- Throughput: MobileNetV1 1.0/224 (569 M MACs, the model the published throughput tables use),
  built in torch at random weights (weights do not change the speed), exported at opset 17 and
  run by ONNX Runtime (default optimizations, 1 thread); effective GMAC/s = MACs / median latency.
  int8: the same graph with static QDQ per-channel quantization (onnxruntime.quantization).
  That is the high end of the throughput range; the low end is half of it (the convention of the
  other profiles: small layers do not reach the large-layer rate).
- Per-node overhead: a chain of 51 3x3 convolutions with 8 channels on 8x8 maps (36,864 MACs each,
  the size of the example models' layers) minus a one-conv graph, per node, less the node's MACs at
  the MobileNetV1 rate: what a real layer costs beyond its arithmetic (fp32; int8 printed beside).
  A 1-channel 4x4 chain (144 MACs a node) shows the bare dispatch cost for comparison.
- Per-call overhead: the 1-channel one-conv graph's latency less one bare dispatch.
Latencies are medians of interleaved runs after warm-up.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MOBILENET_MACS = 569_000_000


def _mobilenet_v1() -> Any:
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, stride: int, groups: int = 1, kernel: int = 3) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    layers = [conv_bn(3, 32, 2)]
    spec = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
            *[(512, 512, 1)] * 5, (512, 1024, 2), (1024, 1024, 1)]
    for cin, cout, stride in spec:
        layers += [conv_bn(cin, cin, stride, groups=cin), conv_bn(cin, cout, 1, kernel=1)]
    torch.manual_seed(0)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000)).eval()


def _export(model: Any, shape: tuple[int, ...], path: Path) -> Path:
    import torch

    torch.onnx.export(model, torch.zeros(shape), str(path), dynamo=False, opset_version=17, input_names=["x"])
    return path


def _conv_chain(nodes: int, channels: int, side: int, path: Path) -> Path:
    """`nodes` 3x3 convolutions (padding 1) in a row on a [1, channels, side, side] tensor."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    names = ["x"] + [f"t{i}" for i in range(nodes - 1)] + ["y"]
    weights = [numpy_helper.from_array((rng.random((channels, channels, 3, 3), np.float32) - 0.5) / channels, f"w{i}")
               for i in range(nodes)]
    graph = helper.make_graph(
        [helper.make_node("Conv", [names[i], f"w{i}"], [names[i + 1]], pads=[1, 1, 1, 1]) for i in range(nodes)], "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, side, side])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _quantize(path: Path, shape: tuple[int, ...]) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter([{"x": rng.random(shape, np.float32)} for _ in range(8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    out = path.with_name(path.stem + "_int8.onnx")
    quantize_static(str(path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def _latencies(models: dict[str, tuple[Path, tuple[int, ...]]], rounds: int = 7, per_round: float = 0.4) -> dict[str, float]:
    """Median latency in ms per model, interleaving rounds so drift hits every model alike."""
    import onnxruntime as ort

    sessions, feeds = {}, {}
    for name, (path, shape) in models.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds[name] = {"x": np.random.default_rng(0).random(shape, np.float32)}
        for _ in range(5):
            sessions[name].run(None, feeds[name])
    samples: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name in models:
            deadline = time.perf_counter() + per_round
            while True:
                start = time.perf_counter()
                sessions[name].run(None, feeds[name])
                samples[name].append(time.perf_counter() - start)
                if time.perf_counter() > deadline and len(samples[name]) >= 3:
                    break
    return {name: statistics.median(values) * 1e3 for name, values in samples.items()}


def calibrate(workdir: Path) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    shape, tiny, small = (1, 3, 224, 224), (1, 1, 4, 4), (1, 8, 8, 8)
    fp32 = _export(_mobilenet_v1(), shape, workdir / "mobilenet_v1.onnx")
    small_1 = _conv_chain(1, 8, 8, workdir / "small1.onnx")
    small_51 = _conv_chain(51, 8, 8, workdir / "small51.onnx")
    models = {"fp32": (fp32, shape), "int8": (_quantize(fp32, shape), shape),
              "tiny_1": (_conv_chain(1, 1, 4, workdir / "tiny1.onnx"), tiny),
              "tiny_51": (_conv_chain(51, 1, 4, workdir / "tiny51.onnx"), tiny),
              "small_1": (small_1, small), "small_51": (small_51, small),
              "small_1_int8": (_quantize(small_1, small), small), "small_51_int8": (_quantize(small_51, small), small)}
    ms = _latencies(models)
    tiny_node_ms = (ms["tiny_51"] - ms["tiny_1"]) / 50
    small_macs = 8 * 8 * 9 * 8 * 8
    fp32_gmacs = MOBILENET_MACS / ms["fp32"] / 1e6
    int8_gmacs = MOBILENET_MACS / ms["int8"] / 1e6
    return {
        "mobilenet_fp32_ms": ms["fp32"], "mobilenet_int8_ms": ms["int8"], "fp32_gmacs": fp32_gmacs, "int8_gmacs": int8_gmacs,
        "small_node_us": (ms["small_51"] - ms["small_1"]) / 50 * 1e3,
        "node_overhead_us": ((ms["small_51"] - ms["small_1"]) / 50 - small_macs / fp32_gmacs / 1e6) * 1e3,
        "node_overhead_int8_us": ((ms["small_51_int8"] - ms["small_1_int8"]) / 50 - small_macs / int8_gmacs / 1e6) * 1e3,
        "tiny_node_us": tiny_node_ms * 1e3, "overhead_ms": ms["tiny_1"] - tiny_node_ms,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    import onnxruntime

    with tempfile.TemporaryDirectory() as tmp:
        result = calibrate(Path(tmp))
    print(f"host: {cpu_name()}, onnxruntime {onnxruntime.__version__}, python {sys.version.split()[0]}, 1 intra-op thread")
    print(f"MobileNetV1 1.0/224 fp32 {result['mobilenet_fp32_ms']:.2f} ms = {result['fp32_gmacs']:.1f} GMAC/s; "
          f"int8 QDQ {result['mobilenet_int8_ms']:.2f} ms = {result['int8_gmacs']:.1f} GMAC/s  (throughput, high end)")
    print(f"3x3 conv, 8 channels, 8x8 (36,864 MACs): {result['small_node_us']:.2f} us a node; less its MACs at the "
          f"MobileNet rate: {result['node_overhead_us']:.2f} us fp32, {result['node_overhead_int8_us']:.2f} us int8  "
          f"(node_overhead_us: {{\"float32\": {result['node_overhead_us']:.2f}, \"int8\": {result['node_overhead_int8_us']:.2f}}})")
    print(f"3x3 conv, 1 channel, 4x4 (144 MACs): {result['tiny_node_us']:.2f} us a node (dispatch alone)")
    print(f"per-call overhead {result['overhead_ms'] * 1e3:.1f} us  (overhead_ms)")

if __name__ == "__main__":
    main()
