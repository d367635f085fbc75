"""Paddle Inference 3.x as a consumer of the zoo's files (the .venv-paddle3 environment `make setup` builds),
and the version stamps of exports: every export names what wrote it; an x86 `.nb` written by another Lite opt
version than the runtime's is refused with both versions named."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.cli.main import app
from zoo.deploy.lite import nb_opt_version, run_nb, x86_runtime_version
from zoo.runtime import open_runtime
from zoo.deploy.toolchain import paddle3_python
from zoo.errors import ExportError
from zoo.modelfiles import find_model_files

from .conftest import RUNNER
from .deploy_models import int8_model, pooled_classifier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pooled_classifier(tmp_path_factory.mktemp("p3"), [None, 3, 16, 16], classes=3)


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("p3data")
    rng = np.random.default_rng(0)
    for label in ("a", "b", "c"):
        (root / "val" / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "val" / label / f"{i}.png")
    return root


def test_make_setup_built_paddle3() -> None:
    python = paddle3_python(required=False)
    assert python is not None and python.is_file(), "`make setup` builds .venv-paddle3"


def test_paddle3_computes_what_paddle_2_computes(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """FP32 and the fake-quant INT8 graph: Paddle Inference 3.x gives Paddle 2.6's outputs."""
    x = np.random.default_rng(1).random((4, 3, 8, 8), dtype=np.float32)
    for folder in (int8_model(tmp_path_factory),):
        files = find_model_files(folder)
        want = open_runtime("paddle", files, tmp_path / "a").run([x])[0]
        runner = open_runtime("paddle3", files, tmp_path / "b")
        try:
            got = runner.run([x])[0]
            assert runner.version.startswith("3.") and "Paddle Inference 3." in runner.detail
        finally:
            runner.close()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_eval_runtime_paddle3_scores_like_paddle(classifier: Path, folder_data: Path) -> None:
    scores = {}
    for runtime in ("paddle", "paddle3"):
        res = RUNNER.invoke(app, ["eval", str(classifier), "--data", str(folder_data), "--runtime", runtime, "--json"])
        assert res.exit_code == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["runtime"] == runtime
        scores[runtime] = out["top1"]
    assert scores["paddle3"] == scores["paddle"]


def test_inference_export_is_checked_on_paddle3_and_stamped(classifier: Path, tmp_path: Path) -> None:
    res = RUNNER.invoke(app, ["export", str(classifier), "--target", "inference", "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.stderr
    (art,) = json.loads(res.stdout)["artifacts"]
    check = art["validation"]
    assert check["paddle"].startswith("2.6") and check["paddle3"]["version"].startswith("3.")
    assert check["paddle3"]["passed"] and check["paddle3"]["max_rel_error"] < 1e-5
    meta = json.loads((tmp_path / "o" / "zoo_export.json").read_text())
    assert meta["produced_by"]["paddlepaddle"].startswith("2.6") and "paddleslim" in meta["produced_by"]


def test_an_nb_from_another_opt_version_is_refused(classifier: Path, tmp_path: Path) -> None:
    res = RUNNER.invoke(app, ["export", str(classifier), "--target", "lite", "--arch", "x86", "--out", str(tmp_path / "l")])
    assert res.exit_code == 0, res.stderr
    nb = tmp_path / "l" / "model.x86.fp32.nb"
    written = nb_opt_version(nb)
    assert written is not None and written.lstrip("v") == x86_runtime_version().lstrip("v")
    x = np.zeros((1, 3, 16, 16), np.float32)
    assert run_nb(nb, [x])[0].shape == (1, 3)
    other = tmp_path / "other.nb"
    shutil.copyfile(nb, other)
    data = bytearray(other.read_bytes())
    data[2:18] = b"v2.10".ljust(16, b"\0")
    other.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"written by Paddle Lite opt v2\.10; the x86 runtime here is"):
        run_nb(other, [x])


def test_bench_times_paddle3_and_checks_its_int8(tmp_path_factory: pytest.TempPathFactory) -> None:
    res = RUNNER.invoke(app, ["bench", str(int8_model(tmp_path_factory)), "--backend", "paddle3", "--repeat", "3",
                              "--warmup", "1", "--json"])
    assert res.exit_code == 0, res.stderr
    rows = [r for r in json.loads(res.stdout)["rows"] if r["backend"] == "paddle3-cpu"]
    assert rows and all(r["p50_ms"] > 0 for r in rows)
    int8 = [r for r in rows if r["variant"] == "int8"]
    assert int8 and int8[0]["check"]["noise_inputs"]["passed"]  # the fake-quant graph, as on Paddle 2.6
