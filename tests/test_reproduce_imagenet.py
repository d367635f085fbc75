"""The four ImageNet entries end to end on a tiny ImageNet-layout folder, with small stand-in
artifacts served over real HTTP (ZOO_MIRROR), so fetch -> build -> quantize -> evaluate -> report
all run. The numbers cannot match the published ones: FAIL (exit 3) is the expected outcome;
the tests assert that the report is complete and that each strategy's code path ran.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Tuple

import pytest
from typer.testing import CliRunner

from tests.httpserver import FileServer
from tests.repro_standins import build_artifacts, make_imagenet, standin_recipe
from zoo.cli.main import app
from zoo.reproduce import ReproduceOptions, reproduce

pytestmark = pytest.mark.slow

ENTRIES = ("mobilenetv3_small_ptq", "mobilenetv1_qat", "mobilenetv3_large_pact_qat", "mobilenetv3_act")


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, Path, Path]]:
    root = tmp_path_factory.mktemp("standins")
    data = make_imagenet(root / "imagenet")
    recipes = root / "recipes"
    for name in ENTRIES:
        standin_recipe(name, recipes)
    artifacts = build_artifacts(root)
    with FileServer() as server:
        for path, blob in artifacts.items():
            server.add(path, blob)
        yield server.base_url, data, recipes


@pytest.fixture
def env(standins: Tuple[str, Path, Path], monkeypatch: pytest.MonkeyPatch) -> Tuple[Path, Path]:
    mirror, data, recipes = standins
    monkeypatch.setenv("ZOO_MIRROR", mirror)
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(recipes))
    return data, recipes


def _complete(report: dict, out: Path, strategy: str) -> None:
    # a few images of a tiny folder, not ImageNet's 50,000: never PASS or FAIL
    assert report["status"] == "PARTIAL"
    assert "evaluation set" in {d["setting"] for d in report["protocol"]["deviations"]}
    assert report["strategy"] == strategy
    (setting,) = report["settings"]
    assert setting["input_size"] == 224
    top1 = setting["metrics"]["top1"]
    assert set(top1) == {"measured", "published", "diff", "tolerance", "pass"}
    assert top1["tolerance"] == 0.5 and top1["measured"] is not None
    assert setting["fp32"]["top1"]["measured"] is not None
    for key in ("fp32", "int8"):
        assert (Path(report["artifacts"][key]) / "inference.pdmodel").is_file()
        assert (Path(report["artifacts"][key]) / "inference.pdiparams").is_file()
    assert {"fp32", "quantize", "eval_fp32", "eval_int8", "total"} <= set(report["timings"])
    assert "paddlepaddle" in report["versions"] and "paddleslim" in report["versions"]
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["status"] == report["status"] and on_disk["settings"] == report["settings"]
    assert (out / "report.md").read_text().startswith(f"# {report['name']}")
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _quant_ops(folder: Path) -> set:
    from tests.quant_tiny import op_types

    return {op for op in op_types(folder) if "quant" in op}


def test_ptq_entry_runs_end_to_end(env: Tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = env
    report = reproduce("standin_mobilenetv3_small_ptq", ReproduceOptions(data=data, out=tmp_path / "o", max_samples=6))
    _complete(report, tmp_path / "o", "ptq")
    assert report["data"]["images"] == 3 * 2
    assert _quant_ops(tmp_path / "o" / "int8")


def test_qat_entry_runs_end_to_end(env: Tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = env
    report = reproduce("standin_mobilenetv1_qat", ReproduceOptions(data=data, out=tmp_path / "o", max_samples=6))
    _complete(report, tmp_path / "o", "qat")
    assert report["training"]["epochs_run"] == [1]
    assert (tmp_path / "o" / "checkpoints" / "state.json").is_file()
    assert _quant_ops(tmp_path / "o" / "int8")


def test_pact_qat_entry_runs_end_to_end(env: Tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = env
    report = reproduce(
        "standin_mobilenetv3_large_pact_qat", ReproduceOptions(data=data, out=tmp_path / "o", max_samples=6, epochs=1)
    )
    _complete(report, tmp_path / "o", "qat")
    assert report["recipe"]["quant"]["pact"] is True
    assert report["training"]["epochs"] == 1
    assert _quant_ops(tmp_path / "o" / "int8")


def test_act_entry_runs_end_to_end_through_the_cli(env: Tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = env
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app,
        ["reproduce", "standin_mobilenetv3_act", "--data", str(data), "--out", str(out), "--max-samples", "6",
         "--epochs", "1", "--json"],
    )
    assert result.exit_code == 4, result.output
    report = json.loads(result.stdout)
    assert "epochs" in {d["setting"] for d in report["protocol"]["deviations"]}
    _complete(report, out, "act")
    assert "quantize_linear" in _quant_ops(out / "int8")  # onnx_format from the recipe
