"""The `kws` data source: spoken keywords synthesised offline with eSpeak NG, as in the 12-class Speech Commands
task (the keywords, `_unknown_` for other words, `_silence_` for noise alone), fed as CMSIS-DSP MFCCs.

Diversity: voices are accents (languages and English dialects) x voice variants; each clip draws a speaking
rate, pitch and pitch range, a tempo/pitch perturbation, a placement in the one-second window, sometimes a
cheap microphone's band limit, and background noise at 5-30 dB SNR (white, pink, brown, mains hum, or babble
of other words by other voices of the same split).

**The split is speaker-independent:** eval clips are spoken only by `test_accents` x `test_variants`; train and
calibration clips only by the other accents x the other variants, so no accent and no voice variant is shared
(`Dataset.meta["voices"]` lists each split's). Everything is drawn from `seed`: the same options give the same
samples, byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from shrink import DataProvider, Dataset, PassOptions, PlanContext, Split
from shrink.api.context import Context
from shrink_common.samples import SampleSpec, sample_problems
from shrink_data.kws_mix import NOISES

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "zero", "one", "two",
                 "three", "four", "five", "six", "seven", "eight", "nine", "backward", "forward", "follow", "learn",
                 "visual", "yellow", "nothing", "upon", "dove", "often", "stock", "goal", "light", "night", "rain",
                 "music", "water", "window", "open", "close")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc",
           "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "hi", "da", "fi", "cs")
# Variants with `breath` (f2, f3, f5, caleb, ...) are left out: eSpeak NG's breath noise differs from run to run,
# and the data must be the same for the same options.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f4", "klatt", "klatt2", "klatt3", "klatt4", "klatt6",
            "croak", "Alex", "Andy", "Annie", "Denis", "Gene", "Jacky", "Lee", "Michael", "adam", "anika", "belinda",
            "benjamin", "boris", "david", "edward", "iven", "john", "linda", "max", "norbert")
TEST_ACCENTS = ("en-gb-scotland", "en-029", "it", "sv")
TEST_VARIANTS = ("m4", "klatt3", "Andy", "belinda", "iven", "norbert", "Lee")
INSTALL = "pip install -e '.[kws]'"
LATER_AUGMENT = ("channel_offset", "mixup")  # KwsAugment options added later: in the data key only when on

Range = tuple[float, float]


class KwsAugment(PassOptions):
    """Train-time augmentation of the MFCCs, drawn afresh for every batch by the passes that train with `augment`
    (and by examples/kws/train.py): SpecAugment-style masks, a time shift, a channel offset and mixup. The samples
    themselves do not change."""

    time_shift: int = Field(5, ge=0, le=48, description="largest shift in time, frames (edge frames repeated)")
    time_masks: int = Field(2, ge=0, le=8, description="bands of frames masked per sample")
    time_mask: int = Field(6, ge=0, le=48, description="largest masked band, frames")
    feature_masks: int = Field(1, ge=0, le=8, description="bands of MFCC coefficients masked per sample")
    feature_mask: int = Field(2, ge=0, le=64, description="largest masked band, coefficients")
    channel_offset: float = Field(0.0, ge=0, le=4, description="standard deviation of one offset per sample and MFCC "
                                                               "coefficient, the same in every frame (a microphone's or "
                                                               "room's fixed frequency response), in standardized units; 0: none")
    mixup: float = Field(0.0, ge=0, le=10, description="mixup: each sample blended with another of its batch, weight "
                                                       "~ Beta(mixup, mixup), labels blended alike; 0: none")


class KwsOptions(PassOptions):
    """Options of the `kws` data source."""

    keywords: Annotated[list[str], Field(min_length=2, max_length=50)] = Field(
        list(KEYWORDS), description="the words to spot, one class each (classes: these, then _unknown_, _silence_)")
    unknown_words: Annotated[list[str], Field(min_length=1, max_length=500)] = Field(
        list(UNKNOWN_WORDS), description="other words, the _unknown_ class")
    accents: Annotated[list[str], Field(min_length=2, max_length=200)] = Field(
        list(ACCENTS), description="eSpeak NG languages and accents the voices speak with")
    variants: Annotated[list[str], Field(min_length=2, max_length=200)] = Field(
        list(VARIANTS), description="eSpeak NG voice variants (timbre, formants)")
    test_accents: Annotated[list[str], Field(min_length=1)] = Field(
        list(TEST_ACCENTS), description="accents that speak only the eval split (never train or calibration)")
    test_variants: Annotated[list[str], Field(min_length=1)] = Field(
        list(TEST_VARIANTS), description="voice variants that speak only the eval split")
    train_per_class: int = Field(400, ge=1, le=100_000, description="train clips per class")
    eval_per_class: int = Field(100, ge=1, le=100_000, description="eval clips per class (unseen voices)")
    calibration_size: int = Field(200, ge=1, le=100_000, description="calibration clips (train voices, drawn apart)")
    rate_wpm: Range = Field((110.0, 230.0), description="speaking rate range, words per minute")
    pitch: Range = Field((20.0, 80.0), description="eSpeak NG pitch range (0-100)")
    tempo: Range = Field((0.88, 1.12), description="tempo and pitch perturbation factor range (resampling)")
    snr_db: Range = Field((5.0, 30.0), description="signal-to-noise ratio range of the background noise, dB")
    noises: list[str] = Field(list(NOISES), min_length=1, description=f"background noise kinds ({', '.join(NOISES)})")
    noise_probability: float = Field(0.8, ge=0, le=1, description="share of word clips with background noise")
    band_limit_probability: float = Field(0.3, ge=0, le=1, description="share of clips through a cheap microphone's "
                                                                         "band-pass (200-500 Hz to 2.8-4 kHz)")
    sample_rate: int = Field(16000, ge=8000, le=48000, description="samples per second of the clips")
    duration: float = Field(1.0, gt=0.1, le=4.0, description="clip length, seconds")
    fft_length: int = Field(512, ge=32, le=4096, description="MFCC frame and FFT length (a power of two)")
    hop_length: int = Field(320, ge=1, le=4096, description="samples between MFCC frames")
    n_mels: int = Field(40, ge=2, le=128, description="mel bands")
    n_mfcc: int = Field(10, ge=1, le=64, description="MFCC coefficients per frame")
    f_min: float = Field(20.0, ge=0, description="lowest mel filter frequency, Hz")
    f_max: float = Field(4000.0, gt=0, description="highest mel filter frequency, Hz")
    standardize: bool = Field(True, description="scale each MFCC coefficient to zero mean and unit variance with the "
                                                "train split's statistics (Dataset.meta['standardization']; a device "
                                                "applies the same constants): an int8 input's one scale then serves "
                                                "every coefficient, where c0's range would otherwise dwarf the rest")
    augment: KwsAugment | None = Field(None, description="train-time augmentation of the MFCCs (masks, time shift) "
                                                         "for passes that train with `augment` true; none when absent")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of every draw")
    workers: Annotated[int, Field(ge=1, le=64)] | None = Field(
        None, description="processes that synthesise (default: the CPU count, at most 8); the samples do not depend on it")

    @model_validator(mode="after")
    def _consistent(self) -> KwsOptions:
        for name in ("rate_wpm", "pitch", "tempo", "snr_db"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: low {low:g} is above high {high:g}")
        for field in ("keywords", "unknown_words", "accents", "variants", "test_accents", "test_variants"):
            twice = sorted({item for item in getattr(self, field) if getattr(self, field).count(item) > 1})
            if twice:  # a voice listed twice would speak twice as many clips, unasked
                raise ValueError(f"{field}: {', '.join(twice)} listed twice")
        for field, pool in (("test_accents", "accents"), ("test_variants", "variants")):
            chosen, every = getattr(self, field), getattr(self, pool)
            stray = sorted(set(chosen) - set(every))
            if stray:
                raise ValueError(f"{field}: {', '.join(stray)} not in {pool}")
            if set(every) <= set(chosen):
                raise ValueError(f"{field}: every one of {pool} speaks only eval; leave some for training")
        clash = sorted(set(self.keywords) & set(self.unknown_words))
        if clash:
            raise ValueError(f"unknown_words: {', '.join(clash)} are keywords")
        bad = sorted(set(self.noises) - set(NOISES))
        if bad:
            raise ValueError(f"noises: unknown {', '.join(bad)} (known: {', '.join(NOISES)})")
        if self.fft_length & (self.fft_length - 1):
            raise ValueError(f"fft_length {self.fft_length} is not a power of two (CMSIS-DSP's FFT needs one)")
        if self.f_max > self.sample_rate / 2 or self.f_min >= self.f_max:
            raise ValueError(f"need f_min < f_max <= sample_rate / 2 ({self.sample_rate / 2:g} Hz)")
        if round(self.duration * self.sample_rate) < self.fft_length:
            raise ValueError("duration is shorter than one MFCC frame")
        return self

    @property
    def classes(self) -> list[str]:
        return [*self.keywords, UNKNOWN, SILENCE]

    def voices(self, split: str) -> list[tuple[str, str]]:
        """The (accent, variant) pairs that speak `split`: eval has only test accents x test variants; train and
        calibration only the others."""
        test = split == "eval"
        accents = [a for a in self.accents if (a in self.test_accents) == test]
        variants = [v for v in self.variants if (v in self.test_variants) == test]
        return [(a, v) for a in accents for v in variants]


def missing_libraries() -> list[str]:
    import importlib.util

    return [name for name in ("espeakng_loader", "cmsisdsp") if importlib.util.find_spec(name) is None]


class KeywordSpotting(DataProvider[KwsOptions]):
    """Spoken keywords synthesised offline (eSpeak NG voices, noise, perturbation) as CMSIS-DSP MFCCs; eval voices unseen."""

    name = "kws"
    splits = ("train", "calibration", "eval")
    libraries = ("espeakng-loader", "cmsisdsp", "scipy", "numpy")

    def sample(self) -> SampleSpec:
        from shrink_data.mfcc import MfccPrep

        return SampleSpec(self.prep(MfccPrep).shape, "float32")

    def prep(self, cls: Any) -> Any:
        o = self.options
        return cls(o.sample_rate, round(o.duration * o.sample_rate), o.fft_length, o.hop_length, o.n_mels, o.n_mfcc,
                   o.f_min, o.f_max)

    def check(self, plan: PlanContext) -> list[str]:
        missing = missing_libraries()
        if missing:
            return [f"data source 'kws' needs {', '.join(missing)}: {INSTALL}"]
        o = self.options
        sample = self.sample()
        return sample_problems(plan.inputs, sample, f"data source 'kws' ({o.n_mfcc} MFCCs x {sample.shape[1]} frames, "
                                                    f"{o.sample_rate} Hz, {o.duration:g} s)")

    def fingerprint(self, ctx: Context) -> str | None:
        from importlib import metadata

        if missing_libraries():
            return None
        # `augment` only when set, and its later options only when on: data keeps the key it had before they existed
        augment = self.options.augment
        unkeyed: dict[str, Any] = {"workers": True}
        if augment is None:
            unkeyed["augment"] = True
        elif later := {name: True for name in LATER_AUGMENT if not getattr(augment, name)}:
            unkeyed["augment"] = later
        digest = hashlib.sha256(self.options.model_dump_json(exclude=unkeyed).encode())
        for dist in self.libraries:
            digest.update(f"{dist} {metadata.version(dist)};".encode())
        return "quick-" + digest.hexdigest()

    def preprocessing(self, ctx: Context, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The clip as the device computes it: CMSIS-DSP MFCCs, then (`standardize`) the train split's constants.
        Those constants come from the loaded data; a compile that loaded none (fully cached) synthesises it again."""
        from shrink_common.samples import data_input
        from shrink_data.mfcc import MfccPrep
        from shrink_data.records import cmsis_mfcc_record

        spec = data_input(inputs)
        if spec is None:
            return None
        standardization = None
        if self.options.standardize:
            data = ctx.data if ctx.data is not None and "standardization" in ctx.data.meta else self.load(ctx)
            standardization = data.meta["standardization"]
        return cmsis_mfcc_record(self.prep(MfccPrep), self.name, str(spec["name"]), self.options.classes, standardization)

    def load(self, ctx: Context) -> Dataset:
        from shrink_data.kws_synth import synthesize

        o = self.options
        splits: dict[str, Split] = {}
        counts = {"train": o.train_per_class * len(o.classes), "calibration": o.calibration_size,
                  "eval": o.eval_per_class * len(o.classes)}
        digest = hashlib.sha256()
        workers = max(1, min(o.workers or (os.cpu_count() or 1), 8))
        drawn = {name: synthesize(o, name, counts[name], [o.seed, index], workers)
                 for index, name in enumerate(("train", "calibration", "eval"))}
        meta: dict[str, Any] = {"classes": o.classes, "input_shape": [1, *self.sample().shape]}
        if o.standardize:
            train = drawn["train"][0]
            mean = train.mean(axis=(0, 1, 2)).astype(np.float32)
            std = np.maximum(train.std(axis=(0, 1, 2)), 1e-6).astype(np.float32)
            drawn = {name: (((x - mean) / std).astype(np.float32), y) for name, (x, y) in drawn.items()}
            meta["standardization"] = {"mean": mean.tolist(), "std": std.tolist(), "axis": "last (MFCC coefficient)"}
        for name, (x, y) in drawn.items():
            x.setflags(write=False)
            y.setflags(write=False)
            digest.update(name.encode() + x.tobytes() + y.tobytes())
            splits[name] = Split(x, y)
        if o.augment is not None:
            meta["augment"] = o.augment.model_dump()
        meta["voices"] = {name: [f"{a}+{v}" for a, v in o.voices("eval" if name == "eval" else "train")] for name in splits}
        return Dataset(self.name, "classification", splits, digest.hexdigest(), meta)
