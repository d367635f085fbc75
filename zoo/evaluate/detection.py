"""COCO box AP of a detection inference model, the way PaddleDetection scored its published models.

The contract is read from the model's feeds:

- `legacy` (PaddleDetection 0.x, the published YOLOv3 archives): feeds `image` and `im_size`
  (int32 (H, W) of the original image); one output of `[label, score, x1, y1, x2, y2]` rows in
  original pixels whose LoD marks each image's rows, or `[[-1]]` when the whole batch has none.
  COCO json boxes are `[x1, y1, x2 - x1 + 1, y2 - y1 + 1]` (ppdet/utils/coco_eval.py bbox2out).
- `v2` (PaddleDetection 2.x exports): feeds `image`, `im_shape` (the resized (H, W)) and
  `scale_factor` (resized / original, (y, x)); outputs `bbox` rows and `bbox_num` per image.
  COCO json boxes are `[x1, y1, x2 - x1, y2 - y1]`, rows with a negative label skipped
  (ppdet/metrics/json_results.py get_det_res).

Class i is the i-th category id in the annotation file's order (docs/detection.md §2.1); the json is scored by
pycocotools `COCOeval(..., "bbox")` over the images that were run.
"""
from __future__ import annotations

import contextlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from zoo.contracts import DETECTION_OPS, contract_of, feeds_for
from zoo.data.coco import CocoDataset
from zoo.device import DeviceLike
from zoo.errors import DataError, ModelError
from zoo.evaluate.classification import check_finite_inputs
from zoo.fsutil import atomic_write_text
from zoo.modelfiles import ModelFiles
from zoo.schema import Contract, Preprocess
from zoo.modelcheck import read_program_desc
from zoo.predictor import Predictor
from zoo.program import read_program

def program_feeds_and_ops(files: ModelFiles) -> Tuple[List[str], Set[str]]:
    """The feed names (in order) and the op types of a model's program (read as protobuf only)."""

    desc = read_program_desc(files.model_file)
    ops = {op.type for block in desc.blocks for op in block.ops}
    feeds: List[Tuple[int, str]] = []
    for op in desc.blocks[0].ops:
        if op.type == "feed":
            col = next((a.i for a in op.attrs if a.name == "col"), len(feeds))
            feeds.extend((col, name) for slot in op.outputs for name in slot.arguments)
    return [name for _, name in sorted(feeds)], ops


def is_detection_model(files: ModelFiles) -> bool:
    """Whether the program decodes or suppresses boxes (yolo_box, multiclass_nms*, matrix_nms)."""
    return bool(program_feeds_and_ops(files)[1] & DETECTION_OPS)


def model_contract(files: ModelFiles) -> Contract:
    """The inference contract of a model folder, read from its feeds."""
    return contract_of(program_feeds_and_ops(files)[0], files.model_file)


def detection_batches(dataset: CocoDataset, transform: Callable[[np.ndarray], np.ndarray], batch_size: int,
                      num_workers: int = 0) -> Iterator[Tuple[List[int], np.ndarray]]:
    """(record indices, images) batches: each image decoded, checked against its annotation and transformed."""

    def one(i: int) -> np.ndarray:
        return transform(dataset.load_image(i))

    order = list(range(len(dataset)))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if num_workers <= 0:
        for chunk in chunks:
            yield chunk, np.stack([one(i) for i in chunk])
        return
    with ThreadPoolExecutor(num_workers) as pool:  # OpenCV releases the GIL while decoding and resizing
        pending = [pool.map(one, chunks[0])] if chunks else []
        for n, chunk in enumerate(chunks):
            if n + 1 < len(chunks):
                pending.append(pool.map(one, chunks[n + 1]))
            yield chunk, np.stack(list(pending.pop(0)))


def split_outputs(contract: Contract, outputs: Sequence[np.ndarray], lods: Sequence[Sequence[Sequence[int]]],
                  batch: int) -> List[np.ndarray]:
    """Per image of the batch, its (K, 6) rows [label, score, x1, y1, x2, y2]."""
    if contract is Contract.legacy:
        rows, lod = np.asarray(outputs[0]), (lods[0] if lods else [])
        if rows.size == 0 or rows.shape == (1, 1):  # multiclass_nms's "no box in the whole batch" sentinel
            return [np.zeros((0, 6), np.float32) for _ in range(batch)]
        rows = rows.reshape(-1, rows.shape[-1])
        if lod:
            offsets = [int(x) for x in lod[-1]]
        elif batch == 1:
            offsets = [0, len(rows)]
        else:
            raise ModelError(f"the model returned {len(rows)} boxes for {batch} images without a LoD to split them",
                             hint="Evaluate with --batch-size 1, or export the model with its multiclass_nms output.")
        if len(offsets) != batch + 1 or offsets[-1] != len(rows):
            raise ModelError(f"the model's output LoD {offsets} does not split {len(rows)} rows into {batch} images")
        parts = [rows[offsets[i]:offsets[i + 1]] for i in range(batch)]
    else:
        bbox = next((np.asarray(o) for o in outputs if np.ndim(o) == 2 and np.shape(o)[1] == 6), None)
        nums = next((np.asarray(o).reshape(-1) for o in outputs if np.ndim(o) == 1), None)
        if bbox is None or nums is None:
            raise ModelError(f"the model's outputs {[np.shape(o) for o in outputs]} are not bbox (N, 6) + bbox_num (B,)")
        if len(nums) != batch or int(nums.sum()) != len(bbox):
            raise ModelError(f"bbox_num {nums.tolist()} does not split {len(bbox)} rows into {batch} images")
        ends = np.cumsum(nums)
        parts = [bbox[int(e - n):int(e)] for e, n in zip(ends, nums)]
    for part in parts:
        if part.shape[-1] != 6:
            raise ModelError(f"detection rows have {part.shape[-1]} values, expected 6 [label, score, x1, y1, x2, y2]")
    return parts


def coco_detections(rows: np.ndarray, image_id: int, clsid2catid: Dict[int, int], contract: Contract) -> List[Dict[str, Any]]:
    """One image's rows as COCO result entries, in the box convention of the contract's code."""
    plus_one = 1.0 if contract is Contract.legacy else 0.0
    out = []
    for label, score, x1, y1, x2, y2 in np.asarray(rows, dtype=np.float64).tolist():
        cls = int(label)
        if cls < 0:  # 2.x pads with label -1; 0.x never emits one (its empty sentinel is handled before)
            continue
        if cls not in clsid2catid:
            raise ModelError(f"the model predicts class {cls}, the annotation has {len(clsid2catid)} categories "
                             f"(0..{len(clsid2catid) - 1})",
                             hint="Evaluate on the data the model was trained for (its number of classes).")
        out.append({"image_id": int(image_id), "category_id": clsid2catid[cls],
                    "bbox": [x1, y1, x2 - x1 + plus_one, y2 - y1 + plus_one], "score": score})
    return out


def coco_box_ap(gt: Any, detections: List[Dict[str, Any]], image_ids: Sequence[int]) -> Tuple[float, float]:
    """(AP@[.5:.95], AP50) in percent of `detections` against `gt` over `image_ids` (pycocotools bbox)."""
    from pycocotools.cocoeval import COCOeval

    ids = [int(i) for i in image_ids]
    annotated = set(gt.getAnnIds(imgIds=ids, iscrowd=False))
    if not annotated:
        raise DataError("the scored images hold no ground-truth boxes: box AP is undefined",
                        hint="Score more images (--max-samples), or check the annotation file.")
    if not detections:
        return 0.0, 0.0  # loadRes refuses an empty list; no detection scores 0 on every threshold
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and the summary
        dt = gt.loadRes(detections)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.imgIds = ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return round(100.0 * float(evaluator.stats[0]), 4), round(100.0 * float(evaluator.stats[1]), 4)


def evaluate_detection(files: ModelFiles, dataset: CocoDataset, size: int, preprocess: Preprocess, batch_size: int = 1,
                       threads: int = 2, device: DeviceLike = "cpu",
                       progress: Optional[Callable[[int], None]] = None, num_workers: int = 0,
                       json_out: Optional[Path] = None, runtime: str = "paddle") -> Dict[str, Any]:
    """Box AP of a detection model on `dataset` at input side `size`.

    Returns {"box_ap": %, "ap50": %, "images": n, "detections": n, "contract": "legacy"|"v2", "input_size": size}.
    The model is run through Paddle Inference, which does not check feed shapes, so a model declared at
    608 runs at 416 or 320 unchanged. `progress(n)` is called after each batch with its image count;
    `json_out` keeps the COCO result json that was scored. `runtime` other than "paddle" scores the model on
    that runtime (zoo.runtime), the boxes split per image by the LoD it returns.
    """
    if batch_size <= 0:
        raise DataError(f"the batch size must be positive, got {batch_size}")
    names = [spec.name for spec in read_program(files).inputs]  # feed order
    if runtime == "paddle":
        predictor = Predictor(files, device=device, threads=threads)
        return _score_detections(predictor, contract_of(names, files.model_file), names, dataset, size,
                                 preprocess, batch_size, progress, num_workers, json_out)
    import tempfile

    from zoo.runtime import open_runtime

    contract = contract_of(names, files.model_file)
    with tempfile.TemporaryDirectory(prefix="zoo-runtime-") as tmp:
        runner = open_runtime(runtime, files, Path(tmp), threads=threads, device=device)
        try:
            return _score_detections(runner, contract, names, dataset, size, preprocess, batch_size, progress, num_workers,
                                     json_out)
        finally:
            runner.close()


def _score_detections(predictor: Any, contract: Contract, names: List[str], dataset: CocoDataset, size: int,
                      preprocess: Preprocess,
                      batch_size: int, progress: Optional[Callable[[int], None]], num_workers: int,
                      json_out: Optional[Path]) -> Dict[str, Any]:
    """Box AP of the detections `predictor` (run(), output_lods()) makes on `dataset`."""
    from zoo.data.transforms import eval_transform

    transform = eval_transform(preprocess, size)
    detections: List[Dict[str, Any]] = []
    done = 0
    for indices, images in detection_batches(dataset, transform, batch_size, num_workers):
        images = np.ascontiguousarray(images, dtype=np.float32)
        check_finite_inputs(images, done)
        records = [dataset.records[i] for i in indices]
        feeds = feeds_for(contract, images, [(r["height"], r["width"]) for r in records])
        outputs = predictor.run([feeds[name] for name in names])  # in feed order: every runtime takes a list
        parts = split_outputs(contract, outputs, predictor.output_lods(), len(records))
        for record, rows in zip(records, parts):
            if not np.isfinite(rows).all():
                raise ModelError(f"the model's boxes for {record['file']} hold NaN or infinite values; it was not scored",
                                 hint="A quantized model with broken scales does this: check its calibration and export.")
            detections.extend(coco_detections(rows, record["id"], dataset.clsid2catid, contract))
        done += len(records)
        if progress is not None:
            progress(len(records))
    if json_out is not None:
        atomic_write_text(Path(json_out), json.dumps(detections))
    box_ap, ap50 = coco_box_ap(dataset.coco(), detections, dataset.image_ids)
    return {"box_ap": box_ap, "ap50": ap50, "images": done, "detections": len(detections),
            "contract": contract.value, "input_size": int(size)}


# --- agreement of two runs of one detection model (an export against its source) --------------------

MATCH_TOP = 20  # the highest-scoring boxes of each image that must be found again
MATCH_IOU = 0.95


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), boxes [x1, y1, x2, y2] in pixels (no +1)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    # boxes clipped to a line have no area: two of them coincide or do not overlap at all
    same = np.all(np.abs(a[:, None, :] - b[None, :, :]) <= 1e-6, axis=2)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), same * 1.0)


def match_detections(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], top: int = MATCH_TOP,
                     iou: float = MATCH_IOU, score_tol: float = 1e-3) -> Dict[str, Any]:
    """Whether `candidate` finds the boxes `reference` finds, per image (rows [label, score, x1, y1, x2, y2]).

    NMS output order is an implementation detail (grouped by label, ties in any order), so boxes are matched,
    not compared position by position: each of the `top` highest-scoring reference boxes of an image needs a
    candidate box of the same label with IoU >= `iou` and a score within `score_tol` (each candidate used once).
    """
    if len(reference) != len(candidate):
        return {"passed": False, "detail": f"{len(candidate)} images of detections, the source gives {len(reference)}"}
    wanted = matched = 0
    worst_iou, worst_score = 1.0, 0.0
    for ref, cand in zip(reference, candidate):
        ref = np.asarray(ref, np.float64).reshape(-1, 6)
        cand = np.asarray(cand, np.float64).reshape(-1, 6)
        ref = ref[np.argsort(-ref[:, 1], kind="stable")][:top]
        free = np.ones(len(cand), bool)
        overlaps = box_iou(ref[:, 2:], cand[:, 2:]) if len(ref) and len(cand) else np.zeros((len(ref), 0))
        for i, row in enumerate(ref):
            wanted += 1
            ok = free & (cand[:, 0] == row[0]) & (np.abs(cand[:, 1] - row[1]) <= score_tol) if len(cand) else free
            best = int(np.argmax(np.where(ok, overlaps[i], -1.0))) if ok.any() else -1
            if best >= 0:
                worst_iou = min(worst_iou, float(overlaps[i, best]))
                worst_score = max(worst_score, float(abs(cand[best, 1] - row[1])))
            if best >= 0 and overlaps[i, best] >= iou:
                matched += 1
                free[best] = False
    counts = ([int(np.asarray(r).reshape(-1, 6).shape[0]) for r in reference],
              [int(np.asarray(c).reshape(-1, 6).shape[0]) for c in candidate])
    return {"passed": matched == wanted, "top_boxes": wanted, "matched": matched, "min_iou": round(worst_iou, 6),
            "max_score_diff": round(worst_score, 6), "iou_threshold": iou, "score_tolerance": score_tol,
            "boxes_per_image": {"source": counts[0], "artifact": counts[1]},
            "detail": f"{matched} of the {wanted} top boxes found again (same label, IoU >= {iou:g}, "
                      f"score within {score_tol:g})"}


def generated_feeds(contract: Contract, side: int, batch: int = 2, seed: int = 0) -> Dict[str, np.ndarray]:
    """Valid inputs for a detection model when no image is at hand: noise images at `side` and original sizes of
    several shapes (integer im_size; positive scale_factor)."""
    rng = np.random.RandomState(seed)
    images = rng.standard_normal((batch, 3, side, side)).astype(np.float32)
    shapes = [(side, side), (max(1, side * 3 // 4), side * 5 // 4), (side * 3 // 2, max(1, side * 2 // 3))]
    return feeds_for(contract, images, [shapes[i % len(shapes)] for i in range(batch)])


def real_feeds(dataset: CocoDataset, contract: Contract, preprocess: Preprocess, side: int,
               count: int) -> Dict[str, np.ndarray]:
    """The first `count` images of `dataset` fed as `contract` says, at `side` with `preprocess`."""
    from zoo.data.transforms import eval_transform

    transform = eval_transform(preprocess, side)
    indices = list(range(min(count, len(dataset))))
    images = np.stack([transform(dataset.load_image(i)) for i in indices]).astype(np.float32)
    records = [dataset.records[i] for i in indices]
    return feeds_for(contract, np.ascontiguousarray(images), [(r["height"], r["width"]) for r in records])
