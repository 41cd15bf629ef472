"""Which ONNX Runtime release first runs an op, and which releases a target profile admits.

Contrib ops (`com.microsoft`) arrive in later releases than the ops around them: a profile that accepts
onnxruntime `>=1.16` cannot be promised a model with a `GatherBlockQuantized` (1.20). `first_release` answers
for the ops shrink's passes write that are newer than the oldest release the profiles admitted before them;
an op not listed here predates that and has no version requirement. `oldest_admitted` reads a profile's
`runtime.version` (a PEP 440 specifier such as `>=1.20` or `~=1.22.0`). Imports no onnx.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

ONNXRUNTIME = "onnxruntime"

# (domain, op) -> the first release whose CPU provider runs it; (domain, op, dtype of its MACs) for a release that
# added a precision later. Sources: onnxruntime pull requests 17890 (MatMulNBits, 4-bit, in 1.17), 21630
# (GatherBlockQuantized, int4/uint4 tables, in 1.20) and 24491 (8-bit MatMulNBits x64 kernel, label release:1.22.0).
FIRST_RELEASE: dict[tuple[str, ...], str] = {
    ("com.microsoft", "MatMulNBits"): "1.17",
    ("com.microsoft", "MatMulNBits", "int8"): "1.22",
    ("com.microsoft", "GatherBlockQuantized"): "1.20",
}


def first_release(domain: str, op_type: str, mac_dtypes: Iterable[str] | None = ()) -> str | None:
    """The oldest onnxruntime release that runs `op_type` at every dtype its MACs run in (`None`: not known, so
    at any of them), or None when shrink knows of no requirement."""
    found = [FIRST_RELEASE.get((domain, op_type))]
    if mac_dtypes is None:
        found += [v for k, v in FIRST_RELEASE.items() if k[:2] == (domain, op_type)]
    else:
        found += [FIRST_RELEASE.get((domain, op_type, dtype)) for dtype in mac_dtypes]
    versions = [Version(v) for v in found if v]
    return str(max(versions)) if versions else None


def oldest_admitted(spec: str | None) -> Version | None:
    """The lowest version a profile's `runtime.version` specifier admits (the largest of its lower bounds), or
    None when it has no lower bound or does not parse."""
    if not spec:
        return None
    try:
        specifiers = SpecifierSet(spec)
    except InvalidSpecifier:
        return None
    bounds = []
    for item in specifiers:
        if item.operator in (">=", "==", "~=", "===", ">"):
            text = item.version.removesuffix(".*")
            try:
                bounds.append(Version(text))
            except ValueError:
                return None
    return max(bounds) if bounds else None


def version_problem(runtime: dict[str, object] | None, target: str, domain: str, op_type: str,
                    mac_dtypes: Iterable[str] | None = ()) -> str | None:
    """Why a target's onnxruntime may be too old for the op (it admits an older release than the op's first, or
    says no version at all), or None."""
    if not runtime or runtime.get("name") != ONNXRUNTIME:
        return None
    needed = first_release(domain, op_type, mac_dtypes)
    if needed is None:
        return None
    spec = runtime.get("version")
    oldest = oldest_admitted(str(spec) if spec else None)
    if oldest is None:
        said = f"says onnxruntime {spec!r}" if spec else "does not say which onnxruntime releases it runs (runtime.version)"
        return f"cannot verify: needs onnxruntime ≥{needed} and target {target} {said}"
    if oldest < Version(needed):
        return f"needs onnxruntime ≥{needed}; target {target} admits onnxruntime {spec} (from {oldest})"
    return None
