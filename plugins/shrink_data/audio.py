"""The `audio` data source: folders of WAV files (class subfolders label them), resampled to a declared rate,
cut or zero-padded to a fixed length, and fed as the waveform or as log-mel / MFCC features with declared sizes.

A sample is `[samples]` for the waveform and `[features, frames]` for log-mel (`n_mels`) and MFCC (`n_mfcc`);
`time_axis` "first" gives `[frames, features]`, `channel_axis` adds a leading axis of 1. What the recipe leaves
out of those two comes from the model's input (a `[1, 1, 40, 101]` input takes `[1, 40, 101]` log-mels).
"""

from __future__ import annotations

import dataclasses
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink.api.inputs import sample_shape
from shrink_data.audio_features import AudioPrep, decode
from shrink_data.files import AUDIO_EXTENSIONS
from shrink_data.folders import FolderOptions, FolderProvider

SPECTRAL = ("frame_length", "hop_length", "n_fft", "n_mels", "f_min", "f_max", "mel_scale")


class AudioOptions(FolderOptions):
    """Options of the `audio` data source."""

    sample_rate: int = Field(16000, ge=1000, le=384000, description="samples per second; files at another rate are resampled")
    duration: float = Field(1.0, gt=0, le=600, description="clip length in seconds: longer files are cut, shorter ones "
                                                           "zero-padded at the end")
    features: Literal["waveform", "log-mel", "mfcc"] = Field(
        "log-mel", description="'waveform': the samples; 'log-mel': natural log of the mel power spectrogram; 'mfcc': "
                               "the DCT-II of the dB log-mel (librosa's MFCC)")
    frame_length: int = Field(400, ge=16, le=65536, description="samples per frame (400: 25 ms at 16 kHz)")
    hop_length: int = Field(160, ge=1, le=65536, description="samples between frames (160: 10 ms at 16 kHz)")
    n_fft: Annotated[int, Field(ge=16, le=65536)] | SkipJsonSchema[None] = Field(
        None, description="FFT size (default: frame_length)")
    n_mels: int = Field(40, ge=1, le=512, description="mel bands")
    n_mfcc: int = Field(13, ge=1, le=512, description="mfcc: coefficients kept (at most n_mels)")
    f_min: float = Field(0.0, ge=0, description="lowest mel filter frequency, Hz")
    f_max: Annotated[float, Field(gt=0)] | SkipJsonSchema[None] = Field(None, description="highest mel filter frequency, Hz (default: "
                                                                        "sample_rate / 2)")
    mel_scale: Literal["htk", "slaney"] = Field("htk", description="mel scale (slaney: with slaney-normalized filters, "
                                                                   "as librosa's default)")
    time_axis: Literal["last", "first"] | SkipJsonSchema[None] = Field(
        None, description="features: frames on the last axis ([features, frames]) or first; default: as the model's "
                          "input fits, else last")
    channel_axis: bool | SkipJsonSchema[None] = Field(
        None, description="add a leading axis of 1 (a one-channel image of the features); default: when the model's "
                          "input has one")
    dtype: Literal["float32", "float16"] | SkipJsonSchema[None] = Field(
        None, description="sample dtype; default: the model input's when it is one of these, else float32")

    @model_validator(mode="after")
    def _consistent(self) -> AudioOptions:
        set_ = self.model_fields_set
        if self.features == "waveform" and set_ & {*SPECTRAL, "n_mfcc", "time_axis"}:
            raise ValueError(f"{', '.join(sorted(set_ & {*SPECTRAL, 'n_mfcc', 'time_axis'}))}: features 'waveform' has "
                             "no frames; these apply to log-mel and mfcc")
        if self.features == "log-mel" and "n_mfcc" in set_:
            raise ValueError("n_mfcc applies to features 'mfcc'")
        if self.features == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc {self.n_mfcc} is more than n_mels {self.n_mels}")
        if self.n_fft is not None and self.n_fft < self.frame_length:
            raise ValueError(f"n_fft {self.n_fft} is smaller than frame_length {self.frame_length}")
        top = self.sample_rate / 2
        if self.f_max is not None and self.f_max > top:
            raise ValueError(f"f_max {self.f_max:g} is above the Nyquist frequency {top:g} Hz of sample_rate {self.sample_rate}")
        if self.f_min >= (self.f_max or top):
            raise ValueError(f"f_min {self.f_min:g} must be below f_max {self.f_max or top:g}")
        if round(self.duration * self.sample_rate) <= self.frame_length // 2 and self.features != "waveform":
            raise ValueError("duration is shorter than half a frame")
        return self


def resolve(opts: AudioOptions, spec: Mapping[str, Any] | None) -> tuple[AudioPrep | None, list[str]]:
    """The preprocessing: the recipe's options, with the layout they leave out fitted to the model's input."""
    model_dtype = str(spec.get("dtype") or "float32") if spec is not None else "float32"
    prep = AudioPrep(opts.sample_rate, round(opts.duration * opts.sample_rate), opts.features, opts.frame_length,
                     opts.hop_length, opts.n_fft or opts.frame_length, opts.n_mels, opts.n_mfcc, opts.f_min,
                     opts.f_max or opts.sample_rate / 2, opts.mel_scale, opts.time_axis or "last", bool(opts.channel_axis),
                     opts.dtype or (model_dtype if model_dtype in ("float32", "float16") else "float32"))
    dims = [d if isinstance(d, int) and d > 0 else None for d in sample_shape(spec)] if spec is not None else None
    if dims is None:
        return prep, []
    if len(dims) == 1 and dims[0] is not None and "features" not in opts.model_fields_set:
        # a model that takes one pinned 1-D signal per sample (a VAD's 512-sample window) reads the waveform
        samples = prep.samples if "duration" in opts.model_fields_set else dims[0]
        prep = dataclasses.replace(prep, features="waveform", samples=samples)
    layouts = [(t, c) for c in ((opts.channel_axis,) if opts.channel_axis is not None else (False, True))
               for t in ((opts.time_axis,) if opts.time_axis is not None else ("last", "first"))]
    for time_axis, channel_axis in layouts:  # the first layout the model's dims agree with; else the defaults
        candidate = dataclasses.replace(prep, time_axis=time_axis, channel_axis=channel_axis)
        shape = candidate.shape
        if len(shape) == len(dims) and all(d is None or d == got for d, got in zip(dims, shape)):
            return candidate, []
    return prep, []


class Audio(FolderProvider[AudioOptions]):
    """WAV folders: class subfolders label them; resampled, fixed-length, as waveform, log-mel or MFCC features."""

    name = "audio"
    kind = "WAV files"
    extensions = AUDIO_EXTENSIONS

    @classmethod
    def claims(cls, path: str) -> dict[str, Any] | None:
        """A folder of WAV files, at the sample rate of its first file."""
        section = super().claims(path)
        if section is None:
            return None
        first = next(p for p in sorted(Path(path).rglob("*")) if p.name.lower().endswith(AUDIO_EXTENSIONS))
        try:
            with wave.open(str(first)) as wav:
                section["sample_rate"] = wav.getframerate()
        except (OSError, wave.Error, EOFError):
            pass  # an unreadable first file: the default rate, and the plan names the file
        return section
    libraries = ("scipy", "transformers", "scikit-learn")

    def resolve(self, spec: Mapping[str, Any] | None) -> tuple[AudioPrep | None, list[str]]:
        return resolve(self.options, spec)

    def decode(self, path: Path, prep: AudioPrep) -> np.ndarray:
        return decode(path, prep)

    def record(self, prep: AudioPrep, input_name: str, labels: list[str] | None) -> dict[str, Any]:
        from shrink_data.records import audio_record

        return audio_record(prep, self.name, input_name, labels)

    def open_header(self, path: Path) -> None:
        from scipy.io import wavfile

        wavfile.read(path, mmap=True)  # parses the chunks and maps the samples without reading them
