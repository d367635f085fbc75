"""Top-1 / top-5 accuracy of a Paddle inference model through the Paddle Inference predictor."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from zoo.device import DeviceLike
from zoo.errors import DataError, ModelError
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.predictor import Predictor
from zoo.runtime import open_runtime


def class_scores(scores: np.ndarray) -> np.ndarray:
    """A classifier's (batch, classes) scores (trailing 1-sized dimensions dropped); ModelError for any
    other output, which top-k would silently score as thousands of "classes"."""
    scores = np.asarray(scores)
    if scores.ndim < 2 or any(d != 1 for d in scores.shape[2:]):
        raise ModelError(f"the model's first output has shape {tuple(scores.shape)}, not (batch, classes) scores: "
                         "it is not a classifier's output (a dense map, a sequence, boxes?)",
                         hint="zoo eval scores classifiers (top-1/top-5) and detectors (box AP); score this model "
                              "with its own metric.")
    return scores.reshape(scores.shape[0], -1)


class TopK:
    """Running top-1 / top-k counts over (scores, labels) batches."""

    def __init__(self, k: int = 5) -> None:
        self.k = k
        self.images = 0
        self.correct1 = 0
        self.correctk = 0
        self.classes = 0

    def update(self, scores: np.ndarray, labels: np.ndarray) -> None:
        scores = class_scores(scores)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        if scores.shape[0] != labels.shape[0]:
            raise ModelError(f"the model returned {scores.shape[0]} rows for {labels.shape[0]} images",
                             hint="The model's first output must be (batch, classes) scores.")
        self.classes = scores.shape[1]
        k = min(self.k, scores.shape[1])
        topk = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
        top1 = scores.argmax(axis=1)
        self.correct1 += int((top1 == labels).sum())
        self.correctk += int((topk == labels[:, None]).any(axis=1).sum())
        self.images += int(labels.shape[0])

    def result(self) -> Dict[str, Optional[float]]:
        """{"top1": %, "top5": %, "images": n, "classes": c}; top-k is None for a model of k classes or fewer
        (every image would count: 100 % says nothing)."""
        if self.images == 0:
            raise DataError("no images were evaluated", hint="Check --data and --max-samples.")
        return {
            "top1": round(100.0 * self.correct1 / self.images, 4),
            "top5": round(100.0 * self.correctk / self.images, 4) if self.classes > self.k else None,
            "images": self.images,
            "classes": self.classes,
        }


def check_finite_inputs(images: np.ndarray, first: int) -> None:
    """Refuse a batch of preprocessed images holding NaN or infinity (images `first`.. of the split)."""
    if not np.isfinite(images).all():
        raise DataError(f"the preprocessed images {first}..{first + len(images) - 1} hold NaN or infinite values",
                        hint="Check the preprocessing (a zero --std divides by zero) and the image files.")


def check_labels(labels: np.ndarray, classes: int, origin: Optional[Callable[[int], str]] = None) -> None:
    """Refuse labels the model has no class for, naming where the first one comes from."""
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        where = origin(int(bad[0])) if origin is not None else "the data"
        raise DataError(f"label {int(bad[0])} ({where}) is outside the model's {classes} classes (0..{classes - 1})",
                        hint="Fix the list file, or evaluate on data labelled for this model.")


def evaluate(model: Union[ModelFiles, Path], batches: Iterable[Tuple[np.ndarray, np.ndarray]], threads: int = 2,
             device: DeviceLike = "cpu",
             progress: Optional[Callable[[int], None]] = None,
             origin: Optional[Callable[[int], str]] = None, runtime: str = "paddle") -> Dict[str, float]:
    """Score an inference model on (images, labels) batches: {"top1": %, "top5": %, "images": n}.

    The first output of the model is taken as the per-class scores (logits or softmax alike); the
    predictor runs on `device` ("cpu", "gpu", "gpu:N").
    `progress`, if given, is called with the number of images of each finished batch; `origin(label)`
    names where a label comes from (list file and line) when it is refused. Non-finite inputs or
    outputs and labels outside the model's classes raise instead of being scored. `runtime` other than
    "paddle" scores the model on that runtime (zoo.runtime: paddle-int8, onnxruntime, openvino, lite, paddle3).
    """
    if runtime != "paddle":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="zoo-runtime-") as tmp:
            files = model if isinstance(model, ModelFiles) else find_model_files(Path(model))
            runner = open_runtime(runtime, files, Path(tmp), threads=threads, device=device)
            try:
                return _score(runner.run, batches, progress, origin)
            finally:
                runner.close()

    predictor = Predictor(model, device=device, threads=threads)
    return _score(predictor.run, batches, progress, origin)


def _score(run: Callable[[List[np.ndarray]], List[np.ndarray]], batches: Iterable[Tuple[np.ndarray, np.ndarray]],
           progress: Optional[Callable[[int], None]], origin: Optional[Callable[[int], str]]) -> Dict[str, float]:
    meter = TopK(5)
    for images, labels in batches:
        images = np.ascontiguousarray(images, dtype=np.float32)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        check_finite_inputs(images, meter.images)
        scores = class_scores(run([images])[0])
        check_labels(labels, scores.shape[1], origin)
        if not np.isfinite(scores).all():
            raise ModelError(
                f"the model's outputs hold NaN or infinite values (images {meter.images}..{meter.images + len(labels) - 1}); "
                "it was not scored",
                hint="A quantized model with broken scales does this: check its calibration data and the INT8 export.",
            )
        meter.update(scores, labels)
        if progress is not None:
            progress(int(len(labels)))
    return meter.result()
