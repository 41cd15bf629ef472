"""Train-time augmentation that a data source declares (`Dataset.meta["augment"]`): SpecAugment-style masks and a
time shift of feature maps, drawn from the training loop's generator, and the `kws` source's `augment` option, which
changes the data's cache key only when it is set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shrink import Dataset, Split
from shrink_common.classifier import data_augment, spec_augment
from shrink_data.kws import KeywordSpotting, KwsAugment, KwsOptions, missing_libraries


def _maps(n: int = 8) -> torch.Tensor:
    # every value distinct and non-zero, so a masked (0) or repeated value is visible
    return torch.arange(1, n * 49 * 10 + 1, dtype=torch.float32).view(n, 1, 49, 10)


def test_masks_cover_whole_bands() -> None:
    out = spec_augment(_maps(), torch.Generator().manual_seed(0),
                       {"time_masks": 2, "time_mask": 6, "feature_masks": 1, "feature_mask": 2})
    zeros = out == 0
    assert zeros.any()
    for z in zeros[:, 0]:
        frames, features = z.all(dim=1), z.all(dim=0)
        # a zero is always part of a whole masked frame or a whole masked band of features
        assert torch.equal(z, frames[:, None] | features[None, :])
        assert int(frames.sum()) <= 12 and int(features.sum()) <= 2


def test_a_time_shift_moves_whole_frames_and_repeats_the_edges() -> None:
    x = _maps()
    out = spec_augment(x, torch.Generator().manual_seed(0), {"time_shift": 3})
    offsets = set()
    for sample in range(len(x)):
        matches = [d for d in range(-3, 4)
                   if torch.equal(out[sample, 0], x[sample, 0][(torch.arange(49) + d).clamp(0, 48)])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 1


def test_the_same_generator_gives_the_same_augmentation_and_nothing_asked_changes_nothing() -> None:
    x = _maps()
    spec = {"time_shift": 5, "time_masks": 2, "time_mask": 6, "feature_masks": 1, "feature_mask": 2}
    a = spec_augment(x, torch.Generator().manual_seed(1), spec)
    b = spec_augment(x, torch.Generator().manual_seed(1), spec)
    assert torch.equal(a, b)
    assert not torch.equal(a, spec_augment(x, torch.Generator().manual_seed(2), spec))
    assert torch.equal(spec_augment(x, torch.Generator().manual_seed(1), {}), x)


def test_passes_use_the_datas_augmentation_only_when_their_augment_is_on() -> None:
    spec = KwsAugment().model_dump()
    data = Dataset("kws", "classification", {"train": Split(np.zeros((2, 1, 49, 10), np.float32))}, "f", {"augment": spec})
    assert data_augment(data, True) == spec
    assert data_augment(data, False) is None
    assert data_augment(Dataset("x", "classification", data.splits, "f"), True) is None
    assert data_augment(None, True) is None


@pytest.mark.skipif(bool(missing_libraries()), reason="the kws data source needs pip install -e '.[kws]'")
def test_kws_augment_changes_the_data_key_only_when_set() -> None:
    plain = KeywordSpotting(KwsOptions()).fingerprint(None)  # type: ignore[arg-type]  # the kws source does not use the context
    # the key of data without `augment` is the one it had before the option existed
    legacy = KeywordSpotting(KwsOptions()).options.model_dump_json(exclude={"workers", "augment"})
    import hashlib
    from importlib import metadata

    digest = hashlib.sha256(legacy.encode())
    for dist in KeywordSpotting.libraries:
        digest.update(f"{dist} {metadata.version(dist)};".encode())
    assert plain == "quick-" + digest.hexdigest()
    augmented = KeywordSpotting(KwsOptions(augment=KwsAugment())).fingerprint(None)  # type: ignore[arg-type]
    stronger = KeywordSpotting(KwsOptions(augment=KwsAugment(time_masks=3))).fingerprint(None)  # type: ignore[arg-type]
    assert len({plain, augmented, stronger}) == 3


def test_the_training_loop_applies_it_reproducibly() -> None:
    from torch import nn

    from shrink_common.classifier import train
    from shrink_common.training import TrainConfig

    x = torch.randn(32, 1, 49, 10, generator=torch.Generator().manual_seed(0))
    y = torch.arange(32) % 3
    spec = KwsAugment().model_dump()

    def trained(feature_augment: dict | None) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(3))
        model(x[:1])
        cfg = TrainConfig(epochs=1, batch_size=16, augment=False, feature_augment=feature_augment, channels_last=False)
        train(model, x, y, cfg, seed=0)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(trained(spec), trained(spec))
    assert not torch.equal(trained(spec), trained(None))


@pytest.mark.skipif(bool(missing_libraries()), reason="the kws data source needs pip install -e '.[kws]'")
def test_channel_offset_and_mixup_enter_the_data_key_only_when_on() -> None:
    def key(**augment: float) -> str | None:
        return KeywordSpotting(KwsOptions(augment=KwsAugment(**augment))).fingerprint(None)  # type: ignore[arg-type]

    before = KwsOptions(augment=KwsAugment()).model_dump_json(exclude={"workers": True, "augment": {"channel_offset": True,
                                                                                                   "mixup": True}})
    assert '"channel_offset"' not in before and '"time_masks"' in before
    assert key() == key(channel_offset=0.0, mixup=0.0)
    assert len({key(), key(channel_offset=0.3), key(mixup=0.2), key(channel_offset=0.3, mixup=0.2)}) == 4


def test_a_channel_offset_is_one_constant_per_sample_and_feature() -> None:
    x = _maps()
    out = spec_augment(x, torch.Generator().manual_seed(0), {"channel_offset": 0.5})
    offset = out - x
    # the same in every frame, different between features and between samples
    assert torch.allclose(offset, offset[:, :, :1, :].expand_as(offset), atol=1e-3)  # float32 rounding of large values
    assert offset[0, 0, 0].unique().numel() == 10
    assert not torch.allclose(offset[0], offset[1])
    assert 0.2 < float(offset[:, 0, 0].std()) < 1.0
    assert torch.equal(spec_augment(x, torch.Generator().manual_seed(0), {"channel_offset": 0.0}), x)


def test_mixup_blends_inputs_and_labels_alike() -> None:
    from shrink_common.classifier import mixed_labels, mixup

    x = torch.randn(16, 1, 49, 10, generator=torch.Generator().manual_seed(0))
    y = torch.arange(16) % 4
    mixed, partner, lam = mixup(x, torch.Generator().manual_seed(3), 0.4)
    assert bool(((lam >= 0) & (lam <= 1)).all()) and lam.unique().numel() > 1
    assert torch.allclose(mixed, lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[partner])
    probs = mixed_labels(y, partner, lam, 6)
    assert probs.shape == (16, 6) and torch.allclose(probs.sum(dim=1), torch.ones(16))
    same = y == y[partner]
    assert torch.allclose(probs[torch.arange(16), y], torch.where(same, torch.ones(16), lam))
    again = mixup(x, torch.Generator().manual_seed(3), 0.4)
    assert torch.equal(again[0], mixed) and torch.equal(again[1], partner)


@pytest.mark.parametrize("teacher", [False, True])
def test_the_training_loop_mixes_reproducibly_with_and_without_a_teacher(teacher: bool) -> None:
    from torch import nn

    from shrink_common.classifier import train
    from shrink_common.training import TrainConfig

    x = torch.randn(32, 1, 49, 10, generator=torch.Generator().manual_seed(0))
    y = torch.arange(32) % 3

    def build() -> nn.Module:
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(5))  # more logits than labels seen
        model(x[:1])
        return model

    torch.manual_seed(1)
    guide = build().eval() if teacher else None

    def trained(spec: dict) -> torch.Tensor:
        torch.manual_seed(0)
        model = build()
        cfg = TrainConfig(epochs=1, batch_size=16, augment=False, feature_augment=spec, channels_last=False, alpha=0.5)
        result = train(model, x, y, cfg, seed=0, teacher=guide)
        assert result.losses and all(np.isfinite(result.losses))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    mixing = {**KwsAugment().model_dump(), "mixup": 0.4}
    assert torch.equal(trained(mixing), trained(mixing))
    assert not torch.equal(trained(mixing), trained(KwsAugment().model_dump()))


def test_kws_augment_rejects_negative_mixup_and_offsets() -> None:
    from pydantic import ValidationError

    for bad in ({"mixup": -0.1}, {"channel_offset": -1.0}, {"channel_offset": 5.0}):
        with pytest.raises(ValidationError):
            KwsAugment(**bad)
