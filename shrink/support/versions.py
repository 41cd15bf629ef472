"""Versions of the libraries results depend on (recorded in manifests, keyed in the pass cache)."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

LIBRARIES = ("shrink", "torch", "torch-pruning", "nncf", "onnx", "onnxruntime", "onnxsim", "numpy", "scikit-learn",
             "transformers", "tokenizers", "pluggy")


def versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each distribution, `"absent"` for those not installed."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def library_versions() -> dict[str, str]:
    """The installed versions of the libraries a bundle's manifest records (absent ones left out)."""
    return {name: version for name, version in versions(LIBRARIES).items() if version != "absent"}
