"""`zoo eval` through typer's CliRunner: digits entries, plain folders, overrides, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from zoo.cli.main import app
from .conftest import RUNNER

runner = RUNNER


def _run(*args: str):
    return runner.invoke(app, list(args))


def _err(res) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(res.stderr.split())


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import paddle

    from zoo.models import save_inference

    class Colour(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.gain = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(1.0))

        def forward(self, x):
            return paddle.mean(x, axis=[2, 3]) * self.gain

    out = tmp_path_factory.mktemp("colour")
    save_inference(Colour(), out, (3, -1, -1))
    return out


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """val/<red|green|blue>/: class index = the dominant channel (sorted names: blue=0, green=1, red=2)."""
    root = tmp_path_factory.mktemp("colours")
    colours = {"blue": (20, 20, 230), "green": (20, 230, 20), "red": (230, 20, 20)}
    for name, rgb in colours.items():
        for i in range(3):
            folder = root / "val" / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40 + 5 * i, 30), rgb).save(folder / f"{i}.png")
    return root


def test_eval_folder_default_preprocessing(colour_model: Path, colour_data: Path) -> None:
    res = _run("eval", str(colour_model), "--data", str(colour_data), "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    # blue=0 is channel 2: the labels do not line up with the channels except green
    assert out["images"] == 9
    assert out["top1"] == pytest.approx(100 / 3, abs=1e-3)
    assert out["top5"] is None and out["classes"] == 3  # 3 classes: top-5 would count every image
    assert "top-5 n/a (3 classes)" in " ".join(_run("eval", str(colour_model), "--data", str(colour_data)).output.split())
    assert out["input_size"] == 224
    assert out["preprocess"]["resize_short"] == 256 and out["preprocess"]["interpolation"] == "bilinear"


def test_eval_folder_overrides(colour_model: Path, colour_data: Path, tmp_path: Path) -> None:
    # list file whose labels follow the channels (red=0, green=1, blue=2)
    lines = [f"val/{name}/{i}.png {label}" for label, name in enumerate(("red", "green", "blue")) for i in range(3)]
    (colour_data / "val_list.txt").write_text("\n".join(lines) + "\n")
    try:
        res = _run("eval", str(colour_model), "--data", str(colour_data), "--resize-short", "32", "--crop", "24",
                   "--interpolation", "lanczos", "--mean", "0,0,0", "--std", "1,1,1", "--no-scale",
                   "--max-samples", "6", "--batch-size", "4", "--json")
    finally:
        (colour_data / "val_list.txt").unlink()
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["top1"] == 100.0 and out["images"] == 6
    assert out["input_size"] == 24
    assert out["preprocess"]["scale"] is False and out["preprocess"]["interpolation"] == "lanczos"


def test_eval_text_output(colour_model: Path, colour_data: Path) -> None:
    res = _run("eval", str(colour_model), "--data", str(colour_data))
    assert res.exit_code == 0, res.stderr
    assert "top-1" in res.stdout and "33.33 %" in res.stdout


def test_eval_digits_entry_needs_no_data() -> None:
    from zoo.registry import get_recipe

    recipe = get_recipe("digits_mobilenetv1_ptq")
    res = _run("eval", "digits_mobilenetv1_ptq", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["artifact"] == "fp32" and out["images"] == 364
    # scoring the bundled FP32 model reproduces the FP32 numbers the recipe publishes
    assert out["top1"] == pytest.approx(recipe.published[0].fp32().get("top1"), abs=0.01)
    assert out["top5"] == pytest.approx(recipe.published[0].fp32().get("top5"), abs=0.01)
    assert out["published"]["top1"] == recipe.published[0].fp32().get("top1")


def test_eval_digits_max_samples() -> None:
    res = _run("eval", "digits_mobilenetv3_act", "--max-samples", "50", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["images"] == 50 and out["top1"] > 70


def test_folder_without_model_files(tmp_path: Path, colour_data: Path) -> None:
    res = _run("eval", str(tmp_path), "--data", str(colour_data))
    assert res.exit_code == 1
    assert "holds no Paddle inference model" in _err(res) and "hint:" in _err(res)
    assert "Traceback" not in res.stderr


def test_declared_input_size_is_used_and_a_contradiction_refused(tmp_path: Path, colour_data: Path) -> None:
    import paddle

    from zoo.models import save_inference

    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(3 * 8 * 8, 3))
    save_inference(net, tmp_path / "fixed", (3, 8, 8))
    # the declared 8x8 input is used (not the ImageNet default 224)
    res = _run("eval", str(tmp_path / "fixed"), "--data", str(colour_data), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["input_size"] == 8
    res = _run("eval", str(tmp_path / "fixed"), "--data", str(colour_data), "--resize-short", "16", "--crop", "16")
    assert res.exit_code == 2
    assert "--crop 16 contradicts the model's declared 8x8 input" in _err(res) and "Traceback" not in res.stderr
    ok = _run("eval", str(tmp_path / "fixed"), "--data", str(colour_data), "--resize-short", "8", "--crop", "8", "--json")
    assert ok.exit_code == 0, ok.stderr


def test_bad_inputs() -> None:
    res = _run("eval", "mobilenetv3_small_ptq")
    assert res.exit_code == 1 and "needs its imagenet data" in _err(res) and "--data" in _err(res)
    res = _run("eval", "digits_mobilenetv1_pqt")
    assert res.exit_code == 1 and "neither a zoo entry nor an existing model folder" in _err(res)
    assert "digits_mobilenetv1_ptq" in _err(res)  # close-match suggestion
    res = _run("eval", "./no/such/folder")
    assert res.exit_code == 1 and "does not exist" in _err(res)
    res = _run("eval", "yolov3_r34_coco_quant_post", "--data", ".")  # detection: a COCO folder, checked before any download
    assert res.exit_code == 1 and "instances_val2017.json does not exist" in _err(res)
    res = _run("eval", "digits_mobilenetv1_ptq", "--mean", "1,2")
    assert res.exit_code == 2 and "--mean takes three numbers" in _err(res)


def test_missing_data_folder(colour_model: Path, tmp_path: Path) -> None:
    res = _run("eval", str(colour_model), "--data", str(tmp_path / "missing"))
    assert res.exit_code == 1 and "does not exist" in _err(res) and "hint:" in _err(res)
    res = _run("eval", str(colour_model))
    assert res.exit_code == 2 and "needs --data" in _err(res)


@pytest.fixture(scope="module")
def standin_server(tmp_path_factory: pytest.TempPathFactory):
    """The ImageNet entries' artifacts as width-0.25 stand-ins served over real HTTP."""
    from tests.httpserver import FileServer
    from tests.repro_standins import build_artifacts, make_imagenet, standin_recipe

    tmp = tmp_path_factory.mktemp("standins")
    recipes = tmp / "recipes"
    names = [standin_recipe(n, recipes) for n in ("mobilenetv1_qat", "mobilenetv3_large_pact_qat")]
    data = make_imagenet(tmp / "imagenet")
    with FileServer() as srv:
        for path, blob in build_artifacts(tmp).items():
            srv.add(path, blob)
        yield srv, recipes, names, data


def test_eval_entry_exports_published_weights(standin_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries whose default artifact is a weight file (.pdparams, static persistables) are exported, then scored."""
    srv, recipes, names, data = standin_server
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(recipes))
    for name in names:
        res = _run("eval", name, "--data", str(data), "--mirror", srv.base_url, "--json")
        assert res.exit_code == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["artifact"] == "pretrained" and out["images"] == 6 and out["input_size"] == 224
        assert 0.0 <= out["top1"] <= out["top5"] <= 100.0
        assert out["published"]["top1"] > 70  # the FP32 baseline of the real entry


def test_bad_data_fails_before_any_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # a download attempt would fail with an offline error instead
    result = _run("eval", "mobilenetv3_act", "--data", str(tmp_path / "missing"))
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert "does not exist" in message and "offline" not in message
