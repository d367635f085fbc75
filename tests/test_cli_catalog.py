"""`zoo list`, `zoo info`, `zoo docs`: through typer's runner and once as a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


from zoo.cli.main import app

from .conftest import REPO, RUNNER

runner = RUNNER


def test_list_json_has_every_entry_with_numbers() -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert len(rows) >= 9
    r34 = rows["yolov3_r34_coco_quant_aware"]
    assert [p["int8"]["box_ap"] for p in r34["published"]] == [35.2, 33.3, 30.3]
    assert rows["mobilenetv3_small_ptq"]["published"][0]["fp32"] == {"top1": 60.15, "top5": 82.53}
    assert rows["mobilenetv3_act"]["drop"] == 0.92


def test_list_filters() -> None:
    result = runner.invoke(app, ["list", "yolov3*", "--strategy", "ptq", "--json"])
    assert result.exit_code == 0
    assert {r["name"] for r in json.loads(result.stdout)} == {
        "yolov3_mobilenetv1_coco_quant_post", "yolov3_r34_coco_quant_post"}
    result = runner.invoke(app, ["list", "--task", "classification", "--json"])
    assert all(r["task"] == "classification" for r in json.loads(result.stdout))


def _rows(stdout: str) -> dict:
    """{first word: the rest of the line's words} of a printed table."""
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.strip()}


def test_list_compact_fits_80_columns_with_whole_names() -> None:
    result = runner.invoke(app, ["list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = _rows(result.stdout)
    assert rows["name"] == ["strategy", "metric", "INT8", "FP32", "drop"]
    names = {r["name"] for r in json.loads(runner.invoke(app, ["list", "--json"]).stdout)}
    assert names <= set(rows) and len(lines) == len(names) + 2  # title, header, then one whole name a line
    assert rows["mobilenetv3_act"] == ["act", "top-1", "74.40", "75.32", "0.92"]
    assert rows["yolov3_r34_coco_quant_aware"] == ["qat", "AP", "608", "35.2", "36.2", "1.00"]
    assert rows["yolov3_r50vd_dcn_obj365_coco_quant_aware"][-1] == "0.80"


def test_list_wide_shows_every_metric_one_line_per_entry() -> None:
    result = runner.invoke(app, ["list", "r34", "--wide"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "task" in rows["name"] and "INT8 (published)" in rows["name"]
    assert "detection" in rows["yolov3_r34_coco_quant_aware"]
    assert "608: 35.2, 416: 33.3, 320: 30.3" in rows["yolov3_r34_coco_quant_aware"]
    assert "608: 36.2, 416: 34.3, 320: 31.4" in rows["yolov3_r34_coco_quant_post"]  # FP32 of every setting
    assert len(rows) == 4  # title, header, two entries: not folded into the 80 columns of a pipe


def test_compact_table_folds_names_only_when_the_terminal_is_too_narrow() -> None:
    import io

    from rich.console import Console

    from zoo.cli.tables import compact_table

    name = "yolov3_r50vd_dcn_obj365_coco_quant_aware"
    for width in (80, 50):
        table = compact_table(["name", "strategy", "INT8 (published)", "drop"], numeric={"drop"}, keep_whole={"name"})
        table.add_row(name, "qat", "608: 40.6, 416: 37.5, 320: 34.1", "-0.80")
        out = io.StringIO()
        Console(file=out, width=width).print(table)
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width
        assert "-0.80" in out.getvalue() and "strategy" in out.getvalue()  # no column squeezed away
        first_col = [line.split()[0] for line in lines if line[:1].strip() and not line.startswith("name")]
        if width == 80:
            assert first_col == [name]
        else:
            assert len(first_col) > 1 and "".join(first_col) == name  # folded over lines, but whole


def test_list_bad_strategy_is_a_usage_error() -> None:
    result = runner.invoke(app, ["list", "--strategy", "magic"])
    assert result.exit_code == 2


def test_info_json_round_trips_the_recipe() -> None:
    result = runner.invoke(app, ["info", "mobilenetv3_act", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["train"]["distill"]["loss"] == "soft_label"
    assert data["source"]["url"].startswith("https://")
    assert data["recipe_file"].endswith("mobilenetv3_act.yaml")


def test_info_human_output_names_the_source() -> None:
    result = runner.invoke(app, ["info", "yolov3_r34_coco_quant_aware"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "published numbers from" in result.stdout
    assert "yolov3_r34_coco_quant_aware.tar" in result.stdout
    assert "network: yolov3_resnet34() from zoo.models.archs; loads PaddleDetection 0.x static persistables" in result.stdout
    digits = runner.invoke(app, ["info", "digits_yolov3_mobilenetv1_qat"], env={"COLUMNS": "200"})
    assert "network: yolov3_mobilenet_v1(width=0.25)" in digits.stdout


def test_info_unknown_exits_1_with_suggestion() -> None:
    result = runner.invoke(app, ["info", "mobilenetv3_actt"])
    assert result.exit_code == 1
    assert "no zoo entry named 'mobilenetv3_actt'" in result.stderr
    assert "mobilenetv3_act" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_model_zoo_md_is_in_sync() -> None:
    result = runner.invoke(app, ["docs", "model-zoo", "--check", "--output", str(REPO / "MODEL_ZOO.md"),
                                 "--matrix", str(REPO / "benchmarks" / "matrix-receipt.json")])
    assert result.exit_code == 0, "MODEL_ZOO.md is out of sync: run `zoo docs model-zoo --write`\n" + result.stderr


def test_model_zoo_check_detects_drift(tmp_path: Path) -> None:
    stale = tmp_path / "MODEL_ZOO.md"
    stale.write_text((REPO / "MODEL_ZOO.md").read_text().replace("35.2", "99.9"))
    result = runner.invoke(app, ["docs", "model-zoo", "--check", "--output", str(stale)])
    assert result.exit_code == 1 and "out of sync" in result.stderr


def _zoo(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_real_process_unknown_name() -> None:
    proc = _zoo("info", "nope")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no zoo entry named 'nope'")
    assert "Traceback" not in proc.stderr


def test_real_process_debug_shows_traceback() -> None:
    proc = _zoo("info", "nope", ZOO_DEBUG="1")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "UnknownNameError" in proc.stderr


def test_real_process_list_in_a_pipe_fits_80_columns() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "yolov3_r50vd_dcn_obj365_coco_quant_aware" in [line.split()[0] for line in lines if line.strip()]


def test_real_process_list_json() -> None:
    proc = _zoo("list", "--json")
    assert proc.returncode == 0
    assert len(json.loads(proc.stdout)) >= 9
