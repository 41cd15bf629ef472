"""Audio samples: WAV files read and resampled with scipy, cut to a fixed length, and turned into features by
`transformers.audio_utils` (log-mel spectrograms; MFCCs as the DCT-II of the dB log-mel, as librosa computes
them). Imported only while loading: scipy and transformers are heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

MFCC_DB_RANGE = 80.0  # librosa's power_to_db(top_db=80) before the DCT


@dataclass(frozen=True)
class AudioPrep:
    """The resolved preprocessing of the `audio` source."""

    sample_rate: int
    samples: int  # clip length, in samples
    features: str  # waveform | log-mel | mfcc
    frame_length: int
    hop_length: int
    n_fft: int
    n_mels: int
    n_mfcc: int
    f_min: float
    f_max: float
    mel_scale: str
    time_axis: str  # last | first
    channel_axis: bool
    dtype: str

    @property
    def frames(self) -> int:
        """Frames of a clip: transformers' `spectrogram` centers frames, padding frame_length // 2 on each side."""
        return 1 + (self.samples + 2 * (self.frame_length // 2) - self.frame_length) // self.hop_length

    @property
    def base_shape(self) -> tuple[int, ...]:
        """The features of one clip before the layout options: [samples], or [features, frames]."""
        if self.features == "waveform":
            return (self.samples,)
        return (self.n_mels if self.features == "log-mel" else self.n_mfcc, self.frames)

    @property
    def shape(self) -> tuple[int, ...]:
        shape = self.base_shape
        if self.time_axis == "first":
            shape = shape[::-1]
        return (1, *shape) if self.channel_axis else shape

    def describe(self) -> str:
        if self.features == "waveform":
            what = f"waveform, {self.samples} samples"
        else:
            size = f"{self.n_mels} mels" if self.features == "log-mel" else f"{self.n_mfcc} coefficients"
            what = f"{self.features}, {size} x {self.frames} frames"
        return f"data source 'audio' ({what}, {self.sample_rate} Hz, {self.samples / self.sample_rate:g} s)"


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """A WAV file as mono float32 in [-1, 1] at `sample_rate` (channels averaged; resampled with a polyphase filter
    when the file's rate differs)."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    rate, data = wavfile.read(path)
    if data.dtype.kind == "i":
        wave = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    elif data.dtype.kind == "u":  # 8-bit WAV is unsigned, centred on 128
        wave = (data.astype(np.float32) - 128.0) / 128.0
    else:
        wave = data.astype(np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if rate != sample_rate:
        common = gcd(int(rate), sample_rate)
        wave = resample_poly(wave, sample_rate // common, int(rate) // common).astype(np.float32)
    return wave


def fixed_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """The first `samples` of a clip, zero-padded at the end when it is shorter."""
    if len(wave) >= samples:
        return wave[:samples]
    return np.pad(wave, (0, samples - len(wave)))


def features(wave: np.ndarray, prep: AudioPrep) -> np.ndarray:
    """One fixed-length clip as the sample `prep` describes."""
    if prep.features == "waveform":
        out = wave
    else:
        from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

        mel = mel_filter_bank(num_frequency_bins=prep.n_fft // 2 + 1, num_mel_filters=prep.n_mels, min_frequency=prep.f_min,
                              max_frequency=prep.f_max, sampling_rate=prep.sample_rate,
                              norm="slaney" if prep.mel_scale == "slaney" else None, mel_scale=prep.mel_scale)
        window = window_function(prep.frame_length, "hann")
        if prep.features == "log-mel":
            out = spectrogram(wave, window, prep.frame_length, prep.hop_length, fft_length=prep.n_fft, power=2.0,
                              mel_filters=mel, log_mel="log")
        else:
            from scipy.fft import dct

            db = spectrogram(wave, window, prep.frame_length, prep.hop_length, fft_length=prep.n_fft, power=2.0,
                             mel_filters=mel, log_mel="dB", db_range=MFCC_DB_RANGE)
            out = dct(db, type=2, norm="ortho", axis=0)[:prep.n_mfcc]
    if prep.time_axis == "first" and out.ndim == 2:
        out = out.T
    if prep.channel_axis:
        out = out[None]
    return np.ascontiguousarray(out.astype(prep.dtype))


def decode(path: Path, prep: AudioPrep) -> np.ndarray:
    return features(fixed_length(read_wav(path, prep.sample_rate), prep.samples), prep)
