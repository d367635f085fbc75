"""Recipe-driven transforms: shapes, normalization values, resize/crop geometry, interpolation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zoo.data.transforms import (
    DEFAULT_PREPROCESS,
    AutoAugment,
    RandomResizedCrop,
    center_crop,
    effective_preprocess,
    eval_transform,
    pil_interpolation,
    resize_short,
    train_transform,
)
from zoo.schema import Augment, Interpolation, Preprocess


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def test_default_eval_transform_shape_and_dtype() -> None:
    out = eval_transform(DEFAULT_PREPROCESS)(_image(320, 240))
    assert out.shape == (3, 224, 224)
    assert out.dtype == np.float32


def test_resize_short_keeps_aspect_and_rounds() -> None:
    img = resize_short(_image(300, 200), 256)
    assert img.size == (384, 256)
    img = resize_short(_image(201, 333), 100)
    assert img.size == (100, round(333 * 100 / 201))


def test_center_crop_offsets() -> None:
    arr = np.arange(7 * 5, dtype=np.uint8).reshape(5, 7)
    img = Image.fromarray(arr, mode="L")
    out = np.asarray(center_crop(img, 3))
    # (7 - 3) // 2 = 2 columns and (5 - 3) // 2 = 1 row are cut on the left/top
    np.testing.assert_array_equal(out, arr[1:4, 2:5])


def test_normalization_values_scaled() -> None:
    img = Image.new("RGB", (8, 8), (255, 128, 0))
    pre = Preprocess(crop=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    out = eval_transform(pre)(img)
    np.testing.assert_allclose(out[:, 0, 0], [(1.0 - 0.5) / 0.25, (128 / 255 - 0.5) / 0.5, (0.0 - 0.5) / 1.0], rtol=1e-5, atol=1e-6)


def test_normalization_values_unscaled_bgr_hwc() -> None:
    img = Image.new("RGB", (4, 4), (10, 20, 30))
    pre = Preprocess(scale=False, mean=(1.0, 2.0, 3.0), std=(2.0, 2.0, 2.0), channels="BGR", layout="HWC")
    out = eval_transform(pre)(img)
    assert out.shape == (4, 4, 3)
    np.testing.assert_allclose(out[0, 0], [(30 - 1) / 2, (20 - 2) / 2, (10 - 3) / 2])


def test_square_resize_does_not_keep_aspect() -> None:
    pre = Preprocess(resize=64, interpolation="bicubic")
    assert eval_transform(pre)(_image(100, 40)).shape == (3, 64, 64)
    assert eval_transform(pre, input_size=32)(_image(100, 40)).shape == (3, 32, 32)


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic", "lanczos"])
def test_interpolation_choice_is_applied(interp: str) -> None:
    img = _image(50, 37, seed=3)
    pre = Preprocess(resize_short=24, crop=24, interpolation=interp, mean=(0, 0, 0), std=(1, 1, 1))
    got = eval_transform(pre)(img)
    want = center_crop(img.resize((32, 24), pil_interpolation(Interpolation(interp))), 24)
    np.testing.assert_allclose(got, np.asarray(want, dtype=np.float32).transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_interpolations_differ() -> None:
    img = _image(50, 37, seed=3)
    outs = [eval_transform(Preprocess(resize_short=24, crop=24, interpolation=i))(img) for i in ("bilinear", "lanczos")]
    assert not np.allclose(outs[0], outs[1])


def test_input_size_scales_the_short_side_with_the_crop() -> None:
    pre = effective_preprocess(Preprocess(resize_short=256, crop=224), 112)
    assert (pre.resize_short, pre.crop) == (128, 112)


def test_random_resized_crop_box_respects_scale() -> None:
    import random

    rrc = RandomResizedCrop(32, scale=(0.5, 0.6))
    rng = random.Random(0)
    for _ in range(50):
        left, top, right, bottom = rrc.box(100, 80, rng)
        area = (right - left) * (bottom - top)
        assert 0 <= left < right <= 100 and 0 <= top < bottom <= 80
        assert 0.45 * 8000 <= area <= 0.65 * 8000


def test_train_transform_variants() -> None:
    pre = Preprocess(resize_short=40, crop=32)
    img = _image(60, 45)
    assert train_transform(pre, Augment(random_resized_crop=32))(img).shape == (3, 32, 32)
    assert train_transform(pre, Augment(random_crop=32, auto_augment=True))(img).shape == (3, 32, 32)
    assert train_transform(pre, None)(img).shape == (3, 32, 32)


def test_horizontal_flip_flips_sometimes() -> None:
    import random

    random.seed(0)
    pre = Preprocess(crop=8, mean=(0, 0, 0), std=(1, 1, 1))
    img = _image(8, 8, seed=5)
    base = eval_transform(pre)(img)
    outs = [train_transform(pre, Augment(horizontal_flip=True))(img) for _ in range(20)]
    flipped = [np.allclose(o, base[:, :, ::-1]) for o in outs]
    assert any(flipped) and not all(flipped)


def test_auto_augment_keeps_size_and_mode() -> None:
    import random

    random.seed(1)
    img = _image(32, 32)
    for _ in range(30):
        out = AutoAugment()(img)
        assert out.size == (32, 32) and out.mode == "RGB"
