"""Recipe-driven transforms: shapes, normalization values, resize/crop geometry, interpolation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.opencv_reference import opencv_4_2_kernels
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
from zoo.schema import Augment, Backend, CropSampler, Interpolation, Preprocess, Sizing


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


# --- backends and sizing -----------------------------------------------------------------------

def test_short_side_rounding_per_sizing() -> None:
    from zoo.data.transforms import short_side_size

    # 256 * 500 / 366 = 349.73: PaddleClas/PaddleSlim round, torchvision-style truncates
    assert short_side_size(366, 500, 256, Sizing.paddle) == (256, 350)
    assert short_side_size(366, 500, 256, Sizing.torchvision) == (256, 349)
    assert short_side_size(500, 366, 256, Sizing.torchvision) == (349, 256)


def test_center_offsets_per_sizing() -> None:
    from zoo.data.transforms import center_box

    # a 127-pixel margin: floor gives 63, round-half-even of 63.5 gives 64; 62.5 rounds to 62
    assert center_box(351, 300, 224, Sizing.paddle)[0] == 63
    assert center_box(351, 300, 224, Sizing.torchvision)[0] == 64
    assert center_box(349, 300, 224, Sizing.torchvision)[0] == 62


def test_cv2_backend_resizes_with_opencv_and_normalizes_like_paddleclas() -> None:
    import cv2

    arr = np.asarray(_image(50, 37, seed=4))
    pre = Preprocess(backend=Backend.cv2, resize_short=24, crop=24, interpolation="bicubic")
    got = eval_transform(pre)(arr)
    with opencv_4_2_kernels():  # opencv-python 4.2.0.32's bicubic
        resized = cv2.resize(arr, (32, 24), interpolation=cv2.INTER_CUBIC)[:, 4:28]
    want = (resized.astype(np.float32) * np.float32(1 / 255.0) - np.float32(pre.mean)) / np.float32(pre.std)
    np.testing.assert_array_equal(got, want.transpose(2, 0, 1))
    # a PIL image of the same pixels gives the same result, and PIL's own resize does not
    np.testing.assert_array_equal(eval_transform(pre)(Image.fromarray(arr)), got)
    assert not np.allclose(eval_transform(pre.model_copy(update={"backend": Backend.pil}))(arr), got)


def test_cv2_backend_applies_exif_orientation_like_imdecode(tmp_path) -> None:
    import cv2

    from zoo.data.imagenet import load_image

    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    _image(30, 20, seed=6).save(tmp_path / "r.jpg", quality=95, exif=exif.tobytes())
    img = load_image(tmp_path / "r.jpg")
    assert img.size == (30, 20)  # PIL leaves it as stored
    pre = Preprocess(backend=Backend.cv2, mean=(0, 0, 0), std=(1, 1, 1), scale=False, layout="HWC")
    decoded = cv2.imdecode(np.fromfile(tmp_path / "r.jpg", dtype=np.uint8), 1)[:, :, ::-1]
    assert decoded.shape[:2] == (30, 20)
    np.testing.assert_array_equal(eval_transform(pre)(img), decoded.astype(np.float32))


def test_paddle_sampler_box_fits_and_respects_scale() -> None:
    import random

    rrc = RandomResizedCrop(32, scale=(0.3, 0.5), sampler=CropSampler.paddle)
    rng = random.Random(0)
    for _ in range(200):
        left, top, right, bottom = rrc.box(120, 40, rng)
        assert 0 <= left < right <= 120 and 0 <= top < bottom <= 40
        # truncated sides: never more than the largest area drawn; aspect within [3/4, 4/3] up to truncation
        assert (right - left) * (bottom - top) <= 0.5 * 4800
        assert 0.7 <= (right - left) / (bottom - top) <= 1.4


def test_train_transform_cv2_backend_returns_arrays_of_the_crop_size() -> None:
    import random

    random.seed(2)
    pre = Preprocess(backend=Backend.cv2, resize_short=40, crop=32)
    aug = Augment(random_resized_crop=32, crop_sampler=CropSampler.paddle, auto_augment=True)
    outs = [train_transform(pre, aug)(_image(61, 45, seed=s)) for s in range(10)]
    assert all(o.shape == (3, 32, 32) and o.dtype == np.float32 for o in outs)
    assert train_transform(pre, Augment(random_crop=32))(np.asarray(_image(61, 45))).shape == (3, 32, 32)


def test_auto_augment_levels_follow_paddleclas_ranges() -> None:
    from zoo.data.transforms import _op

    grey = Image.new("RGB", (20, 20), (200, 10, 90))
    # level 9 is the top of each range: solarize threshold 0 inverts everything
    np.testing.assert_array_equal(np.asarray(_op("solarize", grey, 9)), 255 - np.asarray(grey))
    # posterize level 9 keeps 4 bits
    assert np.asarray(_op("posterize", grey, 9))[0, 0].tolist() == [192, 0, 80]
    # rotation (30 degrees at level 9) fills the uncovered corners with grey 128
    assert np.asarray(_op("rotate", grey, 9))[0, 0].tolist() == [128, 128, 128]
