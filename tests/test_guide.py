"""docs/guide.md cannot rot: its files are written and its commands run verbatim, in order, in one folder; every
JSON snippet validates against the emitted recipe schema; the recipe it shows is the one `init` writes; its
tables name the installed passes and targets as they are.

Markers (HTML comments, invisible when rendered) before a fenced block say what the test does with it:
`<!-- test: file NAME -->` writes the block to NAME; `<!-- test: run [exit=N] [needs=WHAT] -->` runs each line
of a bash block (expecting exit N, default 0; `needs` names a setup the test provides first, or skips);
`<!-- test: recipe NAME -->` compares the JSON block with the file NAME that the commands before it wrote.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

GUIDE = REPO / "docs" / "guide.md"
MARKER = re.compile(r"<!-- test: (?P<verb>file|run|recipe)(?P<args>[^>]*)-->\s*\n```(?P<lang>\w*)\n(?P<body>.*?)\n```",
                    re.DOTALL)
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    verb: str
    args: dict[str, str]
    lang: str
    body: str


def blocks() -> list[Block]:
    found = []
    for match in MARKER.finditer(GUIDE.read_text(encoding="utf-8")):
        words = match["args"].split()
        args = {"name": words[0]} if words and "=" not in words[0] else {}
        args.update(w.split("=", 1) for w in words if "=" in w)
        found.append(Block(match["verb"], args, match["lang"], match["body"]))
    return found


def json_snippets() -> list[Any]:
    return [json.loads(m["body"]) for m in FENCE.finditer(GUIDE.read_text(encoding="utf-8")) if m["lang"] == "json"]


def test_the_guide_has_the_worked_examples_it_promises():
    verbs = [(b.verb, b.args.get("name")) for b in blocks()]
    files = {name for verb, name in verbs if verb == "file"}
    assert {"make_data.py", "net.py", "train.py", "export.py", "run.py", "runner.c", "notebook.py"} <= files
    commands = "\n".join(b.body for b in blocks() if b.verb == "run")
    for command in ("shrink init", "shrink compile", "shrink verify", "shrink inspect", "shrink passes", "python notebook.py"):
        assert command in commands


def test_every_json_snippet_validates_against_the_recipe_schema(cli):
    from jsonschema import Draft202012Validator

    from shrink.host.registry import Registry

    registry = Registry.load()
    validator = Draft202012Validator(json.loads(cli("schema", "recipe").out))
    base: dict[str, Any] = {"schema_version": 1, "name": "guide", "target": "cortex-a53",
                            "model": {"source": "onnx", "path": "m.onnx"}, "passes": [{"pass": "fuse.ort"}]}
    snippets = json_snippets()
    assert len(snippets) >= 15
    for snippet in snippets:
        if "schema_version" in snippet:
            recipe = snippet
        elif "pass" in snippet:
            recipe = {**base, "passes": [snippet]}
        elif "budget" in snippet:
            recipe = {**base, **snippet}
        elif snippet.get("source") in registry.names("sources"):
            recipe = {**base, "model": snippet}
        elif snippet.get("source") in registry.names("datasets"):
            recipe = {**base, "data": snippet}
        else:
            raise AssertionError(f"a JSON snippet of the guide that is no recipe part: {snippet}")
        errors = sorted(validator.iter_errors(recipe), key=lambda e: e.path)
        assert not errors, f"{json.dumps(snippet)}: {errors[0].message}"


def test_the_pass_table_and_the_target_table_name_what_is_installed():
    from shrink.host.registry import Registry

    registry = Registry.load()
    text = GUIDE.read_text(encoding="utf-8")
    passes = text[text.index("## Passes"):text.index("## Budgets and checks")]
    for name in registry.names("passes"):
        entry = registry.get("passes", name)
        assert entry is not None
        row = next((line for line in passes.splitlines() if line.startswith("|") and f"`{name}`" in line), None)
        assert row is not None, f"the guide's pass table has no row for {name}"
        if row.count("|") > 3 and "→" in row.split("|")[2]:
            assert row.split("|")[2].strip() == f"{'/'.join(entry.obj.consumes)} → {entry.obj.produces}", row
    targets = text[text.index("## Targets"):text.index("## `shrink init`")]
    catalog = registry.catalog()
    rows = [line.split("|") for line in targets.splitlines() if line.startswith("| ") and not line.startswith("| kind")]
    listed = {name for cells in rows for name in re.findall(r"`([a-z0-9-]+)`", cells[2])}
    assert listed == set(catalog.names())
    for cells in rows:
        runtime = cells[3].strip()
        for name in re.findall(r"`([a-z0-9-]+)`", cells[2]):
            target = catalog.resolve(name)
            formats = ", ".join(target.get("runtime", "formats"))
            assert runtime == f"{target.get('runtime', 'name')} ({formats})", (name, runtime)


# running the examples ---------------------------------------------------------------------------------

def _tflite() -> str | None:
    """Why the TFLite blocks cannot run here (the `tflite` extra is missing), or None."""
    from shrink.host.registry import Registry

    entry = Registry.load().get("passes", "export.tflite")
    return "no export.tflite pass" if entry is None else entry.obj.unavailable()


def _hf_folders(folder: Path) -> None:
    """What a user would have saved with `save_pretrained`: a tiny text classifier with its tokenizer, a tiny image
    classifier with its preprocessor config, and a CSV of labelled sentences."""
    from tests.test_hf_models import write_image_classifier, write_text_model

    write_text_model(folder / "my-text-classifier", "distilbert")
    write_image_classifier(folder / "my-image-classifier", "resnet")
    rows = ["text,label"] + [f"\"{w} phone {i}\",{label}" for i in range(40)
                             for w, label in (("great", "good"), ("broken", "bad"), ("blue", "neutral"))]
    (folder / "reviews.csv").write_text("\n".join(rows) + "\n")


def _ort_c(folder: Path) -> str | None:
    """ONNX Runtime's C API where a release's `include/` is found (`$ORT_INCLUDE_DIR`, /usr/include, /usr/local/include),
    linked against the library the onnxruntime wheel ships; why not, when it is not found."""
    import onnxruntime

    candidates = [os.environ.get("ORT_INCLUDE_DIR", ""), "/usr/local/include/onnxruntime", "/usr/include/onnxruntime",
                  "/usr/local/include", "/usr/include"]
    header = next((Path(c) for c in candidates if c and (Path(c) / "onnxruntime_c_api.h").is_file()), None)
    libs = sorted((Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so*"))
    if header is None or not libs or shutil.which("cc") is None:
        return "no ONNX Runtime C headers here (set ORT_INCLUDE_DIR to a release's include/)"
    (folder / "onnxruntime" / "lib").mkdir(parents=True)
    (folder / "onnxruntime" / "include").symlink_to(header)
    (folder / "onnxruntime" / "lib" / "libonnxruntime.so").symlink_to(libs[0])
    return None


@pytest.mark.slow
def test_the_guide_runs_verbatim(tmp_path: Path, private_pass_cache: Path):
    """The walkthrough (a CNN of one's own and PNG folders → init → compile PASS on cortex-a53), the ONNX and
    Hugging Face examples, the run-time examples and the Python API script, in the guide's order."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SHRINK_CACHE_DIR": str(private_pass_cache), "SHRINK_TORCH_THREADS": "1", "PYTHONPATH": ""}
    ready: dict[str, str | None] = {}
    skipped = []
    for block in blocks():
        if block.verb == "file":
            (tmp_path / block.args["name"]).write_text(block.body + "\n")
            continue
        if block.verb == "recipe":
            written = json.loads((tmp_path / block.args["name"]).read_text())
            assert written == json.loads(block.body), "the recipe the guide shows is not the one init writes"
            continue
        needs = block.args.get("needs")
        if needs and needs not in ready:
            ready[needs] = (_hf_folders(tmp_path) if needs == "hf-folders" else _tflite() if needs == "tflite"
                            else _ort_c(tmp_path))
        if needs and ready[needs]:
            skipped.append(f"{block.body.splitlines()[0]}: {ready[needs]}")
            continue
        for line in block.body.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            proc = subprocess.run(shlex.split(line), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                                  check=False)
            expected = int(block.args.get("exit", 0))
            assert proc.returncode == expected, f"{line}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            if line.startswith("shrink compile recipe.json"):
                assert "PASS bundle written to dist/net" in proc.stdout
            if expected == 2:
                assert "no installed pass produces tflite" in proc.stderr and not (tmp_path / "m7.json").exists()
    manifest = json.loads((tmp_path / "dist/net/manifest.json").read_text())
    assert manifest["verdict"] == "pass" and manifest["target"]["name"] == "cortex-a53"
    assert manifest["metrics"]["accuracy"] >= 0.95 and manifest["files"]["model.onnx"]["size"] < 40_000
    assert json.loads((tmp_path / "dist/net-onnx/manifest.json").read_text())["verdict"] == "pass"
    for name in ("text.json", "image.json"):
        assert json.loads((tmp_path / name).read_text())["model"]["source"] == "huggingface"
    if skipped:
        print("skipped:", *skipped, sep="\n  ")
