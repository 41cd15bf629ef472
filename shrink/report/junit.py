"""`--junit FILE`: the result of `compile` or `verify` as a JUnit XML report for CI.

One `<testsuite>` (inside `<testsuites>`), one `<testcase>` per check, named by the check, with classname
`shrink.<target>`. A failed check is a `<failure>` carrying its cause, value and limit. A command that
ends in an error (bad input, plugin error, failed pass, internal error) is one errored `<testcase>` named
after the command, carrying every problem, so the CI page still says why. Standard library only (`verify`
must stay torch-free), and deterministic: no timestamps, no host names.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shrink.errors import ExitCode, Problem

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str | None) -> str | None:
    return None if text is None else _NOT_XML.sub("\ufffd", text)


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _measure(check: dict[str, Any]) -> str:
    unit = str(check.get("unit") or "")
    line = f"value {_text(check.get('value'))} {unit}".rstrip()
    if check.get("limit") is not None:
        line += f", limit {_text(check.get('limit'))} {unit}".rstrip()
    return line


def classname(target: str | None) -> str:
    return f"shrink.{target}" if target else "shrink"


def build(command: str, code: int, *, target: str | None = None, checks: Sequence[dict[str, Any]] = (),
          problems: Sequence[Problem] = (), subject: str | None = None) -> ET.ElementTree:
    """The report as an element tree. `checks` are `CheckResult.as_dict()` rows; `problems` mean an error."""
    suite_name = f"shrink {command}" + (f" {subject}" if subject else "")
    cls = classname(target)
    errored = bool(problems) or (code not in (ExitCode.OK, ExitCode.CHECK_FAILED) and not checks)
    failures = 0 if errored else sum(1 for c in checks if not c.get("ok"))
    tests = 1 if errored else len(checks)
    counts = {"tests": str(tests), "failures": str(failures), "errors": "1" if errored else "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": "shrink", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": suite_name, **counts})
    properties = ET.SubElement(suite, "properties")
    verdict = "error" if errored else ("pass" if failures == 0 else "fail")
    for name, value in (("command", command), ("exit_code", str(int(code))), ("verdict", verdict),
                        ("target", target or ""), ("subject", subject or "")):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    if errored:
        case = ET.SubElement(suite, "testcase", {"name": command, "classname": cls})
        lines = [p.line() + (f"\nhint: {p.hint}" if p.hint else "") for p in problems] or [f"exit code {int(code)}"]
        try:
            kind = ExitCode(int(code)).name.lower()
        except ValueError:
            kind = "error"
        error = ET.SubElement(case, "error", {"message": problems[0].line() if problems else lines[0],
                                              "type": f"exit {int(code)} ({kind})"})
        error.text = "\n".join(lines)
        return ET.ElementTree(root)
    for check in checks:
        case = ET.SubElement(suite, "testcase", {"name": str(check.get("name", "?")), "classname": cls})
        measure = _measure(check)
        if check.get("ok"):
            out = ET.SubElement(case, "system-out")
            out.text = measure + (f"\n{check['cause']}" if check.get("cause") else "")
        else:
            cause = str(check.get("cause") or "check failed")
            failure = ET.SubElement(case, "failure", {"message": cause, "type": "check failed"})
            failure.text = f"{cause}\n{measure}"
    return ET.ElementTree(root)


def write(path: Path, command: str, code: int, *, target: str | None = None, checks: Sequence[dict[str, Any]] = (),
          problems: Sequence[Problem] = (), subject: str | None = None) -> None:
    """Write the report to `path` (parent folders created); raises OSError when it cannot."""
    tree = build(command, code, target=target, checks=checks, problems=problems, subject=subject)
    for element in tree.iter():  # XML 1.0 cannot carry control characters, whatever a path or message holds
        element.text = _xml_safe(element.text)
        for key, value in element.attrib.items():
            element.set(key, _xml_safe(value) or "")
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        tree.write(fh, encoding="utf-8", xml_declaration=True)
        fh.write(b"\n")
