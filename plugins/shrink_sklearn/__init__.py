"""Built-in datasets: `sklearn.digits`."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from shrink import DataProvider, Dataset, PassOptions, PlanContext, Split, hookimpl
from shrink.api.context import Context
from shrink.api.preprocessing import RECORD_VERSION
from shrink_common.samples import SampleSpec, sample_problems


class DigitsOptions(PassOptions):
    """Options of the `sklearn.digits` data source."""

    image_size: int = Field(32, ge=8, le=64, description="side of the square images fed to the model (bilinear resize from 8x8)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the stratified train/eval split")


class Digits(DataProvider[DigitsOptions]):
    """scikit-learn's handwritten digits (1,797 images, 10 classes), resized; train/calibration/eval splits."""

    name = "sklearn.digits"
    splits = ("train", "calibration", "eval")

    def check(self, plan: PlanContext) -> list[str]:
        """The digits' samples ([1, image_size, image_size] float32) against the model's input."""
        size = self.options.image_size
        return sample_problems(plan.inputs, SampleSpec((1, size, size), "float32"),
                               f"data source 'sklearn.digits' (image_size {size}, 1 channel)")

    def fingerprint(self, ctx: Context) -> str | None:
        """sklearn's raw digits file, the options and the library versions that prepare it (the engine adds
        this provider's code to the cache key)."""
        import importlib.util
        from importlib import metadata
        from pathlib import Path

        spec = importlib.util.find_spec("sklearn")
        raw = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
        if raw is None or not raw.is_file():
            return None
        digest = hashlib.sha256(raw.read_bytes())
        digest.update(self.options.model_dump_json().encode())
        digest.update(f"{metadata.version('scikit-learn')} {metadata.version('scipy')} {metadata.version('numpy')}".encode())
        return "quick-" + digest.hexdigest()

    def preprocessing(self, ctx: Context, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
        """An image pipeline: an 8-bit grayscale digit (sklearn's 0-16 levels as 0-255) scaled to [0, 1] and resized
        to image_size by bilinear interpolation with aligned corners (what `digits_splits` does), labels '0'..'9'."""
        fed = [spec for spec in inputs if spec.get("range") is None and spec.get("constant") is None]
        if len(fed) != 1:
            return None
        size = self.options.image_size
        return {"version": RECORD_VERSION, "kind": "image", "source": self.name, "task": "classification",
                "labels": [str(i) for i in range(10)], "input": fed[0]["name"], "decode": {"color": "gray"},
                "resize": {"height": size, "width": size, "shorter_side": None, "interpolation": "bilinear",
                           "method": "align-corners"},
                "crop": None, "rescale_factor": 1 / 255, "channel_order": "gray", "mean": [0.0], "std": [1.0],
                "layout": "CHW", "dtype": "float32", "shape": [1, size, size]}

    def load(self, ctx: Context) -> Dataset:
        from shrink_sklearn.digits import digits_splits

        opts = self.options
        raw = digits_splits(opts.image_size, opts.seed)
        digest = hashlib.sha256()
        for name in sorted(raw):
            x, y = raw[name]
            digest.update(name.encode() + x.tobytes() + y.tobytes())
        splits = {name: Split(x, y) for name, (x, y) in raw.items()}
        return Dataset(self.name, "classification", splits, digest.hexdigest(),
                       {"classes": [str(i) for i in range(10)], "input_shape": [1, 1, opts.image_size, opts.image_size]})

@hookimpl
def shrink_register_datasets() -> list[type[DataProvider]]:
    return [Digits]
