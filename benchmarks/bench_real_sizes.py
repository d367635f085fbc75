#!/usr/bin/env python
"""The deployed speed of the real architectures at their published sizes: batch-1 latency of every `zoo bench`
backend, FP32 and INT8, and the fastest INT8 path whose output check passed, against Paddle Inference FP32.

    .venv/bin/python benchmarks/bench_real_sizes.py [--models mobilenet_v3_large@224,mobilenet_v1@224,
        yolov3_mobilenet_v1@608,yolov3_mobilenet_v1@416,yolov3_mobilenet_v1@320,yolov3_resnet34@608]
        [--threads 1] [--repeat 20] [--warmup 3] [--width 1.0] [--work DIR] [--json results.json]

The digits entries are too small to time, so these are random-weight stand-ins of the published architectures
(1000 ImageNet classes; 80 COCO classes and the legacy YOLOv3 contract: image + im_size, yolo_box, multiclass_nms),
quantized by `zoo quantize` (abs_max, the default op set) on ImageNet-normalized noise. Their latencies are real;
their accuracy is not, so each INT8 path is checked against Paddle's fake-quant graph on the bench inputs (noise
for classifiers, generated canvases for detectors) by the check `zoo bench` applies. A detector's head starts
from a background bias (objectness logit -6), so that, as on a real image, few boxes reach NMS. The goal: the
fastest checked INT8 path at least 2x Paddle Inference FP32 (oneDNN) at batch 1.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_x86  # noqa: E402  (same folder: its run and table)

DEFAULT_MODELS = ("mobilenet_v3_large@224,mobilenet_v1@224,yolov3_mobilenet_v1@608,yolov3_mobilenet_v1@416,"
                  "yolov3_mobilenet_v1@320,yolov3_resnet34@608")
GOAL = 2.0
BACKGROUND_LOGIT = -6.0


def parse_model(spec: str) -> Tuple[str, int]:
    name, _, size = spec.partition("@")
    return name.strip(), int(size or 224)


def _save_fp32(name: str, size: int, width: float, out: Path) -> None:
    import paddle

    from zoo.quiet import silenced

    paddle.seed(0)
    if name.startswith("yolov3_"):
        from zoo.models import archs
        from zoo.models.yolov3 import export_legacy

        net = getattr(archs, name)(num_classes=80, width=width)
        with paddle.no_grad():
            for head in net.outputs:
                _background_head(head)
        export_legacy(net, out, size)
        return
    net = bench_x86._network(name) if width == 1.0 else _small_classifier(name, width)
    net.eval()
    with silenced():
        paddle.jit.save(net, str(out / "inference"),
                        input_spec=[paddle.static.InputSpec([None, 3, size, size], "float32", "x")])


def _small_classifier(name: str, width: float) -> Any:
    from paddle.vision.models import mobilenet_v1

    from zoo.models.archs import mobilenet_v3_large_paddleclas

    return mobilenet_v1(scale=width, num_classes=1000) if name == "mobilenet_v1" else \
        mobilenet_v3_large_paddleclas(scale=width, num_classes=1000)


def _background_head(conv: Any) -> None:
    """Small weights and an objectness bias of BACKGROUND_LOGIT for each anchor's 5 + classes outputs."""
    import paddle

    weight = conv.weight.numpy() * 0.01
    bias = np.zeros(conv.bias.shape, np.float32)
    per_anchor = len(bias) // 3
    bias[4::per_anchor] = BACKGROUND_LOGIT
    conv.weight.set_value(paddle.to_tensor(weight))
    conv.bias.set_value(paddle.to_tensor(bias))


def prepare(spec: str, width: float, work: Path) -> Path:
    """work/NAME@SIZE/{fp32,int8} + report.json: the stand-in and its `zoo quantize` INT8 copy (reused if there)."""
    name, size = parse_model(spec)
    folder = work / f"{name}@{size}"
    if (folder / "report.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    _save_fp32(name, size, width, folder / "fp32")
    calib = folder / "calib.npy"
    np.save(calib, ((np.random.RandomState(0).rand(8, 3, size, size) - 0.45) / 0.225).astype("float32"))
    proc = subprocess.run([sys.executable, "-m", "zoo", "quantize", str(folder / "fp32"), "--calib-data", str(calib),
                           "--algo", "abs_max", "--batch-size", "4", "--batch-nums", "2", "--out", str(folder / "int8"),
                           "--quiet"], capture_output=True, text=True, cwd=HERE.parent)
    if proc.returncode != 0:
        raise SystemExit(f"zoo quantize failed on {spec}:\n{proc.stderr[-2000:]}")
    calib.unlink()
    report = {"name": spec, "recipe": None, "settings": [{"input_size": size}], "status": "PASS",
              "note": "random weights; made by benchmarks/bench_real_sizes.py"}
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def goal_lines(results: List[Dict[str, Any]]) -> List[str]:
    """Per model: the fastest checked INT8 path and whether it reaches GOAL x Paddle FP32."""
    lines = []
    for res in results:
        fastest = res.get("fastest") or {}
        speedup = fastest.get("speedup")
        verdict = ("no checked INT8 path" if not fastest else
                   f"{fastest['backend']} {speedup:.2f}x Paddle FP32: " + ("meets" if speedup >= GOAL else "misses")
                   + f" the {GOAL:g}x goal")
        lines.append(f"{res['label']}: {verdict}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=float, default=1.0, help="channel width (1.0: the published architecture)")
    bench_x86.add_run_args(parser, warmup=3, repeat=20, work="bench-real-sizes-work")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    from zoo.deploy.bench import cpu_flags
    from zoo.deploy.onnx import versions

    results: List[Dict[str, Any]] = []
    for spec in [m.strip() for m in args.models.split(",") if m.strip()]:
        folder = prepare(spec, args.width, args.work)
        res = bench_x86.run_config(folder, 1, args.threads, args, None)
        res["label"] = spec
        results.append(res)
        print(goal_lines([res])[0], flush=True)
    print()
    print(f"CPU: {os.cpu_count()} cores visible, INT8 instruction sets {', '.join(cpu_flags()) or 'none'}; "
          f"toolchain {versions()}; batch 1, {args.threads} thread(s), {args.repeat} timed runs after {args.warmup} "
          f"warm-up, p50 in ms; width {args.width:g}")
    print(bench_x86.table(results))
    print()
    print("\n".join(goal_lines(results)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
