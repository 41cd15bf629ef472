"""Keyword-spotting benchmark: Deep Compression's weight sharing + LUT coding against plain full int8, in one run.

    python bench/kws.py [--recipe recipes/kws-cortex-m4.json] [--train-per-class 400] [--out /tmp/kws-bench]

Needs `pip install -e '.[tflite]'`. Compiles the recipe twice with the same data, teacher and seeds: as written
(distill.kd → prune.structured → fuse.bn → compress.cluster → export.tflite, LUT-coded) and without
`compress.cluster` (the baseline: the same student exported as plain full int8). Prints, from the two bundles'
manifests: the fp32 teacher's and each bundle's accuracy on the unseen eval voices (the int8 `.tflite` under TFLite
Micro's interpreter), the torch model's after each training pass (where the points go), the plain int8 file (as
converted, with names dropped, and stripped of what TFLite Micro never reads) with zlib and zstd of it, the
Huffman-coded and LUT-coded sizes of the clustered model, where the bytes of the plain and the deployed file go
(weights, biases, quantization parameters, names, metadata, flatbuffer structure), the arena TFLite Micro needs
against the static estimate, and the ratios.
`--train-per-class` overrides the data size to keep the run short (the teacher is not retrained).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _recipe(source: Path, out: Path, train_per_class: int | None, cluster: bool) -> Path:
    from shrink.plan.load import load_recipe
    from shrink.search.recipes import rebased

    recipe = rebased(json.loads(source.read_text()), load_recipe(source), out)  # its paths resolve from `out`
    if train_per_class:
        recipe["data"]["train_per_class"] = train_per_class
    if not cluster:
        recipe["passes"] = [p for p in recipe["passes"] if p["pass"] != "compress.cluster"]
        recipe["name"] += "-no-cluster"
    path = out / f"{recipe['name']}.json"
    path.write_text(json.dumps(recipe, indent=1))
    return path


def compile_bundle(recipe: Path, bundle: Path) -> tuple[dict, float]:
    """`shrink compile` of `recipe` into `bundle` in a child process: its manifest and the wall seconds (exits when
    no bundle is written)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "shrink", "compile", str(recipe), "-o", str(bundle)],
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if not (bundle / "manifest.json").is_file():
        sys.exit(f"{recipe.name}: compile exited {done.returncode} without a bundle:\n{done.stderr[-2000:]}")
    return json.loads((bundle / "manifest.json").read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "kws-cortex-m4.json")
    parser.add_argument("--train-per-class", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kws-bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shared, shared_s = compile_bundle(_recipe(args.recipe, args.out, args.train_per_class, True), args.out / "cluster")
    plain, plain_s = compile_bundle(_recipe(args.recipe, args.out, args.train_per_class, False), args.out / "no-cluster")

    teacher = shared["history"][0]["metrics"]["accuracy"]
    coding = shared["metrics"]["coding"]
    base = plain["metrics"]["coding"]
    int8 = base["int8_bytes"]
    export = plain["history"][-1]["details"]
    named = export.get("names_dropped_bytes") or int8
    print(f"{'model':52} {'accuracy':>9} {'bytes':>9} {'x int8':>7}")
    steps = {h["name"]: h["metrics"].get("accuracy") for h in shared["history"]}
    scales = shared["history"][-1]["details"].get("weight_scales")
    rows = [("fp32 teacher (torch)", teacher, None),
            ("fp32 student after distill.kd (torch)", steps.get("distill.kd"), None),
            ("  after prune.structured + fuse.bn (torch)", steps.get("fuse.bn"), None),
            ("  after compress.cluster (torch)", steps.get("compress.cluster"), None),
            ("int8 .tflite as converted (tensor names kept)", plain["metrics"]["accuracy"], export.get("converted_bytes")),
            ("int8 .tflite, names dropped (deployed before)", plain["metrics"]["accuracy"], named),
            ("int8 .tflite, no weight sharing, stripped (plain)", plain["metrics"]["accuracy"], int8),
            ("  zlib -9 of it", None, base["zlib_bytes"]),
            ("  zstd -19 of it", None, base["zstd_bytes"]),
            (f"int8 .tflite, shared, {scales} scales (stored)", shared["metrics"]["accuracy"], coding["int8_bytes"]),
            ("  Huffman-coded shared weights", None, coding.get("huffman_bytes")),
            (f"  LUT-coded, {coding.get('coded_tensors', 0)} of {coding['weight_tensors']} tensors "
             f"({'/'.join(coding.get('value_tables', []))})", shared["metrics"]["accuracy"], coding.get("lut_bytes"))]
    for name, accuracy, size in rows:
        acc = f"{accuracy:.2%}" if accuracy is not None else ""
        ratio = f"{size / int8:.3f}" if size else ""
        print(f"{name:52} {acc:>9} {size or '':>9} {ratio:>7}")
    _breakdowns([("plain int8 (no sharing)", base["int8_breakdown"]),
                 ("shared, stored", coding["int8_breakdown"]),
                 ("shared, LUT-coded", coding.get("lut_breakdown"))])
    for label, manifest in (("shared", shared), ("plain", plain)):
        arena = manifest["metrics"]["arena_measured"]
        plan = manifest["metrics"]["arena_plan_bytes"]
        print(f"arena ({label}): measured {arena['total']} B (tensors {arena['head']} + persistent {arena['tail']} + "
              f"{arena.get('temp', 0)} while preparing); static plan {plan} B of tensors ({plan / arena['head']:.3f} x "
              "the measured tensors)")
    drop = plain["metrics"]["accuracy"] - shared["metrics"]["accuracy"]
    deployed = coding.get("lut_bytes") if coding["deployed"] == "lut" else coding["int8_bytes"]
    print(f"weight sharing: the deployed file is {deployed / int8:.3f}x the plain int8 file ({deployed} / {int8} B; "
          f"{deployed / named:.3f}x the plain file with names dropped only, {named} B) "
          f"(zstd {base['zstd_bytes'] / int8:.3f}x; deployed: {coding['deployed']}"
          + (f", {coding['not_deployed']}" if coding.get("not_deployed") else "")
          + f") at {drop * 100:+.2f} points accuracy loss against it; compiles {shared_s:.0f} s and {plain_s:.0f} s; "
          f"verdicts {shared['verdict']}, {plain['verdict']}")


def _breakdown_line(label: str, rows: dict[str, int]) -> str:
    keys = ("weights", "biases", "quantization", "structure", "names", "metadata", "other_constants")
    return f"{label:28} {rows['total']:>7} " + " ".join(f"{rows[k]:>9}" for k in keys)


def _breakdowns(files: list[tuple[str, dict[str, int] | None]]) -> None:
    """Where each file's bytes go (`shrink_tflite.coding.breakdown`)."""
    print(f"{'bytes of':28} {'total':>7} {'weights':>9} {'biases':>9} {'quant':>9} {'structure':>9} {'names':>9} "
          f"{'metadata':>9} {'consts':>9}")
    for label, rows in files:
        if rows:
            print(_breakdown_line(label, rows))


if __name__ == "__main__":
    main()
