"""`zoo eval`: compared within the recipe's eval tolerance only on the full split; bad labels and
non-finite outputs are refused, not scored."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from zoo.cli.main import app
from .conftest import RUNNER

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def _run(*args: str):  # type: ignore[no-untyped-def]
    result = RUNNER.invoke(app, ["eval", *args])
    result.text = " ".join((result.stdout + result.stderr).split())
    return result


def test_full_split_is_compared_within_tolerance() -> None:
    result = _run("digits_mobilenetv1_ptq", "--json")
    assert result.exit_code == 0, result.text
    comparison = json.loads(result.stdout)["comparison"]
    assert comparison["status"] == "PASS" and comparison["tolerance"] == 0.1
    assert comparison["metrics"]["top1"]["within"] is True and comparison["deviations"] == []


def test_a_subsample_is_only_indicative() -> None:
    result = _run("digits_mobilenetv1_ptq", "--max-samples", "30")
    assert result.exit_code == 0, result.text
    assert "indicative only" in result.text and "within the recipe's eval tolerance" not in result.text


def test_outside_the_eval_tolerance_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (RECIPES / "digits_mobilenetv1_ptq.yaml").read_text()
    text = text.replace("name: digits_mobilenetv1_ptq", "name: digits_offby").replace("fp32_top1: 93.41", "fp32_top1: 91.41")
    (tmp_path / "digits_offby.yaml").write_text(text)
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(tmp_path))
    result = _run("digits_offby")
    assert result.exit_code == 3 and "outside the recipe's eval tolerance (0.10 points)" in result.text


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import paddle

    from zoo.models import save_inference

    class Mean(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.gain = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(1.0))

        def forward(self, x):  # type: ignore[no-untyped-def]
            return paddle.mean(x, axis=[2, 3]) * self.gain

    out = tmp_path_factory.mktemp("three")
    save_inference(Mean(), out, (3, -1, -1))
    return out


def _list_data(root: Path, labels: list) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, label in enumerate(labels):
        Image.new("RGB", (24, 24), (200, 30, 30)).save(root / f"{i}.png")
        lines.append(f"{i}.png {label}")
    (root / "val_list.txt").write_text("\n".join(lines) + "\n")
    return root


def test_a_label_outside_the_models_classes_names_its_line(tmp_path: Path, three_class_model: Path) -> None:
    data = _list_data(tmp_path / "d", [0, 1, 7, 2])
    result = _run(str(three_class_model), "--data", str(data), "--input-size", "24")
    assert result.exit_code == 1, result.text
    assert f"label 7 ({data / 'val_list.txt'}:3) is outside the model's 3 classes" in result.text


def test_non_finite_outputs_are_reported_not_scored(tmp_path: Path) -> None:
    import paddle

    from zoo.models import save_inference

    class Broken(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.gain = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(float("nan")))

        def forward(self, x):  # type: ignore[no-untyped-def]
            return paddle.mean(x, axis=[2, 3]) * self.gain

    save_inference(Broken(), tmp_path / "m", (3, -1, -1))
    data = _list_data(tmp_path / "d", [0, 1])
    result = _run(str(tmp_path / "m"), "--data", str(data), "--input-size", "24", "--json")
    assert result.exit_code == 1 and "NaN or infinite" in result.text and "not scored" in result.text
    assert '"top1"' not in result.stdout


def test_a_folder_is_scored_at_the_size_its_model_declares(tmp_path: Path) -> None:
    import paddle

    from zoo.models import save_inference

    class Fixed(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.fc = paddle.nn.Linear(3 * 20 * 20, 3)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.fc(paddle.flatten(x, 1))

    save_inference(Fixed(), tmp_path / "m", (3, 20, 20))
    data = _list_data(tmp_path / "d", [0, 1, 2])
    result = _run(str(tmp_path / "m"), "--data", str(data), "--json")
    assert result.exit_code == 0, result.text
    assert json.loads(result.stdout)["input_size"] == 20
    result = _run(str(tmp_path / "m"), "--data", str(data), "--crop", "30")
    assert result.exit_code == 2 and "--crop 30 contradicts the model's declared 20x20 input" in result.text


def test_preprocessing_flags_that_cannot_work_are_refused_before_scoring() -> None:
    result = _run("digits_mobilenetv1_ptq", "--std", "0,0,0")
    assert result.exit_code == 2 and "field `std`: std must be positive" in result.text
    result = _run("digits_mobilenetv1_ptq", "--mean", "nan,0,0")
    assert result.exit_code == 2 and "field `mean`: mean must be finite numbers" in result.text
