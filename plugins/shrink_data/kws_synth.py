"""Drawing one split of the `kws` data: which voice says which word how, what it is mixed with, and its MFCCs.
Imported only while loading (scipy, eSpeak NG, CMSIS-DSP)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shrink_data import kws_mix
from shrink_data.mfcc import Mfcc, MfccPrep
from shrink_data.speech import Synthesizer, Voice

if TYPE_CHECKING:
    from shrink_data.kws import KwsOptions

BABBLE_WORDS = (2, 5)  # other words mixed into babble noise
PEAK = (0.05, 0.95)  # peak amplitude of a clip after mixing (the recording level)
SILENCE_LEVEL = (0.01, 0.5)  # peak amplitude of a _silence_ clip
NOISE_FLOOR = 1e-4  # a microphone's self-noise (RMS, white): no recording is digital silence


def _voices(options: KwsOptions, split: str, synth: Synthesizer) -> list[Voice]:
    voices = [Voice(a, v) for a, v in options.voices(split)]
    broken = [v.name for v in voices if not synth.check_voice(v)]
    if broken:
        raise ValueError(f"eSpeak NG has no voice {', '.join(broken[:5])}: check data.accents and data.variants")
    return voices


def _spoken(options: KwsOptions, word: str, voice: Voice, synth: Synthesizer, rng: np.random.Generator) -> np.ndarray:
    """`word` said by `voice` at a drawn rate, pitch and tempo, at the clips' sample rate."""
    rate = int(rng.uniform(*options.rate_wpm))
    pitch = int(rng.uniform(*options.pitch))
    wave = synth.say(word, voice, rate, pitch, int(rng.uniform(20, 90)))
    return kws_mix.resample(wave, synth.sample_rate, options.sample_rate, float(rng.uniform(*options.tempo)))


def _background(options: KwsOptions, voices: list[Voice], synth: Synthesizer, samples: int,
                rng: np.random.Generator) -> np.ndarray:
    kind = str(rng.choice(options.noises))
    babble = None
    if kind == "babble":
        words = [*options.keywords, *options.unknown_words]
        babble = [_spoken(options, str(rng.choice(words)), voices[int(rng.integers(len(voices)))], synth, rng)
                  for _ in range(int(rng.integers(BABBLE_WORDS[0], BABBLE_WORDS[1] + 1)))]
    return kws_mix.noise(kind, samples, options.sample_rate, rng, babble)


def clip(options: KwsOptions, label: int, voices: list[Voice], synth: Synthesizer, rng: np.random.Generator) -> np.ndarray:
    """One one-second recording of class `label` (a keyword, `_unknown_` or `_silence_`)."""
    samples = round(options.duration * options.sample_rate)
    keywords = len(options.keywords)
    if label == keywords + 1:  # _silence_: noise alone
        wave = kws_mix.normalize(_background(options, voices, synth, samples, rng), float(rng.uniform(*SILENCE_LEVEL)))
        return wave + NOISE_FLOOR * rng.standard_normal(samples).astype(np.float32)
    word = options.keywords[label] if label < keywords else str(rng.choice(options.unknown_words))
    wave = kws_mix.place(_spoken(options, word, voices[int(rng.integers(len(voices)))], synth, rng), samples, rng)
    if rng.random() < options.band_limit_probability:
        wave = kws_mix.band_limit(wave, options.sample_rate, float(rng.uniform(200, 500)), float(rng.uniform(2800, 4000)))
    if rng.random() < options.noise_probability:
        wave = kws_mix.mix(wave, _background(options, voices, synth, samples, rng), float(rng.uniform(*options.snr_db)))
    wave = kws_mix.normalize(wave, float(rng.uniform(*PEAK)))
    return wave + NOISE_FLOOR * rng.standard_normal(len(wave)).astype(np.float32)


CHUNK = 1000  # clips drawn from one generator in one process: the chunks, not the workers, fix what is drawn


def _prep(options: KwsOptions) -> MfccPrep:
    return MfccPrep(options.sample_rate, round(options.duration * options.sample_rate), options.fft_length,
                    options.hop_length, options.n_mels, options.n_mfcc, options.f_min, options.f_max)


def _waves(options: KwsOptions, split: str, labels: np.ndarray, seed: list[int]) -> np.ndarray:
    """The clips of one chunk `[n, samples]` in [-1, 1], drawn from its own generator."""
    synth = Synthesizer.get()
    voices = _voices(options, split, synth)
    rng = np.random.default_rng(seed)
    return np.stack([clip(options, int(label), voices, synth, rng) for label in labels]).astype(np.float32)


def _chunk(options: KwsOptions, split: str, labels: np.ndarray, seed: list[int]) -> np.ndarray:
    """MFCCs of one chunk of clips."""
    features = Mfcc(_prep(options))
    return np.stack([features(wave) for wave in _waves(options, split, labels, seed)])


def synthesize(options: KwsOptions, split: str, count: int, seed: list[int], workers: int = 1,
               waves: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`count` clips of `split` as MFCCs `[count, 1, frames, n_mfcc]` float32 (`waves`: the clips themselves,
    `[count, samples]`, before the MFCCs) and their labels (int64), classes balanced and shuffled. Chunks of `CHUNK`
    clips each draw from a generator seeded `[*seed, chunk]` in a process of their own, so the result is the same
    whatever `workers` (processes at once) draw them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    labels = np.random.default_rng(seed).permutation(np.arange(count) % len(options.classes)).astype(np.int64)
    chunks = [(options, split, labels[start:start + CHUNK], [*seed, start // CHUNK]) for start in range(0, count, CHUNK)]
    if not chunks:
        return np.empty((0, *((_prep(options).samples,) if waves else _prep(options).shape)), np.float32), labels
    # Each chunk in a new interpreter: eSpeak NG's output depends on what the process synthesised before (a voice
    # loaded again does not sound the same), so only a fresh library gives the same clips every time. An executor,
    # not a Pool: a worker that cannot start (a script without `if __name__ == "__main__":`) then fails, not hangs.
    try:
        with ProcessPoolExecutor(max(1, min(workers, len(chunks))), multiprocessing.get_context("spawn"),
                                 max_tasks_per_child=1) as pool:
            parts = list(pool.map(_waves if waves else _chunk, *zip(*chunks)))
    except BrokenProcessPool as exc:
        raise RuntimeError("the kws data source synthesises in worker processes (spawned), and one died: either it "
                           "could not start (a script that loads the source must guard its entry point with `if "
                           "__name__ == \"__main__\":`) or eSpeak NG crashed on a clip (it segfaults on a few voice, word "
                           "and rate draws, e.g. gd+rob saying \"backward\" at 124 wpm: drop that accent or variant)") from exc
    return np.concatenate(parts).astype(np.float32), labels
