"""Each recipe's preprocessing against the code that produced its published numbers.

The upstream readers cannot be imported here: the paddleclas wheel on PyPI (2.6.0) ships
neither ppcls/data/preprocess/ops/operators.py nor a way to import its deploy copy
(deploy/python/preprocess.py) without the whole package and its pinned dependencies
(numpy==1.24.4, faiss-cpu, visualdl). So every reference below is a step-by-step
reimplementation of one upstream function, named in its docstring (Paddle's own transforms are
called where a reader uses them), run on the same files the zoo reads: sample images made with
numpy (odd sizes, portrait, landscape, extreme aspect, grey, transparent, EXIF-rotated) saved
as JPEG and PNG.

The zoo side is what `zoo eval` and `zoo reproduce` run: `load_image` (the datasets' decoder)
followed by the recipe's `eval_transform`.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from tests.opencv_reference import opencv_4_2_kernels
from zoo.data.imagenet import load_image
from zoo.data.transforms import RandomResizedCrop, eval_transform, train_transform
from zoo.registry import builtin_recipe_dir, get_recipe, load_registry
from zoo.schema import Augment, Backend, CropSampler, Preprocess, Sizing, Task

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# (file name, width, height, PIL mode); all but the transparent and the rotated one are plain
# ImageNet-like inputs that every reader must agree on
SAMPLES = [
    ("landscape.jpg", 500, 375, "RGB"),
    ("portrait.jpg", 333, 500, "RGB"),
    ("odd.png", 257, 191, "RGB"),
    ("square.jpg", 301, 301, "RGB"),
    ("wide.png", 1023, 255, "RGB"),
    ("half.jpg", 366, 500, "RGB"),  # 256 * 500 / 366 = 349.7: rounding and truncation disagree
    ("grey.jpg", 287, 229, "L"),
]
TRANSPARENT = ("alpha.png", 241, 263, "RGBA")
ROTATED = "rotated.jpg"  # EXIF orientation 6 (rotate 90 degrees clockwise to display)


def _pixels(w: int, h: int, channels: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise, so interpolation and offset differences show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = [255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), (3 * (x + y)) % 256, 128 + 100 * np.sin(x / 7)]
    img = np.stack(base[:channels], axis=-1) + rng.normal(0, 25, (h, w, channels))
    return np.clip(img, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    folder = tmp_path_factory.mktemp("fidelity-images")
    out: Dict[str, Path] = {}
    for seed, (name, w, h, mode) in enumerate(SAMPLES + [TRANSPARENT]):
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        arr = _pixels(w, h, channels, seed)
        img = Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode)
        path = folder / name
        img.save(path, quality=90) if name.endswith(".jpg") else img.save(path)
        out[name] = path
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_pixels(190, 270, 3, 99)).save(folder / ROTATED, quality=90, exif=exif.tobytes())
    out[ROTATED] = folder / ROTATED
    return out


def _zoo_eval(pre: Preprocess, path: Path, input_size: int | None = None) -> np.ndarray:
    return eval_transform(pre, input_size)(load_image(path, pre.backend))


# --- real photos ---------------------------------------------------------------------------------
# scikit-learn's two sample photos (640x427 JPEGs), cut to sizes whose resized long side minus 224
# is 3 mod 4 (where flooring and Pillow's rounding of (w - 224) / 2 disagree), and re-encoded as the
# file kinds whose decoders differ: 16-bit PNG, CMYK JPEG, palette PNG.

def _photo_cut(photo: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.ascontiguousarray(photo[:h, :w])


def _hits_rounding(w: int, h: int) -> bool:
    percent = 256.0 / min(w, h)
    resized = (int(round(w * percent)), int(round(h * percent)))
    return any((side - 224) % 4 == 3 for side in resized)


PHOTO_CUTS = [("china", 632, 427), ("flower", 300, 425), ("china", 640, 427), ("flower", 427, 427)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("fidelity-photos")
    sample = load_sample_images()
    by_name = {Path(f).stem: img for f, img in zip(sample.filenames, sample.images)}
    out: Dict[str, Path] = {}
    for stem, w, h in PHOTO_CUTS:
        rgb = _photo_cut(by_name[stem], w, h)
        base = f"{stem}_{w}x{h}"
        out[f"{base}.jpg"] = folder / f"{base}.jpg"
        Image.fromarray(rgb).save(out[f"{base}.jpg"], quality=92)
        out[f"{base}_16bit.png"] = folder / f"{base}_16bit.png"
        deep = rgb.astype(np.uint16) * 257 + np.random.default_rng(w).integers(0, 257, rgb.shape, dtype=np.uint16)
        assert cv2.imwrite(str(out[f"{base}_16bit.png"]), deep[:, :, ::-1])  # a 16-bit RGB PNG
        out[f"{base}_grey16bit.png"] = folder / f"{base}_grey16bit.png"
        assert cv2.imwrite(str(out[f"{base}_grey16bit.png"]), deep[:, :, 1])  # a 16-bit grey PNG (PIL: I;16)
        out[f"{base}_cmyk.jpg"] = folder / f"{base}_cmyk.jpg"
        Image.fromarray(rgb).convert("CMYK").save(out[f"{base}_cmyk.jpg"], quality=92)
        out[f"{base}_palette.png"] = folder / f"{base}_palette.png"
        Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=200).save(out[f"{base}_palette.png"])
    return out


def test_photo_cuts_hit_the_crop_rounding() -> None:
    assert [_hits_rounding(w, h) for _, w, h in PHOTO_CUTS] == [True, True, False, False]


# --- references --------------------------------------------------------------------------------

def paddleclas_eval(path: Path, resize_short: int = 256, crop: int = 224) -> np.ndarray:
    """PaddleClas's ImageNet eval reader, ppcls/data/preprocess/ops/operators.py, with the ops and
    arguments of deploy/slim/auto_compression/mbv3_qat_dis.yaml (DataLoader.Eval):

    DecodeImage(to_rgb=True, channel_first=False), backend "cv2": cv2.imdecode(bytes, 1), then
    img[:, :, ::-1]; ResizeImage(resize_short=256): percent = float(256) / min(w, h), sides
    int(round(side * percent)), UnifiedResize backend "cv2" with interpolation None ->
    cv2.INTER_LINEAR; CropImage(size=224): start (img_w - 224) // 2, (img_h - 224) // 2, slicing;
    NormalizeImage(scale=1.0/255.0, order=''): (img.astype('float32') * float32(scale) - mean) /
    std with float32 mean/std shaped (1, 1, 3); the dataset then transposes HWC to CHW.
    """
    img = cv2.imdecode(np.frombuffer(path.read_bytes(), dtype="uint8"), 1)
    img = img[:, :, ::-1]
    img_h, img_w = img.shape[:2]
    percent = float(resize_short) / min(img_w, img_h)
    w, h = int(round(img_w * percent)), int(round(img_h * percent))
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    img_h, img_w = img.shape[:2]
    w_start, h_start = (img_w - crop) // 2, (img_h - crop) // 2
    img = img[h_start:h_start + crop, w_start:w_start + crop, :]
    scale = np.float32(eval("1.0/255.0"))
    mean = np.array(IMAGENET_MEAN).reshape((1, 1, 3)).astype("float32")
    std = np.array(IMAGENET_STD).reshape((1, 1, 3)).astype("float32")
    img = (img.astype("float32") * scale - mean) / std
    return img.transpose((2, 0, 1))


def paddleslim_eval(path: Path, resize_size: int = 256, crop_size: int = 224) -> np.ndarray:
    """PaddleSlim's demo reader, demo/imagenet_reader.py as of the dygraph quant demo's numbers
    (2020-12, release/2.0 to 2.2), process_image(mode='val'):

    Image.open(path) (no conversion yet); resize_short: percent = float(256) / min(size),
    sides int(round(side * percent)), img.resize(..., Image.LANCZOS) in the file's mode (Pillow
    resizes a palette image with NEAREST); crop_image(center=True): start (width - 224) / 2, a
    float, then img.crop with float coordinates; convert('RGB') if needed;
    np.array(img).astype('float32').transpose((2, 0, 1)) / 255, then in place `-= img_mean`,
    `/= img_std` with float64 arrays shaped (3, 1, 1).
    """
    img = Image.open(path)
    percent = float(resize_size) / min(img.size[0], img.size[1])
    resized = (int(round(img.size[0] * percent)), int(round(img.size[1] * percent)))
    img = img.resize(resized, Image.LANCZOS)
    width, height = img.size
    w_start, h_start = (width - crop_size) / 2, (height - crop_size) / 2
    img = img.crop((w_start, h_start, w_start + crop_size, h_start + crop_size))
    if img.mode != "RGB":
        img = img.convert("RGB")
    arr = np.array(img).astype("float32").transpose((2, 0, 1)) / 255
    arr -= np.array(IMAGENET_MEAN).reshape((3, 1, 1))
    arr /= np.array(IMAGENET_STD).reshape((3, 1, 1))
    return arr


def paddlevision_eval(path: Path, resize_size: int = 256, crop_size: int = 224) -> np.ndarray:
    """PaddlePaddle/models tutorials/mobilenetv3_prod/Step6 (release/2.3), the PTQ tutorial's eval
    (deploy/ptq_python/eval.py): ImageFolder with pil_loader (Image.open(f).convert('RGB')), then
    presets.py ClassificationPresetEval:

    paddlevision/transforms/functional_pil.py resize(img, 256): short, long = (w, h) if w <= h
    else (h, w); unchanged if short == 256; else new_long = int(256 * long / short), BILINEAR;
    functional.py center_crop: crop_top = int(round((h - 224) / 2.)), crop_left likewise;
    then the preset's last two steps, which are Paddle's own code and run as such here:
    paddle.vision.transforms.Transpose((2, 0, 1)) and paddle.vision.transforms.Normalize with
    mean and std times 255.
    """
    import paddle.vision.transforms as T

    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    if short != resize_size:
        new_short, new_long = resize_size, int(resize_size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        img = img.resize((new_w, new_h), Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - crop_size) / 2.0)), int(round((w - crop_size) / 2.0))
    img = img.crop((left, top, left + crop_size, top + crop_size))
    arr = T.Transpose((2, 0, 1))(img)
    return T.Normalize(mean=[m * 255 for m in IMAGENET_MEAN], std=[s * 255 for s in IMAGENET_STD])(arr)


def paddledetection_eval(path: Path, target_size: int, is_scale: bool = True) -> np.ndarray:
    """PaddleDetection 0.x YOLOv3 eval reader (configs/yolov3_reader.yml, release/0.2;
    ppdet/data/transform/operators.py), as docs/detection.md §2.2 records it:

    DecodeImage(to_rgb=True): cv2.imdecode then cv2.cvtColor(BGR2RGB); ResizeImage(target_size,
    interp=2, max_size=0): cv2.resize(im, None, None, fx=target / w, fy=target / h,
    interpolation=2); NormalizeImage(is_scale, is_channel_first=False): float32, / 255.0 when
    is_scale, then `-= mean`, `/= std` with float64 arrays shaped (1, 1, 3); Permute(to_bgr=False,
    channel_first=True).
    """
    im = cv2.imdecode(np.frombuffer(path.read_bytes(), dtype="uint8"), 1)
    im = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
    h, w = im.shape[:2]
    with opencv_4_2_kernels():  # paddlepaddle 1.8.5 ran opencv-python 4.2.0.32
        im = cv2.resize(im, None, None, fx=float(target_size) / float(w), fy=float(target_size) / float(h),
                        interpolation=2)
    im = im.astype(np.float32, copy=False)
    if is_scale:
        im = im / 255.0
    im -= np.array(IMAGENET_MEAN)[np.newaxis, np.newaxis, :]
    im /= np.array(IMAGENET_STD)[np.newaxis, np.newaxis, :]
    return im.transpose((2, 0, 1))


# --- which reader produced each entry's numbers --------------------------------------------------

Reference = Callable[[Path], np.ndarray]
EXACT = 0.0
PIL_FLOAT64_STATS = 1e-6  # PaddleSlim applies mean/std in float64, the zoo in float32

CLASSIFICATION: List[Tuple[str, Reference, float]] = [
    ("mobilenetv3_act", paddleclas_eval, EXACT),
    ("mobilenetv1_qat", paddleslim_eval, PIL_FLOAT64_STATS),
    ("mobilenetv3_large_pact_qat", paddleslim_eval, PIL_FLOAT64_STATS),
    ("mobilenetv3_small_ptq", paddlevision_eval, EXACT),
]


def _plain_samples() -> List[str]:
    return [name for name, *_ in SAMPLES]


@pytest.mark.parametrize("entry,reference,atol", CLASSIFICATION, ids=[c[0] for c in CLASSIFICATION])
def test_eval_transform_matches_upstream_reader(entry: str, reference: Reference, atol: float,
                                                images: Dict[str, Path]) -> None:
    pre = get_recipe(entry).preprocess
    for name in _plain_samples():
        got, want = _zoo_eval(pre, images[name]), reference(images[name])
        assert got.shape == want.shape == (3, 224, 224), name
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"{entry} on {name}")


PHOTO_KINDS = ["", "_16bit", "_grey16bit", "_cmyk", "_palette"]


@pytest.mark.parametrize("entry,reference,atol", CLASSIFICATION, ids=[c[0] for c in CLASSIFICATION])
def test_eval_transform_matches_upstream_reader_on_real_photos(entry: str, reference: Reference, atol: float,
                                                               photos: Dict[str, Path]) -> None:
    """Every file kind of the real photos: 8-bit, 16-bit RGB and grey PNG, CMYK JPEG, palette PNG, at sizes that hit the rounding."""
    pre = get_recipe(entry).preprocess
    worst = 0.0
    for name, path in sorted(photos.items()):
        got, want = _zoo_eval(pre, path), reference(path)
        assert got.shape == want.shape == (3, 224, 224), name
        worst = max(worst, float(np.abs(got - want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"{entry} on {name}")
    assert len(photos) == len(PHOTO_CUTS) * len(PHOTO_KINDS)


def test_the_photo_kinds_really_decode_differently(photos: Dict[str, Path]) -> None:
    """The comparisons above can fail: PIL and OpenCV disagree on 16-bit and CMYK files, and the
    rounded float offset is one pixel off the floored one on the cuts that hit the rounding."""
    act = get_recipe("mobilenetv3_act").preprocess
    for kind in ("_grey16bit.png", "_cmyk.jpg"):
        path = photos[f"china_632x427{kind}"]
        via_pil = eval_transform(act)(Image.open(path))  # the PIL decode the cv2 path used to take
        assert np.abs(via_pil - paddleclas_eval(path)).max() > 0.01, kind
    slim = get_recipe("mobilenetv1_qat").preprocess
    floored = slim.model_copy(update={"sizing": Sizing.paddle})
    for name in ("china_632x427.jpg", "flower_300x425.jpg"):
        assert np.abs(_zoo_eval(floored, photos[name]) - paddleslim_eval(photos[name])).max() > 0.05, name
    palette = photos["china_632x427_palette.png"]
    converted_first = eval_transform(slim)(Image.open(palette).convert("RGB"))
    assert np.abs(converted_first - paddleslim_eval(palette)).max() > 0.05  # P mode resizes with NEAREST


def test_cv2_path_follows_imdecode_on_rotated_and_transparent_images(images: Dict[str, Path]) -> None:
    """cv2.imdecode applies EXIF orientation and drops alpha; the zoo's cv2 path does the same."""
    pre = get_recipe("mobilenetv3_act").preprocess
    for name in (ROTATED, TRANSPARENT[0]):
        np.testing.assert_array_equal(_zoo_eval(pre, images[name]), paddleclas_eval(images[name]), err_msg=name)


def test_pil_path_keeps_pil_orientation(images: Dict[str, Path]) -> None:
    """PaddleSlim's reader (PIL) does not rotate by EXIF; neither does the zoo's pil path."""
    pre = get_recipe("mobilenetv1_qat").preprocess
    np.testing.assert_allclose(_zoo_eval(pre, images[ROTATED]), paddleslim_eval(images[ROTATED]),
                               rtol=0, atol=PIL_FLOAT64_STATS)


def test_backends_really_differ(images: Dict[str, Path]) -> None:
    """The comparisons above can fail: the other backend's reader gives other pixels."""
    path = images["landscape.jpg"]
    act = get_recipe("mobilenetv3_act").preprocess
    assert np.abs(_zoo_eval(act, path) - paddleslim_eval(path)).max() > 0.05
    as_pil = act.model_copy(update={"backend": Backend.pil})
    assert np.abs(_zoo_eval(as_pil, path) - paddleclas_eval(path)).max() > 0.01
    small = get_recipe("mobilenetv3_small_ptq").preprocess
    as_paddle = small.model_copy(update={"sizing": Sizing.paddle})
    half = images["half.jpg"]  # 349.7 wide after resize: 350 rounded, 349 truncated
    assert np.abs(_zoo_eval(as_paddle, half) - paddlevision_eval(half)).max() > 0.01


@pytest.mark.parametrize("entry", ["yolov3_mobilenetv1_coco_quant_post", "yolov3_r50vd_dcn_obj365_coco_quant_aware"])
def test_detection_eval_matches_paddledetection_reader(entry: str, images: Dict[str, Path]) -> None:
    pre = get_recipe(entry).preprocess
    for name in ("landscape.jpg", "portrait.jpg", "odd.png"):
        got = _zoo_eval(pre, images[name], input_size=320)
        want = paddledetection_eval(images[name], 320, is_scale=pre.scale)
        assert got.shape == want.shape == (3, 320, 320)
        # float64 statistics upstream; unscaled inputs reach ~1100, hence the relative bound
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=f"{entry} on {name}")


# --- training crops ------------------------------------------------------------------------------

def paddleclas_rand_crop(img: np.ndarray, size: int, rng: random.Random) -> np.ndarray:
    """ppcls/data/preprocess/ops/operators.py RandCropImage(size=224) as mbv3_qat_dis.yaml uses it
    (DataLoader.Train): scale [0.08, 1.0], ratio [3/4, 4/3], aspect_ratio = sqrt(uniform(*ratio)),
    w = aspect, h = 1 / aspect; bound = min((img_w / img_h) / w**2, (img_h / img_w) / h**2);
    target_area = img_w * img_h * uniform(min(0.08, bound), min(1.0, bound)); sides
    int(sqrt(target_area) * w), int(sqrt(target_area) * h); i = randint(0, img_w - w),
    j = randint(0, img_h - h); img[j:j + h, i:i + w]; cv2.resize to (224, 224), INTER_LINEAR.
    """
    aspect_ratio = np.sqrt(rng.uniform(3.0 / 4.0, 4.0 / 3.0))
    w, h = 1.0 * aspect_ratio, 1.0 / aspect_ratio
    img_h, img_w = img.shape[:2]
    bound = min((float(img_w) / img_h) / (w ** 2), (float(img_h) / img_w) / (h ** 2))
    target_area = img_w * img_h * rng.uniform(min(0.08, bound), min(1.0, bound))
    target_size = np.sqrt(target_area)
    w, h = int(target_size * w), int(target_size * h)
    i, j = rng.randint(0, img_w - w), rng.randint(0, img_h - h)
    return cv2.resize(img[j:j + h, i:i + w, :], (size, size), interpolation=cv2.INTER_LINEAR)


def paddleslim_random_crop(img: Image.Image, size: int, rng: random.Random) -> Image.Image:
    """demo/imagenet_reader.py random_crop(img, 224) (release/2.6), the QAT demos' train crop, with
    python's `random` standing in for np.random so the draws can be replayed: same aspect, bound,
    area and truncation as RandCropImage; img.crop((i, j, i + w, j + h)), then resize to
    (224, 224) with Image.LANCZOS.
    """
    aspect_ratio = np.sqrt(rng.uniform(3.0 / 4.0, 4.0 / 3.0))
    w, h = 1.0 * aspect_ratio, 1.0 / aspect_ratio
    bound = min((float(img.size[0]) / img.size[1]) / (w ** 2), (float(img.size[1]) / img.size[0]) / (h ** 2))
    target_area = img.size[0] * img.size[1] * rng.uniform(min(0.08, bound), min(1.0, bound))
    target_size = np.sqrt(target_area)
    w, h = int(target_size * w), int(target_size * h)
    i, j = rng.randint(0, img.size[0] - w), rng.randint(0, img.size[1] - h)
    return img.crop((i, j, i + w, j + h)).resize((size, size), Image.LANCZOS)


def test_act_train_crop_matches_randcropimage(images: Dict[str, Path]) -> None:
    augment = get_recipe("mobilenetv3_act").train.augment  # type: ignore[union-attr]
    assert augment.random_resized_crop == 224 and augment.crop_sampler is CropSampler.paddle
    crop = RandomResizedCrop(224, tuple(augment.crop_scale), interp="bilinear", sampler=augment.crop_sampler)
    for seed, name in enumerate(_plain_samples()):
        arr = cv2.imdecode(np.frombuffer(images[name].read_bytes(), dtype="uint8"), 1)[:, :, ::-1]
        random.seed(seed)
        got = crop(np.ascontiguousarray(arr))
        want = paddleclas_rand_crop(np.ascontiguousarray(arr), 224, random.Random(seed))
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("entry", ["mobilenetv1_qat", "mobilenetv3_large_pact_qat"])
def test_qat_demo_train_crop_matches_paddleslim_reader(entry: str, images: Dict[str, Path]) -> None:
    recipe = get_recipe(entry)
    augment = recipe.train.augment  # type: ignore[union-attr]
    crop = RandomResizedCrop(224, tuple(augment.crop_scale), interp=recipe.preprocess.interpolation,
                             sampler=augment.crop_sampler)
    for seed, name in enumerate(_plain_samples()):
        img = load_image(images[name], recipe.preprocess.backend)
        random.seed(seed)
        got = np.asarray(crop(img))
        want = np.asarray(paddleslim_random_crop(img, 224, random.Random(seed)))
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_act_train_transform_is_cv2_crop_flip_autoaugment(images: Dict[str, Path]) -> None:
    """mbv3_qat_dis.yaml trains on RandCropImage -> RandFlipImage -> AutoAugment -> NormalizeImage."""
    recipe = get_recipe("mobilenetv3_act")
    augment = recipe.train.augment  # type: ignore[union-attr]
    assert (augment.random_crop, augment.horizontal_flip, augment.auto_augment) == (None, True, True)
    transform = train_transform(recipe.preprocess, augment)
    assert [type(s).__name__ for s in transform.steps] == ["RandomResizedCrop", "function", "AutoAugment"]
    random.seed(3)
    out = transform(load_image(images["wide.png"], recipe.preprocess.backend))
    assert out.shape == (3, 224, 224) and out.dtype == np.float32 and np.isfinite(out).all()


# --- every recipe names its backend --------------------------------------------------------------

def test_every_recipe_names_its_backend() -> None:
    for path in sorted(builtin_recipe_dir().glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert "backend" in raw["preprocess"], f"{path.name}: preprocess.backend must be explicit (cv2 or pil)"


def test_upstream_entries_use_their_readers_backend() -> None:
    """PaddleClas and PaddleDetection readers decode and resize with OpenCV; PaddleSlim's demos,
    the paddle.vision-style tutorial and the zoo's own digits data with PIL."""
    recipes = load_registry().filter()
    assert len(recipes) >= 12
    for recipe in recipes:
        want = Backend.cv2 if recipe.task == Task.detection or recipe.name == "mobilenetv3_act" else Backend.pil
        assert recipe.preprocess.backend is want, recipe.name
