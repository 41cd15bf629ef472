"""What turns a clean synthetic word into a plausible one-second recording: tempo/pitch perturbation and
resampling (scipy's polyphase filter), a cheap microphone's band limit (a Butterworth band-pass), placement in
the window, and background noise mixed at a signal-to-noise ratio: white, pink, brown, mains hum, or babble
(other voices). Imported only while loading.
"""

from __future__ import annotations

import numpy as np

NOISES = ("white", "pink", "brown", "hum", "babble")


def resample(wave: np.ndarray, rate_in: int, rate_out: int, factor: float = 1.0) -> np.ndarray:
    """`wave` at `rate_in` resampled to `rate_out`, played `factor` times faster (tempo and pitch together), with
    scipy's FFT resampler (a polyphase filter at arbitrary factors needs long filters and is slower)."""
    from scipy.signal import resample as fft_resample

    if not len(wave):
        return wave.astype(np.float32)
    return fft_resample(wave, max(1, round(len(wave) * rate_out / (rate_in * factor)))).astype(np.float32)


def band_limit(wave: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    """A 4th-order Butterworth band-pass between `low` and `high` Hz."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, [low, min(high, rate / 2 * 0.99)], btype="bandpass", fs=rate, output="sos")
    return sosfilt(sos, wave).astype(np.float32)


def place(wave: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """`wave` at a random offset in a window of `samples` (cut to fit when longer)."""
    out = np.zeros(samples, np.float32)
    if len(wave) >= samples:
        start = int(rng.integers(0, len(wave) - samples + 1))
        out[:] = wave[start:start + samples]
        return out
    start = int(rng.integers(0, samples - len(wave) + 1))
    out[start:start + len(wave)] = wave
    return out


def colored(samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), unit variance."""
    white = rng.standard_normal(samples)
    if exponent:
        spectrum = np.fft.rfft(white)
        f = np.fft.rfftfreq(samples)
        f[0] = f[1]
        white = np.fft.irfft(spectrum / f ** (exponent / 2), n=samples)
    return (white / (white.std() + 1e-12)).astype(np.float32)


def hum(samples: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and a few harmonics with random phases, unit variance."""
    t = np.arange(samples) / rate
    base = 50.0 if rng.random() < 0.5 else 60.0
    wave = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 6))
    wave = np.asarray(wave) + 0.05 * rng.standard_normal(samples)
    return (wave / (wave.std() + 1e-12)).astype(np.float32)


def noise(kind: str, samples: int, rate: int, rng: np.random.Generator, babble: list[np.ndarray] | None = None) -> np.ndarray:
    """Unit-variance noise of `kind` (`babble` mixes the given clips of other voices)."""
    if kind == "white":
        return colored(samples, 0.0, rng)
    if kind == "pink":
        return colored(samples, 1.0, rng)
    if kind == "brown":
        return colored(samples, 2.0, rng)
    if kind == "hum":
        return hum(samples, rate, rng)
    if kind == "babble":
        mixed = np.zeros(samples, np.float32)
        for clip in babble or []:
            mixed += place(clip, samples, rng)
        if not mixed.any():
            return colored(samples, 1.0, rng)
        return (mixed / (mixed.std() + 1e-12)).astype(np.float32)
    raise ValueError(f"unknown noise {kind!r} (known: {', '.join(NOISES)})")


def mix(signal: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """`signal` plus `background` scaled to `snr_db` below the signal's power (over its voiced part)."""
    voiced = signal[np.abs(signal) > 1e-4]
    power = float(np.mean(voiced ** 2)) if voiced.size else 0.0
    if power == 0.0:
        return signal
    scale = np.sqrt(power / (10 ** (snr_db / 10)) / (float(np.mean(background ** 2)) + 1e-12))
    return (signal + scale * background).astype(np.float32)


def normalize(wave: np.ndarray, peak: float) -> np.ndarray:
    """Scaled so that its largest magnitude is `peak` (silence stays silent)."""
    top = float(np.abs(wave).max()) if wave.size else 0.0
    return wave if top == 0.0 else (wave * (peak / top)).astype(np.float32)
