"""Every example recipe plans; the digits recipe compiles end to end and meets its budget."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*.json"))


@pytest.fixture(scope="module")
def rendered_ocr_lines() -> None:
    """The OCR recipes plan against examples/ocr/lines/, which is rendered, not committed (their descriptions say
    to render it first); a fresh clone has none."""
    import subprocess
    import sys

    if not (REPO / "examples" / "ocr" / "lines").is_dir():
        subprocess.run([sys.executable, str(REPO / "examples" / "ocr" / "render.py")], check=True, capture_output=True)


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_plans(cli, recipe, rendered_ocr_lines):
    from shrink_tflite.options import missing

    if "tflite" in recipe.read_text() and missing():
        pytest.skip(f"{recipe.name} needs the tflite extra: {missing()}")
    result = cli("plan", recipe, "--json")
    assert result.code == 0, result.err


@pytest.mark.slow
def test_digits_recipe_compiles_and_meets_budget(cli, tmp_path):
    out = tmp_path / "digits"
    result = cli("compile", REPO / "recipes" / "digits-cnn.json", "-o", out, "--json")
    assert result.code == 0, result.err
    checks = {c["name"]: c for c in result.json["checks"]}
    assert checks["accuracy_drop"]["ok"] and checks["ops"]["ok"] and checks["ram"]["ok"]
    manifest = json.loads((out / "manifest.json").read_text())
    steps = [s["name"] for s in manifest["history"]]
    assert steps == ["source:torch", "distill.kd", "prune.structured", "fuse.bn", "export.onnx", "quantize.ptq", "fuse.ort"]
    teacher, final = manifest["history"][0]["metrics"], manifest["metrics"]
    assert final["params"] * 10 < teacher["params"]
    assert (out / "model.onnx").stat().st_size * 8 < 845_000
    assert cli("verify", out).code == 0
