"""`zoo reproduce` on the bundled digits PTQ entry: PASS only for the full protocol, PARTIAL (exit 4)
otherwise, output folders guarded, --resume checked, Ctrl-C kept what finished."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zoo.cli.main import app
from zoo.modelfiles import find_model_files, model_sha256
from .conftest import RUNNER

ENTRY = "digits_mobilenetv1_ptq"


def _run(*args: str):  # type: ignore[no-untyped-def]
    result = RUNNER.invoke(app, ["reproduce", ENTRY, *args])
    result.text = " ".join((result.stdout + result.stderr).split())
    return result


def _digits() -> Path:
    from zoo.data.digits import materialize

    return materialize()


def test_a_shortened_run_is_partial_and_says_why(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _run("--out", str(out), "--max-samples", "40")
    assert result.exit_code == 4, result.text
    assert "PARTIAL" in result.text and "evaluation images: 40 (--max-samples 40)" in result.text
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "PARTIAL" and report["protocol"]["followed"] is False
    assert [d["setting"] for d in report["protocol"]["deviations"]] == ["evaluation images"]
    data = report["data"]
    assert (data["images"], data["split_images"], data["calib_split"], data["calib_images"]) == (40, 364, "train", 160)
    assert report["fp32_sha256"] == model_sha256(find_model_files(out / "fp32"))
    assert report["options"]["device"] == "cpu" and report["options"]["seed"] == 0
    assert {"paddlepaddle", "paddleslim", "paddlelite"} <= set(report["versions"])
    assert "indicative" in (out / "report.md").read_text()

    # --resume with other settings is refused, saying what differs; the run is left as it was
    again = _run("--out", str(out), "--max-samples", "30", "--resume")
    assert again.exit_code == 2 and "max_samples: was 40, now 30" in again.text
    assert json.loads((out / "report.json").read_text())["data"]["images"] == 40

    # another entry's run is not overwritten without --overwrite
    other = RUNNER.invoke(app, ["reproduce", "digits_mobilenetv1_qat", "--out", str(out)])
    assert other.exit_code == 2 and "holds a run of digits_mobilenetv1_ptq" in " ".join(other.stderr.split())


def test_user_files_and_file_targets_are_refused(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "int8").mkdir(parents=True)
    (mine / "int8" / "model.txt").write_text("my own model")
    result = _run("--out", str(mine))
    assert result.exit_code == 2 and "the zoo did not write (int8)" in result.text and "--overwrite" in result.text
    assert (mine / "int8" / "model.txt").read_text() == "my own model"
    target = tmp_path / "a-file"
    target.write_text("x")
    result = _run("--out", str(target))
    assert result.exit_code == 2 and "is a file" in result.text and target.read_text() == "x"


def test_calibrating_on_the_evaluation_split_needs_a_flag(tmp_path: Path) -> None:
    data = tmp_path / "val-only"
    shutil.copytree(_digits() / "val", data / "val")
    shutil.copy(_digits() / "val_list.txt", data / "val_list.txt")
    result = _run("--data", str(data), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "no train split to calibrate on" in result.text and "--calib-on-eval" in result.text
    assert not (tmp_path / "o").exists()
    result = _run("--data", str(data), "--out", str(tmp_path / "o"), "--calib-on-eval", "--json")
    assert result.exit_code == 4
    report = json.loads(result.stdout)
    assert report["data"]["calib_split"] == "val"
    assert "calibration split" in [d["setting"] for d in report["protocol"]["deviations"]]


def test_an_interrupt_keeps_finished_stages_and_names_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.reproduce

    out = tmp_path / "run"
    real = zoo.reproduce._quantize

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo.reproduce, "_quantize", interrupted)
    result = _run("--out", str(out))
    assert result.exit_code == 130 and "--resume" in result.text and "Traceback" not in result.text
    stages = json.loads((out / "stages.json").read_text())
    assert "fp32" in stages and "eval_fp32" in stages and "int8" not in stages

    calls = []
    monkeypatch.setattr(zoo.reproduce, "_quantize", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(zoo.reproduce, "_evaluate", _counting(zoo.reproduce._evaluate, calls))
    result = _run("--out", str(out), "--resume", "--json")
    assert result.exit_code == 0, result.text
    assert len(calls) == 2  # quantized once and evaluated once (INT8): the FP32 score was reused
    assert json.loads(result.stdout)["options"]["resumed"] is True


def _counting(func, calls):  # type: ignore[no-untyped-def]
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return func(*args, **kwargs)

    return wrapper


def test_the_result_table_fits_80_columns_and_wide_shows_everything() -> None:
    import io

    from rich.console import Console

    from zoo.cli.reproduce import _table
    from zoo.cli.tables import print_table

    metric = {"measured": 92.86, "published": 92.86, "diff": 0.0, "tolerance": 1.0, "pass": True}
    report = {"name": "digits_mobilenetv1_ptq", "strategy": "ptq", "status": "PASS",
              "settings": [{"input_size": 32, "metrics": {"top1": metric, "top5": dict(metric, measured=99.73)},
                            "fp32": {"top1": {"measured": 93.41, "published": 93.41}}}]}
    for wide, width in ((False, 80), (True, 200)):
        out = io.StringIO()
        print_table(Console(file=out, width=width, force_terminal=True, color_system=None), _table(report, wide))
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= (80 if not wide else 200)
        assert ("FP32 published" in out.getvalue()) is wide
        assert "92.86" in out.getvalue() and "pass" in out.getvalue()
