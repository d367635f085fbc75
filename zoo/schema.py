"""The typed schema of a recipe (one YAML file in recipes/ per zoo entry).

Validation happens on load; strings become enums; unknown keys are refused so that a typo in a
recipe is an error, not a silently ignored setting.
"""
from __future__ import annotations

import re
from enum import Enum
from typing import Any, Dict, List, Literal, Mapping, Optional, Tuple, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator


class Strict(BaseModel):
    """Base model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Task:
    """The built-in task names. Not an enum: a recipe may name any task registered in zoo.tasks
    (the registry loader checks the name against that registry, the one list of tasks)."""

    classification = "classification"
    detection = "detection"


NAME_PATTERN = r"^[a-z0-9][a-z0-9_]*$"


class Role(str, Enum):
    quantized = "quantized"
    fp32 = "fp32"
    pretrained = "pretrained"


class Layout(str, Enum):
    """How an artifact's files are laid out once extracted."""

    legacy_inference = "legacy-inference"  # __model__ + __params__ (or model + params)
    inference = "inference"  # *.pdmodel + *.pdiparams
    persistables = "persistables"  # static-graph persistables, one file per variable
    pdparams = "pdparams"  # a dygraph state dict (a pickle: load only when verified)

    @property
    def is_inference_model(self) -> bool:
        """A program plus its weights that Paddle Inference loads (not training weights)."""
        return self in (Layout.inference, Layout.legacy_inference)


class DatasetKind(str, Enum):
    imagenet = "imagenet"
    coco = "coco"
    digits = "digits"


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")


class Artifact(Strict):
    """One downloadable (or bundled) file with its ordered URL candidates and checksums."""

    urls: List[str] = Field(default_factory=list, description="ordered candidates, tried in turn")
    bundled: Optional[str] = Field(None, description="path inside zoo/assets for files shipped with the package")
    sha256: Optional[str] = None
    md5: Optional[str] = None
    size: Optional[int] = Field(None, gt=0)
    layout: Layout
    note: Optional[str] = None

    @field_validator("urls")
    @classmethod
    def _urls_are_http(cls, urls: List[str]) -> List[str]:
        for url in urls:
            if not re.match(r"^https?://[^/]+/.+", url):
                raise ValueError(f"not an http(s) URL with a path: {url!r}")
        return urls

    @field_validator("bundled")
    @classmethod
    def _bundled_inside_assets(cls, value: Optional[str]) -> Optional[str]:
        # a plain relative path: `..`, an absolute path or a drive would read files outside the package
        if value is not None and (not value or value.startswith(("/", "\\")) or ":" in value
                                  or any(part in ("..", "") for part in re.split(r"[/\\]", value))):
            raise ValueError(f"`bundled` must be a plain relative path inside zoo/assets, got {value!r}")
        return value

    @field_validator("sha256")
    @classmethod
    def _sha256_hex(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _SHA256.match(value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value

    @field_validator("md5")
    @classmethod
    def _md5_hex(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _MD5.match(value):
            raise ValueError("md5 must be 32 lowercase hex digits")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "Artifact":
        if bool(self.urls) == bool(self.bundled):
            raise ValueError("an artifact needs either `urls` (at least one) or `bundled`, not both")
        return self


class Source(Strict):
    """Where the published numbers come from."""

    doc: str
    url: str
    note: Optional[str] = None
    pipeline: Optional[str] = Field(None, description="the publisher's pipeline the zoo follows (framework and "
                                                      "PaddleSlim versions, calibration, reader) and what was verified against it")


class Dataset(Strict):
    kind: DatasetKind
    split: str
    num_classes: int = Field(gt=1)
    eval_images: Optional[int] = Field(None, gt=0, description="size of the published evaluation set")


class Interpolation(str, Enum):
    nearest = "nearest"
    bilinear = "bilinear"
    bicubic = "bicubic"
    lanczos = "lanczos"


class Backend(str, Enum):
    """The image library a recipe's published numbers were measured with (decode, resize, crop)."""

    cv2 = "cv2"  # PaddleClas / PaddleDetection readers: cv2.imdecode, cv2.resize
    pil = "pil"  # PaddleSlim demo readers, paddle.vision-style transforms, the zoo's own data


class Sizing(str, Enum):
    """How a reader rounds the sides of a short-side resize and the offsets of a center crop."""

    paddle = "paddle"  # PaddleClas, PaddleSlim >= 2.3 demo reader: long side round(), offsets (w - crop) // 2
    # PaddleSlim's demo/imagenet_reader.py up to release/2.2: long side round(), offsets (w - crop) / 2 that
    # Pillow's crop rounds half to even; the image keeps its decoded mode (palette: NEAREST) until after the crop
    paddleslim = "paddleslim"
    torchvision = "torchvision"  # torchvision-style: long side truncated, offsets round((w - crop) / 2)


class Preprocess(Strict):
    """Evaluation preprocessing exactly as the code that produced the published numbers has it."""

    backend: Backend = Field(Backend.pil, description="cv2 or pil; every bundled recipe names it (pil is the "
                                                      "zoo's own default, for plain model folders)")
    sizing: Sizing = Field(Sizing.paddle, description="rounding of the resized long side and the crop offsets")
    resize_short: Optional[int] = Field(None, gt=0, description="resize the short side to this, keep aspect")
    resize: Optional[int] = Field(None, gt=0, description="resize to a square of this side, aspect not kept")
    crop: Optional[int] = Field(None, gt=0, description="center crop side")
    resize_hw: Optional[Tuple[PositiveInt, PositiveInt]] = Field(
        None, description="resize to height x width, aspect not kept (models with a non-square input)")
    resize_pad: Optional[Tuple[PositiveInt, PositiveInt]] = Field(
        None, description="resize to this height keeping the aspect, the width capped at the second value, then pad "
                          "the right with zeros after normalization to that width (text classifiers and recognizers)")
    interpolation: Interpolation = Interpolation.bilinear
    scale: bool = Field(True, description="divide pixels by 255 before normalizing")
    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)

    @field_validator("mean", "std")
    @classmethod
    def _finite(cls, values: Tuple[float, float, float], info: Any) -> Tuple[float, float, float]:
        if any(v != v or v in (float("inf"), float("-inf")) for v in values):
            raise ValueError(f"{info.field_name} must be finite numbers, got {list(values)}")
        if info.field_name == "std" and any(v <= 0 for v in values):
            raise ValueError(f"std must be positive (it divides the pixels), got {list(values)}")
        return values
    channels: str = Field("RGB", pattern="^(RGB|BGR|L)$")
    layout: str = Field("CHW", pattern="^(CHW|HWC)$")

    @model_validator(mode="after")
    def _one_resize(self) -> "Preprocess":
        given = [name for name in RESIZE_FIELDS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of {', '.join(RESIZE_FIELDS)}, not {' and '.join(given)}")
        if self.crop is not None and (self.resize_hw is not None or self.resize_pad is not None):
            raise ValueError("`crop` goes with `resize_short` (or alone), not with `resize_hw` or `resize_pad`")
        return self

    def output_hw(self) -> Optional[Tuple[int, int]]:
        """The (height, width) of the arrays this preprocessing makes; None when it depends on the image."""
        if self.resize_hw is not None:
            return self.resize_hw
        if self.resize_pad is not None:
            return self.resize_pad
        side = self.crop or self.resize
        return (side, side) if side else None


# the ways of resizing a Preprocess knows, one of which it may use
RESIZE_FIELDS = ("resize_short", "resize", "resize_hw", "resize_pad")


class CropSampler(str, Enum):
    """How a random resized crop draws its box."""

    inception = "inception"  # the zoo's own: up to 10 draws, log-uniform aspect, rounded sides, resampled from the source
    paddle = "paddle"  # PaddleClas RandCropImage / PaddleSlim random_crop: one draw fitted to the image, truncated sides


class Augment(Strict):
    """Training-time augmentation of the QAT/ACT recipes."""

    random_resized_crop: Optional[int] = Field(None, gt=0)
    crop_scale: Tuple[float, float] = (0.08, 1.0)
    crop_sampler: CropSampler = CropSampler.inception
    random_crop: Optional[int] = Field(None, gt=0)
    horizontal_flip: bool = True
    auto_augment: bool = False


# The values the quantizers accept (zoo.quant and zoo.program read these lists: one source for the schema and the code)
# KL: Paddle 2.x's KL search; KL_paddle1: Paddle 1.x's (PaddleSlim 1.x quant_post), see zoo.quant.calibration.KLRule
CalibAlgo = Literal["KL", "KL_paddle1", "hist", "mse", "avg", "abs_max", "min_max"]
WeightQuantizeType = Literal["abs_max", "channel_wise_abs_max"]
# the op that holds each activation's calibrated scale in the saved model (the scale values are the same)
ActivationQuantizeType = Literal["range_abs_max", "moving_average_abs_max"]
# static-graph compute ops PaddleSlim turns into INT8 (PTQ, ACT; activation and weight both quantized)
StaticQuantOp = Literal["conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul", "matmul_v2"]
# what a recipe's quant.ops may name: those ops, or the dygraph layer types quant-aware training wraps
QuantOp = Literal[StaticQuantOp, "Conv2D", "Linear"]
QUANTIZABLE_OPS: Tuple[str, ...] = get_args(StaticQuantOp)
CALIB_ALGOS: Tuple[str, ...] = get_args(CalibAlgo)
WEIGHT_QUANTIZE_TYPES: Tuple[str, ...] = get_args(WeightQuantizeType)
ACTIVATION_QUANTIZE_TYPES: Tuple[str, ...] = get_args(ActivationQuantizeType)


class QuantConfig(Strict):
    weight: WeightQuantizeType = "channel_wise_abs_max"
    activation: ActivationQuantizeType = "moving_average_abs_max"
    bits: Tuple[int, int] = (8, 8)
    ops: List[QuantOp] = Field(default_factory=lambda: ["conv2d", "depthwise_conv2d", "mul"])
    skip: List[str] = Field(default_factory=list, description="name scopes / patterns left in FP32")
    pact: bool = False
    pact_alpha_init: Optional[float] = None
    pact_alpha_lr_mult: Optional[float] = None
    onnx_format: bool = False
    window_size: Optional[int] = None
    moving_rate: Optional[float] = None
    # post-training calibration
    algo: Optional[CalibAlgo] = None
    calib_split: Optional[str] = Field(None, description="the split PTQ calibrates on (default: the training split "
                                                         "that pairs with the evaluation split)")
    batch_size: Optional[int] = Field(None, gt=0)
    batch_nums: Optional[int] = Field(None, gt=0)
    hist_percent: Optional[float] = Field(None, gt=0, le=1)
    rounding: str = Field("round", pattern="^(round|adaround)$", description="PTQ weight rounding (adaround: PaddleSlim's)")
    bias_correction: bool = Field(False, description="PTQ: PaddleSlim's weight bias correction")
    note: Optional[str] = None

    @field_validator("bits")
    @classmethod
    def _bits(cls, bits: Tuple[int, int]) -> Tuple[int, int]:
        if any(b not in (4, 8, 16) for b in bits):
            raise ValueError("bits must be 4, 8 or 16")
        return bits


class Schedule(Strict):
    kind: str = Field("constant", pattern="^(constant|piecewise|cosine)$")
    boundaries: List[float] = Field(default_factory=list, description="epochs (or iterations) where the rate drops")
    gamma: float = 0.1
    unit: str = Field("epoch", pattern="^(epoch|iteration)$")


class Distill(Strict):
    loss: str = "soft_label"
    alpha: float = 1.0
    node: Optional[str] = Field(None, description="teacher/student node; default: the final output")


class TrainConfig(Strict):
    epochs: Optional[float] = Field(None, gt=0)
    iterations: Optional[int] = Field(None, gt=0)
    learning_rate: float = Field(gt=0)
    schedule: Schedule = Schedule()
    optimizer: str = Field("Momentum", pattern="^(Momentum|SGD|Adam)$")
    momentum: float = 0.9
    weight_decay: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    batch_size: int = Field(gt=0)
    eval_iter: Optional[int] = Field(None, gt=0)
    augment: Optional[Augment] = None
    distill: Optional[Distill] = None
    note: Optional[str] = None

    @model_validator(mode="after")
    def _length(self) -> "TrainConfig":
        if self.epochs is None and self.iterations is None:
            raise ValueError("training needs `epochs` or `iterations`")
        return self


_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FP32_PREFIX = "fp32_"


class Published(Strict):
    """One published setting: the INT8 metric(s) and the FP32 baseline, in percent.

    Besides `input_size` and `note`, every key is a metric: `NAME: value` (INT8) or `fp32_NAME: value`
    (the FP32 baseline). Which names fit is the task's to say (ModelTask.metrics, checked by the registry
    loader), so a new task needs no schema change. The first INT8 metric a row lists is its headline.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    input_size: int = Field(gt=0, description="the setting: evaluation input side")
    note: Optional[str] = None

    @model_validator(mode="after")
    def _metric_values(self) -> "Published":
        for name, value in (self.__pydantic_extra__ or {}).items():
            if not _METRIC_NAME.match(name):
                raise ValueError(f"{name!r} is not a metric name (lowercase letters, digits, _)")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise ValueError(f"metric {name!r} must be a number of percent from 0 to 100, got {value!r}")
        return self

    def metric(self, name: str) -> Optional[float]:
        """One published INT8 metric (None when this setting does not publish it)."""
        return self.metrics().get(name)

    def metrics(self) -> Dict[str, float]:
        """The published INT8 metrics of this setting (only those published), in the recipe's order."""
        return {k: float(v) for k, v in (self.__pydantic_extra__ or {}).items() if not k.startswith(FP32_PREFIX)}

    def fp32(self) -> Dict[str, float]:
        """The FP32 baseline of this setting (only those published), keyed by the metric's name."""
        return {k[len(FP32_PREFIX):]: float(v) for k, v in (self.__pydantic_extra__ or {}).items()
                if k.startswith(FP32_PREFIX)}

    @model_validator(mode="after")
    def _some_metric(self) -> "Published":
        if not self.metrics() and not self.fp32():
            raise ValueError("a published setting needs at least one metric (e.g. top1: 70.1, or fp32_box_ap: 36.2)")
        return self


class OtherFigure(Strict):
    """A figure published elsewhere for the same entry (another revision, a latency)."""

    what: str
    value: float
    unit: str = "%"
    source: Optional[str] = None


MAX_TOLERANCE = 10.0  # points; the widest published gap the zoo accepts as a reproduction


class Tolerance(Strict):
    """Absolute points allowed between measured and published."""

    # finite and at most 10 points: a tolerance of .inf (or 100) would make every result PASS
    eval: float = Field(0.1, ge=0, le=MAX_TOLERANCE, allow_inf_nan=False, description="re-scoring the published archive")
    reproduce: float = Field(0.5, ge=0, le=MAX_TOLERANCE, allow_inf_nan=False,
                             description="reproducing the quantized model from FP32")


class LiteExport(Strict):
    valid_targets: List[str] = Field(default_factory=lambda: ["arm"])

    @field_validator("valid_targets")
    @classmethod
    def _targets(cls, targets: List[str]) -> List[str]:
        bad = [t for t in targets if t not in ("arm", "x86", "opencl")]
        if bad:
            raise ValueError(f"unknown Lite target(s) {bad}; use arm, x86 or opencl")
        return targets


class ExportConfig(Strict):
    lite: LiteExport = LiteExport()


class Contract(str, Enum):
    """How a detection inference model is fed and what it returns (read from the model; a recipe declares it)."""

    legacy = "legacy"  # PaddleDetection 0.x: image + im_size (H, W); multiclass_nms rows with a per-image LoD
    v2 = "v2"  # PaddleDetection 2.x: image + im_shape + scale_factor; bbox rows + bbox_num


class NmsConfig(Strict):
    """multiclass_nms settings of the published model (PaddleDetection 0.x YOLOv3 defaults)."""

    score_threshold: float = Field(0.01, ge=0, le=1)
    nms_top_k: int = Field(1000, gt=0)
    keep_top_k: int = Field(100, gt=0)
    nms_threshold: float = Field(0.45, gt=0, le=1)
    normalized: bool = Field(False, description="False: the +1 pixel convention in IoU (0.x)")
    background_label: int = -1
    nms_eta: float = Field(1.0, gt=0, le=1)


DOWNSAMPLE_RATIOS = (32, 16, 8)  # YOLOv3's three output levels: the backbone taps the head reads, deepest first


class DetectionConfig(Strict):
    """The detection head and the conventions the published numbers were measured with."""

    contract: Contract = Field(Contract.legacy, description="the inference contract of the published archive")
    anchors: List[Tuple[int, int]] = Field(
        default_factory=lambda: [(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
                                 (373, 326)])
    anchor_masks: List[List[int]] = Field(default_factory=lambda: [[6, 7, 8], [3, 4, 5], [0, 1, 2]])
    conf_threshold: float = Field(0.01, ge=0, le=1, description="yolo_box: boxes below it are zeroed")
    clip_bbox: bool = True
    ignore_thresh: float = Field(0.7, gt=0, le=1, description="yolo_loss: predictions overlapping a box this much are not negatives")
    nms: NmsConfig = NmsConfig()

    @model_validator(mode="after")
    def _masks(self) -> "DetectionConfig":
        if len(self.anchor_masks) != len(DOWNSAMPLE_RATIOS):
            raise ValueError(f"anchor_masks need one entry per output level (strides {list(DOWNSAMPLE_RATIOS)})")
        bad = [i for mask in self.anchor_masks for i in mask if not 0 <= i < len(self.anchors)]
        if bad:
            raise ValueError(f"anchor_masks name anchors {bad} beyond the {len(self.anchors)} anchors")
        return self


# Fields recipes once carried that set nothing: the loader names each one and says where it went.
REMOVED_FIELDS: Dict[str, str] = {
    "quant.algo_alternatives": "to try other calibration algorithms, run `zoo quantize --max-drop X --algo A,B` "
                               "(it searches them); say why in quant.note",
    "train.eval_batch_size": "the evaluation batch size does not change a metric; pass `zoo eval --batch-size N`",
    "train.sync_bn": "training uses plain batch norm on every device (the published configs set sync_bn false)",
    "train.origin_metric": "the FP32 metric lives in published[].fp32_top1 (or fp32_box_ap)",
    "train.distill.temperature": "PaddleSlim's ACT soft-label distillation has no temperature (it is always 1)",
    "detection.downsample_ratios": f"YOLOv3's output strides are fixed by its three backbone taps, {list(DOWNSAMPLE_RATIOS)}",
}


def removed_fields(data: Mapping[str, Any]) -> List[str]:
    """Each removed field `data` (a recipe mapping) still sets, as 'field: where it went'."""
    found = []
    for dotted, where in REMOVED_FIELDS.items():
        node: Any = data
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            found.append(f"`{dotted}` was removed: {where}")
    return found


class Recipe(Strict):
    """One zoo entry."""

    name: str = Field(pattern=NAME_PATTERN)
    aliases: List[str] = Field(default_factory=list)
    summary: str
    task: str = Field(pattern=NAME_PATTERN, description="a task registered in zoo.tasks (checked on load)")
    arch: str = Field(description="key of the network implementation in zoo.models (checked against its registry)")
    arch_args: Dict[str, Union[bool, int, float, str, List[Any]]] = Field(
        default_factory=dict, description="the architecture's arguments besides num_classes (e.g. width), checked "
                                          "against its builder's signature")
    strategy: str = Field(pattern=NAME_PATTERN, description="a strategy registered in zoo.quant (checked on load)")
    source: Source
    artifacts: Dict[Role, Artifact]
    default_artifact: Role
    dataset: Dataset
    preprocess: Preprocess
    quant: QuantConfig
    train: Optional[TrainConfig] = None
    published: List[Published] = Field(min_length=1)
    other_published: List[OtherFigure] = Field(default_factory=list)
    tolerance: Tolerance = Tolerance()
    export: ExportConfig = ExportConfig()
    detection: Optional[DetectionConfig] = Field(None, description="detection entries: contract, anchors, NMS")

    @model_validator(mode="before")
    @classmethod
    def _moved_fields(cls, data: object) -> object:
        # `extra` was an untyped side channel; its settings are typed fields now
        if isinstance(data, dict) and "extra" in data:
            moved = {"model_kwargs": "arch_args", "calib_split": "quant.calib_split"}
            said = [f"`extra.{k}` is now `{moved[k]}`" for k in (data["extra"] or {}) if k in moved]
            raise ValueError("the `extra` section is gone: " + ("; ".join(said) if said else
                             "put notes into a `note` field (source.note, quant.note)"))
        return data

    @model_validator(mode="before")
    @classmethod
    def _detection_defaults(cls, data: object) -> object:
        # a detection entry without the section gets the PaddleDetection 0.x YOLOv3 conventions
        if isinstance(data, dict) and data.get("task") == "detection" and data.get("detection") is None:
            data = {**data, "detection": {}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Recipe":
        if self.detection is not None and self.task != Task.detection:
            raise ValueError(f"a `detection` section does not fit task {self.task!r}")
        if self.default_artifact not in self.artifacts:
            raise ValueError(f"default_artifact {self.default_artifact.value!r} is not one of its artifacts")
        if Role.fp32 not in self.artifacts and Role.pretrained not in self.artifacts:
            raise ValueError("a quantized entry must name its float baseline: add an `fp32` or `pretrained` artifact")
        sizes = [p.input_size for p in self.published]
        if len(sizes) != len(set(sizes)):
            raise ValueError(f"published settings repeat an input_size: {sizes}")
        return self  # which metric names fit the task, the registry loader asks the task

    # convenience accessors used by the CLI and the report
    def primary_metric(self) -> str:
        """The headline metric: the first one the headline setting publishes."""
        row = self.headline()
        return next(iter(row.metrics() or row.fp32()))

    def headline(self) -> Published:
        """The first published setting that has an INT8 metric."""
        for row in self.published:
            if row.metrics():
                return row
        return self.published[0]


def validation_messages(err: Any) -> List[str]:
    """One line per problem of a pydantic ValidationError: "field `a.b`: what is wrong"."""
    lines = []
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            msg = "missing required field"
        elif item["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"field `{field}`: {msg}")
    return lines
