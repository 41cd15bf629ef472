"""report.html in every bundle, and `--junit` reports from `compile` and `verify`, on real (tiny) compiles."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from shrink.report.html import render_html
from tests.conftest import run_subprocess

HOSTILE = "<script>alert('x')</script> & <b>bold</b>"
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


def _suite(path: Path) -> tuple[ET.Element, ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return root, suites[0]


def _counts(element: ET.Element) -> dict[str, int]:
    return {k: int(element.get(k, "-1")) for k in ("tests", "failures", "errors")}


@pytest.fixture
def failing_bundle(cli, make_recipe, tmp_path) -> tuple[Path, Path, dict[str, Any]]:
    """A compile whose model_bytes budget fails (exit 4), with a hostile description and a JUnit report."""
    out, report = tmp_path / "failing", tmp_path / "reports" / "compile.xml"
    recipe = make_recipe(description=HOSTILE, budget={"accuracy_drop": 0.5, "model_bytes": 100})
    result = cli("compile", recipe, "-o", out, "--junit", report, "--json")
    assert result.code == 4, result.err
    return out, report, result.json


@pytest.fixture
def passing_bundle(cli, make_recipe, tmp_path) -> tuple[Path, Path, dict[str, Any]]:
    out, report = tmp_path / "passing", tmp_path / "compile-pass.xml"
    result = cli("compile", make_recipe(budget={"accuracy_drop": 0.5}), "-o", out, "--junit", report, "--json")
    assert result.code == 0, result.err
    return out, report, result.json


def test_report_html_is_in_the_bundle_self_contained_and_escaped(failing_bundle):
    out, _, payload = failing_bundle
    html = (out / "report.html").read_text(encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["files"]["report.html"]
    assert record["sha256"] == hashlib.sha256((out / "report.html").read_bytes()).hexdigest()
    assert record["size"] == (out / "report.html").stat().st_size

    assert html.startswith("<!DOCTYPE html>") and "FAIL" in html
    assert html.count("<svg") >= 5  # size, parameters, latency, accuracy, and one bar per limited check
    for step in manifest["history"]:
        assert f"<b>{step['name']}</b>" in html
    for check in payload["checks"]:
        assert f"<b>{check['name']}</b>" in html
    assert "over the budget" in html  # the failed check's cause
    # user text is escaped, and the page runs no script and loads nothing
    assert "<script" not in html.lower() and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    stripped = html
    for uri in NAMESPACES:
        stripped = stripped.replace(uri, "")
    assert not re.search(r"https?:|(?:src|href)\s*=\s*[\"']?//|@import", stripped)
    assert not re.search(r"<(?:img|link|iframe|object|embed)\b", html)


@pytest.mark.slow
def test_report_html_is_deterministic(failing_bundle):
    out, _, _ = failing_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    first, second = render_html(manifest), render_html(copy.deepcopy(manifest))
    assert first == second
    # the bundle's page is exactly what the stored manifest renders to, and a fresh interpreter agrees
    assert first == (out / "report.html").read_text(encoding="utf-8")
    probe = run_subprocess(code=(
        "import json, sys; from shrink.report.html import render_html; "
        f"sys.stdout.write(render_html(json.load(open({str(out / 'manifest.json')!r}))))"))
    assert probe.code == 0, probe.err
    assert probe.out == first


def test_report_html_escapes_names_from_the_manifest(failing_bundle):
    out, _, _ = failing_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["recipe"]["name"] = HOSTILE
    manifest["history"][-1]["details"] = {"<img src=x>": "<script>x()</script>"}
    manifest["checks"][0]["cause"] = "</td><script>bad()</script>"
    html = render_html(manifest)
    assert "<script" not in html.lower() and "<img" not in html
    assert "&lt;script&gt;alert" in html and "&lt;/td&gt;&lt;script&gt;bad()" in html


def test_compile_junit_marks_the_failed_budget(failing_bundle):
    _, report, payload = failing_bundle
    root, suite = _suite(report)
    checks = payload["checks"]
    assert _counts(suite) == _counts(root) == {"tests": len(checks), "failures": 1, "errors": 0}
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in checks]
    assert {c.get("classname") for c in cases} == {"shrink.cortex-a53"}
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["model_bytes"]
    failure = failed[0].find("failure")
    assert "over the budget" in failure.get("message")
    assert "limit 100 bytes" in failure.text and "value " in failure.text
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["exit_code"] == "4" and props["verdict"] == "fail" and props["command"] == "compile"


def test_compile_and_verify_junit_pass_then_tampered(cli, passing_bundle, tmp_path):
    out, report, payload = passing_bundle
    _, suite = _suite(report)
    assert _counts(suite) == {"tests": len(payload["checks"]), "failures": 0, "errors": 0}
    assert all(case.find("system-out") is not None for case in suite.findall("testcase"))

    verified = tmp_path / "verify.xml"
    result = cli("verify", out, "--junit", verified, "--json")
    assert result.code == 0, result.err
    _, suite = _suite(verified)
    assert _counts(suite) == {"tests": len(result.json["checks"]), "failures": 0, "errors": 0}
    assert suite.find("testcase").get("name") == "integrity"

    model = out / "model.onnx"
    model.write_bytes(model.read_bytes()[:-4] + b"oops")
    assert cli("verify", out, "--junit", verified).code == 4
    _, suite = _suite(verified)
    assert _counts(suite) == {"tests": 1, "failures": 1, "errors": 0}
    failure = suite.find("testcase/failure")
    assert suite.find("testcase").get("name") == "integrity"
    assert "model.onnx does not match its sha256" in failure.get("message")


def test_errors_become_one_errored_testcase(cli, make_recipe, tmp_path):
    report = tmp_path / "verify.xml"
    assert cli("verify", tmp_path / "nope", "--junit", report).code == 2
    root, suite = _suite(report)
    assert _counts(suite) == _counts(root) == {"tests": 1, "failures": 0, "errors": 1}
    error = suite.find("testcase/error")
    assert "no such bundle or model" in error.get("message") and error.get("type").startswith("exit 2")

    bad = make_recipe(passes=[{"pass": "export.onnnx"}])
    report = tmp_path / "compile.xml"
    assert cli("compile", bad, "-o", tmp_path / "never", "--junit", report).code == 2
    _, suite = _suite(report)
    assert _counts(suite) == {"tests": 1, "failures": 0, "errors": 1}
    assert suite.find("testcase").get("name") == "compile"
    assert "unknown pass 'export.onnnx'" in suite.find("testcase/error").text
    assert not (tmp_path / "never").exists()


def test_unwritable_junit_path_is_exit_2(cli, passing_bundle, tmp_path):
    out, _, _ = passing_bundle
    result = cli("verify", out, "--junit", tmp_path)  # a directory
    assert result.code == 2 and "--junit: cannot write" in result.err


def test_verify_with_junit_stays_torch_free(passing_bundle, tmp_path):
    out, _, _ = passing_bundle
    report = tmp_path / "cold.xml"
    code = (f"import sys; from shrink.cli.main import main; code = main(['verify', {str(out)!r}, '--junit', {str(report)!r}]); "
            "heavy = [m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules]; "
            "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n'); sys.exit(code)")
    result = run_subprocess(code=code)
    assert result.code == 0, result.err
    assert "HEAVY=\n" in result.err
    assert _counts(_suite(report)[1])["failures"] == 0


def test_report_latency_plot_uses_the_checks_estimate(cli, make_recipe, tmp_path):
    """The plotted upper end after the last pass is the value the `latency` check gates (node overhead included)."""
    import json

    from shrink.report.html import latency_estimates

    out = tmp_path / "b"
    assert cli("compile", make_recipe(target="x86-64-avx512"), "-o", out).code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (latency,) = [c for c in manifest["checks"] if c["name"] == "latency"]
    assert latency_estimates(manifest)[-1][1] == pytest.approx(latency["value"], abs=1e-4)
