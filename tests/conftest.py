"""Shared fixtures: every test runs offline with its own cache folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo.numerics import pin_cpu_math

pin_cpu_math()  # as the CLI does at start-up, before any test makes Paddle compute
REPO = Path(__file__).resolve().parents[1]

# stdout and stderr apart: older click needs mix_stderr=False, newer click has no such argument
RUNNER = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A session-wide ZOO_HOME so nothing touches the user's cache; no mirror leaks in."""
    home = tmp_path_factory.getbasetemp() / "zoo-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.delenv("ZOO_MIRROR", raising=False)
    monkeypatch.delenv("ZOO_RECIPE_PATH", raising=False)
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    return home


@pytest.fixture
def zoo_home() -> Path:
    return Path(os.environ["ZOO_HOME"])
