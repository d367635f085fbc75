"""The `ptq` strategy: post-training static quantization with the recipe's calibration settings.

A thin adapter over zoo.quant.ptq.quantize_static (KL, KL_paddle1, hist, mse, avg, abs_max threshold search).
"""
from __future__ import annotations

from pathlib import Path

from zoo.modelfiles import ModelFiles
from zoo.quant.base import FP32Source, QuantData, QuantOptions, QuantStrategy, register_strategy
from zoo.schema import Recipe

DEFAULT_BATCH_SIZE = 32
DEFAULT_HIST_PERCENT = 0.9999


@register_strategy("ptq")
class PTQStrategy(QuantStrategy):
    """Calibrate an FP32 inference model on a few batches and write the INT8 model."""

    def quantize(
        self,
        recipe: Recipe,
        source: FP32Source,
        data: QuantData,
        out_dir: Path,
        options: QuantOptions,
    ) -> ModelFiles:
        from zoo.quant.ptq import quantize_static

        from zoo.tasks import get_task

        q = recipe.quant
        model = source.require_model(self.name)
        calib = data.require_calib(self.name)
        skip = get_task(recipe.task).quant_skip(recipe, model)  # e.g. a detector's `yolo_output` head
        return quantize_static(
            model,
            Path(out_dir),
            calib,
            algo=q.algo or "KL",
            batch_size=q.batch_size or DEFAULT_BATCH_SIZE,
            batch_nums=q.batch_nums or 10,
            hist_percent=q.hist_percent or DEFAULT_HIST_PERCENT,
            quantizable_op_type=tuple(q.ops),
            weight_quantize_type=q.weight,
            activation_quantize_type=q.activation,
            onnx_format=q.onnx_format,
            skip_patterns=tuple(skip),  # the task's reading of quant.skip (e.g. the float layers `zoo quantize --max-drop` chose)
            rounding=q.rounding,
            bias_correction=q.bias_correction,
            engine=options.engine,
            device=options.device,
            replace=True,  # a reproduction's INT8 folder holds this model only
        )
