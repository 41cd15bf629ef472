"""The pass cache: what a recompile reuses, what invalidates it, how entries are checked and bounded, and
the `shrink cache` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_subprocess

TRAINING = [
    {"pass": "distill.kd", "student": {"factory": "tiny.py:tiny", "kwargs": {"width": 2}}, "epochs": 2},
    {"pass": "fuse.bn"},
    {"pass": "export.onnx"},
    {"pass": "quantize.ptq"},
]


def _compile(cli, recipe: Path, out: Path, *extra: str) -> dict:
    result = cli("compile", recipe, "-o", out, *extra)
    assert result.code == 0, result.err
    return json.loads((out / "manifest.json").read_text())


def _cached(manifest: dict) -> list[bool]:
    return [step["cached"] for step in manifest["history"]]


def _hashes(manifest: dict) -> dict[str, str]:
    return {name: record["sha256"] for name, record in manifest["files"].items()}


@pytest.fixture
def first(cli, make_recipe, tmp_path: Path) -> tuple[Path, dict]:
    recipe = make_recipe(passes=TRAINING)
    return recipe, _compile(cli, recipe, tmp_path / "first")


@pytest.mark.slow
def test_unchanged_recipe_is_fully_cached_and_identical(cli, first, tmp_path: Path):
    recipe, manifest = first
    assert _cached(manifest) == [False] * 5
    again = _compile(cli, recipe, tmp_path / "again")
    assert _cached(again) == [True] * 5
    assert _hashes(again) == _hashes(manifest)
    assert [s["metrics"] for s in again["history"]] == [s["metrics"] for s in manifest["history"]]
    assert again["checks"] == manifest["checks"]


@pytest.mark.slow
def test_changing_a_later_pass_reuses_the_earlier_ones(cli, first, make_recipe, tmp_path: Path):
    _, manifest = first
    changed = json.loads(json.dumps(TRAINING))
    changed[3]["calibration_samples"] = 50
    again = _compile(cli, make_recipe(passes=changed), tmp_path / "again")
    assert _cached(again) == [True, True, True, True, False]
    assert _hashes(again)["model.onnx"] != _hashes(manifest)["model.onnx"]


@pytest.mark.slow
def test_resuming_from_a_cached_torch_model(cli, first, make_recipe, tmp_path: Path):
    """export.onnx changes, so the run restores fuse.bn's torch model from its state_dict and goes on."""
    _, manifest = first
    changed = json.loads(json.dumps(TRAINING))
    changed[2]["parity_samples"] = 32
    again = _compile(cli, make_recipe(passes=changed), tmp_path / "again")
    assert _cached(again) == [True, True, True, False, False]
    # same weights in, same export out: the restored torch model is the one that was cached
    assert _hashes(again)["model.onnx"] == _hashes(manifest)["model.onnx"]


@pytest.mark.slow
def test_changed_weights_file_invalidates_everything(cli, make_recipe, tmp_path: Path):
    import torch

    namespace: dict = {}
    exec(compile((tmp_path / "tiny.py").read_text(), "tiny.py", "exec"), namespace)  # the fixture's factory
    state = namespace["tiny"]().state_dict()
    weights = tmp_path / "w.pt"
    torch.save(state, weights)
    model = {"source": "torch", "factory": "tiny.py:tiny", "weights": "w.pt", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}
    recipe = make_recipe(model=model, passes=[{"pass": "export.onnx"}])
    assert _cached(_compile(cli, recipe, tmp_path / "a")) == [False, False]
    assert _cached(_compile(cli, recipe, tmp_path / "b")) == [True, True]
    state["4.bias"] = state["4.bias"] + 0.5
    torch.save(state, weights)
    assert _cached(_compile(cli, recipe, tmp_path / "c")) == [False, False]


def test_no_cache_neither_reads_nor_writes(cli, make_recipe, tmp_path: Path):
    recipe = make_recipe()
    assert _cached(_compile(cli, recipe, tmp_path / "a", "--no-cache")) == [False, False]
    info = cli("cache", "info", "--json")
    assert info.code == 0 and info.json["entries"] == 0
    _compile(cli, recipe, tmp_path / "b")
    assert _cached(_compile(cli, recipe, tmp_path / "c", "--no-cache")) == [False, False]


def test_cache_info_and_clear(cli, make_recipe, tmp_path: Path, private_pass_cache: Path):
    _compile(cli, make_recipe(), tmp_path / "a")
    info = cli("cache", "info", "--json").json
    assert info["path"] == str(private_pass_cache)
    assert info["entries"] == 3 and info["by_pass"] == {"export.onnx": 1, "golden": 1, "source:torch": 1}
    assert info["bytes"] > 0
    cleared = cli("cache", "clear", "--json")
    assert cleared.code == 0 and cleared.json["removed"] == 3
    assert cli("cache", "info", "--json").json["entries"] == 0


@pytest.mark.slow
def test_debug_explains_each_miss(first, make_recipe, tmp_path: Path):
    changed = json.loads(json.dumps(TRAINING))
    changed[0]["epochs"] = 1
    result = run_subprocess("compile", make_recipe(passes=changed), "-o", tmp_path / "again", "--debug")
    assert result.code == 0, result.err
    assert "cache miss for passes[0] distill.kd: changed since the last compile: options (epochs)" in result.err


def test_unwritable_cache_does_not_fail_the_compile(cli, make_recipe, tmp_path: Path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("SHRINK_CACHE_DIR", str(blocker))
    assert _cached(_compile(cli, make_recipe(), tmp_path / "a")) == [False, False]


def test_editing_a_module_the_factory_imports_invalidates(cli, make_recipe, tmp_path: Path):
    (tmp_path / "blocks.py").write_text("from torch import nn\n\n\ndef act():\n    return nn.ReLU()\n")
    (tmp_path / "net.py").write_text(
        "import torch\nfrom torch import nn\n\nfrom blocks import act\n\n\n"
        "def build():\n    torch.manual_seed(0)\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), act(), nn.Linear(16, 10))\n")
    model = {"source": "torch", "factory": "net.py:build", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}
    recipe = make_recipe(model=model)
    assert _cached(_compile(cli, recipe, tmp_path / "a")) == [False, False]
    assert _cached(_compile(cli, recipe, tmp_path / "b")) == [True, True]
    (tmp_path / "blocks.py").write_text("from torch import nn\n\n\ndef act():\n    return nn.Tanh()\n")
    assert _cached(_compile(cli, recipe, tmp_path / "c")) == [False, False]


@pytest.mark.slow
def test_a_damaged_entry_reruns_the_step(cli, first, make_recipe, tmp_path: Path, private_pass_cache: Path):
    for weights in private_pass_cache.rglob("weights.pt"):
        weights.write_bytes(b"truncated")
    changed = json.loads(json.dumps(TRAINING))
    changed[2]["parity_samples"] = 16  # export changes: the torch steps before it must be restored
    again = _compile(cli, make_recipe(passes=changed), tmp_path / "again")
    assert again["verdict"] == "pass"
    assert _cached(again)[-2:] == [False, False]


def test_unfollowable_option_values_are_not_files(tmp_path: Path):
    from shrink.engine.keys import referenced_files

    (tmp_path / "w.bin").write_bytes(b"x")
    found = referenced_files({"a": "~nosuchuser-xyz/w", "b": "nosuchpkg_xyz.mod:fn", "c": ["w.bin", 3]},
                             lambda value: (tmp_path / Path(value).expanduser()).resolve())
    assert list(found) == ["w.bin"]


def test_sweep_removes_only_dead_compiles_temporaries(tmp_path):
    import os

    from shrink.engine.cache import _sweep

    dead, alive, entry = tmp_path / ".abcdef012345-999999999-x", tmp_path / f".abcdef012345-{os.getpid()}-x", tmp_path / "abcdef012345"
    for path in (dead, alive, entry):
        path.mkdir()
    _sweep(tmp_path)
    assert not dead.exists() and alive.exists() and entry.exists()


# trust: every entry verified ---------------------------------------------------------------------------

def _entry_of(cache_dir: Path, name: str) -> Path:
    """The folder of the one entry whose step is `name` (`export.onnx`, `source:torch`, `golden`)."""
    found = [p.parent for p in cache_dir.rglob("entry.json") if json.loads(p.read_text()).get("name") == name]
    assert len(found) == 1, found
    return found[0]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_flipped_byte_reruns_the_step_with_a_warning_and_gives_the_uncached_bundle(
        cli, make_recipe, tmp_path: Path, private_pass_cache: Path, caplog):
    recipe = make_recipe()
    uncached = _compile(cli, recipe, tmp_path / "first")  # an empty cache: every step ran
    assert uncached["from_cache"] == []
    cached_model = _entry_of(private_pass_cache, "export.onnx") / "model.onnx"
    _flip_byte(cached_model)

    strict = cli("compile", recipe, "-o", tmp_path / "strict", "--strict-cache", "--json")
    assert strict.code == 2 and not (tmp_path / "strict").exists()
    [error] = strict.json["errors"]
    assert error["where"] == "pass cache, passes[0] export.onnx"
    assert error["message"].startswith("model.onnx does not match the sha256 recorded when the entry was written")

    caplog.clear()
    again = _compile(cli, recipe, tmp_path / "again")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("pass cache, passes[0] export.onnx: model.onnx does not match"), warnings
    assert _cached(again) == [True, False]  # the source restored, export.onnx recomputed
    assert _hashes(again)["model.onnx"] == _hashes(uncached)["model.onnx"]

    caplog.clear()
    third = _compile(cli, recipe, tmp_path / "third", "--strict-cache")  # the entry was replaced
    assert _cached(third) == [True, True] and not [r for r in caplog.records if r.levelname == "WARNING"]
    assert _hashes(third)["model.onnx"] == _hashes(uncached)["model.onnx"]

    # the manifest says what came from the cache: each entry's key and the sha256 of every file loaded
    assert [(r["step"], r["name"]) for r in third["from_cache"]] == [
        ("source", "source:torch"), ("passes[0]", "export.onnx"), ("golden", "golden")]
    for record in third["from_cache"]:
        entry = _entry_of(private_pass_cache, record["name"])
        assert record["key"] == entry.name
        assert record["loaded"] == {name: _sha256(entry / name) for name in record["loaded"]}
    assert set(third["from_cache"][0]["loaded"]) == {"entry.json"}  # only the source's record (its metrics)
    assert third["from_cache"][1]["loaded"]["model.onnx"] == _hashes(third)["model.onnx"]
    assert third["from_cache"][2]["loaded"]["golden.npz"] == _hashes(third)["golden.npz"]


def test_cache_verify_finds_the_altered_entry(cli, make_recipe, tmp_path: Path, private_pass_cache: Path):
    _compile(cli, make_recipe(), tmp_path / "first")
    clean = cli("cache", "verify", "--json")
    assert clean.code == 0 and clean.json["verdict"] == "pass" and clean.json["entries"] == 3 and clean.json["bad"] == []
    assert cli("cache", "verify").code == 0

    entry = _entry_of(private_pass_cache, "source:torch")
    _flip_byte(entry / "weights.pt")
    bad = cli("cache", "verify", "--json")
    assert bad.code == 4 and bad.json["verdict"] == "fail" and bad.json["exit_code"] == 4
    [found] = bad.json["bad"]
    assert (found["key"], found["file"], found["step"], found["name"]) == (entry.name, "weights.pt", "source", "source:torch")
    text = cli("cache", "verify")
    assert text.code == 4 and "BAD source source:torch of recipe 'tiny': weights.pt does not match" in text.out


def test_links_extra_missing_and_outside_paths_are_damage(tmp_path: Path):
    import os

    from shrink.engine.cache import ENTRY, SEAL, DamagedEntry, PassCache, _seal

    cache = PassCache(tmp_path / "cache")

    def stored(key: str) -> Path:
        entry = cache.put(key, {"name": "test"}, files={"w.bin": b"weights", "x.txt": b"extra"})
        assert entry is not None and cache.verify(cache.get(key)) is not None
        return entry.path

    def damage(key: str) -> str:
        with pytest.raises(DamagedEntry) as raised:
            entry = cache.get(key)
            assert entry is not None
            cache.verify(entry)
        return str(raised.value)

    (tmp_path / "elsewhere.bin").write_bytes(b"weights")
    path = stored("a" * 64)
    (path / "w.bin").unlink()
    os.symlink(tmp_path / "elsewhere.bin", path / "w.bin")  # same bytes, through a link
    assert damage("a" * 64) == "w.bin is a symbolic link"

    path = stored("b" * 64)
    (path / "more.bin").write_bytes(b"")
    assert damage("b" * 64) == "more.bin is not one of the entry's recorded files"

    path = stored("c" * 64)
    (path / "x.txt").unlink()
    assert damage("c" * 64) == "x.txt is missing"

    path = stored("d" * 64)
    record = json.loads((path / ENTRY).read_text())
    record.pop(SEAL)
    record["files"]["../../outside.bin"] = record["files"].pop("w.bin")
    record[SEAL] = _seal(record)  # resealed: only the name is wrong
    (path / ENTRY).write_text(json.dumps(record))
    assert damage("d" * 64) == "../../outside.bin is a path outside the entry"

    real = stored("e" * 64)
    os.rename(real, tmp_path / "moved")
    os.symlink(tmp_path / "moved", real)
    assert damage("e" * 64) == "the entry folder is a symbolic link"


def test_an_entry_removed_or_replaced_while_read_is_a_miss(tmp_path: Path):
    from shrink.engine.cache import PassCache

    cache = PassCache(tmp_path / "cache")
    key = "f" * 64
    cache.put(key, {"name": "test"}, files={"w.bin": b"one"})
    entry = cache.get(key)
    assert entry is not None and cache._discard(entry.path)
    assert cache.verify(entry) is None and cache.get(key) is None
    cache.put(key, {"name": "test"}, files={"w.bin": b"two"})  # another compile stored it anew
    assert cache.verify(entry) is None
    assert cache.verify(cache.get(key)) is not None


# bounded -----------------------------------------------------------------------------------------------

def _aged(cache, key: str, size: int, used: float, created: float | None = None) -> None:
    import os

    from shrink.engine.cache import ENTRY

    entry = cache.put(key, {"name": key[:1], "created": 0}, files={"w.bin": b"x" * size})
    if created is not None:  # the record's creation time, as a compile's chain writes them one after another
        from shrink.engine.cache import SEAL, _seal

        record = json.loads((entry.path / ENTRY).read_text())
        record.pop(SEAL)
        record["created"] = created
        record[SEAL] = _seal(record)
        (entry.path / ENTRY).write_text(json.dumps(record))
    os.utime(entry.path / ENTRY, (used, used))


def test_prune_removes_least_recently_used_first(tmp_path: Path):
    import time

    from shrink.engine.cache import PassCache

    cache = PassCache(tmp_path / "cache")
    now = time.time()
    _aged(cache, "a" * 64, 1000, now - 40 * 86400)
    _aged(cache, "b" * 64, 1000, now - 10 * 86400)
    _aged(cache, "c" * 64, 1000, now - 60)
    pruned = cache.prune(older_than=30 * 86400)
    assert [s.key[0] for s in pruned.removed] == ["a"] and pruned.entries == 2
    bound = cache.info()["bytes"] - 1
    pruned = cache.prune(max_bytes=bound)
    assert [s.key[0] for s in pruned.removed] == ["b"] and pruned.bytes <= bound
    assert [e.key[0] for e in cache.entries()] == ["c"]


def test_prune_keeps_a_usable_prefix_of_a_chain_used_together(tmp_path: Path):
    """Entries one compile used share a last-use time: the later steps (created later) go first."""
    import time

    from shrink.engine.cache import PassCache

    cache = PassCache(tmp_path / "cache")
    used = time.time()
    for i, key in enumerate(("a" * 64, "b" * 64, "c" * 64)):  # source, pass 0, pass 1
        _aged(cache, key, 1000, used, created=used - 100 + i)
    pruned = cache.prune(max_bytes=cache.info()["bytes"] - 1)
    assert [s.key[0] for s in pruned.removed] == ["c"]


def test_cache_prune_and_info_commands(cli, make_recipe, tmp_path: Path, private_pass_cache: Path):
    _compile(cli, make_recipe(), tmp_path / "first")
    info = cli("cache", "info", "--json").json
    assert info["entries"] == 3 and info["max_bytes"] is None
    assert info["oldest"]["name"] == "source:torch" and info["newest"]["name"] == "golden"  # last used together
    assert {"key", "step", "bytes", "created", "last_used"} <= set(info["oldest"])
    text = cli("cache", "info").out
    assert "3 entries" in text and "oldest (by last use): source source:torch of recipe 'tiny'" in text

    assert cli("cache", "prune", "--older-than", "30d", "--json").json["removed"] == []
    pruned = cli("cache", "prune", "--max-size", str(info["bytes"] - 1), "--json").json
    assert [r["name"] for r in pruned["removed"]] == ["golden"] and pruned["bytes"] < info["bytes"]
    assert cli("cache", "prune", "--max-size", "0", "--json").json["entries"] == 0

    bad = cli("cache", "prune", "--max-size", "lots")
    assert bad.code == 2 and "error: --max-size: 'lots' is not a size" in bad.err
    assert cli("cache", "prune", "--older-than", "30").code == 2
    assert cli("cache", "prune").code == 2  # nothing to prune by


def test_max_size_env_bounds_the_cache_after_each_compile(cli, make_recipe, tmp_path: Path, monkeypatch):
    recipe = make_recipe()
    monkeypatch.setenv("SHRINK_CACHE_MAX_SIZE", "20kB")  # the tiny recipe's three entries take about 31 kB
    _compile(cli, recipe, tmp_path / "a")
    info = cli("cache", "info", "--json").json
    assert info["max_bytes"] == 20_000 and 0 < info["bytes"] <= 20_000
    assert info["by_pass"] == {"source:torch": 1}  # used together: the later steps went first
    monkeypatch.setenv("SHRINK_CACHE_MAX_SIZE", "2 gigs")
    result = cli("compile", recipe, "-o", tmp_path / "b")
    assert result.code == 2 and "error: $SHRINK_CACHE_MAX_SIZE: '2 gigs' is not a size" in result.err


@pytest.mark.slow
def test_prune_keeps_the_bound_while_two_compiles_run(cli, make_recipe, tmp_path: Path, private_pass_cache: Path):
    """Two compiles (one restoring, one adding entries), each pruning to `$SHRINK_CACHE_MAX_SIZE` when done,
    while `shrink cache prune --max-size` runs over and over: every prune leaves the cache under the bound,
    and neither compile fails nor ever sees a damaged (half-removed) entry."""
    import os
    import subprocess
    import sys

    passes = [{"pass": "export.onnx"}, {"pass": "quantize.ptq"}]
    same = make_recipe(passes=passes)
    other = make_recipe("other.json", passes=[{"pass": "export.onnx"}, {"pass": "quantize.ptq", "calibration_samples": 32}])
    warm = _compile(cli, same, tmp_path / "warm")
    bound = cli("cache", "info", "--json").json["bytes"] // 2
    env = {**os.environ, "SHRINK_CACHE_MAX_SIZE": str(bound)}
    procs = [subprocess.Popen([sys.executable, "-m", "shrink", "compile", str(recipe), "-o", str(tmp_path / out)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for recipe, out in ((same, "same"), (other, "other"))]
    prunes = 0
    while any(p.poll() is None for p in procs):
        result = cli("cache", "prune", "--max-size", str(bound), "--json")
        assert result.code == 0, result.err
        assert result.json["bytes"] <= bound
        prunes += 1
    outputs = [p.communicate() for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "WARNING" not in err and "damaged" not in err, err
    assert prunes > 1
    assert cli("cache", "info", "--json").json["bytes"] <= bound
    assert cli("cache", "verify").code == 0
    assert _hashes(json.loads((tmp_path / "same" / "manifest.json").read_text()))["model.onnx"] == _hashes(warm)["model.onnx"]


def test_an_entry_pruned_between_its_check_and_its_load_is_a_miss(make_recipe, tmp_path: Path, private_pass_cache: Path,
                                                                  caplog):
    """The worst moment for a concurrent prune: after the engine checked an entry's files, before the family
    loads them. The step reruns, with no warning and no error even under --strict-cache."""
    from shrink.engine.cache import PassCache
    from shrink.engine.compile import compile_plan, load_plan
    from shrink.host.registry import Registry

    class PrunedMeanwhile(PassCache):
        def verify(self, entry):
            checked = super().verify(entry)
            self._discard(entry.path)
            return checked

    registry = Registry.load()
    plan = load_plan(make_recipe(), registry)
    first = compile_plan(plan, registry, tmp_path / "first", cache=PassCache())
    caplog.clear()
    again = compile_plan(plan, registry, tmp_path / "again", cache=PrunedMeanwhile(strict=True))
    assert [s.cached for s in again.final.history] == [False, False]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert _sha256(again.bundle / "model.onnx") == _sha256(first.bundle / "model.onnx")


def test_import_scans_kept_beside_the_cache_give_the_same_closure(tmp_path: Path):
    """A recompile reads each unchanged file's import statements from import-scans.json instead of parsing it
    (the cached digits recompile went from 17% to 9% of the first compile); the closure must not change."""
    from shrink.engine import keys

    module = "shrink_onnx.quantize"
    fresh = keys._imported_modules(keys._module_file(module), module)
    keys._SCANS_ADDED.append("force a write")
    keys.save_import_scans(tmp_path / "import-scans.json")
    saved = json.loads((tmp_path / "import-scans.json").read_text())
    assert saved["scans"] and not keys._SCANS_ADDED
    keys._SCANS.clear()
    keys.load_import_scans(tmp_path / "import-scans.json")
    assert keys._imported_modules(keys._module_file(module), module) == fresh
    assert not keys._SCANS_ADDED  # served from the file, nothing parsed again
    (tmp_path / "bad.json").write_text("{not json")
    keys.load_import_scans(tmp_path / "bad.json")  # unreadable scans are ignored: they are redone
    damaged = {"python": saved["python"], "scans": {key: [[0, "x"]] for key in saved["scans"]}}
    (tmp_path / "damaged.json").write_text(json.dumps(damaged))
    keys._SCANS.clear()
    keys.load_import_scans(tmp_path / "damaged.json")  # malformed entries are dropped, and the files parsed again
    assert not keys._SCANS
    assert keys._imported_modules(keys._module_file(module), module) == fresh
