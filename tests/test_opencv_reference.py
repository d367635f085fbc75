"""The cv2 backend's resize against opencv-python 4.2.0.32 itself (PaddleDetection 0.x's build).

`.venv-lite` (CPython 3.7) holds opencv-python 4.2.0.32, the build paddlepaddle 1.8.5 pinned; the
zoo's environment holds paddleslim's 4.6.0.66. scripts/opencv_builds.py runs the same resizes of
real photos under both; the zoo's `cv2_resize` (OpenCV's scalar kernels) must give 4.2.0.32's
pixels exactly, where the plain optimized call does not.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from zoo.data.transforms import cv2_resize, eval_transform, opencv_build
from zoo.deploy.toolchain import lite_python
from zoo.registry import get_recipe

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "opencv_builds.py"


@pytest.fixture(scope="module")
def reference_python() -> Path:
    python = lite_python()
    probe = subprocess.run([str(python), "-c", "import cv2; print(cv2.__version__)"], capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.strip() == "4.2.0", probe.stderr  # make setup installs it
    return python


def _reference_resizes(python: Path, tmp_path: Path, images: dict) -> dict:
    np.savez(tmp_path / "in.npz", **images)
    subprocess.run([str(python), str(SCRIPT), "worker", str(tmp_path / "in.npz"), str(tmp_path / "out.npz"),
                    "optimized"], check=True)
    with np.load(tmp_path / "out.npz") as data:
        return {k: data[k] for k in data.files}


def test_cv2_resize_is_opencv_4_2_bit_for_bit(reference_python: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import opencv_builds
    finally:
        sys.path.pop(0)
    images = opencv_builds.photos()
    reference = _reference_resizes(reference_python, tmp_path, images)
    assert str(reference["version"]) == "4.2.0"
    plain_differs = 0
    for key, img in images.items():
        h, w = img.shape[:2]
        for side in opencv_builds.CUBIC_SIDES:
            want = reference[f"{key}/cubic{side}"]
            np.testing.assert_array_equal(cv2_resize(img, (side, side), "bicubic"), want, err_msg=f"{key} {side}")
            plain = cv2.resize(img, None, None, fx=side / w, fy=side / h, interpolation=cv2.INTER_CUBIC)
            plain_differs += int((plain != want).sum())
        want = reference[f"{key}/linear256"]
        np.testing.assert_array_equal(cv2_resize(img, want.shape[1::-1], "bilinear"), want, err_msg=f"{key} linear")
    assert plain_differs > 0  # the optimized bicubic of this build is not 4.2's: the check above can fail
    assert cv2.useOptimized()  # the switch is restored


def test_detection_transform_uses_the_reference_resize(reference_python: Path, tmp_path: Path) -> None:
    """A YOLOv3 entry's whole eval transform, fed 4.2.0.32's resize of the same photo, gives the same array."""
    from sklearn.datasets import load_sample_images

    photo = np.ascontiguousarray(load_sample_images().images[1])
    pre = get_recipe("yolov3_r34_coco_quant_post").preprocess
    got = eval_transform(pre, 416)(photo)
    resized = _reference_resizes(reference_python, tmp_path, {"p": photo})["p/cubic416"]
    want = (resized.astype(np.float32) / np.float32(255) - np.float32(pre.mean)) / np.float32(pre.std)
    np.testing.assert_allclose(got, want.transpose(2, 0, 1), rtol=0, atol=1e-6)


def test_opencv_builds_script_reports_no_difference(reference_python: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.json"
    subprocess.run([sys.executable, str(SCRIPT), "--python", f"4.2.0.32={reference_python}",
                    "--python", f"here-scalar={sys.executable}:scalar", "--python", f"here={sys.executable}",
                    "--json", str(out)], check=True, capture_output=True)
    table = json.loads(out.read_text())["builds"]
    assert table["here-scalar"]["differing_percent"] == 0.0 and table["here-scalar"]["max_abs_diff"] == 0
    assert table["here"]["max_abs_diff"] == 1 and table["here"]["differing_percent"] > 0.5
    assert table["here"]["by_resize"]["linear256"] == 0.0
    assert opencv_build().startswith(f"opencv {cv2.__version__}")
