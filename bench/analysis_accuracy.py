"""How close `shrink.analysis` comes to what torch and onnxruntime measure, on the digits teacher and student.

Run: `python bench/analysis_accuracy.py` (a few seconds on one core; torch is used for the export and hooks only).

Models: `examples/digits/model.py`, the teacher with `teacher.pt`, the student at random init (seed 0),
exported with `torch.onnx.export(..., dynamo=False, opset_version=17)` at batch 1 and again with a
dynamic batch axis.

(a) MACs: `analyze().macs` of the batch-1 export against a torch forward-hook count over Conv2d
    (`out.numel() * in_channels/groups * prod(kernel)`) and Linear (`out.numel() * in_features`).
    Expected ratio: exactly 1.

(b) Memory: `analyze().peak_activation_bytes` / `arena_bytes` against onnxruntime's measured peak of
    live activations. onnxruntime's Python API exposes neither its memory-pattern peak nor its arena
    statistics, so we measure the process: a child process runs the session with the CPU arena and
    memory patterns off (every tensor is allocated when produced and freed after its last use) and
    `MALLOC_MMAP_THRESHOLD_=4096` (every allocation of 4 KiB or more is its own mmap, returned to the
    OS on free); it resets the RSS high-water mark (`/proc/self/clear_refs` = 5), runs once and
    reports VmHWM minus the RSS before the run; median of 5 runs after 2 warm-ups. Linux keeps RSS
    counters per CPU with a slack of up to a few hundred KiB, so single-image activations (64-256 KiB)
    are below its resolution: we measure at a batch large enough that the static peak is several MiB
    (activations scale linearly with batch in these models) and compare with `analyze()` of the same
    graph at the same pinned batch. onnxruntime runs its own optimized graph (ORT_ENABLE_EXTENDED:
    Conv+ReLU fused into `com.microsoft` FusedConv), so the comparison uses `analyze()` of that
    optimized model saved to disk; the exported graph's figures are printed beside it. The measurement
    also includes kernel scratch buffers (im2col) and reuse the planner does in place, so a ratio near
    but not exactly 1 is expected; the residual counter slack is about 0.2 MiB.

(c) Latency: shrink's own estimate (the `latency` check's range: per-call overhead + nodes x per-node
    overhead + MACs at the high/low calibrated throughput) for the profile that describes this host
    (`x86-64-avx512` when /proc/cpuinfo lists avx512f, else `x86-64-avx2`; calibrated by
    `bench/host_calibration.py` on MobileNetV1 and Relu chains, not on these models) against
    onnxruntime's measured median batch-1 latency (default optimizations, 1 intra-op thread, denormals
    as zero), interleaving the two models. Goal: measured within 2x of the estimate.

(d) int8 and outside models (`--outside` runs only this part): MACs against a count made without
    shrink's shape inference, the MAC split by dtype, any `incomplete` reasons, and the latency check's
    estimate against onnxruntime's measured median (1 thread, denormals as zero, warm-up then up to 2 s
    of runs). Models:
    - digits student int8: the student exported at batch 1, `quantize_static` (QDQ, per-channel,
      8 random calibration batches) then onnxruntime's EXTENDED offline optimization, as the
      `quantize.ptq` + `fuse.ort` passes build a bundle (QLinearConv/QGemm, the first conv float);
      reference: the torch hook count of (a).
    - SqueezeNet 1.1 and ResNet-50 from the `onnx` package (`onnx/backend/test/data/light`: the ONNX
      model zoo graphs with generated weights), fp32, and SqueezeNet int8 (constant-folded by
      onnxruntime, then as the digits student); reference: Conv/Gemm/MatMul MACs from the output
      shapes onnxruntime itself produces (every such output exposed and read off one run).
    - MobileNetV2 1.0/224 and MobileViT-XXS/256 (transformers' architectures from their configs, random
      init, exported by torch.onnx at opset 17), fp32, and MobileNetV2 int8; reference: torch's
      `FlopCounterMode` / 2 on the same forward (conv, mm, bmm and attention products).
"""

from __future__ import annotations

import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
RSS_BATCH = {"teacher": 32, "student": 128}
RSS_THRESHOLD = "4096"


def _export(which: str, out_dir: Path) -> dict[str, Any]:
    import torch

    sys.path.insert(0, str(DIGITS))
    import model as digits

    torch.manual_seed(0)
    module = getattr(digits, which)()
    if which == "teacher":
        module.load_state_dict(torch.load(DIGITS / "teacher.pt", map_location="cpu", weights_only=True))
    module.eval()
    static, dynamic = out_dir / f"{which}.onnx", out_dir / f"{which}_dyn.onnx"
    example = torch.zeros(1, 1, 32, 32)
    torch.onnx.export(module, example, static, dynamo=False, opset_version=17, input_names=["x"])
    torch.onnx.export(module, example, dynamic, dynamo=False, opset_version=17, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}})
    return {"static": static, "dynamic": dynamic, "torch_macs": _torch_macs(module, example),
            "torch_params": sum(p.numel() for p in module.parameters())}


def _torch_macs(module: Any, example: Any) -> int:
    import torch
    from torch import nn

    total = 0

    def hook(layer: nn.Module, _: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            total += out.numel() * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
        elif isinstance(layer, nn.Linear):
            total += out.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module(example)
    for handle in handles:
        handle.remove()
    return total


def _ort_optimized(path: Path, level: str = "ORT_ENABLE_EXTENDED") -> Path:
    import onnxruntime as ort

    out = path.with_name(f"{path.stem}_{level.lower()}.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.optimized_model_filepath = str(out)
    options.intra_op_num_threads = 1
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return out


def _measure_rss(path: str, batch: int) -> int:
    """Child-process side of (b): peak RSS growth during one run, median of 5."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).random((batch, 1, 32, 32), np.float32)}
    for _ in range(2):
        session.run(None, feed)
    deltas = []
    for _ in range(5):
        Path("/proc/self/clear_refs").write_text("5")
        before = _proc_status("VmRSS")
        session.run(None, feed)
        deltas.append(_proc_status("VmHWM") - before)
    return int(statistics.median(deltas))


def _proc_status(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert match, key
    return int(match.group(1)) * 1024


def _rss_in_child(path: Path, batch: int) -> int:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": RSS_THRESHOLD, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--measure-rss", str(path), str(batch)], env=env,
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def _latencies(paths: dict[str, Path], rounds: int = 15, runs: int = 20) -> dict[str, float]:
    import onnxruntime as ort

    sessions = {}
    for name, path in paths.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"x": np.random.default_rng(1).random((1, 1, 32, 32), np.float32)}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        for _ in range(20):
            session.run(None, feed)
    for _ in range(rounds):
        for name, session in sessions.items():
            for _ in range(runs):
                start = time.perf_counter()
                session.run(None, feed)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def host_profile() -> str:
    """The installed profile that describes this x86-64 host's vector unit."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return "x86-64-avx512" if re.search(r"\bavx512f\b", flags) else "x86-64-avx2"


HOST_PROFILE = host_profile()


def _host_estimate(model: Path) -> tuple[float, float, str]:
    """shrink's latency estimate range (ms) for `model` on the host's profile, as the `latency` check computes it,
    and its MAC split by dtype."""
    from shrink.api.checks import Subject
    from shrink.checks.estimates import latency_estimate
    from shrink.host.registry import Registry

    target = Registry.load().catalog().resolve(HOST_PROFILE)
    estimate = latency_estimate(Subject(model, target))
    assert estimate is not None, f"{HOST_PROFILE} has no throughput figures"
    return estimate.low, estimate.high, estimate.split()


def _row(label: str, value: float, reference: float, unit: str) -> str:
    ratio = value / reference if reference else float("nan")
    return f"  {label:<44} {value:>14,.6g} {unit:<5} vs {reference:>14,.6g}  ratio {ratio:.3f}"


# (d) int8 and outside models -------------------------------------------------------------------------

LIGHT = Path(__import__("onnx").__file__).parent / "backend" / "test" / "data" / "light"


def _quantized(source: Path, feeds: list[dict[str, np.ndarray]]) -> Path:
    """`source` as `quantize.ptq` + `fuse.ort` make an int8 bundle: static QDQ per-channel, then EXTENDED."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.left, None)

    folded = _ort_optimized(source, "ORT_ENABLE_BASIC")  # zoo weights come from ConstantOfShape nodes
    qdq = source.with_name(source.stem + "_qdq.onnx")
    quantize_static(folded, qdq, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    return _ort_optimized(qdq)


def _ort_shape_macs(path: Path, feed: dict[str, np.ndarray]) -> int:
    """Conv/Gemm/MatMul MACs from the output shapes onnxruntime produces (no shape inference)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    wanted = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    names = sorted({x for n in wanted for x in (*n.input[:2], n.output[0])} - set(weights))
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = [o.name for o in session.get_outputs()]
    shapes = {**weights, **{n: v.shape for n, v in zip(outs, session.run(outs, feed))}}
    total = 0
    for node in wanted:
        out, a = shapes[node.output[0]], shapes[node.input[0]]
        if node.op_type == "Conv":
            total += math.prod(out) * math.prod(shapes[node.input[1]][1:])
        else:
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            total += math.prod(out) * (a[-2] if trans_a else a[-1])
    return total


def _flop_counter_macs(module: Any, example: Any) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(example)
    return counter.get_total_flops() // 2


def _hf_vision(which: str, out_dir: Path) -> tuple[Path, int, np.ndarray]:
    import torch
    from transformers import MobileNetV2Config, MobileNetV2Model, MobileViTConfig, MobileViTModel

    if which == "mobilenet_v2":
        config, cls = MobileNetV2Config(image_size=224), MobileNetV2Model
    else:  # MobileViT-XXS
        config, cls = MobileViTConfig(image_size=256, hidden_sizes=[64, 80, 96], expand_ratio=2.0,
                                      neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320]), MobileViTModel
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = cls(config).eval()

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(pixel_values=x).last_hidden_state

    module = Features().eval()
    example = torch.rand(1, 3, config.image_size, config.image_size)
    path = out_dir / f"{which}.onnx"
    torch.onnx.export(module, (example,), path, dynamo=False, opset_version=17, input_names=["pixel_values"])
    return path, _flop_counter_macs(module, example), example.numpy()


def _measured_ms(path: Path, feed: dict[str, np.ndarray], seconds: float = 2.0) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, feed)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 300):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _outside_rows(tmp: Path) -> list[tuple[str, Path, int, str, dict[str, np.ndarray]]]:
    """(label, model, reference MACs, what the reference is, a feed) for every model of (d)."""
    import onnx

    rng = np.random.default_rng(0)
    rows = []
    student = _export("student", tmp)
    digits_feeds = [{"x": rng.random((1, 1, 32, 32), np.float32)} for _ in range(8)]
    rows.append(("digits student int8 (bundle-like)", _quantized(student["static"], digits_feeds),
                 student["torch_macs"], "torch hooks", digits_feeds[0]))
    for name in ("squeezenet", "resnet50"):
        path = tmp / f"{name}.onnx"
        onnx.save(_modernized(LIGHT / f"light_{name}.onnx"), path)
        feed = {_input_name(path): rng.random((1, 3, 224, 224), np.float32)}
        reference = _ort_shape_macs(path, feed)
        rows.append((f"{name} fp32 (onnx model zoo)", path, reference, "onnxruntime shapes", feed))
        if name == "squeezenet":
            calibration = [{k: rng.random(v.shape, np.float32) for k, v in feed.items()} for _ in range(8)]
            rows.append((f"{name} int8 (onnx model zoo)", _quantized(path, calibration), reference,
                         "onnxruntime shapes", feed))
    for which in ("mobilenet_v2", "mobilevit_xxs"):
        path, reference, example = _hf_vision(which, tmp)
        feed = {"pixel_values": example}
        rows.append((f"{which} fp32 (transformers)", path, reference, "FlopCounterMode", feed))
        if which == "mobilenet_v2":
            calibration = [{"pixel_values": rng.random(example.shape, np.float32)} for _ in range(8)]
            rows.append((f"{which} int8 (transformers)", _quantized(path, calibration), reference,
                         "FlopCounterMode", feed))
    return rows


def _modernized(path: Path) -> Any:
    """A zoo graph as shipped (IR 3, opset 9, weights listed as inputs) at opset 13 with plain initializers,
    which onnxruntime's quantizer needs."""
    import onnx
    import onnx.version_converter

    model = onnx.version_converter.convert_version(onnx.load(path), 13)
    weights = {t.name for t in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.ir_version = 8
    return model


def _input_name(path: Path) -> str:
    import onnx

    model = onnx.load(path)
    weights = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in weights)


def outside_main() -> None:
    from shrink.analysis import analyze
    from shrink.report.inspect_view import dtype_split

    with tempfile.TemporaryDirectory() as tmp:
        print(f"(d) int8 and outside models: analysis vs reference MACs; {HOST_PROFILE}'s latency estimate vs "
              "onnxruntime's measured median")
        for label, path, reference, how, feed in _outside_rows(Path(tmp)):
            analysis = analyze(path)
            low, high, dtype = _host_estimate(path)
            measured = _measured_ms(path, feed)
            print(f"{label}: {analysis.nodes} nodes, MACs run in {dtype_split(analysis.macs_by_dtype)}"
                  + (f", INCOMPLETE: {'; '.join(analysis.incomplete)}" if analysis.incomplete else ""))
            print(f"  analyze().macs {analysis.macs:,} vs {how} {reference:,}: ratio {analysis.macs / reference:.4f}")
            print(f"  estimate {low:.3g}-{high:.3g} ms ({dtype}), measured {measured:.3g} ms: measured / high end "
                  f"{measured / high:.2f}, / low end {measured / low:.2f}")


def main() -> int:
    from shrink.analysis import analyze

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        models = {which: _export(which, Path(tmp)) for which in ("teacher", "student")}
        latency = _latencies({which: m["static"] for which, m in models.items()})
        for which, m in models.items():
            batch = RSS_BATCH[which]
            exported = analyze(m["static"])
            exported_b = analyze(m["dynamic"], {"x": [batch, 1, 32, 32]})
            fused_b = analyze(_ort_optimized(m["dynamic"]), {"x": [batch, 1, 32, 32]})
            measured = _rss_in_child(_ort_optimized(m["dynamic"]), batch)
            low, high, dtype = _host_estimate(m["static"])
            print(f"{which}: {exported.params:,} ONNX params (torch {m['torch_params']:,}), "
                  f"{exported.weight_bytes:,} weight bytes, peak at '{exported.peak_node}'")
            print("  (a) MACs (analyze / torch hooks)")
            print(_row("analyze().macs vs torch hooks", exported.macs, m["torch_macs"], "MACs"))
            print(f"  (b) activation bytes at batch {batch} (analyze / onnxruntime's measured peak RSS growth)")
            print(_row("peak_activation_bytes, ORT-optimized graph", fused_b.peak_activation_bytes, measured, "B"))
            print(_row("arena_bytes, ORT-optimized graph", fused_b.arena_bytes, measured, "B"))
            print(_row("peak_activation_bytes, exported graph", exported_b.peak_activation_bytes, measured, "B"))
            print(_row("exported graph at batch 1 vs measured / batch", exported.peak_activation_bytes,
                       measured / batch, "B"))
            mid = math.sqrt(low * high)
            print(f"  (c) host latency, batch 1 (measured / {HOST_PROFILE}'s estimate {low * 1e3:.3g}-{high * 1e3:.3g} us, {dtype})")
            print(_row("measured ORT median vs estimate (geometric mid)", latency[which] * 1e3, mid, "ms"))
            print(_row("measured ORT median vs low end of the range", latency[which] * 1e3, low, "ms"))
            print(_row("measured ORT median vs high end of the range", latency[which] * 1e3, high, "ms"))
    outside_main()
    print(f"bench time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure-rss":
        print(_measure_rss(sys.argv[2], int(sys.argv[3])))
        sys.exit(0)
    if sys.argv[1:] == ["--outside"]:
        outside_main()
        sys.exit(0)
    sys.exit(main())
