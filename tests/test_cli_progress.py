"""Training progress on stderr: a bar on a terminal, one line per epoch otherwise, nothing with --quiet."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

from rich.console import Console

from zoo.cli.main import app
from zoo.cli.progress import TrainingDisplay, epoch_line

from .conftest import RUNNER

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+): (\d+) steps, mean loss \d+\.\d{4}, \d+\.\d s$")


def _feed(display: TrainingDisplay) -> None:
    display.start(total_steps=6, epochs=2)
    for step in range(1, 7):
        epoch = 1 if step <= 3 else 2
        display.step(epoch, step, 1.0 / step)
        if step % 3 == 0:
            display.epoch_end(epoch, {"steps": 3, "loss": 0.5, "seconds": 1.25})
    display.close()


def test_plain_output_is_one_line_per_epoch() -> None:
    out = io.StringIO()
    _feed(TrainingDisplay(Console(file=out, force_terminal=False, width=120)))
    assert out.getvalue().splitlines() == ["epoch 1/2: 3 steps, mean loss 0.5000, 1.2 s",
                                           "epoch 2/2: 3 steps, mean loss 0.5000, 1.2 s"]


def test_a_terminal_gets_a_bar_with_epoch_steps_loss_and_eta() -> None:
    out = io.StringIO()
    display = TrainingDisplay(Console(file=out, force_terminal=True, width=120))
    assert display.live
    display.start(total_steps=6, epochs=2)
    display.step(1, 2, 0.25)
    assert display._bar is not None
    display._bar.refresh()
    shown = out.getvalue()
    for text in ("epoch 1/2", "2/6", "loss 0.2500", "ETA"):
        assert text in shown, shown
    display.epoch_end(1, {"steps": 3, "loss": 0.5, "seconds": 1.0})
    assert display._bar is not None and "epoch 1/2: 3 steps" in out.getvalue()
    display.epoch_end(2, {"steps": 3, "loss": 0.5, "seconds": 1.0})
    assert display._bar is None  # the last epoch takes the bar off the screen


def test_an_epoch_without_a_known_loss_says_so_by_leaving_it_out() -> None:
    assert epoch_line(3, 4, {"steps": 7, "seconds": 2.0}) == "epoch 3/4: 7 steps, 2.0 s"


def _reproduce_qat(tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return RUNNER.invoke(app, ["reproduce", "digits_mobilenetv1_qat", "--epochs", "2", "--max-samples", "128",
                               "--batch-size", "32", "--out", str(tmp_path / "o"), "--json", *extra])


def test_reproduce_prints_one_line_per_qat_epoch_and_keeps_json_clean(tmp_path: Path) -> None:
    result = _reproduce_qat(tmp_path)
    report = json.loads(result.stdout)  # stdout holds the JSON alone
    assert report["training"]["epochs_run"] == [1, 2]
    lines = [m for m in map(EPOCH_LINE.match, result.stderr.splitlines()) if m]
    assert [(m.group(1), m.group(2)) for m in lines] == [("1", "2"), ("2", "2")]
    assert all(int(m.group(3)) == report["training"]["history"][0]["steps"] for m in lines)


def test_reproduce_quiet_prints_no_progress(tmp_path: Path) -> None:
    result = _reproduce_qat(tmp_path, "--quiet")
    assert json.loads(result.stdout)["training"]["epochs_run"] == [1, 2]
    assert "epoch 1/2" not in result.stderr and "steps" not in result.stderr


def _pooled(tmp_path: Path) -> Path:
    import numpy as np

    from .deploy_models import pooled_classifier

    folder = pooled_classifier(tmp_path / "model", [None, 3, 8, 8], classes=4)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib.npy", rng.random((6, 3, 8, 8), dtype=np.float32))
    np.savez(tmp_path / "eval.npz", x=rng.random((8, 3, 8, 8), dtype=np.float32), y=rng.integers(0, 4, 8))
    return folder


def test_quantize_analyze_and_bench_report_progress_unless_quiet(tmp_path: Path) -> None:
    """Calibration batches, analysed layers (with the time left) and each bench row appear on stderr as they
    are done; --quiet leaves stderr without them."""
    model = _pooled(tmp_path)
    calib = ["--calib-data", str(tmp_path / "calib.npy"), "--batch-size", "2", "--batch-nums", "3", "--algo", "abs_max"]
    res = RUNNER.invoke(app, ["quantize", str(model), *calib, "--out", str(tmp_path / "q")])
    assert res.exit_code == 0, res.stderr
    assert re.search(r"calibration batch 3/3, \d+\.\d s", res.stderr)
    res = RUNNER.invoke(app, ["quantize", str(model), *calib, "--out", str(tmp_path / "q2"), "--quiet"])
    assert res.exit_code == 0 and "calibration" not in res.stderr
    res = RUNNER.invoke(app, ["analyze", str(model), *calib, "--eval-data", str(tmp_path / "eval.npz"),
                              "--metric", "cosine"])
    assert res.exit_code == 0, res.stderr
    assert re.search(r"layer 1/1 .* about \d+ s left", " ".join(res.stderr.split()))
    res = RUNNER.invoke(app, ["bench", str(tmp_path / "q"), "--repeat", "2", "--warmup", "0"])
    assert res.exit_code == 0, res.stderr
    assert re.search(r"int8 on paddle\S*: p50 \d+\.\d{3} ms", res.stderr)
    res = RUNNER.invoke(app, ["bench", str(tmp_path / "q"), "--repeat", "2", "--warmup", "0", "--quiet"])
    assert res.exit_code == 0 and "p50" not in res.stderr
