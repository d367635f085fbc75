"""The registry: every recipe validates, broken recipes are rejected with file and field named."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zoo.errors import DuplicateNameError, RecipeError, UnknownNameError
from zoo.registry import Registry, builtin_recipe_dir, load_recipe_file, load_registry
from zoo.schema import Role, Task

PUBLISHED_NAMES = {
    "mobilenetv3_small_ptq",
    "mobilenetv1_qat",
    "mobilenetv3_large_pact_qat",
    "mobilenetv3_act",
    "yolov3_mobilenetv1_coco_quant_post",
    "yolov3_mobilenetv1_coco_quant_aware",
    "yolov3_r34_coco_quant_post",
    "yolov3_r34_coco_quant_aware",
    "yolov3_r50vd_dcn_obj365_coco_quant_aware",
}


def test_every_published_entry_is_registered() -> None:
    assert PUBLISHED_NAMES <= set(load_registry().names())


@pytest.mark.parametrize("path", sorted(builtin_recipe_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_each_recipe_validates(path: Path) -> None:
    recipe = load_recipe_file(path)
    assert recipe.name == path.stem
    assert recipe.default_artifact in recipe.artifacts
    assert Role.fp32 in recipe.artifacts or Role.pretrained in recipe.artifacts
    # a bundled default may publish its FP32 baseline before its INT8 (the digits detector: detector quantization is not built yet)
    fp32_only_bundle = all(a.bundled for a in recipe.artifacts.values()) and recipe.headline().fp32()
    assert recipe.headline().metrics() or fp32_only_bundle, "the headline setting must publish an INT8 metric"


def test_published_numbers_match_the_reference() -> None:
    reg = load_registry()
    small = reg.get("mobilenetv3_small_ptq").headline()
    assert (small.metric("top1"), small.metric("top5"), small.fp32().get("top1"), small.fp32().get("top5")) == (55.30, 79.05, 60.15, 82.53)
    act = reg.get("mobilenetv3_act")
    assert act.headline().metric("top1") == 74.40 and act.headline().fp32().get("top1") == 75.32
    assert {o.value for o in act.other_published} >= {74.41, 74.04, 16.62, 9.85}
    r34 = {p.input_size: p for p in reg.get("yolov3_r34_coco_quant_aware").published}
    assert [r34[s].metric("box_ap") for s in (608, 416, 320)] == [35.2, 33.3, 30.3]
    assert [r34[s].fp32().get("box_ap") for s in (608, 416, 320)] == [36.2, 34.3, 31.4]
    post = {p.input_size: p for p in reg.get("yolov3_r34_coco_quant_post").published}
    assert post[608].metric("box_ap") == 35.7 and post[416].metric("box_ap") is None
    mbv1 = reg.get("yolov3_mobilenetv1_coco_quant_aware")
    assert [u.rsplit("/", 1)[1] for u in mbv1.artifacts[Role.quantized].urls] == [
        "yolov3_mobilenetv1_coco_quant_aware.tar",
        "yolov3_mobilenet_coco_quant_aware.tar",
    ]
    fp32 = reg.get("mobilenetv3_act").artifacts[Role.fp32]
    assert fp32.sha256 == "ca6c1b685b40c8d9219563f52b76c5716a2fbdc5214ebcdba67b234db8070f72"
    assert reg.get("mobilenetv3_large_pact_qat").quant.pact is True


def test_aliases_resolve() -> None:
    reg = load_registry()
    assert reg.get("yolov3_mobilenet_coco_quant_aware").name == "yolov3_mobilenetv1_coco_quant_aware"


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_registry().get("mobilenetv3_actt")
    assert "mobilenetv3_act" in info.value.hint


def test_filter_by_pattern_task_strategy() -> None:
    reg = load_registry()
    assert {r.name for r in reg.filter("yolov3_r34*")} == {"yolov3_r34_coco_quant_post", "yolov3_r34_coco_quant_aware"}
    assert all(r.task == Task.detection for r in reg.filter(task=Task.detection))
    assert {r.name for r in reg.filter("mobilenet", strategy="act")} >= {"mobilenetv3_act"}
    assert reg.filter("no-such-thing") == []


# ---- broken recipes -------------------------------------------------------------------------

def _good() -> dict:
    return yaml.safe_load((builtin_recipe_dir() / "mobilenetv3_act.yaml").read_text())


def _write(tmp_path: Path, data: dict, name: str = "mobilenetv3_act") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _error_for(tmp_path: Path, data: dict) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(RecipeError) as info:
        load_recipe_file(path)
    assert str(path) in info.value.message
    return info.value.message


def test_good_copy_loads(tmp_path: Path) -> None:
    assert load_recipe_file(_write(tmp_path, _good())).name == "mobilenetv3_act"


def test_missing_field_is_named(tmp_path: Path) -> None:
    data = _good()
    del data["task"]
    assert "field `task`: missing required field" in _error_for(tmp_path, data)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    data = _good()
    data["train"]["batch_size"] = "lots"
    assert "field `train.batch_size`" in _error_for(tmp_path, data)


def test_unknown_strategy_is_named(tmp_path: Path) -> None:
    data = _good()
    data["strategy"] = "magic"
    msg = _error_for(tmp_path, data)
    assert "field `strategy`" in msg and "ptq" in msg


def test_unknown_task_is_named(tmp_path: Path) -> None:
    data = _good()
    data["task"] = "segmentation"
    assert "field `task`" in _error_for(tmp_path, data)


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    data = _good()
    data["quant"]["wieght"] = "abs_max"
    assert "field `quant.wieght`: unknown field" in _error_for(tmp_path, data)


def test_metric_without_setting_is_refused(tmp_path: Path) -> None:
    data = _good()
    data["published"] = [{"top1": 74.4}]
    assert "field `published.0.input_size`: missing required field" in _error_for(tmp_path, data)


def test_metric_of_the_wrong_task_is_refused(tmp_path: Path) -> None:
    data = _good()
    data["published"] = [{"input_size": 224, "box_ap": 30.0}]
    assert "do not fit task" in _error_for(tmp_path, data)


def test_default_artifact_must_exist(tmp_path: Path) -> None:
    data = _good()
    data["default_artifact"] = "pretrained"
    assert "default_artifact" in _error_for(tmp_path, data)


def test_bad_checksum_is_refused(tmp_path: Path) -> None:
    data = _good()
    data["artifacts"]["fp32"]["sha256"] = "abc"
    assert "field `artifacts.fp32.sha256`" in _error_for(tmp_path, data)


def test_file_name_must_match_entry_name(tmp_path: Path) -> None:
    path = _write(tmp_path, _good(), name="other_name")
    with pytest.raises(RecipeError, match="field `name`"):
        load_recipe_file(path)


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe_file(path)


def test_duplicate_name_across_folders_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, _good())
    with pytest.raises(DuplicateNameError, match="duplicate name 'mobilenetv3_act'"):
        Registry.from_dirs([builtin_recipe_dir(), tmp_path])


def test_duplicate_alias_is_refused(tmp_path: Path) -> None:
    data = _good()
    data["name"] = "another"
    data["aliases"] = ["mobilenetv3_act"]
    _write(tmp_path, data, name="another")
    with pytest.raises(DuplicateNameError, match="duplicate name"):
        Registry.from_dirs([builtin_recipe_dir(), tmp_path])


def test_extra_recipe_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _good()
    data["name"] = "my_model"
    _write(tmp_path, data, name="my_model")
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(tmp_path))
    assert load_registry().get("my_model").strategy == "act"


def test_recipe_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, _good())
    path.write_bytes(b"# caf\xe9, saved as latin-1\n" + path.read_bytes())
    with pytest.raises(RecipeError, match="not valid UTF-8") as info:
        load_recipe_file(path)
    assert str(path) in info.value.message and "UTF-8" in info.value.hint


def test_cli_names_a_recipe_that_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.cli.main import app

    from .conftest import RUNNER

    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: latin\nsummary: \xe9t\xe9\n")
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(tmp_path))
    res = RUNNER.invoke(app, ["list"])
    assert res.exit_code == 1
    err = " ".join(res.stderr.split())
    assert f"{path}: not valid UTF-8" in err and "Traceback" not in err


def _entry(name: str) -> dict:
    return yaml.safe_load((builtin_recipe_dir() / f"{name}.yaml").read_text())


def _entry_error(tmp_path: Path, data: dict) -> str:
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError) as info:
        load_recipe_file(path)
    assert str(path) in info.value.message
    return f"{info.value.message}\n{info.value.hint}"


def test_unknown_arch_is_refused_with_close_names(tmp_path: Path) -> None:
    data = _entry("mobilenetv1_qat")
    data["arch"] = "mobilenet_v1x"
    msg = _entry_error(tmp_path, data)
    assert "field `arch`: unknown architecture 'mobilenet_v1x'" in msg and "mobilenet_v1" in msg


def test_arch_of_another_task_is_refused(tmp_path: Path) -> None:
    data = _entry("mobilenetv1_qat")
    data["arch"] = "yolov3_mobilenet_v1"
    msg = _entry_error(tmp_path, data)
    assert "yolov3_mobilenet_v1 is a detection network, the recipe's task is classification" in msg
    assert "mobilenet_v3_small" in msg  # the hint lists the classification architectures


def test_arch_args_are_checked_against_the_builder(tmp_path: Path) -> None:
    data = _entry("digits_yolov3_mobilenetv1_ptq")
    data["arch_args"] = {"widht": 0.25}
    assert "yolov3_mobilenet_v1 takes no argument 'widht'" in _entry_error(tmp_path, data)
    data["arch_args"] = {"width": "quarter"}
    assert "'width' must be a number, got 'quarter'" in _entry_error(tmp_path, data)
    data["arch_args"] = {"anchors": [[10, 13], [16, "thirty"]]}  # checked at any depth, against the annotation
    assert "'anchors'[1][1] must be an integer, got 'thirty'" in _entry_error(tmp_path, data)
    data["arch_args"] = {"width": 0.25, "num_classes": 80}
    assert "num_classes 80 disagrees with dataset.num_classes 10" in _entry_error(tmp_path, data)
    act = _entry("digits_mobilenetv3_act")
    act["arch_args"] = {"scale": 0.5}
    assert "builds no network, so it takes no arguments" in _entry_error(tmp_path, act)


def test_quant_settings_are_typed(tmp_path: Path) -> None:
    for field, value in (("algo", "emd"), ("weight", "channel_abs_max"), ("activation", "abs_max"), ("ops", ["conv3d"])):
        data = _entry("digits_mobilenetv1_ptq")
        data["quant"][field] = value
        msg = _entry_error(tmp_path, data)
        assert f"field `quant.{field}" in msg, (field, msg)


def test_the_untyped_extra_section_is_refused_with_where_it_went(tmp_path: Path) -> None:
    data = _entry("digits_yolov3_mobilenetv1_ptq")
    data["extra"] = {"model_kwargs": {"width": 0.25}}
    assert "`extra.model_kwargs` is now `arch_args`" in _entry_error(tmp_path, data)


def test_a_recipe_without_preprocess_gets_its_architectures(tmp_path: Path) -> None:
    from zoo.data.transforms import DETECTION_PREPROCESS

    data = _entry("yolov3_r34_coco_quant_post")
    del data["preprocess"]
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_recipe_file(path).preprocess == DETECTION_PREPROCESS


@pytest.mark.parametrize("section, field, value, where", [
    ("quant", "algo_alternatives", ["KL"], "--max-drop"),
    ("train", "eval_batch_size", 8, "--batch-size"),
    ("train", "origin_metric", 0.9, "fp32_top1"),
])
def test_a_removed_recipe_field_is_named_with_where_it_went(section, field, value, where, tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent.parent / "recipes" / "digits_mobilenetv1_qat.yaml"
    data = yaml.safe_load(source.read_text())
    data.setdefault(section, {})[field] = value
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError) as info:
        load_recipe_file(path)
    assert f"`{section}.{field}` was removed" in info.value.message and where in info.value.message


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path) -> None:
    path = _write(tmp_path, _good())
    # nine levels of nine aliases: 9**9 strings if expanded, refused at the first alias instead
    bomb = ["a0: &a0 [lol]"] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path.write_text("\n".join(bomb) + "\n" + path.read_text())
    with pytest.raises(RecipeError, match="YAML aliases") as info:
        load_recipe_file(path)
    assert str(path) in info.value.message and "in full" in (info.value.hint or "")


@pytest.mark.parametrize("bundled", ["../../../../etc/passwd", "/etc/passwd", "a/../../b.tar", "C:evil.tar", ""])
def test_bundled_paths_stay_inside_the_assets(tmp_path: Path, bundled: str) -> None:
    data = _good()
    role = next(iter(data["artifacts"]))
    data["artifacts"][role] = {"bundled": bundled, "layout": "inference"}
    assert "plain relative path inside zoo/assets" in _error_for(tmp_path, data) or bundled == ""


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 50.0, -1.0])
def test_tolerances_are_finite_and_bounded(tmp_path: Path, value: float) -> None:
    data = _good()
    data["tolerance"] = {"reproduce": value}
    assert "tolerance.reproduce" in _error_for(tmp_path, data)
