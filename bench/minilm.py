"""MiniLM benchmark: the fp32 teacher, ORT's own int4 of it, and each student recipe in fp32 and quantized, in one run.

    python bench/minilm.py [--recipes recipes/minilm-tinybert.json recipes/minilm-tinybert-int4.json ...]
                           [--seq 128] [--runs 200] [--out dist/bench-minilm]

Compiles, with shrink, the teacher exported alone (`export.onnx`, from the first recipe) and, for every
recipe, the student without its last pass (fp32; once per distinct student; without `distill.quantization_aware`,
which trains for that last pass: the float student it starts from) and the whole recipe (its last
pass names the variant: `quantize.ptq` int8, `quantize.weight_only` int4; an int4 recipe with `kernel: "int8"` is
also compiled with `kernel: "nbits"`, the same 4-bit blocks on MatMulNBits, unless its `distill.quantization_aware`
trained for int8 kernel inputs); they share the pass cache, so each
distillation runs once. The teacher is also quantized by ONNX Runtime's `MatMulNBitsQuantizer` with its
default settings (4 bits, block 128, asymmetric, MatMul weights only): the baseline a user gets without shrink.
Then, on this machine and in this process: file size, median batch-1 latency under ONNX Runtime at a fixed
sequence length (1 intra-op thread, runs interleaved round-robin so drift hits all models alike), and fidelity
to the teacher on the held-out sentences (per-sentence cosine, per held-out source too; Spearman of the
pairwise-similarity matrices), with the ratios the issues' goals are stated in: int8 ≥ 3x faster, ≥ 6x smaller;
int4 ≥ 4x faster, ≥ 10x smaller and smaller than ORT's int4 of the teacher; held-out cosine ≥ 0.90 overall and on
each held-out source. The recipes must share the model and the held-out options of their data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HELD_OUT_KEYS = ("eval_sources", "eval_size", "eval_file", "source")
LABELS = {"distill.tinybert": "TinyBERT", "distill.mobilebert": "MobileBERT"}
VARIANTS = {"quantize.ptq": "int8", "quantize.weight_only": "int4"}
GOALS = {"int8": (6, 3), "int4": (10, 4)}  # (times smaller, times faster) than the fp32 teacher


def compile_variant(recipe: dict[str, Any], passes: list[dict[str, Any]], name: str, out: Path, workdir: Path,
                    base: Path) -> tuple[Path, float]:
    variant = {**recipe, "name": f"{recipe['name']}-{name}", "passes": passes}
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(variant, indent=2))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "shrink", "compile", str(path), "-o", str(out / name), "--json"],
                          capture_output=True, text=True, cwd=base)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 4):
        sys.exit(f"compiling the {name} variant failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return out / name, seconds


def ort_int4(teacher: Path, dest: Path) -> Path:
    """The teacher's model.onnx through ONNX Runtime's MatMulNBitsQuantizer with its default settings (what its
    documentation shows), in a folder beside the teacher's tokenizer."""
    import shutil

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(teacher / "model.onnx")))
    quantizer.process()
    quantizer.model.save_model_to_file(str(dest / "model.onnx"), use_external_data_format=False)
    shutil.copy(teacher / "tokenizer.json", dest / "tokenizer.json")
    return dest


def eval_sentences(recipe: dict[str, Any], base: Path) -> tuple[list[str], dict[str, int]]:
    from shrink_huggingface.text import TextData

    options = {k: v for k, v in recipe["data"].items() if k != "source"}
    provider = TextData(TextData.Options(**options))

    class Ctx:
        def path(self, value: str) -> Path:
            return (base / value).resolve()

    data = provider.load(Ctx())  # type: ignore[arg-type]
    return list(data.split("eval").inputs), dict(data.meta["eval_groups"])


def embed(sess: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    from shrink_huggingface.tokens import encode

    outs = []
    for start in range(0, len(texts), 32):
        ids, mask = encode(tokenizer, texts[start:start + 32])
        outs.append(sess.run(None, {"input_ids": ids, "attention_mask": mask})[0])
    return np.concatenate(outs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=Path, nargs="+",
                        default=[REPO / "recipes" / "minilm-tinybert.json", REPO / "recipes" / "minilm-tinybert-int4.json",
                                 REPO / "recipes" / "minilm-mobilebert.json"])
    parser.add_argument("--seq", type=int, default=128, help="sequence length of the latency runs")
    parser.add_argument("--runs", type=int, default=200, help="latency runs per model")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "bench-minilm")
    args = parser.parse_args()

    import onnxruntime as ort

    from shrink_huggingface.metrics import fidelity
    from shrink_huggingface.tokens import load_tokenizer

    recipes = [(path.resolve(), json.loads(path.read_text())) for path in args.recipes]
    first_path, first = recipes[0]
    for path, recipe in recipes[1:]:
        held = {k: recipe["data"].get(k) for k in HELD_OUT_KEYS}
        if recipe["model"] != first["model"] or held != {k: first["data"].get(k) for k in HELD_OUT_KEYS}:
            sys.exit(f"{path.name}: the model or the held-out data options differ from {first_path.name}'s")
    args.out.mkdir(parents=True, exist_ok=True)
    models: dict[str, Path] = {}
    students: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models["teacher fp32"], seconds = compile_variant(first, [{"pass": "export.onnx"}], "teacher", args.out, work, first_path.parent)
        print(f"compile: teacher {seconds:.0f} s", file=sys.stderr)
        students_fp32: dict[str, Path] = {}
        for path, recipe in recipes:
            label = next((LABELS[p["pass"]] for p in recipe["passes"] if p["pass"] in LABELS), recipe["name"])
            variant = VARIANTS.get(recipe["passes"][-1]["pass"], recipe["passes"][-1]["pass"])
            slug = label.lower()
            # the float student: the recipe without its last pass, and without the quantization-aware training that
            # only makes sense before that pass (it is the student the training started from)
            float_passes = [p for p in recipe["passes"][:-1] if p["pass"] != "distill.quantization_aware"]
            student_key = json.dumps(float_passes, sort_keys=True)
            if student_key not in students_fp32:
                # a second student of the same kind (e.g. the int4 recipe's quantization-aware one) is named by its recipe
                fp32_name = f"{label} fp32" if f"{label} fp32" not in models else f"{label} fp32 ({recipe['name']})"
                fp32, t_fp32 = compile_variant(recipe, float_passes, f"{slug}-fp32-{len(students_fp32)}",
                                               args.out, work, path.parent)
                print(f"compile: {fp32_name} {t_fp32:.0f} s (includes the distillation unless cached)", file=sys.stderr)
                students_fp32[student_key] = fp32_name
                models[fp32_name] = fp32
            quantized, t_q = compile_variant(recipe, recipe["passes"], f"{slug}-{variant}", args.out, work, path.parent)
            print(f"compile: {label} {variant} {t_q:.0f} s", file=sys.stderr)
            models[f"{label} {variant}"] = quantized
            last = recipe["passes"][-1]
            int8_inputs = any(p["pass"] == "distill.quantization_aware" and p.get("activations") == "int8"
                              for p in recipe["passes"])
            if last["pass"] == "quantize.weight_only" and last.get("kernel") == "int8" and not int8_inputs:
                # the same 4-bit blocks on ONNX Runtime's MatMulNBits (accuracy_level 4: int8 activations per block)
                nbits = [*recipe["passes"][:-1], {**last, "kernel": "nbits"}]
                models[f"{label} {variant} MatMulNBits"], t_n = compile_variant(recipe, nbits, f"{slug}-{variant}-nbits",
                                                                               args.out, work, path.parent)
                print(f"compile: {label} {variant} MatMulNBits {t_n:.0f} s", file=sys.stderr)
            students.append({"label": label, "variant": variant, "recipe": path, "bundle": quantized,
                             "fp32": students_fp32[student_key], "compile_seconds": round(t_q, 1)})
    models["teacher int4 (ORT default)"] = ort_int4(models["teacher fp32"], args.out / "teacher-ort-int4")

    texts, groups = eval_sentences(first, first_path.parent)
    max_length = int(first["model"].get("max_length", 128))
    # each bundle with its own tokenizer: prune.embeddings renumbers the vocabulary
    tokenizers = {name: load_tokenizer(d / "tokenizer.json", max_length) for name, d in models.items()}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    sessions = {name: ort.InferenceSession(str(d / "model.onnx"), options, providers=["CPUExecutionProvider"])
                for name, d in models.items()}
    embeddings = {name: embed(sess, tokenizers[name], texts) for name, sess in sessions.items()}

    # latency input: the held-out text run together, cut to exactly --seq tokens by each model's tokenizer
    feeds = {}
    for name in sessions:
        long = load_tokenizer(models[name] / "tokenizer.json", args.seq)
        ids = np.asarray(long.encode(" ".join(texts)).ids, dtype=np.int64)[None, :]
        feeds[name] = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if any(f["input_ids"].shape[1] != args.seq for f in feeds.values()):
        sys.exit(f"--seq {args.seq}: the held-out text does not fill it")
    for name, sess in sessions.items():
        try:
            for _ in range(10):
                sess.run(None, feeds[name])
        except Exception as exc:  # e.g. a position table cut at max_length (prune.embeddings positions)
            sys.exit(f"{name} cannot run {args.seq} tokens: {str(exc).splitlines()[0]}")
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.runs):
        for name, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, feeds[name])
            times[name].append(time.perf_counter() - start)

    teacher = embeddings["teacher fp32"]
    rows = {}
    for name, d in models.items():
        manifest_path = d / "manifest.json"
        params = json.loads(manifest_path.read_text())["metrics"].get("params") if manifest_path.exists() else None
        row = {"bytes": (d / "model.onnx").stat().st_size, "params": params,
               "latency_ms": float(np.median(times[name]) * 1000), **fidelity(embeddings[name], teacher)}
        start = 0
        for group, count in groups.items():
            row[f"cosine_{group}"] = fidelity(embeddings[name][start:start + count], teacher[start:start + count])["cosine"]
            start += count
        rows[name] = row
    group_cols = [f"cosine_{g}" for g in groups]
    print(f"\nheld-out: {len(texts)} sentences ({', '.join(f'{g} {n}' for g, n in groups.items())}); "
          f"latency: batch 1, sequence {args.seq}, 1 ORT thread, {args.runs} interleaved runs")
    print("| model | bytes | params | latency ms | cosine | spearman | " + " | ".join(group_cols) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(group_cols))
    for name, r in rows.items():
        params = f"{r['params']:,}" if r["params"] else "-"
        print(f"| {name} | {r['bytes']:,} | {params} | {r['latency_ms']:.2f} | {r['cosine']:.4f} | {r['spearman']:.4f} | "
              + " | ".join(f"{r[c]:.4f}" for c in group_cols) + " |")
    t = rows["teacher fp32"]
    ort_q = rows["teacher int4 (ORT default)"]
    print(f"\nteacher int4 (ORT MatMulNBitsQuantizer, defaults): {t['bytes'] / ort_q['bytes']:.1f}x smaller, "
          f"{t['latency_ms'] / ort_q['latency_ms']:.1f}x faster, held-out cosine {ort_q['cosine']:.4f}")
    summary = []
    for student in students:
        label, variant = student["label"], student["variant"]
        s, q = rows[student["fp32"]], rows[f"{label} {variant}"]
        smaller, faster = t["bytes"] / q["bytes"], t["latency_ms"] / q["latency_ms"]
        want_smaller, want_faster = GOALS.get(variant, (6, 3))
        # held-out cosine ≥0.90 overall and on each held-out source
        worst = min(q[c] for c in group_cols)
        goal = smaller >= want_smaller and faster >= want_faster and q["cosine"] >= 0.90 and worst >= 0.90
        extra = ""
        if variant == "int4":
            below_ort = q["bytes"] < ort_q["bytes"]
            goal = goal and below_ort
            extra = f", {ort_q['bytes'] / q['bytes']:.1f}x smaller than ORT's int4 teacher (cosine {ort_q['cosine']:.4f})"
        print(f"\n{label} {variant}: fp32 student {t['bytes'] / s['bytes']:.1f}x smaller, {t['latency_ms'] / s['latency_ms']:.1f}x "
              f"faster; {variant} {smaller:.2f}x smaller, {faster:.2f}x faster, held-out cosine {q['cosine']:.4f} (lowest "
              f"source {worst:.4f}; fp32 student {s['cosine']:.4f}, lowest source {min(s[c] for c in group_cols):.4f}), "
              f"Spearman {q['spearman']:.4f}{extra}; goal (≥{want_faster}x faster, ≥{want_smaller}x smaller, cosine ≥0.90 "
              "overall and on each held-out source"
              f"{', smaller than ORT int4' if variant == 'int4' else ''}): {'met' if goal else 'not met'}")
        manifest = json.loads((student["bundle"] / "manifest.json").read_text())
        steps = [h for h in manifest["history"] if h["name"].startswith("distill.")] or [{"name": "no distillation"}]
        for step in steps:
            details = step.get("details", {})
            stages = details.get("stages")
            plan = (", ".join(f"{st['stage']} {st['sentences']}x{st['epochs']}" for st in stages) if stages
                    else f"{details.get('sentences')} sentences x {details.get('epochs')} epochs")
            print(f"  {step['name']}: {plan}; {details.get('train_seconds')} s; final losses {details.get('final_losses')}")
        details = steps[0].get("details", {})
        summary.append({"label": label, "variant": variant, "smaller": round(smaller, 2), "faster": round(faster, 2),
                        "lowest_source_cosine": round(worst, 4), "goal_met": goal,
                        "train_seconds": details.get("train_seconds"), "student": details.get("student")})
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "students": summary, "seq": args.seq, "runs": args.runs,
                                                       "held_out": groups}, indent=2, default=str))


if __name__ == "__main__":
    main()
