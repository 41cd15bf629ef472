"""MFCCs with CMSIS-DSP (`cmsisdsp`, its Python API): `arm_mfcc_f32`, the same code a Cortex-M runs on the
device, with CMSIS-DSP's own mel filter and DCT matrices and Hann window. Imported only while loading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INSTALL = "pip install -e '.[kws]'"


@dataclass(frozen=True)
class MfccPrep:
    """Frames of `fft_length` samples every `hop_length`, `n_mels` mel bands between `f_min` and `f_max`,
    `n_mfcc` coefficients per frame."""

    sample_rate: int
    samples: int
    fft_length: int
    hop_length: int
    n_mels: int
    n_mfcc: int
    f_min: float
    f_max: float

    @property
    def frames(self) -> int:
        return 1 + (self.samples - self.fft_length) // self.hop_length

    @property
    def dtype(self) -> str:
        return "float32"

    @property
    def shape(self) -> tuple[int, int, int]:
        """One clip's features: `[1, frames, n_mfcc]` (a one-channel image, time down, coefficients across)."""
        return (1, self.frames, self.n_mfcc)


class Mfcc:
    """A CMSIS-DSP MFCC instance for one `MfccPrep`."""

    def __init__(self, prep: MfccPrep) -> None:
        try:
            import cmsisdsp as dsp
            import cmsisdsp.mfcc as matrices
            from cmsisdsp.datatype import F32
        except ImportError as exc:
            raise RuntimeError(f"MFCC features need the cmsisdsp wheel: {INSTALL}") from exc
        self.prep = prep
        self._dsp = dsp
        lengths, positions, packed = matrices.melFilterMatrix(F32, prep.f_min, prep.f_max, prep.n_mels, prep.sample_rate,
                                                              prep.fft_length)
        # kept referenced: the instance points into these arrays
        self._tables = (matrices.dctMatrix(F32, prep.n_mfcc, prep.n_mels), positions, lengths, packed,
                        dsp.arm_hanning_f32(prep.fft_length))
        self._instance = dsp.arm_mfcc_instance_f32()
        status = dsp.arm_mfcc_init_f32(self._instance, prep.fft_length, prep.n_mels, prep.n_mfcc, *self._tables)
        if status != 0:
            raise ValueError(f"arm_mfcc_init_f32 refused fft_length {prep.fft_length} (CMSIS-DSP status {status}); "
                             "it takes a power of two from 32 to 4096")
        self._scratch = np.zeros(2 * prep.fft_length + 2, dtype=np.float32)  # room for a complex FFT

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        """`[1, frames, n_mfcc]` float32 features of a clip of `prep.samples` samples in [-1, 1]."""
        p = self.prep
        # a copy per frame: arm_mfcc_f32 works in place on its input, and frames overlap
        frames = [self._dsp.arm_mfcc_f32(self._instance, np.array(clip[i * p.hop_length:i * p.hop_length + p.fft_length],
                                                                  dtype=np.float32, copy=True), self._scratch)
                  for i in range(p.frames)]
        return np.stack(frames).astype(np.float32)[None]
