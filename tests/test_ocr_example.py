"""The OCR example: text lines rendered by examples/ocr/render.py, and the pretrained PaddleOCR models the
`rapidocr-onnxruntime` wheel ships compiled from recipes/ocr-*.json (a model nobody here wrote, found inside an
installed package, calibrated and evaluated on a folder of images)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import onnx
import pytest

REPO = Path(__file__).resolve().parents[1]
RENDER = REPO / "examples" / "ocr" / "render.py"


def render(task: str, count: int, out: Path, seed: int) -> None:
    subprocess.run([sys.executable, str(RENDER), "--task", task, "--count", str(count), "--out", str(out),
                    "--seed", str(seed)], check=True, capture_output=True)


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def test_render_writes_labelled_lines_and_the_same_seed_the_same_files(tmp_path: Path) -> None:
    render("recognition", 12, tmp_path / "rec", 3)
    labels = (tmp_path / "rec" / "labels.tsv").read_text(encoding="utf-8").splitlines()
    assert len(labels) == 12 and all(len(row.split("\t")) == 2 and row.split("\t")[1].strip() for row in labels)
    render("orientation", 10, tmp_path / "cls", 3)
    assert {p.name for p in (tmp_path / "cls").iterdir()} == {"0", "180"}
    assert sum(1 for _ in (tmp_path / "cls").rglob("*.png")) == 10
    render("orientation", 10, tmp_path / "again", 3)
    assert digest(tmp_path / "cls") == digest(tmp_path / "again")


@pytest.mark.slow
def test_the_orientation_classifier_compiles_to_int8_and_verify_data_scores_it_alike(cli, tmp_path: Path) -> None:
    try:
        metadata.version("rapidocr-onnxruntime")
    except metadata.PackageNotFoundError:
        pytest.skip("rapidocr-onnxruntime is not installed (pip install -e '.[ocr]')")
    render("orientation", 60, tmp_path / "calibration", 11)
    render("orientation", 100, tmp_path / "eval", 12)
    raw = json.loads((REPO / "recipes" / "ocr-orientation.json").read_text())
    for key in ("path", "eval_size", "calibration_size"):
        del raw["data"][key]
    raw["data"].update(calibration=str(tmp_path / "calibration"), eval=str(tmp_path / "eval"))
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(raw))
    out = tmp_path / "bundle"
    result = cli("compile", recipe, "-o", out, "--no-cache")
    assert result.code == 0, result.err
    manifest = json.loads((out / "manifest.json").read_text())
    source, ptq = manifest["history"][0], manifest["history"][1]
    assert ptq["details"]["scheme"].startswith("static") and ptq["details"]["parity_top1_agreement"] >= 0.95
    assert source["metrics"]["accuracy"] >= 0.9  # the pretrained model reads the rendered lines
    assert manifest["metrics"]["model_bytes"] < 0.5 * source["metrics"]["model_bytes"]
    ops = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    assert ops & {"QLinearConv", "QuantizeLinear"}

    # the bundle's preprocessing record turns the same folder into the same inputs: the same accuracy
    scored = cli("verify", out, "--data", tmp_path / "eval", "--json")
    assert scored.code == 0, scored.err
    assert json.loads(scored.out)["data"]["accuracy"] == pytest.approx(manifest["metrics"]["accuracy"])
