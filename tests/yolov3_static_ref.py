"""A static-graph YOLOv3 written the way PaddleDetection 0.x wrote it, for checking zoo.models.yolov3.

It follows the 0.x layer code (docs/detection.md §1.3) call by call: parameters are named inside each
layer (ParamAttr names, BN moving-stat names) exactly as those layers named them, the upsample is
the legacy `nearest_interp` op with align_corners=True, the DCN is the static `deformable_conv`.
Nothing here reads the zoo's name map: a program built here, saved with Paddle's save_vars, is what
a published FP32 weight folder looks like, and its outputs are what the dygraph network must give.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

MBV1 = [("conv2_1", 32, 64, 32, 1), ("conv2_2", 64, 128, 64, 2), ("conv3_1", 128, 128, 128, 1),
        ("conv3_2", 128, 256, 128, 2), ("conv4_1", 256, 256, 256, 1), ("conv4_2", 256, 512, 256, 2)] + \
       [(f"conv5_{i}", 512, 512, 512, 1) for i in range(1, 6)] + \
       [("conv5_6", 512, 1024, 512, 2), ("conv6", 1024, 1024, 1024, 1)]


class Static0x:
    """Builders of one program; call inside paddle.static.program_guard."""

    def __init__(self, scale: float, num_classes: int) -> None:
        self.scale = scale
        self.num_classes = num_classes

    # -- MobileNetV1 (ppdet/modeling/backbones/mobilenet.py)
    def _mb_conv_norm(self, x, k, c, stride, padding, groups=1, name=""):
        import paddle
        from paddle.static import nn

        conv = nn.conv2d(x, c, k, stride=stride, padding=padding, groups=groups, bias_attr=False,
                         param_attr=paddle.ParamAttr(name=name + "_weights"))
        bn = name + "_bn"
        return nn.batch_norm(conv, act="relu", is_test=True, param_attr=paddle.ParamAttr(name=bn + "_scale"),
                             bias_attr=paddle.ParamAttr(name=bn + "_offset"), moving_mean_name=bn + "_mean",
                             moving_variance_name=bn + "_variance")

    def mobilenet(self, x) -> List:
        s = self.scale
        out = self._mb_conv_norm(x, 3, int(32 * s), 2, 1, name="conv1")
        blocks = []
        for name, f1, f2, groups, stride in MBV1:
            out = self._mb_conv_norm(out, 3, int(f1 * s), stride, 1, groups=int(groups * s), name=name + "_dw")
            out = self._mb_conv_norm(out, 1, int(f2 * s), 1, 0, name=name + "_sep")
            if name in ("conv3_2", "conv4_2", "conv6"):
                blocks.append(out)
        return blocks

    # -- ResNet (ppdet/modeling/backbones/resnet.py + name_adapter.py)
    def _res_conv_norm(self, x, c, k, stride=1, act=None, name="", dcn=False):
        import paddle
        import paddle.nn.functional as F
        from paddle.static import nn

        pad = (k - 1) // 2
        if dcn:
            offset_mask = nn.conv2d(x, 3 * k * k, k, stride=stride, padding=pad,
                                    param_attr=paddle.ParamAttr(name=name + "_conv_offset.w_0"),
                                    bias_attr=paddle.ParamAttr(name=name + "_conv_offset.b_0"))
            offset, mask = paddle.split(offset_mask, [2 * k * k, k * k], axis=1)
            conv = nn.deform_conv2d(x, offset, F.sigmoid(mask), c, k, stride=stride, padding=pad,
                                    deformable_groups=1, im2col_step=1,
                                    weight_attr=paddle.ParamAttr(name=name + "_weights"), bias_attr=False)
        else:
            conv = nn.conv2d(x, c, k, stride=stride, padding=pad, bias_attr=False,
                             param_attr=paddle.ParamAttr(name=name + "_weights"))
        bn = "bn_" + name if name == "conv1" else "bn" + name[3:]
        return nn.batch_norm(conv, act=act, is_test=True, param_attr=paddle.ParamAttr(name=bn + "_scale"),
                             bias_attr=paddle.ParamAttr(name=bn + "_offset"), moving_mean_name=bn + "_mean",
                             moving_variance_name=bn + "_variance")

    def _shortcut(self, x, c, stride, is_first, name, depth):
        import paddle.nn.functional as F

        if x.shape[1] != c or stride != 1 or (depth < 50 and is_first):
            if depth == 50 and not is_first:  # variant d
                x = F.avg_pool2d(x, 2, stride=2, padding=0, ceil_mode=True)
                return self._res_conv_norm(x, c, 1, 1, name=name)
            return self._res_conv_norm(x, c, 1, stride, name=name)
        return x

    def resnet(self, x, depth: int) -> List:
        import paddle.nn.functional as F

        s = self.scale
        if depth == 50:
            for c, k, st, name in [(int(64 * s) // 2, 3, 2, "conv1_1"), (int(64 * s) // 2, 3, 1, "conv1_2"),
                                   (int(64 * s), 3, 1, "conv1_3")]:
                x = self._res_conv_norm(x, c, k, st, act="relu", name=name)
        else:
            x = self._res_conv_norm(x, int(64 * s), 7, 2, act="relu", name="conv1")
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        feats = []
        for stage, count in zip((2, 3, 4, 5), (3, 4, 6, 3)):
            f = int((64, 128, 256, 512)[stage - 2] * s)
            is_first = stage == 2
            for i in range(count):
                name = f"res{stage}{chr(97 + i)}"
                if depth < 50:
                    is_first = i == 0 and stage == 2
                stride = 2 if i == 0 and stage != 2 else 1
                if depth == 50:
                    r = self._res_conv_norm(x, f, 1, 1, act="relu", name=name + "_branch2a")
                    r = self._res_conv_norm(r, f, 3, stride, act="relu", name=name + "_branch2b", dcn=stage == 5)
                    r = self._res_conv_norm(r, f * 4, 1, 1, name=name + "_branch2c")
                    short = self._shortcut(x, f * 4, stride, is_first, name + "_branch1", depth)
                else:
                    r = self._res_conv_norm(x, f, 3, stride, act="relu", name=name + "_branch2a")
                    r = self._res_conv_norm(r, f, 3, 1, name=name + "_branch2b")
                    short = self._shortcut(x, f, stride, is_first, name + "_branch1", depth)
                x = F.relu(short + r)
            if stage > 2:
                feats.append(x)
        return feats

    # -- YOLOv3 head (ppdet/modeling/anchor_heads/yolo_head.py)
    def _conv_bn(self, x, c, k, padding, name):
        import paddle
        import paddle.nn.functional as F
        from paddle.static import nn

        conv = nn.conv2d(x, c, k, padding=padding, bias_attr=False, param_attr=paddle.ParamAttr(name=name + ".conv.weights"))
        bn = name + ".bn"
        out = nn.batch_norm(conv, is_test=True, param_attr=paddle.ParamAttr(name=bn + ".scale"),
                            bias_attr=paddle.ParamAttr(name=bn + ".offset"), moving_mean_name=bn + ".mean",
                            moving_variance_name=bn + ".var")
        return F.leaky_relu(out, 0.1)

    def _resize_nearest(self, x):
        """fluid.layers.resize_nearest(scale=2.0): the legacy nearest_interp op, align_corners=True."""
        from paddle.base.layer_helper import LayerHelper

        helper = LayerHelper("nearest_interp")
        out = helper.create_variable_for_type_inference(x.dtype)
        helper.append_op(type="nearest_interp", inputs={"X": x}, outputs={"Out": out},
                         attrs={"out_h": x.shape[2] * 2, "out_w": x.shape[3] * 2, "interp_method": "nearest",
                                "align_corners": True, "align_mode": 1, "data_layout": "NCHW"})
        return out

    def head(self, body: List) -> List:
        import paddle
        from paddle.static import nn

        outputs, route = [], None
        for i, block in enumerate(body[-1:-4:-1]):
            if i > 0:
                block = paddle.concat([route, block], axis=1)
            channel = int(512 * self.scale) // (2 ** i)
            name = f"yolo_block.{i}"
            conv = block
            for j in range(2):
                conv = self._conv_bn(conv, channel, 1, 0, f"{name}.{j}.0")
                conv = self._conv_bn(conv, channel * 2, 3, 1, f"{name}.{j}.1")
            route = self._conv_bn(conv, channel, 1, 0, f"{name}.2")
            tip = self._conv_bn(route, channel * 2, 3, 1, f"{name}.tip")
            with paddle.static.name_scope("yolo_output"):
                outputs.append(nn.conv2d(tip, 3 * (self.num_classes + 5), 1,
                                         param_attr=paddle.ParamAttr(name=f"yolo_output.{i}.conv.weights"),
                                         bias_attr=paddle.ParamAttr(name=f"yolo_output.{i}.conv.bias")))
            if i < 2:
                route = self._conv_bn(route, int(256 * self.scale) // (2 ** i), 1, 0, f"yolo_transition.{i}")
                route = self._resize_nearest(route)
        return outputs


def benign(name: str, shape: Tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A random value for a 0.x variable that keeps the signal alive through every layer."""
    noise = rng.standard_normal(shape)
    if name.endswith(("_scale", ".scale")):
        value = 1.0 + 0.2 * noise
    elif name.endswith(("_offset", ".offset")):
        value = 0.2 + 0.1 * noise
    elif name.endswith(("_mean", ".mean")):
        value = 0.1 * noise
    elif name.endswith(("_variance", ".var")):
        value = 1.0 + 0.2 * np.abs(noise)
    elif len(shape) == 4:
        value = noise * np.sqrt(2.0 / np.prod(shape[1:]))
    else:
        value = 0.1 * noise
    return value.astype("float32")


def build_and_save(backbone: str, scale: float, num_classes: int, size: int, folder, x: np.ndarray,
                   seed: int = 0) -> Tuple[Dict[str, np.ndarray], List[np.ndarray]]:
    """Build the 0.x program, fill its parameters, save them to `folder` with save_vars, run it on `x`.

    Returns ({variable name: array} of every persistable, [raw outputs for strides 32, 16, 8]).
    """
    import paddle

    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            image = paddle.static.data("image", [x.shape[0], 3, size, size], "float32")
            ref = Static0x(scale, num_classes)
            body = ref.mobilenet(image) if backbone == "mobilenet_v1" else \
                ref.resnet(image, 34 if backbone == "resnet34" else 50)
            outputs = ref.head(body)
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        rng = np.random.default_rng(seed)
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            params = [v for v in main.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
            arrays = {}
            for var in sorted(params, key=lambda v: v.name):
                arrays[var.name] = benign(var.name, tuple(var.shape), rng)
                scope.find_var(var.name).get_tensor().set(arrays[var.name], paddle.CPUPlace())
            paddle.static.save_vars(exe, str(folder), main_program=main, vars=params)
            got = exe.run(main, feed={"image": x}, fetch_list=outputs)
        return arrays, [np.asarray(g) for g in got]
    finally:
        paddle.disable_static()
