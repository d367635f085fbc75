"""Comparison against published numbers and the report files."""
from __future__ import annotations

import json
from pathlib import Path

from tests.quant_tiny import tiny_recipe
from zoo.protocol import Deviation, as_json, status
from zoo.report import all_within, compare, markdown, write_report


def _recipe():  # type: ignore[no-untyped-def]
    return tiny_recipe("ptq", published=[{"input_size": 16, "top1": 70.0, "top5": 90.0, "fp32_top1": 71.0}],
                       tolerance={"reproduce": 0.5})


def test_within_tolerance_passes_and_a_miss_fails() -> None:
    recipe = _recipe()
    ok = compare(recipe, {16: {"top1": 70.4, "top5": 89.6}}, {16: {"top1": 71.2, "top5": 91.0}})
    assert all_within(ok) is True
    m = ok[0]["metrics"]["top1"]
    assert m == {"measured": 70.4, "published": 70.0, "diff": 0.4, "tolerance": 0.5, "pass": True}
    assert ok[0]["fp32"]["top1"] == {"measured": 71.2, "published": 71.0, "diff": 0.2}
    assert ok[0]["int8_drop"]["top1"] == 0.8
    miss = compare(recipe, {16: {"top1": 70.4, "top5": 89.4}}, {16: {"top1": 71.2}})
    assert all_within(miss) is False and miss[0]["metrics"]["top5"]["pass"] is False


def test_an_unmeasured_setting_is_a_miss() -> None:
    settings = compare(_recipe(), {}, {})
    assert settings[0]["metrics"]["top1"]["measured"] is None
    assert all_within(settings) is False


def test_report_files_are_written(tmp_path: Path) -> None:
    settings = compare(_recipe(), {16: {"top1": 70.1, "top5": 90.0}}, {16: {"top1": 71.0}})
    report = {"name": "tiny_ptq", "status": status(all_within(settings), []), "strategy": "ptq", "settings": settings,
              "artifacts": {"int8": "x"}, "timings": {"total": 1.0}, "versions": {"paddle": "2.6.2"}}
    paths = write_report(report, tmp_path)
    assert json.loads(paths["json"].read_text())["status"] == "PASS"
    md = paths["markdown"].read_text()
    assert "| 16 | top1 | 70.10 | 70.00 | +0.10 | 0.50 | 71.00 |" in md
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    assert markdown(report).startswith("# tiny_ptq: PASS")


def test_a_partial_report_says_what_differed(tmp_path: Path) -> None:
    settings = compare(_recipe(), {16: {"top1": 70.1, "top5": 90.0}}, {16: {"top1": 71.0}})
    found = [Deviation("evaluation images", "all 500", "50 (--max-samples 50)")]
    report = {"name": "tiny_ptq", "status": status(all_within(settings), found), "strategy": "ptq",
              "settings": settings, "protocol": {"followed": False, "deviations": as_json(found)}}
    md = markdown(report)
    assert md.startswith("# tiny_ptq: PARTIAL") and "indicative" in md
    assert "- evaluation images: 50 (--max-samples 50) (recipe: all 500)" in md


def test_plotting_leaves_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg", force=True)  # a host application's own choice
    try:
        settings = compare(_recipe(), {16: {"top1": 70.1, "top5": 90.0}}, {16: {"top1": 71.0}})
        write_report({"name": "t", "status": "PASS", "strategy": "ptq", "settings": settings}, tmp_path)
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before, force=True)


def test_error_messages_are_printed_verbatim(capsys) -> None:  # type: ignore[no-untyped-def]
    from zoo.cli.common import render_error
    from zoo.errors import DataError

    code = render_error(DataError("cannot read [/x] in [bold]a.tar[/bold]", hint="see [red]here"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "cannot read [/x] in [bold]a.tar[/bold]" in err and "see [red]here" in err
