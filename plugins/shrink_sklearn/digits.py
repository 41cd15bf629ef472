"""The `sklearn.digits` dataset: scikit-learn's 8x8 handwritten digits, resized for CNNs."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EVAL_SIZE = 360
CALIBRATION_SIZE = 200


@lru_cache(maxsize=4)
def digits_splits(image_size: int = 32, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Deterministic train / calibration / eval splits of scikit-learn's digits.

    Images are scaled to [0, 1], resized to `image_size` (bilinear) and shaped `[N, 1, H, W]`
    float32; labels are int64. `eval` is a stratified held-out split of 360 images; `train` is the
    rest; `calibration` is the first 200 images of `train` (calibration never sees eval images).
    """
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    labels = bunch.target.astype(np.int64)
    if image_size != 8:
        factor = image_size / 8.0
        images = np.stack([zoom(img, factor, order=1) for img in images]).astype(np.float32)
        images = np.clip(images, 0.0, 1.0)
    images = images[:, None, :, :]
    x_train, x_eval, y_train, y_eval = train_test_split(
        images, labels, test_size=EVAL_SIZE, random_state=seed, stratify=labels
    )
    splits = {
        "train": (x_train, y_train),
        "calibration": (x_train[:CALIBRATION_SIZE], y_train[:CALIBRATION_SIZE]),
        "eval": (x_eval, y_eval),
    }
    for x, y in splits.values():
        x.setflags(write=False)
        y.setflags(write=False)
    return splits
