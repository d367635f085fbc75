"""Stand-ins for PaddleSlim 1.x quant-aware exports, made the way its `convert(..., save_int8=True)` made them.

A tiny conv + fc program goes through Paddle's QuantizationTransformPass (channel-wise weights,
moving-average activations), QuantizationFreezePass, saved as `float/`; then ConvertToInt8Pass,
saved as `int/` (weights declared and stored int8). Both with the legacy `__model__`/`__params__`
names of that era.
"""
from __future__ import annotations

import os
from pathlib import Path

INPUT_SHAPE = (3, 8, 8)
CLASSES = 5


def _save_legacy(prefix: Path, feeds, fetches, exe, program) -> None:
    import paddle

    paddle.static.save_inference_model(str(prefix / "model"), feeds, fetches, exe, program=program)
    os.replace(prefix / "model.pdmodel", prefix / "__model__")
    os.replace(prefix / "model.pdiparams", prefix / "__params__")


def build_quant_export(root: Path) -> Path:
    """root/float/ and root/int/ as PaddleSlim 1.x's quant-aware export wrote them; returns root."""
    import paddle
    from paddle.base.framework import IrGraph
    from paddle.framework import core
    from paddle.static.quantization import ConvertToInt8Pass, QuantizationFreezePass, QuantizationTransformPass

    paddle.enable_static()
    try:
        main, start = paddle.static.Program(), paddle.static.Program()
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope), paddle.utils.unique_name.guard():
            with paddle.static.program_guard(main, start):
                x = paddle.static.data("image", [-1, *INPUT_SHAPE], "float32")
                y = paddle.nn.functional.relu(paddle.static.nn.conv2d(x, 4, 3))
                y = paddle.static.nn.fc(paddle.flatten(y, 1), CLASSES)
            place = paddle.CPUPlace()
            exe = paddle.static.Executor(place)
            exe.run(start)
            graph = IrGraph(core.Graph(main.clone(for_test=True).desc), for_test=True)
            QuantizationTransformPass(scope=scope, place=place, activation_quantize_type="moving_average_abs_max",
                                      weight_quantize_type="channel_wise_abs_max").apply(graph)
            QuantizationFreezePass(scope=scope, place=place, weight_quantize_type="channel_wise_abs_max").apply(graph)
            frozen = graph.to_program()
            _save_legacy(root / "float", [x], [frozen.global_block().var(y.name)], exe, frozen)
            ConvertToInt8Pass(scope=scope, place=place).apply(graph)
            int8 = graph.to_program()
            _save_legacy(root / "int", [x], [int8.global_block().var(y.name)], exe, int8)
    finally:
        paddle.disable_static()
    return root
