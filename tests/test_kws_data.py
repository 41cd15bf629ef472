"""The `kws` data source: a speaker-independent split (no accent and no voice variant shared between training and
eval), its option checks, and (with the `kws` extra: eSpeak NG and CMSIS-DSP) real synthesis: shapes, balanced
classes, the recorded voices, and the same samples for the same options whatever the number of worker processes."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from shrink_data.kws import SILENCE, UNKNOWN, KeywordSpotting, KwsOptions, missing_libraries

REPO = Path(__file__).resolve().parents[1]


def _split_voices(options: KwsOptions) -> tuple[set[str], set[str], set[str], set[str]]:
    train = options.voices("train") + options.voices("calibration")
    test = options.voices("eval")
    return {a for a, _ in train}, {v for _, v in train}, {a for a, _ in test}, {v for _, v in test}


@pytest.mark.parametrize("overrides", [{}, {"test_accents": ["en-us"], "test_variants": ["m1", "f1"]}])
def test_split_shares_no_accent_and_no_variant(overrides: dict) -> None:
    train_accents, train_variants, test_accents, test_variants = _split_voices(KwsOptions(**overrides))
    assert test_accents and test_variants and train_accents and train_variants
    assert not train_accents & test_accents
    assert not train_variants & test_variants


@pytest.mark.parametrize(("overrides", "message"), [
    ({"test_accents": ["xx"]}, "test_accents: xx not in accents"),
    ({"accents": ["en", "de"], "test_accents": ["en", "de"]}, "every one of accents speaks only eval"),
    ({"unknown_words": ["yes", "cat"]}, "unknown_words: yes are keywords"),
    ({"snr_db": [30, 5]}, "snr_db: low 30 is above high 5"),
    ({"fft_length": 500}, "fft_length 500 is not a power of two"),
    ({"variants": ["m1", "f1", "m1"], "test_variants": ["f1"]}, "variants: m1 listed twice"),
])
def test_bad_options_are_refused_with_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KwsOptions(**overrides)


@pytest.mark.slow
@pytest.mark.skipif(bool(missing_libraries()), reason="the kws data source needs pip install -e '.[kws]'")
def test_synthesis_is_speaker_independent_and_reproducible() -> None:
    small = {"train_per_class": 2, "eval_per_class": 2, "calibration_size": 6}
    data = KeywordSpotting(KwsOptions(**small, workers=1)).load(None)  # type: ignore[arg-type]  # unused context
    classes = data.meta["classes"]
    assert classes[-2:] == [UNKNOWN, SILENCE] and len(classes) == 12
    train, eval_ = data.split("train"), data.split("eval")
    assert train.inputs.shape == (24, 1, 49, 10) and eval_.inputs.shape == (24, 1, 49, 10)
    assert sorted(train.labels.tolist()) == sorted(list(range(12)) * 2)
    train_voices = {tuple(v.split("+")) for v in data.meta["voices"]["train"]}
    eval_voices = {tuple(v.split("+")) for v in data.meta["voices"]["eval"]}
    assert not {a for a, _ in train_voices} & {a for a, _ in eval_voices}
    assert not {v for _, v in train_voices} & {v for _, v in eval_voices}
    again = KeywordSpotting(KwsOptions(**small, workers=2)).load(None)  # type: ignore[arg-type]
    assert again.fingerprint == data.fingerprint


def test_the_cmsis_mfcc_record_is_valid_and_reads_back() -> None:
    from shrink.api.preprocessing import record_problems
    from shrink_data.mfcc import MfccPrep
    from shrink_data.records import cmsis_mfcc_prep, cmsis_mfcc_record

    options = KwsOptions()
    prep = KeywordSpotting(options).prep(MfccPrep)
    standard = {"mean": [float(i) for i in range(10)], "std": [1.0 + i for i in range(10)]}
    record = cmsis_mfcc_record(prep, "kws", "input", options.classes, standard) | {"output": "output"}
    assert record_problems(record, "record") == []
    again, mean, std = cmsis_mfcc_prep(record)
    assert again == prep and mean.tolist() == standard["mean"] and std.tolist() == standard["std"]
    assert record_problems({**record, "normalization": {**record["normalization"], "std": [0.0] * 10}}, "r") != []


def _kws_bench() -> ModuleType:
    """bench/kws_teacher.py, where the voices it holds out and adds are defined."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("shrink_kws_teacher_bench", REPO / "bench" / "kws_teacher.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _recipe_data() -> KwsOptions:
    section = json.loads((REPO / "recipes" / "kws-cortex-m4.json").read_text())["data"]
    return KwsOptions.from_section(section, "source")


def test_the_voices_outside_the_recipe_are_in_none_of_its_lists() -> None:
    """bench/kws_other_voices.py scores the bundle on voices its recipe lists nowhere, a proxy for voices nobody
    here chose; the recipe trains on the defaults plus the other half of kws_teacher's more voices."""
    from shrink_data.kws import ACCENTS, VARIANTS

    bench, recipe = _kws_bench(), _recipe_data()
    accents, variants = bench.outside_voices(recipe)
    assert len(accents) >= 10 and len(variants) >= 18
    assert not set(accents) & set(recipe.accents) and not set(variants) & set(recipe.variants)
    more = bench.HALF_MORE_VOICES
    assert recipe.accents == [*ACCENTS, *more["accents"]] and recipe.variants == [*VARIANTS, *more["variants"]]


@pytest.mark.parametrize("split", ["before", "matched"])
def test_the_benchs_validation_voices_are_training_voices_never_test_voices(split: str) -> None:
    """bench/kws_teacher.py and bench/kws_validation.py choose on voices that the recipe trains on and that speak
    none of its test clips; within the bench they are held out from training (speaker-independent again)."""
    bench, recipe = _kws_bench(), _recipe_data()
    accents, variants = bench.SPLITS[split]
    train_accents, train_variants, test_accents, test_variants = _split_voices(recipe)
    assert set(accents) <= train_accents and set(variants) <= train_variants
    assert not set(accents) & test_accents and not set(variants) & test_variants
    held_out = recipe.model_copy(update={"accents": sorted(train_accents), "variants": sorted(train_variants),
                                         "test_accents": accents, "test_variants": variants})
    inner = _split_voices(KwsOptions.model_validate(held_out.model_dump()))
    assert inner[2] == set(accents) and inner[3] == set(variants)
    assert not inner[0] & inner[2] and not inner[1] & inner[3]
