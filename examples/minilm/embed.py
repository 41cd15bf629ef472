"""Embed sentences with a shrink text-encoder bundle: onnxruntime + tokenizers + numpy, no torch.

    python examples/minilm/embed.py dist/minilm-tinybert-cortex-a53 "A man is eating food." ["Another sentence." ...]

Prints each sentence's embedding (dimension, norm, first values) as JSON lines; with two or more
sentences, also the cosine similarity of every pair.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def load(bundle: Path) -> tuple[ort.InferenceSession, Tokenizer]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    inputs = manifest["model"]["inputs"]
    max_length = int(inputs[0]["shape"][1])
    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return session, tokenizer


def embed(session: ort.InferenceSession, tokenizer: Tokenizer, sentences: list[str]) -> np.ndarray:
    encodings = tokenizer.encode_batch(sentences)
    length = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), length), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        ids[row, :len(enc.ids)] = enc.ids
        mask[row, :len(enc.ids)] = 1
    return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    bundle = Path(argv[0])
    if not (bundle / "model.onnx").is_file() or not (bundle / "tokenizer.json").is_file():
        print(f"error: {bundle} is not a text-encoder bundle (model.onnx and tokenizer.json)", file=sys.stderr)
        return 2
    session, tokenizer = load(bundle)
    vectors = embed(session, tokenizer, argv[1:])
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
