"""The built-in architectures (imported by zoo.models.registry on first use)."""
from __future__ import annotations

from zoo.models.registry import register_model


@register_model("mobilenet_v1")
def mobilenet_v1(scale: float = 1.0, num_classes: int = 1000):
    """paddle.vision's MobileNetV1: its state dict matches the published `mobilenetv1_1.0.pdparams`."""
    from paddle.vision.models import MobileNetV1

    return MobileNetV1(scale=scale, num_classes=num_classes)


@register_model("mobilenet_v3_small")
def mobilenet_v3_small(scale: float = 1.0, num_classes: int = 1000):
    """paddle.vision's MobileNetV3 small."""
    from paddle.vision.models import MobileNetV3Small

    return MobileNetV3Small(scale=scale, num_classes=num_classes)


@register_model("mobilenet_v3_large_paddleclas")
def mobilenet_v3_large_paddleclas(scale: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
    """MobileNetV3 large in PaddleClas's layout, loadable from the SSLD static-graph persistables."""
    from zoo.models.mobilenet_v3_paddleclas import MobileNetV3PaddleClas

    return MobileNetV3PaddleClas(scale=scale, num_classes=num_classes, dropout=dropout)


DIGITS_SCALE = 0.25


@register_model("digits_mobilenet_v1")
def digits_mobilenet_v1(num_classes: int = 10, scale: float = DIGITS_SCALE):
    """MobileNetV1 at width 0.25 for the bundled 32x32 digits."""
    return mobilenet_v1(scale=scale, num_classes=num_classes)


@register_model("digits_mobilenet_v3_small")
def digits_mobilenet_v3_small(num_classes: int = 10, scale: float = DIGITS_SCALE):
    """MobileNetV3 small at width 0.25 for the bundled 32x32 digits."""
    return mobilenet_v3_small(scale=scale, num_classes=num_classes)


@register_model("yolov3_mobilenet_v1")
def yolov3_mobilenet_v1(num_classes: int = 80, width: float = 1.0, **kwargs: object):
    """YOLOv3 on MobileNetV1 (PaddleDetection 0.x layout; loads the 0.x persistables by name)."""
    from zoo.models.yolov3 import YOLOv3

    return YOLOv3("mobilenet_v1", num_classes=num_classes, width=width, **kwargs)


@register_model("yolov3_resnet34")
def yolov3_resnet34(num_classes: int = 80, width: float = 1.0, **kwargs: object):
    """YOLOv3 on ResNet34 (variant b)."""
    from zoo.models.yolov3 import YOLOv3

    return YOLOv3("resnet34", num_classes=num_classes, width=width, **kwargs)


@register_model("yolov3_resnet50vd_dcn")
def yolov3_resnet50vd_dcn(num_classes: int = 80, width: float = 1.0, **kwargs: object):
    """YOLOv3 on ResNet50-vd with DCNv2 in stage 5."""
    from zoo.models.yolov3 import YOLOv3

    return YOLOv3("resnet50vd_dcn", num_classes=num_classes, width=width, **kwargs)
