"""Image augmentation: each op against an independent computation, seeded determinism, and training streams
(episodes and class batches) that augment only their training tasks and resume to the same augmented images."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyskill.data import ClassDataset
from polyskill.data.augment import (
    AUGMENT_PRESETS,
    AugmentSpec,
    ColourJitter,
    HorizontalFlip,
    Normalize,
    RandomResizedCrop,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    chain,
    crop_resize,
    flip,
)
from polyskill.data.class_batches import ClassBatchSampler
from polyskill.data.episodes import EpisodeSampler
from polyskill.errors import ConfigError

STANDARD = AUGMENT_PRESETS["standard"].pipeline()


def _batch(n: int = 6, side: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_flip_mirrors_exactly_the_chosen_images():
    x = _batch()
    mask = torch.tensor([True, False, True, False, False, True])
    out = flip(x, mask)
    for i, chosen in enumerate(mask.tolist()):
        assert torch.equal(out[i], x[i].flip(-1) if chosen else x[i])
    assert torch.equal(HorizontalFlip(p=1.0)(x, _gen()), x.flip(-1))
    assert torch.equal(HorizontalFlip(p=0.0)(x, _gen()), x)


def test_a_crop_of_the_whole_image_at_ratio_one_is_the_identity():
    x = _batch()
    out = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, _gen())
    assert torch.allclose(out, x, atol=1e-5)


def test_crop_resize_cuts_the_box_and_resizes_as_interpolate():
    x = _batch(side=12)
    boxes = torch.tensor([[2.0, 3.0, 5.0, 7.0]]).expand(len(x), 4)
    assert torch.allclose(crop_resize(x, boxes, (5, 7)), x[:, :, 2:7, 3:10], atol=1e-5)
    whole = torch.tensor([[0.0, 0.0, 12.0, 12.0]]).expand(len(x), 4)
    expected = F.interpolate(x, size=(20, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(crop_resize(x, whole, (20, 16)), expected, atol=1e-5)


def test_crop_boxes_follow_the_drawn_area_ratio_and_stay_inside():
    crop = RandomResizedCrop(scale=(0.25, 0.25), ratio=(1.0, 1.0))
    boxes = crop.boxes(400, 20, 20, _gen())
    assert torch.all(boxes[:, 2:] == 10)  # sqrt(0.25 * 400) on each side
    top, left = boxes[:, 0], boxes[:, 1]
    assert top.min() == 0 and top.max() == 10 and left.min() == 0 and left.max() == 10  # every position reachable
    wide = RandomResizedCrop(scale=(0.1, 1.0), ratio=(0.5, 2.0)).boxes(2000, 30, 40, _gen(1))
    top, left, h, w = wide.unbind(1)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 30) & (left + w <= 40)).all())
    area = h * w / (30 * 40)
    assert area.min() >= 0.09 and area.max() <= 1.0
    # a drawn aspect ratio outside [0.5, 2] only by the rounding of w and h to whole pixels
    assert bool((w / h >= 0.5 * (1 - 1 / h) - 1 / h).all() and (w / h <= 2.0 * (1 + 1 / h) + 1 / h).all())
    assert abs(math.log(float((w / h).median()))) < 0.15  # log-uniform in [log 1/2, log 2]: median ratio ~ 1


def test_brightness_contrast_and_saturation_against_their_definitions():
    x = _batch(4)
    f = torch.tensor([0.0, 0.5, 1.0, 1.7])
    assert torch.equal(adjust_brightness(x, f), (x * f.view(-1, 1, 1, 1)).clamp(0, 1))
    weights = np.array([0.299, 0.587, 0.114])  # ITU-R 601
    grey = np.einsum("nchw,c->nhw", x.double().numpy(), weights)
    greyed = adjust_saturation(x, torch.zeros(4))
    for c in range(3):
        assert np.allclose(greyed[:, c].numpy(), grey, atol=1e-6)
    assert torch.allclose(adjust_saturation(x, torch.ones(4)), x)
    flat = adjust_contrast(x, torch.zeros(4))
    assert np.allclose(flat.numpy(), grey.mean(axis=(1, 2))[:, None, None, None], atol=1e-6)
    doubled = adjust_contrast(x, torch.full((4,), 2.0))
    mean = grey.mean(axis=(1, 2))[:, None, None, None]
    assert np.allclose(doubled.numpy(), np.clip(2 * x.double().numpy() - mean, 0, 1), atol=1e-6)


def test_saturation_leaves_grey_images_alone_but_draws_as_on_colour():
    grey, colour = _batch(5)[:, :1], _batch(5)
    jitter = ColourJitter(saturation=0.4)
    on_grey, on_colour = _gen(3), _gen(3)
    assert torch.equal(jitter(grey, on_grey), grey)
    assert not torch.equal(jitter(colour, on_colour), colour)
    assert torch.equal(torch.rand(4, generator=on_grey), torch.rand(4, generator=on_colour))


def test_hue_turn_matches_colorsys_pixel_by_pixel():
    x = _batch(2, side=4)
    shift = torch.tensor([0.2, -0.35])
    out = adjust_hue(x, shift)
    for n in range(2):
        for i in range(4):
            for j in range(4):
                h, s, v = colorsys.rgb_to_hsv(*x[n, :, i, j].tolist())
                expected = colorsys.hsv_to_rgb((h + float(shift[n])) % 1.0, s, v)
                assert np.allclose(out[n, :, i, j].numpy(), expected, atol=1e-5)
    assert torch.allclose(adjust_hue(x, torch.zeros(2)), x, atol=1e-5)


def test_normalize_and_jitter_ranges():
    x = _batch()
    out = Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))(x, _gen())
    assert torch.allclose(out[:, 1], (x[:, 1] - 0.4) / 0.25)
    jittered = ColourJitter(brightness=0.4)(torch.full((500, 3, 1, 1), 0.5), _gen())
    factors = jittered[:, 0, 0, 0] / 0.5
    assert 0.6 <= factors.min() < 0.65 and 1.35 < factors.max() <= 1.4  # uniform in [1 - 0.4, 1 + 0.4]
    with pytest.raises(ValueError, match=r"hue must be <= 0\.5"):
        ColourJitter(hue=0.7)


def test_a_strength_whose_factors_overflow_fp32_is_refused():
    for strength in (1e300, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="jitter brightness must be a number in"):
            ColourJitter(brightness=strength)
    with pytest.raises(ValueError, match="brightness"):
        AugmentSpec(brightness=1e300)


def test_a_crop_ratio_is_checked_even_when_nothing_is_cropped():
    with pytest.raises(ValueError, match=r"crop_ratio must be a range \[low, high\]"):
        AugmentSpec(crop_ratio=[2.0, 0.5])
    with pytest.raises(ValueError, match="shapes the random crop, which is off: set crop_scale"):
        AugmentSpec(crop_ratio=[0.5, 2.0])
    assert AugmentSpec(crop_scale=[0.5, 1.0], crop_ratio=[0.5, 2.0]).pipeline() is not None
    assert AugmentSpec().pipeline() is None


@pytest.mark.parametrize("ratio", [(1e300, 1e300), (1e-6, 1e-6)])
def test_the_fallback_crop_of_an_extreme_ratio_is_at_least_a_pixel(ratio):
    boxes = RandomResizedCrop(scale=(0.5, 1.0), ratio=ratio).boxes(8, 28, 28, _gen())
    assert bool((boxes[:, 2:] >= 1).all()) and bool((boxes[:, 2:] <= 28).all())


def test_a_pipeline_is_a_function_of_its_generator_state():
    x = _batch(8, side=16)
    first = STANDARD(x, _gen(3))
    assert torch.equal(first, STANDARD(x, _gen(3)))
    assert not torch.equal(first, STANDARD(x, _gen(4)))
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(chain()(x, _gen()), x)


def _colour_classes(classes: int = 6, per_class: int = 5, side: int = 8) -> ClassDataset:
    data = torch.randint(0, 256, (classes, per_class, 3, side, side), generator=_gen(7), dtype=torch.uint8)
    return ClassDataset(data, [f"c{i}" for i in range(classes)])


def _same(a, b) -> bool:
    return torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)


def test_episodes_resume_to_the_same_augmented_tasks():
    data = _colour_classes()
    sampler = EpisodeSampler(data, way=3, shot=1, query=2, seed=5, augment=STANDARD)
    sampler.sample(3)  # part of a block: the state must say where inside it the stream stands
    state = sampler.state_dict()
    after = [sampler.sample(2) for _ in range(20)]  # runs past the end of the block
    resumed = EpisodeSampler(data, way=3, shot=1, query=2, seed=5, augment=STANDARD)
    resumed.load_state_dict(state)
    assert all(_same(a, resumed.sample(2)) for a in after)
    plain = EpisodeSampler(data, way=3, shot=1, query=2, seed=5)
    batch, augmented = plain.sample(4), EpisodeSampler(data, 3, 1, 2, seed=5, augment=STANDARD).sample(4)
    assert torch.equal(batch.task_seeds, augmented.task_seeds) and not _same(batch, augmented)
    identity = EpisodeSampler(data, 3, 1, 2, seed=5, augment=chain()).sample(4)
    assert _same(batch, identity)  # the same classes and examples are drawn with augmentation as without
    assert _same(plain.episode(7), EpisodeSampler(data, 3, 1, 2, seed=5, augment=STANDARD).episode(7))


def test_class_batches_resume_to_the_same_augmented_batches():
    data = _colour_classes()
    sampler = ClassBatchSampler(data, batch_size=4, seed=2, augment=STANDARD)
    sampler.sample(3)
    state = sampler.state_dict()
    after = [sampler.sample(2) for _ in range(10)]  # across epoch boundaries (30 examples an epoch)
    resumed = ClassBatchSampler(data, batch_size=4, seed=2, augment=STANDARD)
    resumed.load_state_dict(state)
    assert all(_same(a, resumed.sample(2)) for a in after)
    plain = ClassBatchSampler(data, batch_size=4, seed=2).sample(3)
    augmented = ClassBatchSampler(data, batch_size=4, seed=2, augment=STANDARD).sample(3)
    assert torch.equal(plain.query_y, augmented.query_y) and not torch.equal(plain.query_x, augmented.query_x)


def test_augmentation_needs_image_examples():
    embeddings = ClassDataset(torch.randn(4, 5, 16), ["a", "b", "c", "d"])
    with pytest.raises(ConfigError, match=r"augmentation transforms images \[C, H, W\]"):
        EpisodeSampler(embeddings, 2, 1, 1, augment=STANDARD)


def test_an_augmented_run_resumes_to_the_same_weights(tmp_path):
    """Three steps, a restart, three more: the same weights as six steps in one go, augmentation on."""
    from polyskill.meta import PrototypicalNetworks
    from polyskill.nn import Conv4
    from polyskill.train import fit

    data = _colour_classes(side=16)

    def run(out, steps, resume=False):
        torch.manual_seed(0)
        algo = PrototypicalNetworks(Conv4(in_channels=3, hidden=8, image_size=16))
        sampler = EpisodeSampler(data, way=3, shot=1, query=2, seed=0, augment=STANDARD)
        fit(algo, sampler, out=out, steps=steps, val_every=3, resume=resume, progress=False)
        return algo.state_dict()

    straight = run(tmp_path / "straight", 6)
    run(tmp_path / "split", 3)
    resumed = run(tmp_path / "split", 6, resume=True)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
