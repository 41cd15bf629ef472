"""Offline speech from eSpeak NG, through the library and voice data that the `espeakng-loader` wheel ships
(no apt, no network): `Speaker` says words in a voice (language or accent + voice variant) at a rate and pitch.

eSpeak NG keeps global state, so one `Synthesizer` per process is used from one thread at a time.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4  # espeak_PARAMETER
INSTALL = "pip install -e '.[kws]'"


class SpeechUnavailable(RuntimeError):
    """eSpeak NG could not be loaded."""


@dataclass(frozen=True)
class Voice:
    """An eSpeak NG voice: a language or accent (`en-us`, `en-gb-scotland`, `de`) and a variant (`m3`, `f2`, `klatt`)."""

    accent: str
    variant: str

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


def available() -> str | None:
    """Why eSpeak NG cannot be used here (the install command), or None."""
    import importlib.util

    if importlib.util.find_spec("espeakng_loader") is None:
        return f"speech synthesis needs the espeakng-loader wheel: {INSTALL}"
    return None


class Synthesizer:
    """The process's eSpeak NG library, initialised once for synchronous synthesis into memory."""

    _instance: Synthesizer | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise SpeechUnavailable(f"speech synthesis needs the espeakng-loader wheel: {INSTALL}") from exc
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                           ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = int(self._lib.espeak_Initialize(SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0))
        if self.sample_rate <= 0:
            raise SpeechUnavailable("eSpeak NG failed to initialise (espeak_Initialize returned an error)")
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # kept referenced: the library holds a raw pointer to it
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> Synthesizer:
        with cls._lock:
            if cls._instance is None:
                cls._instance = Synthesizer()
            return cls._instance

    def _collect(self, wav: ctypes.Array, count: int, events: ctypes.c_void_p) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def check_voice(self, voice: Voice) -> bool:
        with self._lock:
            return self._lib.espeak_SetVoiceByName(voice.name.encode()) == 0

    def say(self, text: str, voice: Voice, rate: int, pitch: int, pitch_range: int) -> np.ndarray:
        """`text` spoken by `voice` at `rate` words per minute, as float32 samples in [-1, 1] at `sample_rate`."""
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice.name!r}")
            for parameter, value in ((RATE, rate), (PITCH, pitch), (RANGE, pitch_range), (VOLUME, 100)):
                self._lib.espeak_SetParameter(parameter, int(value), 0)
            self._chunks = []
            encoded = text.encode()
            self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, 0, None, None)
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0
