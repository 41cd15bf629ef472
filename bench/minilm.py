"""MiniLM benchmark: the fp32 teacher and each student recipe (TinyBERT, MobileBERT) in fp32 and int8, in one run.

    python bench/minilm.py [--recipes recipes/minilm-tinybert.json recipes/minilm-mobilebert.json] [--seq 128] [--runs 200] [--out dist/bench-minilm]

Compiles, with shrink, the teacher exported alone (`export.onnx`, from the first recipe) and, for every
recipe, the student without its last pass `quantize.ptq` (fp32) and the whole recipe (int8); the two
share the pass cache, so each distillation runs once. Then, on this machine and in this process: file
size, median batch-1 latency under ONNX Runtime at a fixed sequence length (1 intra-op thread, runs
interleaved round-robin so drift hits all models alike), and fidelity to the teacher on the held-out
sentences (per-sentence cosine, per held-out source too; Spearman of the pairwise-similarity matrices),
with the ratios the issue's goal is stated in (student + int8 ≥ 3x faster, ≥ 6x smaller, held-out
cosine ≥ 0.90). The recipes must share the model and the held-out options of their data.
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
                        default=[REPO / "recipes" / "minilm-tinybert.json", REPO / "recipes" / "minilm-mobilebert.json"])
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
        for path, recipe in recipes:
            label = next((LABELS[p["pass"]] for p in recipe["passes"] if p["pass"] in LABELS), recipe["name"])
            slug = label.lower()
            fp32, t_fp32 = compile_variant(recipe, recipe["passes"][:-1], f"{slug}-fp32", args.out, work, path.parent)
            int8, t_int8 = compile_variant(recipe, recipe["passes"], f"{slug}-int8", args.out, work, path.parent)
            print(f"compile: {label} fp32 {t_fp32:.0f} s (includes the distillation unless cached), int8 {t_int8:.0f} s",
                  file=sys.stderr)
            models[f"{label} fp32"], models[f"{label} int8"] = fp32, int8
            students.append({"label": label, "recipe": path, "int8": int8, "compile_seconds": round(t_fp32 + t_int8, 1)})

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
        manifest = json.loads((d / "manifest.json").read_text())
        row = {"bytes": (d / "model.onnx").stat().st_size, "params": manifest["metrics"].get("params"),
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
        print(f"| {name} | {r['bytes']:,} | {r['params']:,} | {r['latency_ms']:.2f} | {r['cosine']:.4f} | {r['spearman']:.4f} | "
              + " | ".join(f"{r[c]:.4f}" for c in group_cols) + " |")
    t = rows["teacher fp32"]
    summary = []
    for student in students:
        label = student["label"]
        s, q = rows[f"{label} fp32"], rows[f"{label} int8"]
        smaller, faster = t["bytes"] / q["bytes"], t["latency_ms"] / q["latency_ms"]
        goal = smaller >= 6 and faster >= 3 and q["cosine"] >= 0.90
        print(f"\n{label}: fp32 {t['bytes'] / s['bytes']:.1f}x smaller, {t['latency_ms'] / s['latency_ms']:.1f}x faster; "
              f"int8 {smaller:.1f}x smaller, {faster:.1f}x faster, held-out cosine {q['cosine']:.4f}, Spearman {q['spearman']:.4f}; "
              f"goal (≥3x faster, ≥6x smaller, cosine ≥0.90): {'met' if goal else 'not met'}")
        manifest = json.loads((student["int8"] / "manifest.json").read_text())
        step = next((h for h in manifest["history"] if h["name"].startswith("distill.")), {"name": "no distillation"})
        details = step.get("details", {})
        stages = details.get("stages")
        plan = (", ".join(f"{st['stage']} {st['sentences']}x{st['epochs']}" for st in stages) if stages
                else f"{details.get('sentences')} sentences x {details.get('epochs')} epochs")
        print(f"  {step['name']}: {plan}; {details.get('train_seconds')} s; final losses {details.get('final_losses')}")
        summary.append({"label": label, "smaller": round(smaller, 2), "faster": round(faster, 2), "goal_met": goal,
                        "train_seconds": details.get("train_seconds"), "student": details.get("student")})
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "students": summary, "seq": args.seq, "runs": args.runs,
                                                       "held_out": groups}, indent=2, default=str))


if __name__ == "__main__":
    main()
