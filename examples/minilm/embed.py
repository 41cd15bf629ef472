"""Embed sentences with a shrink text-encoder bundle: onnxruntime + tokenizers + numpy, no torch.

    python examples/minilm/embed.py dist/minilm-tinybert-cortex-a53 "A man is eating food." ["Another sentence." ...]

Prints each sentence's embedding (dimension, norm, first values) as JSON lines; with two or more
sentences, also the cosine similarity of every pair. The tokenizer settings (file, max_length, padding,
input names) come from the bundle's preprocessing record (manifest.json "preprocessing"), not from constants.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def load(bundle: Path) -> tuple[ort.InferenceSession, Tokenizer, dict]:
    """The model, and its tokenizer set up as the bundle's preprocessing record says (`shrink schema preprocessing`):
    the tokenizer file, truncation at max_length, the padding and which model inputs take the ids and the mask."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    record = manifest.get("preprocessing") or {}
    settings = record.get("tokenizer")
    if record.get("kind") != "text" or not settings:
        raise SystemExit(f"error: {bundle} records no tokenizer in its preprocessing record (compile it with this shrink)")
    tokenizer = Tokenizer.from_file(str(bundle / settings["file"]))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=settings["max_length"], strategy=settings["truncation"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(bundle / manifest["model"]["file"]), options, providers=["CPUExecutionProvider"])
    return session, tokenizer, record


def embed(session: ort.InferenceSession, tokenizer: Tokenizer, record: dict, sentences: list[str]) -> np.ndarray:
    settings, names = record["tokenizer"], record["inputs"]
    encodings = tokenizer.encode_batch(sentences, add_special_tokens=settings["add_special_tokens"])
    length = settings["max_length"] if settings["padding"] == "max_length" else max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), length), settings["pad_id"], dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        ids[row, :len(enc.ids)] = enc.ids
        mask[row, :len(enc.ids)] = 1
    feeds = {names["input_ids"]: ids}
    if "attention_mask" in names:
        feeds[names["attention_mask"]] = mask
    return session.run(None, feeds)[0]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    bundle = Path(argv[0])
    if not (bundle / "manifest.json").is_file():
        print(f"error: {bundle} is not a shrink bundle (no manifest.json)", file=sys.stderr)
        return 2
    session, tokenizer, record = load(bundle)
    vectors = embed(session, tokenizer, record, argv[1:])
    for sentence, vector in zip(argv[1:], vectors):
        print(json.dumps({"sentence": sentence, "dim": int(vector.shape[0]), "norm": round(float(np.linalg.norm(vector)), 6),
                          "head": [round(float(v), 6) for v in vector[:8]]}))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            print(json.dumps({"pair": [i, j], "cosine": round(float(unit[i] @ unit[j]), 6)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
