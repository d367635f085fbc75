"""The `ptq` strategy: post-training static quantization with the recipe's calibration settings.

A thin adapter over zoo.quant.ptq.quantize_static (KL, hist, mse, avg, abs_max threshold search).
"""
from __future__ import annotations

from pathlib import Path

from zoo.modelfiles import ModelFiles
from zoo.quant.base import FP32Source, QuantData, QuantOptions, QuantStrategy, register_strategy, staging_dir
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

        q = recipe.quant
        model = source.require_model(self.name)
        calib = data.require_calib(self.name)
        stage = staging_dir(Path(out_dir))
        try:
            quantize_static(
                model,
                stage.path,
                calib,
                algo=q.algo or "KL",
                batch_size=q.batch_size or DEFAULT_BATCH_SIZE,
                batch_nums=q.batch_nums or 10,
                hist_percent=q.hist_percent or DEFAULT_HIST_PERCENT,
                quantizable_op_type=tuple(q.ops),
                weight_quantize_type=q.weight,
                onnx_format=q.onnx_format,
                skip_patterns=tuple(q.skip),  # e.g. the float layers `zoo quantize --max-drop` chose
                rounding=q.rounding,
                bias_correction=q.bias_correction,
                engine=options.engine,
                device=options.device,
            )
            return stage.commit()
        except BaseException:
            stage.discard()
            raise
