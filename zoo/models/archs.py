"""The built-in architectures (imported by zoo.models.registry on first use)."""
from __future__ import annotations

from typing import Optional, Sequence

from zoo.data.transforms import DEFAULT_PREPROCESS, DETECTION_PREPROCESS
from zoo.models.registry import register_model
from zoo.schema import Backend, Preprocess, Task


def _imagenet() -> Preprocess:
    """The ImageNet evaluation convention of the published classifiers (resize 256, center crop 224)."""
    return DEFAULT_PREPROCESS


def _digits() -> Preprocess:
    """The bundled digits classifiers' 32x32 input (scripts/train_digits.py)."""
    return Preprocess(backend=Backend.pil, resize_short=32, crop=32)


def _yolov3_reader() -> Preprocess:
    """PaddleDetection 0.x's YOLOv3 eval reader: cv2 decode, bicubic square resize to 608, /255, ImageNet mean/std."""
    return DETECTION_PREPROCESS


_PADDLE_VISION = "a paddle.vision state dict (.pdparams), e.g. the published mobilenetv1_1.0.pdparams"
_STATIC_0X = "PaddleDetection 0.x static persistables, loaded by name (zoo.models.yolov3_names)"


@register_model("mobilenet_v1", preprocess=_imagenet, weights=_PADDLE_VISION)
def mobilenet_v1(scale: float = 1.0, num_classes: int = 1000):
    """paddle.vision's MobileNetV1: its state dict matches the published `mobilenetv1_1.0.pdparams`."""
    from paddle.vision.models import MobileNetV1

    return MobileNetV1(scale=scale, num_classes=num_classes)


@register_model("mobilenet_v3_small", preprocess=_imagenet, weights=_PADDLE_VISION)
def mobilenet_v3_small(scale: float = 1.0, num_classes: int = 1000):
    """paddle.vision's MobileNetV3 small."""
    from paddle.vision.models import MobileNetV3Small

    return MobileNetV3Small(scale=scale, num_classes=num_classes)


@register_model("mobilenet_v3_large_paddleclas", preprocess=_imagenet,
                weights="PaddleClas static persistables (SSLD), loaded by name (zoo.models.mobilenet_v3_paddleclas)")
def mobilenet_v3_large_paddleclas(scale: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
    """MobileNetV3 large in PaddleClas's layout, loadable from the SSLD static-graph persistables."""
    from zoo.models.mobilenet_v3_paddleclas import MobileNetV3PaddleClas

    return MobileNetV3PaddleClas(scale=scale, num_classes=num_classes, dropout=dropout)


DIGITS_SCALE = 0.25


@register_model("digits_mobilenet_v1", preprocess=_digits, weights="the bundled digits classifier's inference model")
def digits_mobilenet_v1(num_classes: int = 10, scale: float = DIGITS_SCALE):
    """MobileNetV1 at width 0.25 for the bundled 32x32 digits."""
    return mobilenet_v1(scale=scale, num_classes=num_classes)


@register_model("digits_mobilenet_v3_small", preprocess=_digits, weights="the bundled digits classifier's inference model")
def digits_mobilenet_v3_small(num_classes: int = 10, scale: float = DIGITS_SCALE):
    """MobileNetV3 small at width 0.25 for the bundled 32x32 digits."""
    return mobilenet_v3_small(scale=scale, num_classes=num_classes)


def _yolov3(backbone: str, num_classes: int, width: float, anchors: Optional[Sequence[Sequence[int]]],
            anchor_masks: Optional[Sequence[Sequence[int]]], head_width: Optional[float]):  # type: ignore[no-untyped-def]
    from zoo.models import yolov3

    return yolov3.YOLOv3(backbone, num_classes=num_classes, width=width, anchors=anchors or yolov3.ANCHORS,
                         anchor_masks=anchor_masks or yolov3.ANCHOR_MASKS, head_width=head_width)


@register_model("yolov3_mobilenet_v1", task=Task.detection, preprocess=_yolov3_reader, weights=_STATIC_0X)
def yolov3_mobilenet_v1(num_classes: int = 80, width: float = 1.0, anchors: Optional[Sequence[Sequence[int]]] = None,
                        anchor_masks: Optional[Sequence[Sequence[int]]] = None, head_width: Optional[float] = None):
    """YOLOv3 on MobileNetV1 (PaddleDetection 0.x layout; loads the 0.x persistables by name)."""
    return _yolov3("mobilenet_v1", num_classes, width, anchors, anchor_masks, head_width)


@register_model("yolov3_resnet34", task=Task.detection, preprocess=_yolov3_reader, weights=_STATIC_0X)
def yolov3_resnet34(num_classes: int = 80, width: float = 1.0, anchors: Optional[Sequence[Sequence[int]]] = None,
                    anchor_masks: Optional[Sequence[Sequence[int]]] = None, head_width: Optional[float] = None):
    """YOLOv3 on ResNet34 (variant b)."""
    return _yolov3("resnet34", num_classes, width, anchors, anchor_masks, head_width)


@register_model("yolov3_resnet50vd_dcn", task=Task.detection, preprocess=_yolov3_reader, weights=_STATIC_0X)
def yolov3_resnet50vd_dcn(num_classes: int = 80, width: float = 1.0, anchors: Optional[Sequence[Sequence[int]]] = None,
                          anchor_masks: Optional[Sequence[Sequence[int]]] = None, head_width: Optional[float] = None):
    """YOLOv3 on ResNet50-vd with DCNv2 in stage 5."""
    return _yolov3("resnet50vd_dcn", num_classes, width, anchors, anchor_masks, head_width)
