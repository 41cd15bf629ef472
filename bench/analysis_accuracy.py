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
    import model as digits  # noqa: PLC0415 - the example's module, found through sys.path

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


def _ort_optimized(path: Path) -> Path:
    import onnxruntime as ort

    out = path.with_name(path.stem + "_ort.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
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
    """shrink's latency estimate range (ms) for `model` on the host's profile, as the `latency` check computes it."""
    from shrink.api.checks import Subject
    from shrink.checks.estimates import latency_estimate
    from shrink.host.registry import Registry

    target = Registry.load().catalog().resolve(HOST_PROFILE)
    estimate = latency_estimate(Subject(model, target))
    assert estimate is not None, f"{HOST_PROFILE} has no throughput figures"
    return estimate


def _row(label: str, value: float | int, reference: float | int, unit: str) -> str:
    ratio = value / reference if reference else float("nan")
    return f"  {label:<44} {value:>14,.6g} {unit:<5} vs {reference:>14,.6g}  ratio {ratio:.3f}"


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
    print(f"bench time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure-rss":
        print(_measure_rss(sys.argv[2], int(sys.argv[3])))
        sys.exit(0)
    sys.exit(main())
