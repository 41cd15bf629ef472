"""Preprocessing records (`shrink schema preprocessing`) of the `shrink_data` sources, and back: what each source
did to the samples, written as a record of kind `image`, `audio`, `arrays` or `text`, and the resolved
preprocessing (`ImagePrep`, `AudioPrep`) rebuilt from a record alone, so that `shrink verify --data` decodes
files with the same code the compile used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shrink.api.preprocessing import CLASSIFICATION, RECORD_VERSION
from shrink_data.audio_features import MFCC_DB_RANGE, AudioPrep
from shrink_data.images import ImagePrep
from shrink_data.mfcc import MfccPrep

LAYOUTS = {"NCHW": "CHW", "NHWC": "HWC", "NHW": "HW"}
RESCALE = {"0-1": 1 / 255, "0-255": 1.0}
LOG_FLOOR = 1e-10  # transformers.audio_utils.spectrogram's mel_floor


def envelope(kind: str, source: str, labels: Sequence[str] | None) -> dict[str, Any]:
    """The keys every record has; labelled data makes the model a classifier of `labels`."""
    return {"version": RECORD_VERSION, "kind": kind, "source": source, "task": CLASSIFICATION if labels else None,
            "labels": list(labels) if labels else None}


def image_record(prep: ImagePrep, source: str, input_name: str, labels: Sequence[str] | None) -> dict[str, Any]:
    return {**envelope("image", source, labels), "input": input_name,
            "decode": {"color": "gray" if prep.channels == "gray" else "rgb"},
            "resize": {"height": prep.height, "width": prep.width, "shorter_side": prep.resize,
                       "interpolation": prep.interpolation, "method": "align-corners" if prep.align_corners else "pillow"},
            "crop": {"center": [prep.height, prep.width]} if prep.resize is not None else None,
            "rescale_factor": RESCALE[prep.scale], "channel_order": prep.channels,
            "mean": list(prep.mean), "std": list(prep.std), "layout": LAYOUTS[prep.layout], "dtype": prep.dtype,
            "shape": list(prep.shape)}


def image_prep(record: Mapping[str, Any]) -> ImagePrep:
    """The `ImagePrep` of an image record (`ValueError` naming a step this code does not apply)."""
    resize = record["resize"]
    scale = next((name for name, factor in RESCALE.items() if abs(factor - record["rescale_factor"]) < 1e-12), None)
    if scale is None:
        raise ValueError(f"rescale_factor {record['rescale_factor']}: this reader applies 1/255 or 1")
    if (record["decode"]["color"] == "gray") != (record["channel_order"] == "gray"):
        raise ValueError(f"decode color {record['decode']['color']!r} does not match channel_order {record['channel_order']!r}")
    layout = next(key for key, value in LAYOUTS.items() if value == record["layout"])
    crop = record["crop"]
    if (crop is None) != (resize["shorter_side"] is None) or (crop and crop["center"] != [resize["height"], resize["width"]]):
        raise ValueError("this reader crops the center [height, width] after resizing the shorter side, and only then")
    prep = ImagePrep(resize["height"], resize["width"], resize["shorter_side"], resize["interpolation"], record["channel_order"],
                     layout, scale, tuple(record["mean"]), tuple(record["std"]), record["dtype"],
                     resize["method"] == "align-corners")
    if list(prep.shape) != list(record["shape"]):
        raise ValueError(f"shape {record['shape']} does not match the steps, which give {list(prep.shape)}")
    return prep


def audio_record(prep: AudioPrep, source: str, input_name: str, labels: Sequence[str] | None) -> dict[str, Any]:
    if prep.features == "waveform":
        features: dict[str, Any] = {"type": "waveform"}
    else:
        mfcc = prep.features == "mfcc"
        features = {"type": prep.features, "frame_length": prep.frame_length, "hop_length": prep.hop_length,
                    "n_fft": prep.n_fft, "window": "hann-periodic", "center": True, "pad_mode": "reflect", "power": 2.0,
                    "n_mels": prep.n_mels, "f_min": prep.f_min, "f_max": prep.f_max, "mel_scale": prep.mel_scale,
                    "mel_norm": "slaney" if prep.mel_scale == "slaney" else None, "log": "dB" if mfcc else "ln",
                    "log_floor": LOG_FLOOR, "db_range": MFCC_DB_RANGE if mfcc else None,
                    "n_mfcc": prep.n_mfcc if mfcc else None, "dct": "II-ortho" if mfcc else None}
    return {**envelope("audio", source, labels), "input": input_name, "sample_rate": prep.sample_rate,
            "channels": "mean", "pcm_scale": "full-scale", "clip_samples": prep.samples, "clip": "keep-start-pad-end",
            "features": features, "normalization": None, "time_axis": prep.time_axis, "channel_axis": prep.channel_axis,
            "dtype": prep.dtype, "shape": list(prep.shape)}


def audio_prep(record: Mapping[str, Any]) -> AudioPrep:
    """The `AudioPrep` of an audio record (`ValueError` naming a step this code does not apply)."""
    features = record["features"]
    kind = features["type"]
    rate = record["sample_rate"]
    if record["normalization"] is not None:
        raise ValueError(f"normalization {record['normalization']['type']!r}: this reader applies none to {kind}")
    if kind == "waveform":
        spectral: dict[str, Any] = {"frame_length": 400, "hop_length": 160, "n_fft": 400, "n_mels": 40, "n_mfcc": 13,
                                    "f_min": 0.0, "f_max": rate / 2, "mel_scale": "htk"}
    else:
        mfcc = kind == "mfcc"
        expected = {"mel_norm": "slaney" if features["mel_scale"] == "slaney" else None, "log": "dB" if mfcc else "ln",
                    "log_floor": LOG_FLOOR, "db_range": MFCC_DB_RANGE if mfcc else None,
                    "dct": "II-ortho" if mfcc else None}
        for key, value in expected.items():
            if features[key] != value:
                raise ValueError(f"features.{key} {features[key]!r}: this reader computes {kind} with {key} {value!r}")
        if mfcc and features["n_mfcc"] is None:
            raise ValueError("features.n_mfcc: mfcc needs the number of coefficients")
        spectral = {key: features[key] for key in ("frame_length", "hop_length", "n_fft", "n_mels", "f_min", "f_max",
                                                   "mel_scale")}
        spectral["n_mfcc"] = features["n_mfcc"] if mfcc else 13
    prep = AudioPrep(rate, record["clip_samples"], kind, spectral["frame_length"], spectral["hop_length"], spectral["n_fft"],
                     spectral["n_mels"], spectral["n_mfcc"], float(spectral["f_min"]), float(spectral["f_max"]),
                     spectral["mel_scale"], record["time_axis"], record["channel_axis"], record["dtype"])
    if list(prep.shape) != list(record["shape"]):
        raise ValueError(f"shape {record['shape']} does not match the steps, which give {list(prep.shape)}")
    return prep


def arrays_record(source: str, fields: Mapping[str, str], label_field: str | None,
                  labels: Sequence[str] | None) -> dict[str, Any]:
    return {**envelope("arrays", source, labels), "fields": dict(fields), "label_field": label_field}


def text_record(source: str, text_column: str, label_column: str | None, labels: Sequence[str] | None) -> dict[str, Any]:
    """Sentences in a text column (labels in a label column); the tokenizer is the model family's to record."""
    return {**envelope("text", source, labels), "columns": {"text": text_column, "label": label_column},
            "tokenizer": None, "inputs": {}}


def cmsis_mfcc_record(prep: MfccPrep, source: str, input_name: str, labels: Sequence[str] | None,
                      standardization: Mapping[str, Any] | None) -> dict[str, Any]:
    """A clip as CMSIS-DSP's `arm_mfcc_f32` computes it on the device (the `kws` source), then standardized per
    coefficient with the train split's constants when the source did."""
    features = {"type": "cmsis-mfcc", "fft_length": prep.fft_length, "hop_length": prep.hop_length,
                "n_mels": prep.n_mels, "n_mfcc": prep.n_mfcc, "f_min": prep.f_min, "f_max": prep.f_max}
    normalization = None if standardization is None else {
        "type": "standardize", "axis": "last", "mean": [float(v) for v in standardization["mean"]],
        "std": [float(v) for v in standardization["std"]]}
    return {**envelope("audio", source, labels), "input": input_name, "sample_rate": prep.sample_rate,
            "channels": "mean", "pcm_scale": "full-scale", "clip_samples": prep.samples, "clip": "keep-start-pad-end",
            "features": features, "normalization": normalization, "time_axis": "first", "channel_axis": True,
            "dtype": "float32", "shape": list(prep.shape)}


def cmsis_mfcc_prep(record: Mapping[str, Any]) -> tuple[MfccPrep, np.ndarray | None, np.ndarray | None]:
    """The `MfccPrep` of a `cmsis-mfcc` audio record and its standardization (mean, std per coefficient, or None)."""
    f = record["features"]
    prep = MfccPrep(record["sample_rate"], record["clip_samples"], f["fft_length"], f["hop_length"], f["n_mels"],
                    f["n_mfcc"], float(f["f_min"]), float(f["f_max"]))
    if (record["time_axis"], record["channel_axis"], record["dtype"]) != ("first", True, "float32"):
        raise ValueError("cmsis-mfcc: this reader lays features out [1, frames, n_mfcc] float32 (time_axis 'first', "
                         "channel_axis true)")
    if list(prep.shape) != list(record["shape"]):
        raise ValueError(f"shape {record['shape']} does not match the steps, which give {list(prep.shape)}")
    norm = record["normalization"]
    if norm is None:
        return prep, None, None
    mean, std = (np.asarray(norm[key], dtype=np.float32) for key in ("mean", "std"))
    if mean.shape != (prep.n_mfcc,) or std.shape != (prep.n_mfcc,):
        raise ValueError(f"normalization: mean and std need {prep.n_mfcc} values, one per MFCC coefficient")
    return prep, mean, std
