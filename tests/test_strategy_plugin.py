"""A strategy registered outside the zoo runs from a recipe: the recipe loader, the pipeline and the
protocol ask the strategy what it needs instead of branching on its name."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from zoo.errors import RecipeError, UsageError
from zoo.quant.base import CALIBRATION, QuantStrategy, StrategyNeeds, copy_model, register_strategy
from zoo.registry import get_recipe, load_recipe_file
from zoo.reproduce import ReproduceOptions, reproduce, reproducing_strategy

CALLS: Dict[str, Any] = {}


@register_strategy("test_plugin_copy")
class CopyStrategy(QuantStrategy):
    """Writes the FP32 model unchanged, after reading every calibration batch it was given."""

    needs = StrategyNeeds(data=CALIBRATION, recipe_fields=("quant.batch_nums",))

    def quantize(self, recipe, source, data, out_dir, options):  # type: ignore[no-untyped-def]
        batches = list(data.require_calib(self.name)())
        CALLS.update(batches=len(batches), shape=tuple(batches[0].shape), train=data.train)
        return copy_model(source.require_model(self.name), out_dir)


def _recipe_file(folder: Path, **changes: Any) -> Path:
    data = get_recipe("digits_mobilenetv1_ptq").model_dump(mode="json", exclude_none=True)
    data.update(name="digits_plugin_copy", aliases=[], **changes)
    path = folder / "digits_plugin_copy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_registered_strategy_reproduces_from_a_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    _recipe_file(recipes, strategy="test_plugin_copy")
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(recipes))
    recipe = get_recipe("digits_plugin_copy")
    assert recipe.strategy == "test_plugin_copy"
    CALLS.clear()
    report = reproduce(recipe, ReproduceOptions(out=tmp_path / "out"))
    assert report["strategy"] == "test_plugin_copy"
    # it asked for calibration data, so it got the recipe's batches and no training set
    assert CALLS["batches"] == recipe.quant.batch_nums and CALLS["train"] is None
    assert CALLS["shape"][0] == recipe.quant.batch_size
    # the "quantized" model is the FP32 one, so both score the same
    setting = report["settings"][0]
    assert setting["metrics"]["top1"]["measured"] == setting["fp32"]["top1"]["measured"]
    assert report["protocol"]["followed"] is True


def test_a_recipe_missing_what_its_strategy_reads_is_refused(tmp_path: Path) -> None:
    data_path = _recipe_file(tmp_path, strategy="test_plugin_copy")
    data = yaml.safe_load(data_path.read_text())
    del data["quant"]["batch_nums"]
    data_path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match="strategy 'test_plugin_copy' needs `quant.batch_nums`"):
        load_recipe_file(data_path)


def test_an_unregistered_strategy_is_refused_with_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="unknown quantization strategy 'test_plugin_nope'.*test_plugin_copy"):
        load_recipe_file(_recipe_file(tmp_path, strategy="test_plugin_nope"))


def test_a_strategy_is_refused_for_a_task_it_does_not_quantize() -> None:
    detector = get_recipe("digits_yolov3_mobilenetv1_ptq")
    assert reproducing_strategy(detector).name == "ptq"
    with pytest.raises(UsageError, match="classification models only") as info:
        reproducing_strategy(detector.model_copy(update={"strategy": "act"}))
    assert "zoo eval digits_yolov3_mobilenetv1_ptq" in (info.value.hint or "")


def test_a_registered_task_publishes_its_own_metric_names(tmp_path: Path) -> None:
    from zoo.tasks import register_task
    from zoo.tasks.classification import ClassificationTask

    @register_task("test_plugin_segmentation")
    class Segmentation(ClassificationTask):  # what matters here: its own metric names
        metrics = ("miou",)
        labels = {"miou": "mIoU"}

    data = get_recipe("digits_mobilenetv1_ptq").model_dump(mode="json", exclude_none=True)
    data.update(name="digits_plugin_seg", aliases=[], task="test_plugin_segmentation", arch="inference_model",
                published=[{"input_size": 32, "miou": 61.5, "fp32_miou": 62.0}])
    data.pop("arch_args", None)
    path = tmp_path / "digits_plugin_seg.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    recipe = load_recipe_file(path)  # no schema change: the task declares miou
    assert recipe.headline().metric("miou") == 61.5 and recipe.headline().fp32() == {"miou": 62.0}
    assert recipe.primary_metric() == "miou"
    data["published"] = [{"input_size": 32, "box_ap": 30.0}]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(RecipeError, match=r"metric\(s\) \['box_ap'\] do not fit task 'test_plugin_segmentation'"):
        load_recipe_file(path)
