"""SIGTERM stops a run like Ctrl-C: the finished stages are kept, the --resume hint printed, no native traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_sigterm_during_training_keeps_the_stages_and_says_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "reproduce", "digits_mobilenetv1_qat", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while not (out / "fp32" / "inference.pdmodel").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(2)  # inside training now
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted; the finished stages are kept" in stderr and "--resume" in stderr
    assert "FatalError" not in stderr and "Termination signal" not in stderr
    assert (out / "fp32" / "inference.pdmodel").is_file()
