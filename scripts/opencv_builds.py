#!/usr/bin/env python
"""How far apart the resizes of different OpenCV builds are, on real photos.

    .venv/bin/python scripts/opencv_builds.py --python 4.2.0.32=/path/to/py37/bin/python \\
        --python 4.6.0.66=.venv/bin/python --python 4.6.0.66-scalar=.venv/bin/python:scalar \\
        [--python LABEL=PYTHON[:scalar] ...] [--reference 4.2.0.32] [--json out.json]

Each interpreter runs this file's worker, which resizes the same uint8 RGB images with its own
`cv2.resize`: the detection readers' square INTER_CUBIC resize at 608/416/320/160 and the
classification readers' short-side INTER_LINEAR resize to 256. Every build is compared with the
reference build, value by value: the share of values that differ and the largest difference.
The images are scikit-learn's two sample photos, whole and cut to odd sizes. The worker keeps to
Python 3.7 and numpy 1.x (paddlepaddle 1.8.5's opencv-python 4.2.0.32 has no newer wheels).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CUBIC_SIDES = (608, 416, 320, 160)
LINEAR_SHORT = 256


def worker(inputs: str, output: str, scalar: bool = False) -> None:
    """Resize every image of `inputs` (npz) with this interpreter's OpenCV; write them and the version to `output`.

    `scalar` turns OpenCV's optimized (SIMD) code paths off first (cv2.setUseOptimized(False)).
    """
    import cv2
    import numpy as np

    cv2.setUseOptimized(not scalar)
    images = np.load(inputs)
    out = {"version": np.array(cv2.__version__)}
    for key in images.files:
        img = images[key]
        h, w = img.shape[:2]
        for side in CUBIC_SIDES:
            out["%s/cubic%d" % (key, side)] = cv2.resize(img, None, None, fx=side / w, fy=side / h,
                                                         interpolation=cv2.INTER_CUBIC)
        scale = float(LINEAR_SHORT) / min(w, h)
        size = (int(round(w * scale)), int(round(h * scale)))
        out["%s/linear%d" % (key, LINEAR_SHORT)] = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    np.savez(output, **out)


def photos() -> dict:
    """scikit-learn's sample photos, whole and cut to odd sizes (uint8 RGB HWC)."""
    import numpy as np
    from sklearn.datasets import load_sample_images

    out = {}
    sample = load_sample_images()
    for path, img in zip(sample.filenames, sample.images):
        stem = Path(path).stem
        out[stem] = img
        out[stem + "_601x401"] = np.ascontiguousarray(img[13:414, 17:618])
        out[stem + "_333x427"] = np.ascontiguousarray(img[:, 101:434])
    return out


def compare(reference: dict, other: dict) -> dict:
    """Share of differing values, largest difference and per-kind shares between two workers' outputs."""
    import numpy as np

    differing = total = 0
    largest = 0
    by_kind: dict = {}
    for key in reference:
        if key == "version":
            continue
        a, b = reference[key].astype(np.int16), other[key].astype(np.int16)
        diff = np.abs(a - b)
        n, d = diff.size, int((diff > 0).sum())
        differing, total, largest = differing + d, total + n, max(largest, int(diff.max()))
        kind = key.split("/")[1]
        kd, kn = by_kind.get(kind, (0, 0))
        by_kind[kind] = (kd + d, kn + n)
    return {"differing_percent": round(100.0 * differing / total, 4), "max_abs_diff": largest,
            "by_resize": {k: round(100.0 * d / n, 4) for k, (d, n) in sorted(by_kind.items())}}


def run(pythons: dict, reference: str) -> dict:
    """Every build's comparison with the reference build."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **photos())
        results = {}
        for label, spec in pythons.items():
            python, _, mode = spec.partition(":")
            out = Path(tmp) / ("%s.npz" % label)
            subprocess.run([python, __file__, "worker", str(inputs), str(out), mode or "optimized"], check=True)
            with np.load(out) as data:
                results[label] = {k: data[k] for k in data.files}
    base = results[reference]
    return {label: {"opencv": str(data["version"]), **compare(base, data)} for label, data in results.items()}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], scalar=sys.argv[4] == "scalar")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", required=True, metavar="LABEL=PYTHON[:scalar]",
                        help="an interpreter with the OpenCV build to measure; ':scalar' runs it with "
                             "cv2.setUseOptimized(False)")
    parser.add_argument("--reference", help="the label to compare with (default: the first)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args()
    pythons = dict(item.split("=", 1) for item in args.python)
    reference = args.reference or next(iter(pythons))
    table = run(pythons, reference)
    print("%-14s %-10s %10s %8s  %s" % ("build", "cv2", "differ %", "max", "by resize (% of values)"))
    for label, row in table.items():
        print("%-14s %-10s %10.4f %8d  %s" % (label, row["opencv"], row["differing_percent"], row["max_abs_diff"],
                                               ", ".join("%s %.4f" % kv for kv in row["by_resize"].items())))
    if args.json:
        args.json.write_text(json.dumps({"reference": reference, "builds": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
