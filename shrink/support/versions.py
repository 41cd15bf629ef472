"""Versions of the libraries results depend on (recorded in manifests, keyed in the pass cache)."""

from __future__ import annotations

from importlib import metadata

LIBRARIES = ("shrink", "torch", "torch-pruning", "nncf", "onnx", "onnxruntime", "onnxsim", "numpy", "scikit-learn", "pluggy")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
