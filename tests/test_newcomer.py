"""What a newcomer ran into: global flags in every position, labels naming where a value came from, per-pass help,
plain progress in CI logs, `init` on a microcontroller target and on train/test folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shrink.cli.console import Console
from shrink.cli.progress import Progress
from tests.test_init import _pngs


@pytest.fixture
def bundle(cli, make_recipe, tmp_path: Path) -> Path:
    assert cli("compile", make_recipe(), "-o", tmp_path / "bundle").code == 0
    return tmp_path / "bundle"


@pytest.mark.parametrize("before", [True, False])
def test_json_is_honoured_before_and_after_the_command(cli, make_recipe, bundle: Path, before: bool):
    recipe = make_recipe("r.json")
    for args in (("verify", bundle), ("plan", recipe), ("targets", "cortex-a53"), ("passes",), ("inspect", bundle / "model.onnx"),
                 ("cache", "info")):
        result = cli("--json", *args) if before else cli(*args, "--json")
        assert result.code == 0, (args, result.err)
        assert isinstance(result.json, dict), args  # stdout is exactly one JSON object, never text
    errored = cli("--json", "verify", bundle.parent / "missing") if before else cli("verify", bundle.parent / "missing", "--json")
    assert errored.code == 2 and errored.json["verdict"] == "error"


def test_debug_is_honoured_before_the_command(cli, tmp_path: Path):
    result = cli("--debug", "plan", tmp_path / "missing.json")
    assert result.code == 2 and "Traceback" in result.err  # --debug adds the traceback to the one-line error


def test_errors_name_the_argument_they_came_from(cli, make_recipe):
    result = cli("targets", "raspberrypi")
    assert result.code == 2 and "error: targets: unknown target 'raspberrypi'" in result.err
    assert "did you mean 'raspberry-pi-4'?" in result.err
    assert "error: --target: unknown target 'raspberrypi'" in cli("plan", make_recipe(), "--target", "raspberrypi").err
    assert "--budget" in cli("compile", make_recipe(), "--budget", "latency=2").err


def test_passes_name_shows_formats_needs_and_every_option_from_the_schema(cli):
    result = cli("passes", "distill.kd")
    assert result.code == 0, result.err
    assert "distill.kd (the default 'distill' pass)" in result.out and "formats: torch → torch" in result.out
    assert "needs: labelled data, a train split" in result.out
    assert "temperature · number · 2.0 · > 0, ≤ 20" in result.out  # 80-column output: one stanza per option
    assert "student.factory · string · required" in result.out
    as_json = cli("passes", "distill.kd", "--json").json
    options = {o["name"]: o for o in as_json["options"]}
    assert options["alpha"] == {"name": "alpha", "type": "number", "default": 0.5, "required": False, "bounds": "≥ 0, ≤ 1",
                                "description": "weight of the KD term; 1 - alpha weights cross-entropy on the labels"}
    assert options["optimizer"]["bounds"] == 'one of "adam", "sgd"' and "description" not in options
    assert as_json["schema"]["properties"]["temperature"]["maximum"] == 20  # the schema `shrink schema recipe` holds
    assert cli("passes", "quantize", "--json").json["name"] == "quantize.ptq"  # a bare kind: its default


def test_an_unknown_pass_is_exit_2_with_did_you_mean(cli):
    result = cli("passes", "distil.kd")
    assert result.code == 2 and "error: passes: unknown pass 'distil.kd'" in result.err
    assert "did you mean 'distill.kd'?" in result.err
    unknown = cli("--json", "passes", "zzz")
    hint = unknown.json["errors"][0]["hint"]
    assert unknown.code == 2 and hint.startswith("installed passes: ") and "distill.kd, " in hint


def test_plain_progress_prints_each_report_and_a_heartbeat_in_long_steps(capsys):
    now = [100.0]
    progress = Progress(Console(), heartbeat=30.0, clock=lambda: now[0])
    assert progress.bar is None  # captured stderr is no terminal: plain lines
    progress("passes[0]", 0.0, "passes[0] distill.kd")
    for epoch in (1, 2):
        now[0] += 5
        progress("passes[0]", 0.05 + 0.45 * epoch, f"distilling: epoch {epoch}/2, loss 0.5")
    progress("passes[0]", 0.95, "distilling: epoch 2/2, loss 0.5")  # the same text again: no second line
    now[0] += 29
    progress.beat()  # 29 s of silence: nothing yet
    now[0] += 2
    progress.beat()
    now[0] += 31
    progress.beat()
    progress("passes[0]", 1.0, "passes[0] distill.kd done in 72.0 s")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "→ passes[0] distill.kd",
        "  passes[0]: distilling: epoch 1/2, loss 0.5 (50%)",
        "  passes[0]: distilling: epoch 2/2, loss 0.5 (95%)",
        "  … passes[0]: distilling: epoch 2/2, loss 0.5 (95%; still running, 41s in this step)",
        "  … passes[0]: distilling: epoch 2/2, loss 0.5 (95%; still running, 1m12s in this step)",
        "  passes[0] distill.kd done in 72.0 s",
    ]


def test_a_compile_without_a_terminal_prints_every_epoch(cli, make_recipe, tmp_path: Path):
    recipe = make_recipe(passes=[{"pass": "distill.kd", "student": {"factory": "tiny.py:tiny", "kwargs": {"width": 2}},
                                  "epochs": 3}, {"pass": "export.onnx"}])
    result = cli("--json", "compile", recipe, "-o", tmp_path / "b")
    assert result.code == 0, result.err
    for epoch in (1, 2, 3):
        assert f"distilling: epoch {epoch}/3" in result.err
    assert json.loads(result.out)["verdict"] == "pass"


def test_init_for_a_microcontroller_ends_in_tflite_or_names_the_extra(cli, tiny_model: Path, tmp_path: Path, monkeypatch):
    from shrink.host.registry import Registry

    monkeypatch.chdir(tmp_path)
    _pngs(tmp_path / "photos", ["a", "b"])
    out = tmp_path / "m7.json"
    result = cli("init", "--model", "tiny.py:tiny", "--data", "photos", "--target", "cortex-m7", "--shape", "input=1x1x8x8",
                 "-o", out, "--json")
    entry = Registry.load().get("passes", "export.tflite")
    missing = entry.obj.unavailable() if entry is not None else "no export.tflite pass"
    if missing:
        assert result.code == 2 and not out.exists()  # nothing half-written
        (error,) = result.json["errors"]
        assert error["where"] == "--target"
        assert "tflite" in error["message"] and ("pip install" in error["message"] or "shrink passes" in error["hint"])
    else:
        assert result.code == 0, result.err
        assert [p["pass"] for p in json.loads(out.read_text(encoding="utf-8"))["passes"]] == ["export.tflite"]


def test_init_declares_train_and_eval_from_train_and_test_folders(cli, tiny_model: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _pngs(tmp_path / "photos" / "train", ["cat", "dog"])
    _pngs(tmp_path / "photos" / "test", ["cat", "dog"], count=4)
    out = tmp_path / "recipes" / "r.json"
    result = cli("init", "--model", "tiny.py:tiny", "--data", "photos", "--target", "cortex-a53", "--shape", "input=1x1x8x8",
                 "-o", out)
    assert result.code == 0, result.err
    recipe = json.loads(out.read_text(encoding="utf-8"))
    assert recipe["data"]["train"] == "../photos/train" and recipe["data"]["eval"] == "../photos/test"
    assert "path" not in recipe["data"] and recipe["budget"]["accuracy_drop"] == 0.02
    assert "torch → ONNX" in out.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes


@pytest.mark.slow
def test_init_reads_a_hugging_face_folder(cli, tmp_path: Path):
    pytest.importorskip("transformers")
    from tests.test_hf_models import write_text_model

    folder = write_text_model(tmp_path / "clf", "distilbert")
    out = tmp_path / "r.json"
    result = cli("init", "--model", folder, "--target", "cortex-a72", "-o", out)
    assert result.code == 0, result.err
    model = json.loads(out.read_text())["model"]
    assert model["source"] == "huggingface" and model["task"] == "sequence-classification"


def test_plan_tables_wrap_options_at_80_columns_and_never_cut_them(cli, make_recipe):
    recipe = make_recipe(passes=[{"pass": "export.onnx", "exporter": "torchscript"}, {"pass": "fuse.ort"}])
    result = cli("plan", recipe)  # captured stdout: no terminal, rich's 80 columns
    assert result.code == 0 and max(len(line) for line in result.out.splitlines()) <= 80
    cells = "".join(line.split("│")[-2].strip() for line in result.out.splitlines() if line.count("│") >= 6)
    for value in ('exporter="torchscript"', 'graph_optimization_level="extended"', "min_agreement=0.99"):
        assert value in cells


def test_the_guide_states_the_digits_data_as_it_is():
    from shrink_sklearn.digits import digits_splits
    from tests.test_guide import GUIDE

    splits = digits_splits(32)
    x, _ = splits["eval"]
    assert len(x) == 360 and x.shape[1:] == (1, 32, 32) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    text = GUIDE.read_text(encoding="utf-8")
    assert "1,797 8x8 digits" in text and "one channel, float32 in [0, 1]" in text and "360 images" in text
