"""`shrink search`: search spaces in recipes (validated by plan, refused by compile), the spaces passes declare, and
real studies on a tiny CNN: the front, best.json compiled again, the shared pass cache, resume after Ctrl-C and
exit 4 when no trial is feasible."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shrink.host.registry import Registry
from shrink.plan import spaces


def _search_passes(ratio: Any = None, epochs: Any = None, method: Any = None) -> list[dict[str, Any]]:
    prune: dict[str, Any] = {"pass": "prune.structured", "ratio": 0.5, "finetune_epochs": 1}
    if ratio is not None:
        prune["ratio"] = ratio
    if epochs is not None:
        prune["finetune_epochs"] = epochs
    quantize: dict[str, Any] = {"pass": "quantize.ptq", "calibration_samples": 32, "parity_samples": 64,
                                "min_agreement": 0.5}
    if method is not None:
        quantize["calibration_method"] = method
    return [prune, {"pass": "export.onnx"}, quantize]


SPACES = {"ratio": {"$search": {"float": [0.2, 0.6]}}, "epochs": {"$search": {"choice": [1, 2]}},
          "method": {"$search": {"choice": ["minmax", "percentile"]}}}


# spaces in recipes: plan, compile, schema -------------------------------------------------------------------

def test_plan_validates_every_bound_against_the_option(cli, make_recipe):
    recipe = make_recipe(passes=_search_passes(ratio={"$search": {"float": [0.2, 1.5]}}))
    result = cli("plan", recipe)
    assert result.code == 2
    assert "recipe.json: passes[0].ratio.$search.float[1]: 1.5 is greater than the maximum of 0.95" in result.err


def test_plan_names_a_bad_choice(cli, make_recipe):
    recipe = make_recipe(passes=_search_passes(method={"$search": {"choice": ["minmax", "median"]}}))
    result = cli("plan", recipe)
    assert result.code == 2
    assert "passes[2].calibration_method.$search.choice[1]: 'median' is not one of" in result.err


@pytest.mark.parametrize(("space", "message"), [
    ({"int": [5, 1]}, "the lower bound 5 is greater than the upper bound 1"),
    ({"float": [0, 1], "log": True}, "a log-scale space needs a positive lower bound"),
    ({"int": [1, 5], "choice": [1]}, "a search space names exactly one of 'choice', 'int' or 'float'"),
    ({"range": [1, 5]}, "unknown key 'range'"),
    ({"choice": []}, "'choice' must be a non-empty list"),
])
def test_malformed_spaces_are_one_clear_line(cli, make_recipe, space, message):
    recipe = make_recipe(passes=_search_passes(epochs={"$search": space}))
    result = cli("plan", recipe)
    assert result.code == 2
    assert f"recipe.json: passes[0].finetune_epochs.$search: {message}" in result.err
    assert "Traceback" not in result.err


def test_spaces_outside_pass_options_are_refused(cli, make_recipe):
    recipe = make_recipe(data={"source": "sklearn.digits", "image_size": {"$search": {"choice": [8, 16]}}})
    result = cli("plan", recipe)
    assert result.code == 2
    assert "recipe.json: data.image_size: search spaces are allowed only in pass options" in result.err


def test_plan_shows_the_spaces_and_plans_their_first_values(cli, make_recipe):
    recipe = make_recipe(passes=_search_passes(**SPACES))
    result = cli("plan", recipe, "--json")
    assert result.code == 0, result.err
    plan = result.json["plan"]
    assert [s["option"] for s in plan["search"]] == ["passes[0].ratio", "passes[0].finetune_epochs",
                                                      "passes[2].calibration_method"]
    assert plan["passes"][0]["options"]["ratio"] == 0.2 and plan["passes"][0]["options"]["finetune_epochs"] == 1


def test_compile_refuses_a_search_recipe_naming_shrink_search(cli, make_recipe, tmp_path):
    recipe = make_recipe(passes=_search_passes(**SPACES))
    result = cli("compile", recipe, "-o", tmp_path / "out")
    assert result.code == 2
    assert "recipe.json: passes[0].ratio: is a search space; compile needs a value" in result.err
    assert "shrink search" in result.err
    assert not (tmp_path / "out").exists()


def test_the_recipe_schema_admits_spaces_in_pass_options(cli):
    import jsonschema

    schema = cli("schema", "recipe").json
    recipe = json.loads((Path(__file__).parents[1] / "recipes" / "digits-cnn.json").read_text())
    recipe["passes"][1]["ratio"] = {"$search": {"float": [0.1, 0.5]}}
    jsonschema.Draft202012Validator(schema).validate(recipe)
    recipe["model"]["input_shape"] = {"$search": {"choice": [[1, 1, 32, 32]]}}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(recipe))


def test_every_declared_space_lies_inside_its_options_bounds():
    """Each built-in pass's `Options.search_space` parses and every bound and choice validates (a plugin contract)."""
    registry = Registry.load()
    declaring = 0
    for name in registry.names("passes"):
        entry = registry.get("passes", name)
        declared = getattr(entry.obj.Options, "search_space", {})
        if not declared:
            continue
        declaring += 1
        raw = {"passes": [{"pass": name, **_required(name)}]}
        found = spaces.declared(raw, registry)
        assert [s.keys[0] for s in found] == list(declared)
        problems = [p for p in spaces.validate(raw, found, registry, "r.json")
                    if not p.message.startswith(("Field required", "give either"))]
        assert problems == [], name
    assert declaring >= 5


def _required(name: str) -> dict[str, Any]:
    return {"distill.kd": {"student": {"factory": "m.py:f"}}}.get(name, {})


def test_best_json_paths_resolve_from_its_own_folder_with_the_same_cache_keys(make_recipe, tmp_path):
    """A recipe written elsewhere with rebased paths names the same files, and the pass cache keys files by content,
    so best.json's compile finds the entries the trials wrote."""
    from shrink.engine.keys import components, digest
    from shrink.plan.load import load_recipe
    from shrink.plan.planner import make_plan
    from shrink.search.recipes import rebased

    registry = Registry.load()
    original = load_recipe(make_recipe(passes=_search_passes()))
    elsewhere = tmp_path / "deep" / "er"
    elsewhere.mkdir(parents=True)
    raw = rebased(original.raw, original, elsewhere)
    assert raw["model"]["factory"] == "../../tiny.py:tiny"
    (elsewhere / "best.json").write_text(json.dumps(raw))
    moved = load_recipe(elsewhere / "best.json")
    keys = [[digest(c) for c in components(make_plan(r, registry), "data")] for r in (original, moved)]
    assert keys[0] == keys[1]


# objectives ---------------------------------------------------------------------------------------------------------

def test_the_brier_score_reads_logits_probabilities_and_quantized_softmax_outputs_alike():
    from scipy.special import log_softmax, softmax
    from sklearn.metrics import brier_score_loss

    from shrink.api.data import classification_scores

    rng = np.random.default_rng(0)
    for classes in (4, 100, 1000):  # int8 softmax outputs of many classes: rows far from summing to 1
        logits = rng.normal(size=(60, classes)) * 4
        labels = rng.integers(0, classes, size=60)
        probabilities = softmax(logits, axis=1)
        expected = brier_score_loss(labels, probabilities, labels=range(classes))
        for scores in (logits, probabilities, log_softmax(logits, axis=1), logits.astype(np.float32)):
            got = classification_scores(scores, labels)
            assert got["brier"] == pytest.approx(expected, abs=2e-6)
            assert got["accuracy"] == pytest.approx((logits.argmax(1) == labels).mean())
        quantized = np.round(probabilities * 256) / 256  # dequantized uint8 softmax: steps of 1/256, zeros included
        assert classification_scores(quantized, labels)["brier"] == pytest.approx(expected, rel=0.03)
        # labels as whole-number floats or a column are the same labels
        column = classification_scores(logits, labels.astype(np.float32)[:, None])
        assert column["brier"] == pytest.approx(expected, abs=2e-6)
        assert column["accuracy"] == pytest.approx((logits.argmax(1) == labels).mean())
    # no figure rather than a wrong one: labels outside the scores or not whole numbers, scores that are not finite
    logits, labels = rng.normal(size=(50, 4)), rng.integers(0, 4, size=50)
    assert "brier" not in classification_scores(logits, labels + 4)
    assert "brier" not in classification_scores(logits, labels + 0.5)
    assert "brier" not in classification_scores(np.full((50, 4), np.nan), labels)


def test_the_loss_objective_reads_the_brier_score_or_one_minus_the_cosine_and_never_invents_one():
    from shrink.commands.results import CompileResult
    from shrink.search.objectives import OBJECTIVES, objectives

    loss = OBJECTIVES["loss"].figure

    def result(**metrics: Any) -> CompileResult:
        return CompileResult(verdict="pass", exit_code=0, target="t", bundle=None, metrics=metrics)

    assert loss(result(brier=0.25, cosine=0.5)) == 0.25
    assert loss(result(cosine=0.9)) == pytest.approx(0.1)
    assert loss(result(accuracy=0.9)) is None
    assert [o.name for o in objectives(None)] == ["accuracy", "size", "loss"]


def test_only_an_objective_no_trial_has_a_figure_for_stops_the_search():
    from shrink.search.objectives import objectives
    from shrink.search.study import TrialRecord, unscorable

    def record(number: int, **figures: Any) -> TrialRecord:
        return TrialRecord(number, {}, figures, {}, [], None, 0, 1, 1.0, None)

    chosen = objectives(None)
    scored = record(0, accuracy=0.9, size=100.0, loss=0.1)
    diverged = record(1, accuracy=0.1, size=100.0, loss=None)  # non-finite outputs: no Brier score, this trial only
    assert unscorable([scored, diverged], chosen, "--objective") is None
    unlabelled = [record(0, accuracy=None, size=100.0, loss=None), record(1)]  # the second compile stopped
    assert unscorable(unlabelled[:1], chosen, "--objective").problems[0].hint == \
        "search objectives this model records: --objective size"
    assert unscorable(unlabelled, chosen, "--objective") is None  # the latest trial failed before any figure


def test_a_resumed_study_keeps_its_objectives_and_a_mismatch_names_what_differs(make_recipe, tmp_path):
    from shrink.errors import UsageError
    from shrink.plan.load import load_recipe
    from shrink.search.objectives import objectives
    from shrink.search.study import open_study, saved_objectives, storage_url

    recipe = load_recipe(make_recipe(passes=_search_passes(**SPACES)))
    found = spaces.find(recipe.raw, "recipe.json")[0]
    url = storage_url(tmp_path, None)
    open_study(url, recipe, found, objectives("accuracy,size"), "cortex-a53", False, "auto", 0, 5, "-o")
    assert saved_objectives(url) == ["accuracy", "size"]  # what `--resume` without `--objective` searches
    assert saved_objectives(storage_url(tmp_path / "none", None)) is None
    with pytest.raises(UsageError) as raised:
        open_study(url, recipe, found, objectives(None), "cortex-a53", True, "auto", 0, 5, "-o")
    assert "objectives accuracy,size (this run: accuracy,size,loss)" in raised.value.problems[0].message


# real studies --------------------------------------------------------------------------------------------------

@pytest.fixture
def search_recipe(make_recipe):
    return make_recipe(passes=_search_passes(**SPACES), budget={"accuracy_drop": 0.5})


@pytest.mark.slow
def test_a_search_writes_the_front_and_a_best_recipe_that_compiles_to_the_same_model(cli, search_recipe, tmp_path):
    out = tmp_path / "search"
    result = cli("search", search_recipe, "--trials", "5", "-o", out, "--json")
    assert result.code == 0, result.err
    found = result.json
    assert len(found["trials"]) == 5 and found["ran"] == 5
    assert found["front"] and all(p["feasible"] for p in found["front"])
    assert found["best"]["trial"] == found["front"][0]["trial"]
    assert found["reproduced"] is True
    assert found["hit_rate"] > 0  # the source step, at least, is shared by every trial
    for name in ("study.db", "search.md", "front.png", "best.json", "search.json", "best/model.onnx"):
        assert (out / name).is_file(), name
    report = (out / "search.md").read_text()
    assert "- `loss` (minimize): a continuous quality figure" in report and f"| {found['best']['trial']} (chosen) |" in report
    best = json.loads((out / "best.json").read_text())
    assert not spaces.find(best, "best.json")[0]
    params = found["best"]["params"]
    assert best["passes"][0]["ratio"] == params["passes[0].ratio"]
    # best.json is a plain recipe: compiling it again reproduces the trial's model byte for byte
    again = cli("compile", out / "best.json", "-o", tmp_path / "again", "--json")
    assert again.code == 0, again.err
    import hashlib

    assert hashlib.sha256((tmp_path / "again" / "model.onnx").read_bytes()).hexdigest() == found["best"]["model_sha256"]
    # a study is never overwritten by accident
    again = cli("search", search_recipe, "--trials", "5", "-o", out)
    assert again.code == 2 and "already holds a search study" in again.err and "--resume" in again.err


@pytest.mark.slow
def test_an_objective_the_model_does_not_record_stops_after_one_trial(cli, make_recipe, tmp_path):
    """Unlabelled data: no accuracy and no loss. One compile says so; the rest are not run, and nothing is left to
    resume."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(64, 1, 8, 8)).astype(np.float32))
    quantize = {"pass": "quantize.ptq", "calibration_samples": 32, "parity_samples": 32, "min_agreement": 0.5,
                "calibration_method": SPACES["method"]}
    recipe = make_recipe(passes=[{"pass": "export.onnx"}, quantize], data={"source": "arrays", "path": "x.npy"},
                         budget=None)
    result = cli("search", recipe, "--trials", "4", "-o", tmp_path / "s", "--json")
    assert result.code == 2, result.err
    message = result.json["errors"][0]["message"]
    assert message.startswith("trial 0 compiled, but recorded no figure for objective 'accuracy'"), message
    assert result.json["errors"][0]["hint"] == "search objectives this model records: --objective size"
    assert not (tmp_path / "s" / "trials").exists()
    again = cli("search", recipe, "--trials", "1", "-o", tmp_path / "s", "--objective", "size", "--json")
    assert again.code == 0, again.err  # the folder holds no study of the failed objectives


@pytest.mark.slow
def test_no_feasible_trial_is_exit_4_with_the_closest_trial(cli, search_recipe, tmp_path):
    result = cli("search", search_recipe, "--trials", "3", "-o", tmp_path / "s", "--budget", "model_bytes=100", "--json")
    assert result.code == 4, result.err
    found = result.json
    assert found["verdict"] == "fail" and found["best"] is None and found["front"] == []
    assert found["closest"]["failed_checks"][0]["check"] == "model_bytes"
    assert "no trial is feasible; the closest is trial" in found["errors"][0]["message"]
    assert not (tmp_path / "s" / "best.json").exists()


@pytest.mark.slow
def test_a_search_cut_off_by_ctrl_c_resumes_without_repeating_finished_trials(search_recipe, tmp_path):
    import optuna

    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "shrink", "search", str(search_recipe), "--trials", "6", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"sqlite:///{out / 'study.db'}"
    finished: list[Any] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if (out / "study.db").exists():
            try:
                study = optuna.load_study(study_name="shrink-search", storage=url)
            except Exception:  # noqa: BLE001 - the study is being created
                continue
            finished = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
            if len(finished) >= 2:
                break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    before = {t.number: t.params for t in optuna.load_study(study_name="shrink-search", storage=url).get_trials()
              if t.state.name == "COMPLETE"}
    assert len(before) >= 2
    resumed = subprocess.run([*cmd, "--resume", "--json"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    found = json.loads(resumed.stdout)
    assert len(found["trials"]) == 6 and found["ran"] == 6 - len(before)
    after = {t["trial"]: t["params"] for t in found["trials"]}
    assert all(after[n] == params for n, params in before.items())  # finished trials kept, not run again


@pytest.mark.slow
def test_a_search_runs_its_trials_on_a_two_node_ray_cluster(search_recipe, tmp_path, monkeypatch):
    """A local cluster of two one-CPU nodes on loopback, started here and stopped here (never `ray stop`)."""
    pytest.importorskip("ray.tune", reason="the ray extra is not installed")
    from ray.cluster_utils import Cluster

    from shrink.search.objectives import objectives
    from shrink.search.study import TrialRecord, front

    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    try:
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        out = tmp_path / "s"
        cmd = [sys.executable, "-m", "shrink", "search", str(search_recipe), "--trials", "4", "-o", str(out),
               "--ray-address", cluster.address, "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    finally:
        cluster.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert len(found["trials"]) == 4 and found["ran"] == 4
    assert len({t["node"] for t in found["trials"]}) == 2  # both nodes ran trials
    # the front is the front of the study's trials, as an in-process search computes it
    records = [TrialRecord(t["trial"], t["params"], t["figures"], {f["check"]: 1.0 for f in t["failed_checks"]},
                           t["failed_checks"], t["error"], t["cached_steps"], t["steps"], t["seconds"],
                           t["model_sha256"]) for t in found["trials"]]
    assert [p["trial"] for p in found["front"]] == [r.number for r in front(records, objectives(None))]
    assert found["reproduced"] is True


def test_resume_without_a_study_is_exit_2_and_creates_nothing(cli, search_recipe, tmp_path):
    result = cli("search", search_recipe, "--resume", "-o", tmp_path / "none")
    assert result.code == 2 and "there is no study to resume" in result.err
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--trials", "0"), "--trials: 0 is not a positive number of trials"),
    (("--objective", "speed"), "--objective: unknown objective 'speed'"),
])
def test_bad_search_arguments_are_one_line(cli, search_recipe, tmp_path, args, message):
    result = cli("search", search_recipe, *args, "-o", tmp_path / "s")
    assert result.code == 2 and message in result.err and "Traceback" not in result.err
