"""The `ptq` strategy: post-training static quantization with the recipe's calibration settings.

A thin adapter over zoo.quant.ptq.quantize_static (KL, KL_paddle1, hist, mse, avg, abs_max threshold search).
"""
from __future__ import annotations

from pathlib import Path

from zoo.modelfiles import ModelFiles
from zoo.quant.base import CALIBRATION, FP32Source, StrategyNeeds, QuantData, QuantOptions, QuantStrategy, register_strategy
from zoo.quant.ptq import quantize_static
from zoo.quant.settings import PTQSettings
from zoo.schema import Recipe


@register_strategy("ptq")
class PTQStrategy(QuantStrategy):
    """Calibrate an FP32 inference model on a few batches and write the INT8 model."""

    needs = StrategyNeeds(data=CALIBRATION, recipe_fields=("quant.algo", "quant.batch_nums"))

    def quantize(
        self,
        recipe: Recipe,
        source: FP32Source,
        data: QuantData,
        out_dir: Path,
        options: QuantOptions,
    ) -> ModelFiles:
        q = recipe.quant
        model = source.require_model(self.name)
        calib = data.require_calib(self.name)
        # the task's reading of quant.skip (e.g. a detector's `yolo_output` head); None: quant.skip as written
        skip = source.hooks.quant_skip(recipe, model) if source.hooks is not None else None
        settings = PTQSettings.from_recipe(q, engine=options.engine, skip=skip)
        # replace: a reproduction's INT8 folder holds this model only
        return quantize_static(model, Path(out_dir), calib, settings, device=options.device, replace=True)
