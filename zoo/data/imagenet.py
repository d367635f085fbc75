"""ImageNet-layout classification datasets, numpy batch iterators and dygraph loaders.

A dataset folder holds either list files (`train_list.txt`, `val_list.txt`, one
`relative/path label` per line) or class folders (`train/<class>/*.jpg`, `val/<class>/*.jpg`,
classes numbered in sorted name order). List files win when both exist.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from zoo.errors import DataError
from zoo.schema import Backend

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff", ".gif")

Sample = Tuple[Path, int]

try:  # a paddle.io.Dataset when paddle is importable, so paddle.io.DataLoader accepts it
    from paddle.io import Dataset as _Base
except ImportError:  # pragma: no cover - paddle is a dependency; keeps the parser usable without it
    _Base = object  # type: ignore[assignment,misc]


def parse_list_file(path: Path, root: Path) -> List[Sample]:
    """Read `relative/path label` lines; a malformed line raises DataError naming file:line."""
    samples: List[Sample] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read list file: {exc}") from exc
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(
                f"{path}:{lineno}: expected `relative/path label`, got {raw!r}",
                hint="Each line of a list file is an image path relative to the data folder, a space, and an integer label.",
            )
        rel, label = parts
        try:
            value = int(label)
        except ValueError:
            raise DataError(
                f"{path}:{lineno}: label {label!r} is not an integer",
                hint="Each line of a list file is an image path relative to the data folder, a space, and an integer label.",
            ) from None
        if value < 0:
            raise DataError(f"{path}:{lineno}: negative label {value}", hint="Labels are class indices 0..N-1.")
        samples.append((root / rel, value))
    return samples


def scan_class_folders(folder: Path) -> Tuple[List[Sample], List[str]]:
    """Images under `folder/<class>/`, classes numbered in sorted name order."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    samples: List[Sample] = []
    for index, name in enumerate(classes):
        for img in sorted((folder / name).rglob("*")):
            if img.is_file() and img.suffix.lower() in IMAGE_SUFFIXES:
                samples.append((img, index))
    return samples, classes


def find_samples(root: Path, split: str) -> List[Sample]:
    """The (path, label) list of a split; DataError if the folder is missing or holds no images."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder")
    list_file = root / f"{split}_list.txt"
    if list_file.is_file():
        samples = parse_list_file(list_file, root)
        if not samples:
            raise DataError(f"{list_file} lists no images")
        return samples
    folder = root / split
    if folder.is_dir():
        samples, _ = scan_class_folders(folder)
        if not samples:
            raise DataError(f"{folder} holds no images in class sub-folders ({folder}/<class>/*.jpg)")
        return samples
    raise DataError(f"{root} has neither {split}_list.txt nor a {split}/ folder")


def subsample(n: int, max_samples: Optional[int]) -> List[int]:
    """Evenly spaced indices (deterministic, covers every region of a class-sorted list)."""
    if max_samples is None or max_samples >= n:
        return list(range(n))
    if max_samples <= 0:
        raise DataError(f"--max-samples must be positive, got {max_samples}", hint="Pass a positive number of images.")
    return [int(i) for i in np.linspace(0, n - 1, max_samples).round().astype(np.int64)]


def decode_cv2(raw: bytes) -> Optional[np.ndarray]:
    """RGB uint8 HWC as PaddleClas's and PaddleDetection's DecodeImage get it, or None if OpenCV cannot decode it.

    `cv2.imdecode(data, IMREAD_COLOR)` then the channels reversed: OpenCV applies the EXIF
    orientation, scales 16-bit samples to 8 bits, converts CMYK, grey and palette images and drops
    alpha, each its own way (PIL clips 16-bit samples and converts CMYK otherwise).
    """
    import cv2

    data = np.frombuffer(raw, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else np.ascontiguousarray(image[:, :, ::-1])


def load_image(path: Path, backend: Backend = Backend.pil) -> Union[Image.Image, np.ndarray]:
    """Decode an image as the backend's readers do; DataError names the file when it cannot be read.

    `cv2`: `decode_cv2` (an RGB array). `pil`: `Image.open` in the file's own mode (P, L, RGBA,
    CMYK, I;16 ...), loaded: the transform converts it to RGB where its reader did.
    """
    try:
        if Backend(backend) is Backend.cv2:
            image = decode_cv2(Path(path).read_bytes())
            if image is None:
                raise ValueError("OpenCV cannot decode it")
            return image
        with Image.open(path) as img:
            img.load()
            return img
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist", hint="Check the list file's paths: they are relative to the data folder.") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}", hint="Remove or replace the broken image.") from None


class ImageListDataset(_Base):  # type: ignore[misc,valid-type]
    """A split of an ImageNet-layout folder: items are (float32 image array, int64 label)."""

    def __init__(self, root: Path, split: str, transform: Callable[[Image.Image], np.ndarray],
                 max_samples: Optional[int] = None) -> None:
        super().__init__()
        self.root = Path(root)
        self.split = split
        self.transform = transform
        samples = find_samples(self.root, split)
        self.split_size = len(samples)  # images in the split before --max-samples
        self.samples: List[Sample] = [samples[i] for i in subsample(len(samples), max_samples)]
        self.labels = np.asarray([label for _, label in self.samples], dtype=np.int64)

    def origin_of_label(self, label: int) -> str:
        """Where the first sample with `label` comes from: `list_file:line`, or its class folder."""
        list_file = self.root / f"{self.split}_list.txt"
        if list_file.is_file():
            for lineno, raw in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
                parts = raw.strip().rsplit(None, 1)
                if len(parts) == 2 and not raw.strip().startswith("#") and parts[1] == str(label):
                    return f"{list_file}:{lineno}"
            return str(list_file)
        for path, value in self.samples:
            if value == label:
                return f"{path.parent} (class folder number {label})"
        return str(self.root / self.split)

    @property
    def num_classes(self) -> int:
        """Number of classes seen in the labels (max label + 1)."""
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.int64]:
        path, label = self.samples[index]
        backend = getattr(self.transform, "backend", Backend.pil)  # a recipe transform decodes as its reader did
        return self.transform(load_image(path, backend)), np.int64(label)


def iterate_batches(dataset: ImageListDataset, batch_size: int, num_workers: int = 0,
                    indices: Optional[Sequence[int]] = None) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """(images (B, C, H, W) float32, labels (B,) int64) batches in order; the last may be short.

    `num_workers` > 0 decodes with that many threads (PIL releases the GIL while decoding).
    """
    if batch_size <= 0:
        raise DataError(f"batch size must be positive, got {batch_size}", hint="Pass --batch-size N with N >= 1.")
    order = list(range(len(dataset))) if indices is None else list(indices)
    pool = ThreadPoolExecutor(num_workers) if num_workers > 0 else None
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            items = list(pool.map(dataset.__getitem__, chunk)) if pool else [dataset[i] for i in chunk]
            yield np.stack([x for x, _ in items]).astype(np.float32), np.asarray([y for _, y in items], dtype=np.int64)
    finally:
        if pool:
            pool.shutdown(wait=True)


def image_batches(dataset: ImageListDataset, batch_size: int, num_workers: int = 0) -> Callable[[], Iterator[np.ndarray]]:
    """A callable returning image-only batches (the calibration input of zoo.quant.ptq)."""

    def batches() -> Iterator[np.ndarray]:
        first = 0
        for images, _ in iterate_batches(dataset, batch_size, num_workers):
            if not np.isfinite(images).all():
                raise DataError(f"calibration images {first}..{first + len(images) - 1} of {dataset.root} "
                                f"(split {dataset.split}) hold NaN or infinite values after preprocessing",
                                hint="Check the preprocessing (mean/std) and the image files.")
            first += len(images)
            yield images

    return batches


def make_loader(dataset: ImageListDataset, batch_size: int, shuffle: bool, num_workers: int = 0,
                drop_last: bool = False):  # -> paddle.io.DataLoader
    """A dygraph paddle.io.DataLoader (return_list=True) over the dataset."""
    import paddle

    return paddle.io.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                                drop_last=drop_last, return_list=True)
