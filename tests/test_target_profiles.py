"""The shipped target profiles: valid, resolvable, consistent, and every number cited."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from shrink.api.target import Target
from shrink.host.catalog import Catalog, read_profile
from shrink.host.registry import Registry

PROFILE_FILES = sorted(Path(str(entry)) for entry in resources.files("shrink_targets").iterdir() if entry.name.endswith(".json"))
RAW = {path.stem: read_profile(path, path.name) for path in PROFILE_FILES}
MCU_RUNTIMES = {"tflite-micro"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Registry.load().catalog()


@pytest.fixture(scope="module")
def resolved(catalog: Catalog) -> dict[str, Target]:
    return {name: catalog.resolve(name) for name in RAW}


def _is_mcu(profile: dict[str, Any]) -> bool:
    return profile.get("runtime", {}).get("name") in MCU_RUNTIMES


def _cited(provenance: dict[str, str], field: str) -> bool:
    """A field is cited by its own key or by the key of any group above it ("memory" cites "memory.ram")."""
    parts = field.split(".")
    return any(".".join(parts[:i]) in provenance for i in range(1, len(parts) + 1))


def _numeric_fields(profile: dict[str, Any]) -> list[str]:
    """The numeric fields that need a source, as provenance keys."""
    fields = [f"memory.{region}" for region in profile.get("memory", {})]
    for key in ("storage", "throughput", "energy", "clock_mhz", "overhead_ms", "node_overhead_us"):
        if key in profile:
            fields.append(key)
    runtime = profile.get("runtime", {})
    for key in ("ram_overhead_bytes", "storage_overhead_bytes"):
        if key in runtime:
            fields.append(f"runtime.{key}")
    if runtime.get("arena_overhead", 0):
        fields.append("runtime.arena_overhead")
    return fields


def test_expected_profiles_are_shipped() -> None:
    expected = {"cortex-a53", "x86-64-avx2", "x86-64-avx512", "rpi-zero-2w", "cortex-a55", "cortex-a72", "jetson-nano", "cortex-m7", "cortex-m4", "cortex-m55"}
    assert expected <= set(RAW)


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_file_name_is_profile_name(path: Path) -> None:
    assert RAW[path.stem]["name"] == path.stem


def test_every_profile_is_registered_and_resolves(catalog: Catalog, resolved: dict[str, Target]) -> None:
    assert set(RAW) <= set(catalog.names())
    for name, target in resolved.items():
        assert target.name == name
        assert target.chain[0] == name
        assert "extends" not in target.profile
        assert target.get("runtime", "name"), name


def test_aliases_resolve_to_their_profile(catalog: Catalog) -> None:
    for name, profile in RAW.items():
        for alias in profile.get("aliases", []):
            assert catalog.resolve(alias).name == name


def test_names_and_aliases_are_unique() -> None:
    seen: dict[str, str] = {}
    for name, profile in RAW.items():
        for key in [name, *profile.get("aliases", [])]:
            assert key not in seen, f"{key!r} is used by {seen.get(key)!r} and {name!r}"
            seen[key] = name


def test_rpi_zero_2w_inherits_a53_isa_with_its_own_ram(resolved: dict[str, Target]) -> None:
    zero, a53 = resolved["rpi-zero-2w"], resolved["cortex-a53"]
    assert zero.chain == ("rpi-zero-2w", "cortex-a53")
    assert "isa" not in RAW["rpi-zero-2w"]
    assert zero.get("isa") == a53.get("isa")
    assert zero.get("runtime") == a53.get("runtime")
    assert zero.get("memory", "ram", "bytes") == 128 * 2**20
    assert zero.get("memory", "ram", "bytes") < a53.get("memory", "ram", "bytes")
    assert zero.get("clock_mhz") == 1000
    assert zero.get("throughput") != a53.get("throughput")
    assert zero.get("aliases") != a53.get("aliases")


def test_fp16_and_dotprod_absent_on_a53_present_on_a55(resolved: dict[str, Target]) -> None:
    for name in ("cortex-a53", "rpi-zero-2w", "cortex-a72"):
        isa = resolved[name].get("isa")
        assert {"fullfp16", "dotprod"} <= set(isa["absent_features"]), name
        assert not {"fullfp16", "dotprod"} & set(isa["features"]), name
    a55 = resolved["cortex-a55"].get("isa")
    assert {"fullfp16", "dotprod"} <= set(a55["features"])
    assert not {"fullfp16", "dotprod"} & set(a55["absent_features"])


@pytest.mark.parametrize("name", sorted(RAW))
def test_features_and_absent_features_are_disjoint(name: str, resolved: dict[str, Target]) -> None:
    isa = resolved[name].get("isa", default={})
    assert not set(isa.get("features", [])) & set(isa.get("absent_features", []))


@pytest.mark.parametrize("name", sorted(n for n, p in RAW.items() if _is_mcu(p)))
def test_mcu_profiles(name: str, resolved: dict[str, Target]) -> None:
    target = resolved[name]
    assert target.get("runtime", "weights_in_ram") is False
    assert target.get("runtime", "formats") == ["tflite"]
    assert "com.microsoft" not in target.get("opset")
    assert target.get("opset", "ai.onnx") == {"min": 7, "max": 17}
    assert set(target.get("ops")) == {"ai.onnx"}
    supported = set(target.get("dtypes", "supported"))
    assert target.get("dtypes", "preferred") == ["int8"]
    assert target.get("quantization", "weights") == target.get("quantization", "activations") == "int8"
    assert set(target.get("throughput")) == {"int8"}
    ops = target.get("ops", "ai.onnx")
    for required in ("Conv", "Gemm", "MatMul", "Relu", "Clip", "Add", "Mul", "AveragePool", "MaxPool", "Reshape", "Flatten",
                     "Softmax", "Concat", "Pad", "ReduceMean", "QuantizeLinear", "DequantizeLinear"):
        assert required in ops, required
    for op, entry in ops.items():
        assert isinstance(entry, dict), op
        assert entry.get("maps_to"), op
        assert entry.get("dtypes"), op
        assert set(entry["dtypes"]) <= supported, op
    for op in ("If", "Loop", "Scan", "NonZero"):
        assert op not in ops
    sram = target.get("memory", "sram")
    assert sram["kind"] == "sram"
    assert target.get("storage", "kind") == "flash"


@pytest.mark.parametrize("name", sorted(n for n, p in RAW.items() if not _is_mcu(p)))
def test_onnxruntime_profiles(name: str, resolved: dict[str, Target]) -> None:
    target = resolved[name]
    assert target.get("runtime", "name") == "onnxruntime"
    assert target.get("runtime", "weights_in_ram") is True
    assert target.get("ops") is None
    assert target.get("opset") == {"ai.onnx": {"min": 7, "max": 21}, "com.microsoft": {"min": 1, "max": 1}}


@pytest.mark.parametrize("name", sorted(RAW))
def test_numbers_are_sane(name: str, resolved: dict[str, Target]) -> None:
    target = resolved[name]
    regions = [*target.get("memory", default={}).values(), target.get("storage")]
    for region in regions:
        assert isinstance(region["bytes"], int)
        assert 0 <= region.get("reserved_bytes", 0) < region["bytes"]
    for dtype, entry in target.get("throughput").items():
        low, high = entry["gmacs"]
        assert 0 < low <= high, dtype
        assert entry.get("source"), dtype
    assert target.export_opset <= target.get("opset", "ai.onnx", "max")


@pytest.mark.parametrize("name", sorted(RAW))
def test_every_number_has_provenance(name: str, resolved: dict[str, Target]) -> None:
    profile = resolved[name].profile
    provenance = profile.get("provenance", {})
    for group in ("memory", "storage", "throughput"):
        assert group in profile, group
    missing = [field for field in _numeric_fields(profile) if not _cited(provenance, field)]
    assert not missing, f"{name}: no provenance for {missing}"


@pytest.mark.parametrize("name", sorted(RAW))
def test_a_profile_cites_what_it_overrides(name: str) -> None:
    """A child that replaces a parent's number must cite it itself, not lean on the parent's source."""
    raw = RAW[name]
    provenance = raw.get("provenance", {})
    missing = [field for field in _numeric_fields(raw) if not _cited(provenance, field)]
    assert not missing, f"{name}: no provenance for {missing}"


def test_mcu_energy_and_unverified_assumptions_are_marked(resolved: dict[str, Target]) -> None:
    m4 = resolved["cortex-m4"]
    assert m4.get("energy", "nj_per_mac") > 0
    assert "unverified" in m4.get("provenance", "energy")
    assert "unverified" in m4.get("provenance", "throughput")
    assert "unverified" in resolved["cortex-m55"].get("provenance", "throughput")


def test_host_profiles_charge_each_node(resolved: dict[str, Target], tmp_path: Path) -> None:
    """The x86 estimate: per-call overhead + nodes x per-node overhead + MACs at the calibrated rates."""
    import onnx
    from onnx import TensorProto, helper

    from shrink.api.checks import Subject
    from shrink.checks.estimates import latency_estimate

    relus = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(10)]
    graph = helper.make_graph(relus, "g", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("t10", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "relus.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    avx512 = resolved["x86-64-avx512"]
    assert avx512.get("isa", "profile") == "x86-64-v4" and "avx512vnni" in avx512.get("isa", "features")
    assert avx512.get("runtime", "name") == "onnxruntime"  # inherited from x86-64-avx2
    estimate = latency_estimate(Subject(path, avx512))
    expected = avx512.get("overhead_ms") + 10 * avx512.get("node_overhead_us", "float32") / 1000
    assert estimate.split() == "float32" and estimate.low == pytest.approx(expected) and estimate.high == pytest.approx(expected)
