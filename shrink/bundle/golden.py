"""Golden I/O: sample inputs and the outputs the final model gave for them, stored in the bundle.

`shrink verify` runs the stored inputs through onnxruntime (a `.tflite` model through TensorFlow Lite Micro's
interpreter, its outputs within one quantization step) and fails the `golden` check when any
output drifts beyond `atol + rtol * |expected|`. The file is a standard `.npz` written byte-for-byte
deterministically (fixed zip timestamps), so bundles stay reproducible.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from shrink.api.checks import CheckResult
from shrink.api.data import Dataset, array_feeds, random_feeds, rows, to_model
from shrink.api.inputs import is_pinned
from shrink.support.ort import session

GOLDEN_FILE = "golden.npz"
SAMPLES = 8
ATOL = 1e-3
RTOL = 1e-3
_EPOCH = (1980, 1, 1, 0, 0, 0)


def sample_inputs(inputs: list[dict[str, Any]], data: Dataset | None, seed: int, samples: int = SAMPLES) -> dict[str, np.ndarray] | None:
    """`samples` batch-1 inputs per model input in the model's layout, stacked: `{name: [samples, *shape]}`.

    Real eval samples when the data feeds the model, else seeded random values (constants and ranges as the
    inputs declare). None when an input has a dimension that is not pinned.
    """
    if not inputs or not all(is_pinned(spec) for spec in inputs):
        return None
    found = array_feeds(inputs, data, ("eval",), samples)
    feeds = found[0] if found is not None else random_feeds(inputs, (samples,), seed)
    batches = [to_model(inputs, feeds, i, i + 1) for i in range(rows(feeds))]
    return {spec["name"]: np.stack([batch[spec["name"]] for batch in batches]) for spec in inputs}


def run(model: Path, feeds: dict[str, np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    """Run each stacked sample through `model` (batch 1, one thread; a `.tflite` under TensorFlow Lite Micro, its
    outputs dequantized); outputs stacked the same way."""
    if model.suffix == ".tflite":
        from shrink.support.tflite_run import run as run_tflite

        return run_tflite(model, feeds)
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    count = len(next(iter(feeds.values())))
    results = [sess.run(None, {k: np.asarray(v[i]) for k, v in feeds.items()}) for i in range(count)]
    return names, [np.stack([np.asarray(r[j]) for r in results]) for j in range(len(names))]


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A `.npz` whose bytes depend only on the arrays (no timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            array_buffer = io.BytesIO()
            np.lib.format.write_array(array_buffer, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            archive.writestr(info, array_buffer.getvalue())
    return buffer.getvalue()


def make(model: Path, inputs: list[dict[str, Any]], data: Dataset | None, seed: int) -> tuple[bytes, dict[str, Any]] | None:
    """The golden file's bytes and its manifest record, or None when the inputs cannot be pinned."""
    feeds = sample_inputs(inputs, data, seed)
    if feeds is None:
        return None
    names, outputs = run(model, feeds)
    input_names = list(feeds)
    arrays = {f"input_{i}": feeds[n] for i, n in enumerate(input_names)}
    arrays.update({f"output_{j}": out for j, out in enumerate(outputs)})
    atol, rtol = ATOL, RTOL
    if model.suffix == ".tflite":  # integer outputs: identical, give or take one quantization step of the output
        from shrink.support.tflite_run import TflmModel

        atol, rtol = max([p.scale for p in TflmModel(model).outputs] + [0.0]) * 1.001 or ATOL, 0.0
    record = {"file": GOLDEN_FILE, "samples": len(next(iter(feeds.values()))), "inputs": input_names,
              "outputs": names, "atol": atol, "rtol": rtol}
    return npz_bytes(arrays), record


def check(model: Path, golden: Path, record: dict[str, Any]) -> CheckResult:
    """Rerun the stored inputs; the value is the worst `|actual - expected| - rtol * |expected|` margin used."""
    atol, rtol = float(record.get("atol", ATOL)), float(record.get("rtol", RTOL))
    try:
        with np.load(golden, allow_pickle=False) as stored:
            feeds = {name: stored[f"input_{i}"] for i, name in enumerate(record["inputs"])}
            expected = [stored[f"output_{j}"] for j in range(len(record["outputs"]))]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        return CheckResult("golden", False, atol, None, "abs", f"{GOLDEN_FILE} cannot be read: {exc}")
    if model.suffix == ".tflite":
        from shrink.support.tflm import available

        why = available()
        if why:
            return CheckResult("golden", False, atol, None, "abs", f"cannot verify: {why}")
    try:
        names, actual = run(model, feeds)
    except Exception as exc:  # onnxruntime raises its own exception types for unloadable models
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        runtime = "TensorFlow Lite Micro" if model.suffix == ".tflite" else "onnxruntime"
        return CheckResult("golden", False, atol, None, "abs", f"{runtime} cannot run the model: {first}")
    if names != list(record["outputs"]):
        return CheckResult("golden", False, atol, None, "abs",
                           f"the model's outputs {names} are not the recorded {list(record['outputs'])}")
    worst, where = 0.0, ""
    for name, got, want in zip(names, actual, expected):
        if got.shape != want.shape:
            return CheckResult("golden", False, atol, None, "abs", f"output {name!r} has shape {list(got.shape)}, expected {list(want.shape)}")
        excess = np.abs(got.astype(np.float64) - want.astype(np.float64)) - rtol * np.abs(want.astype(np.float64))
        if excess.size and float(excess.max()) > worst:
            worst, where = float(excess.max()), name
    ok = worst <= atol
    cause = None if ok else (f"output {where!r} drifted by {worst:.3g} (beyond atol {atol:g} + rtol {rtol:g} x |expected|) "
                             f"on the {record.get('samples', '?')} golden samples")
    return CheckResult("golden", ok, atol, round(worst, 9), "abs", cause)
