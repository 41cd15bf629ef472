"""The text view of `shrink inspect`: per-row MACs and their dtypes, the MAC split, If/Loop/Scan bodies, and
the incomplete reasons and notes, which `--json` had alone before."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from shrink.cli.main import main
from shrink.report.inspect_view import dtype_split
from tests.test_analysis import _init, _model, _vi
from tests.test_analysis_control_flow import _padded_if


def _inspect(path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["inspect", str(path)])
    assert code == 0, err.getvalue()
    return out.getvalue()


def _row(text: str, *cells: str) -> bool:
    """Whether a table row holds `cells` in this order."""
    return any(re.search(r"│\s*" + r"\s*│\s*".join(map(re.escape, cells)) + r"\s*│", line) for line in text.splitlines())


def test_dtype_split() -> None:
    assert dtype_split({"float32": 880, "int8": 120}) == "float32 88% · int8 12%"
    assert dtype_split({"int8": 5}) == "int8"
    assert dtype_split({"int8": 999_000, "float32": 1_000}) == "int8 100% · float32 0.1%"
    assert dtype_split({}) == ""


def test_conv_rows_carry_their_own_macs_and_dtypes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MobileViT showed `Conv 1,092,354,048` on two rows: the op total on each dtype row."""
    inits = [_init("w1", [8, 3, 3, 3]), _init("b1", [8]), numpy_helper.from_array(np.ones((4, 8, 1, 1), np.int8), "wq"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.array(0, np.uint8), "uz")]
    model = _model([helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1], name="float_conv"),
                    helper.make_node("QuantizeLinear", ["c", "s", "uz"], ["cq"]),
                    helper.make_node("DequantizeLinear", ["cq", "s", "uz"], ["cd"]),
                    helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
                    helper.make_node("Conv", ["cd", "wd"], ["q"], name="int8_conv"),
                    helper.make_node("QuantizeLinear", ["q", "s", "uz"], ["qq"]),
                    helper.make_node("DequantizeLinear", ["qq", "s", "uz"], ["y"])],
                   [_vi("x", [1, 3, 8, 8])], [_vi("y", None)], inits)
    onnx.save(model, tmp_path / "m.onnx")
    text = _inspect(tmp_path / "m.onnx", monkeypatch)
    float_macs, int8_macs = 8 * 64 * 27, 4 * 64 * 8  # 13,824 and 2,048
    assert _row(text, "MACs", f"{float_macs + int8_macs:,}  (FLOPs = 2 × MACs = {2 * (float_macs + int8_macs):,})")
    assert _row(text, "MACs run in", "float32 87% · int8 13%")
    # both convs have float32 inputs (one through DequantizeLinear): one row, its own MACs, split by dtype
    assert _row(text, "ai.onnx", "Conv", "17", "float32", "2", f"{float_macs + int8_macs:,}", "float32 87% · int8 13%")
    assert _row(text, "ai.onnx", "DequantizeLinear", "17", "uint8, float32", "2", "", "")
    assert _row(text, "ai.onnx", "DequantizeLinear", "17", "int8, float32", "1", "", "")


def test_if_bodies_and_notes_are_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx.save(_padded_if(), tmp_path / "if.onnx")
    text = _inspect(tmp_path / "if.onnx", monkeypatch)
    assert _row(text, "if", "If", "then_branch", "73,728", "×1", "the costlier branch (upper bound)")
    assert _row(text, "if", "If", "else_branch", "14,112", "×0", "not counted: cheaper branch")
    assert "notes:\n  - If 'if': the costlier branch counted, an upper bound (then_branch 73,728, else_branch 14,112 MACs)" \
        in text
    assert "incomplete" not in text


def test_incomplete_figures_are_marked_and_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model([helper.make_node("Foo", ["x"], ["f"], domain="my.ops", name="foo"),
                    helper.make_node("MatMul", ["f", "w"], ["y"], name="mm")],
                   [_vi("x", [1, 4])], [_vi("y", None)], [_init("w", [4, 4])])
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    onnx.save(model, tmp_path / "m.onnx")
    text = _inspect(tmp_path / "m.onnx", monkeypatch)
    assert _row(text, "MACs", "≥ 0  (FLOPs = 2 × MACs = 0)  incomplete")
    assert "incomplete: these figures are lower bounds" in text
    assert "  - op my.ops:Foo ×1 has no cost model: 'foo'" in text
    assert "  - the main graph: MACs of 1 node(s) not counted, shapes unknown: 'mm' (MatMul: shape of 'f')" in text
    assert "notes:\n  - onnxruntime could not run the model to measure its shapes" in text
