"""Detection: COCO-layout data, a square cv2 resize, COCO box AP per input size (docs/detection.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from zoo.errors import DataError, ModelError, UsageError
from zoo.data.transforms import DETECTION_PREPROCESS
from zoo.modelfiles import ModelFiles
from zoo.program import declared_side, int_attrs
from zoo.protocol import FAIL, PARTIAL, PASS, calib_images_wanted, calib_split
from zoo.quant.base import TRAINING
from zoo.schema import Contract, DatasetKind, Preprocess, Recipe, Role
from zoo.tasks import register_task
from zoo.tasks.base import ModelTask, ScoreOptions
from zoo.program import read_program
from zoo.quiet import silenced
from zoo.data.digits_det import materialize

# PaddleDetection 0.x YOLOv3 evaluation reader (configs/yolov3_reader.yml): the default of a model folder


@register_task("detection")
class DetectionTask(ModelTask):
    """COCO box AP (IoU .50:.95) and AP50 of a model fed as its contract says, scored by pycocotools."""

    metrics = ("box_ap",)
    labels = {"box_ap": "box AP", "ap50": "AP50"}

    def recognizes(self, files: ModelFiles) -> bool:
        from zoo.evaluate.detection import is_detection_model

        return is_detection_model(files)

    def check_entry_model(self, recipe: Recipe, files: ModelFiles) -> None:
        from zoo.evaluate.detection import model_contract

        declared = recipe.detection.contract if recipe.detection is not None else None
        found = model_contract(files)
        if declared is not None and found is not declared:
            raise ModelError(f"{files.model_file} is a {found.value} detection model; {recipe.name}'s recipe declares "
                             f"the {declared.value} contract",
                             hint="The archive is not the one the recipe describes: check the artifact and its URL.")

    def export_network(self, recipe: Recipe, weights: Path, out_dir: Path) -> ModelFiles:
        from zoo.models.yolov3 import load_legacy_weights

        size = recipe.headline().input_size
        with silenced():
            network = self.build_network(recipe)
            load_legacy_weights(network, weights)
        return self.save_network(recipe, network, out_dir, (3, size, size))  # the export contains its own noise

    def network_kwargs(self, recipe: Recipe) -> Dict[str, Any]:
        det = recipe.detection
        assert det is not None  # the schema gives every detection entry its section
        kwargs = super().network_kwargs(recipe)
        kwargs.setdefault("anchors", [list(a) for a in det.anchors])
        kwargs.setdefault("anchor_masks", [list(m) for m in det.anchor_masks])
        return kwargs

    def start_weights(self, recipe: Recipe) -> Role:
        # a quant-aware detector starts from the trained FP32 detector; `pretrained` is its backbone's ImageNet start
        return Role.fp32

    def save_network(self, recipe: Recipe, network: Any, out_dir: Path, input_shape: Tuple[int, int, int]) -> ModelFiles:
        return self._export_legacy(recipe, network, out_dir, int(input_shape[-1]))

    def _export_legacy(self, recipe: Recipe, network: Any, out_dir: Path, size: int,
                       saver: Optional[Callable[..., None]] = None) -> ModelFiles:
        from zoo.models.yolov3 import LegacyNMS, export_legacy

        det = recipe.detection
        assert det is not None
        network.eval()
        return export_legacy(network, Path(out_dir), size, conf_thresh=det.conf_threshold,
                             nms=LegacyNMS(**det.nms.model_dump()), saver=saver)

    def resolve_data(self, recipe: Recipe, data: Optional[Path]) -> Path:
        if data is not None:
            return Path(data).expanduser()
        if recipe.dataset.kind is DatasetKind.digits:
            return materialize()
        raise DataError(f"{recipe.name} needs its {recipe.dataset.kind.value} data ({recipe.dataset.split} split)",
                        hint=f"Pass --data DIR: a COCO folder (annotations/instances_{recipe.dataset.split}.json + "
                             f"{recipe.dataset.split}/).")

    def folder_preprocess(self) -> Preprocess:
        return DETECTION_PREPROCESS

    def preprocess(self, base: Preprocess, overrides: Mapping[str, Any]) -> Preprocess:
        for flag, key in (("--resize-short", "resize_short"), ("--crop", "crop")):
            if overrides.get(key) is not None:
                raise UsageError(f"{flag} does not apply to detection: images are resized to the square input size",
                                 hint="Use --sizes (entries) or --size (folders).")
        return super().preprocess(base, overrides)

    @property
    def folder_split(self) -> str:
        return "val2017"

    def entry_sizes(self, recipe: Recipe, asked: Optional[Sequence[int]]) -> List[int]:
        return list(dict.fromkeys(asked)) if asked else [row.input_size for row in recipe.published]

    def folder_inputs(self, files: ModelFiles, base: Preprocess, asked: Optional[Sequence[Any]],
                      overrides: Mapping[str, Any]) -> Tuple[Preprocess, List[Optional[Any]]]:
        return self.preprocess(base, overrides), self._folder_sides(files, asked)

    def _folder_sides(self, files: ModelFiles, asked: Optional[Sequence[Any]]) -> List[Optional[int]]:
        if any(isinstance(a, tuple) and a[0] != a[1] for a in asked or ()):
            raise UsageError("a detector is scored on square inputs", hint="Pass one side, e.g. --size 608.")
        asked = [a[0] if isinstance(a, tuple) else a for a in asked or ()]
        if asked:
            return list(dict.fromkeys(asked))

        side = declared_side(files)
        if side is None:
            raise UsageError(f"{files.model_file} declares no fixed input size", hint="Pass --size N (e.g. --size 608).")
        return [side]

    def eval_dataset(self, root: Path, split: str, pre: Preprocess, size: Optional[int],
                     max_samples: Optional[int]) -> Any:
        from zoo.data.coco import CocoDataset

        return CocoDataset(root, split, max_samples)

    def check_inputs(self, files: ModelFiles, dataset: Any, sizes: Sequence[Optional[int]]) -> None:
        _check_class_count(files, dataset)
        strides = int_attrs(files, "yolo_box", "downsample_ratio")
        stride = max(strides) if strides else None
        bad = [s for s in sizes if s is not None and stride and s % stride]
        if bad:
            near = max(stride, round(bad[0] / stride) * stride)
            raise UsageError(f"input side(s) {bad}: this detector's coarsest grid has stride {stride}, so a side must be "
                             f"a multiple of {stride} (its boxes are decoded on whole grid cells)",
                             hint=f"The nearest side to {bad[0]} is {near}.")

    def score(self, files: ModelFiles, dataset: Any, pre: Preprocess, size: Optional[int],
              opts: ScoreOptions) -> Dict[str, Any]:
        from zoo.data.transforms import effective_preprocess
        from zoo.evaluate.detection import evaluate_detection

        side = int(size or pre.resize or DETECTION_PREPROCESS.resize)  # type: ignore[arg-type]
        metrics = evaluate_detection(files, dataset, side, pre, batch_size=opts.batch_size, threads=opts.threads,
                                     device=opts.device, progress=opts.progress, num_workers=opts.num_workers,
                                     runtime=opts.runtime)
        metrics["preprocess"] = effective_preprocess(pre, side).model_dump(mode="json")
        if getattr(dataset, "dropped_boxes", 0):
            metrics["dropped_boxes"] = dataset.dropped_boxes
        return metrics

    def summarize(self, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "box_ap": {str(r["input_size"]): r["box_ap"] for r in rows},
            "ap50": {str(r["input_size"]): r["ap50"] for r in rows},
            "images": rows[0]["images"],
            "contract": rows[0]["contract"],
            "input_size": [r["input_size"] for r in rows],
            "preprocess": rows[0]["preprocess"],
            "sizes": rows,
        }
        if rows[0].get("dropped_boxes"):
            out["dropped_boxes"] = rows[0]["dropped_boxes"]
        compared = [r["comparison"] for r in rows if "comparison" in r]
        if compared:
            statuses = {c["status"] for c in compared}
            status = PARTIAL if PARTIAL in statuses else FAIL if FAIL in statuses else PASS
            metrics = {f"box_ap@{r['input_size']}": r["comparison"]["metrics"]["box_ap"]
                       for r in rows if "box_ap" in r.get("comparison", {}).get("metrics", {})}
            out["comparison"] = {"tolerance": compared[0]["tolerance"], "metrics": metrics, "status": status,
                                 "deviations": compared[0]["deviations"]}
        return out

    def rows(self, result: Mapping[str, Any]) -> List[Mapping[str, Any]]:
        return list(result["sizes"])

    def metric_line(self, row: Mapping[str, Any]) -> str:
        return f"  {row['input_size']:>4}      box AP {row['box_ap']:.2f} %    AP50 {row['ap50']:.2f} %"

    def require_reproducible(self, recipe: Recipe) -> None:
        augment = recipe.train.augment if recipe.train else None
        if augment is not None and (augment.random_resized_crop or augment.random_crop or augment.auto_augment):
            raise UsageError(f"{recipe.name}: detection training supports the square resize and a horizontal flip; "
                             "its recipe asks for crops or AutoAugment",
                             hint="Remove them from the recipe's train.augment (boxes would not follow them).")

    def reproduce_datasets(self, recipe: Recipe, root: Path, max_samples: Optional[int],
                           calib_on_eval: bool, data: str) -> Dict[str, Any]:
        from zoo.data.coco import CocoDataset, annotation_path

        self.require_reproducible(recipe)
        out: Dict[str, Any] = {"eval": CocoDataset(root, recipe.dataset.split, max_samples)}
        split = calib_split(recipe)  # the training split that pairs with the evaluation split
        has_split = annotation_path(root, split).is_file()
        if data == TRAINING:
            if not has_split:
                raise DataError(f"{root} has no {split} split; quant-aware training trains on it "
                                f"({annotation_path(root, split)} does not exist)",
                                hint=f"Add annotations/instances_{split}.json and {split}/ to the data folder.")
            out["train"] = self.training_set(recipe, CocoDataset(root, split, max_samples))
            return out
        if not has_split:
            if not calib_on_eval:
                raise DataError(
                    f"{root} has no {split} split to calibrate on (the recipe calibrates on {split}; "
                    f"{annotation_path(root, split)} does not exist)",
                    hint=f"Add annotations/instances_{split}.json and {split}/, or pass --calib-on-eval to calibrate "
                         f"on the {recipe.dataset.split} images that are also scored (the result is then PARTIAL: "
                         "it flatters the INT8 model).")
            split = recipe.dataset.split
        det = recipe.detection
        out["calib"] = CalibrationSet(CocoDataset(root, split, calib_images_wanted(recipe)), recipe.preprocess,
                                      recipe.headline().input_size,
                                      det.contract if det is not None else Contract.legacy)
        return out

    def calibration_batches(self, dataset: Any, batch_size: int) -> Callable[[], Any]:
        if not isinstance(dataset, CalibrationSet):
            raise UsageError("detection calibration takes the set `reproduce_datasets` builds (images, size, contract)")
        return dataset.batches(batch_size)

    def quant_skip(self, recipe: Recipe, files: ModelFiles) -> List[str]:
        """The recipe's skip list with `yolo_output` (0.x's name scope of the head's output convs, docs/detection.md
        §3.1) turned into the weight names of the convs whose outputs the program's yolo_box ops decode."""
        out: List[str] = []
        for name in recipe.quant.skip:
            if name != YOLO_OUTPUT_SCOPE:
                out.append(name)
                continue
            weights = output_conv_weights(files)
            if not weights:
                raise ModelError(f"{recipe.name}'s quant.skip names the {YOLO_OUTPUT_SCOPE} head, but "
                                 f"{files.model_file} has no conv feeding a yolo_box op",
                                 hint="The model is not a YOLOv3 with its output convs: check the FP32 artifact.")
            out.extend(w for w in weights if w not in out)
        return out

    def training_set(self, recipe: Recipe, coco: Any) -> Any:
        """(image, gt_box, gt_label) samples of `coco` at the recipe's size and preprocessing (flipped where it asks)."""
        from zoo.data.transforms import eval_transform
        from zoo.models.yolov3_train import DetectionTrainSet

        augment = recipe.train.augment if recipe.train else None
        return DetectionTrainSet(coco, eval_transform(recipe.preprocess, recipe.headline().input_size),
                                 flip=bool(augment and augment.horizontal_flip))

    def prepare_qat(self, recipe: Recipe, network: Any) -> None:
        # quant.skip's yolo_output (the published quant-aware configs' not_quant_pattern) keeps the head's
        # output convs in float; PaddleSlim's dygraph QAT leaves a layer with `skip_quant` alone
        if YOLO_OUTPUT_SCOPE in recipe.quant.skip:
            for conv in network.outputs:
                conv.skip_quant = True

    def training_loss(self, recipe: Recipe, network: Any) -> Callable[[Any, Sequence[Any]], Any]:
        from zoo.models.yolov3_train import yolov3_loss

        det = recipe.detection
        assert det is not None  # the schema gives every detection entry its section
        smooth = bool(recipe.train and recipe.train.label_smoothing > 0)

        def loss(trainee: Any, batch: Sequence[Any]) -> Any:
            images, gt_box, gt_label = batch
            return yolov3_loss(network, trainee(images), gt_box, gt_label, det.ignore_thresh, smooth)

        return loss

    def save_quantized(self, recipe: Recipe, network: Any, quanter: Any, folder: Path,
                       input_shape: Tuple[int, int, int]) -> None:
        self._export_legacy(recipe, network, folder, int(input_shape[-1]),
                            saver=lambda layer, prefix, spec: quanter.save_quantized_model(layer, prefix, input_spec=spec))


# the name scope PaddleDetection 0.x gave YOLOv3's three output convs (not_quant_pattern: yolo_output)
YOLO_OUTPUT_SCOPE = "yolo_output"


def output_conv_weights(files: ModelFiles) -> List[str]:
    """The filter names of the convs whose outputs reach a yolo_box op directly (through a bias add at most)."""

    ops = read_program(files).ops
    producer = {v: op for op in ops for v in op.output_vars()}
    found: List[str] = []
    for op in ops:
        if op.type != "yolo_box":
            continue
        node = producer.get(op.inputs.get("X", ("",))[0])
        while node is not None and node.type in ("elementwise_add", "fake_dequantize_max_abs",
                                                 "fake_channel_wise_dequantize_max_abs", "dequantize_linear"):
            node = producer.get(node.inputs.get("X", ("",))[0])
        if node is not None and node.type in ("conv2d", "depthwise_conv2d"):
            found.extend(f for f in node.inputs.get("Filter", ()) if f not in found)
    return found


class CalibrationSet:
    """Calibration images of a detection entry: fed as its contract says, at the recipe's size and preprocessing."""

    def __init__(self, dataset: Any, preprocess: Preprocess, size: int, contract: Contract) -> None:
        self.dataset = dataset
        self.preprocess = preprocess
        self.size = int(size)
        self.contract = contract

    @property
    def split(self) -> str:
        return str(self.dataset.split)

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, batch_size: int) -> Callable[[], Iterator[Dict[str, np.ndarray]]]:
        """A callable returning {feed name: array} batches (image, and im_size or im_shape + scale_factor)."""
        from zoo.data.transforms import eval_transform
        from zoo.evaluate.detection import detection_batches, feeds_for

        transform = eval_transform(self.preprocess, self.size)

        def make() -> Iterator[Dict[str, np.ndarray]]:
            for indices, images in detection_batches(self.dataset, transform, batch_size):
                records = [self.dataset.records[i] for i in indices]
                yield feeds_for(self.contract, np.ascontiguousarray(images, dtype=np.float32),
                                [(r["height"], r["width"]) for r in records])

        return make


def _check_class_count(files: ModelFiles, dataset: Any) -> None:
    """The model's class count (its yolo_box heads' class_num) must be the annotation file's category count:
    class i is scored as the i-th category of the file, so one extra or missing category shifts every
    class after it and the AP is silently wrong."""
    counts = set(int_attrs(files, "yolo_box", "class_num"))
    categories = getattr(dataset, "num_classes", None)
    if len(counts) == 1 and categories is not None and categories != next(iter(counts)):
        classes = next(iter(counts))
        raise DataError(
            f"{dataset.annotation_file} lists {categories} categories, the model predicts {classes} classes: class i is "
            "scored as the file's i-th category, so the AP would be computed against the wrong categories",
            hint=f"Use the annotation file the model was trained with ({classes} categories, in its order).")
