#!/usr/bin/env python
"""Fast INT8 on x86: every `zoo bench` backend (Paddle Inference oneDNN, Paddle Lite x86, ONNX Runtime,
OpenVINO), FP32 and INT8, at each batch and thread count; the fastest INT8 path that agrees with Paddle's
fake-quant graph, and its speed-up over Paddle Inference FP32.

    .venv/bin/python benchmarks/bench_x86.py [--models mobilenet_v1,mobilenet_v3_large,digits_mobilenetv1_ptq]
        [--batches 1,8] [--threads 1,2] [--repeat 50] [--warmup 10] [--work DIR] [--json results.json]

MobileNetV1 and MobileNetV3-large (224x224, 1000 classes) carry random weights: their latencies are real,
their accuracy is not, so their INT8 paths are checked against the fake-quant graph on the bench inputs
only. A `digits_*` name is an entry reproduced here (`zoo reproduce`) and scored on the bundled digits
val split (real images): top-1 of each INT8 path and its agreement with the fake-quant graph.
INT8 models are made the way `zoo quantize` makes them (abs_max PTQ, legacy fake-quant format, which the
ONNX export rewrites as quantize_linear with the same scales).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

os.environ.setdefault("GLOG_minloglevel", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zoo import quiet  # noqa: E402

quiet.configure(verbose=False)

from zoo.quiet import silenced  # noqa: E402

SIZE = 224


def _network(name: str) -> Any:
    import paddle

    paddle.seed(0)
    if name == "mobilenet_v1":
        from paddle.vision.models import mobilenet_v1

        return mobilenet_v1(scale=1.0, num_classes=1000)
    if name == "mobilenet_v3_large":
        from zoo.models.archs import mobilenet_v3_large_paddleclas

        return mobilenet_v3_large_paddleclas(scale=1.0, num_classes=1000)
    raise SystemExit(f"unknown model {name!r}")


def prepare_random(name: str, work: Path) -> Path:
    """work/NAME/{fp32,int8} + report.json: the network with random weights, and its PTQ INT8 copy."""
    import numpy as np
    import paddle

    from zoo.quant.ptq import quantize_static
    from zoo.quant.settings import PTQSettings

    folder = work / name
    if (folder / "report.json").is_file():
        return folder
    net = _network(name)
    net.eval()
    with silenced():
        paddle.jit.save(net, str(folder / "fp32" / "inference"),
                        input_spec=[paddle.static.InputSpec([None, 3, SIZE, SIZE], "float32", "x")])
        # images-like inputs (ImageNet-normalized uniform noise) so every layer sees a realistic range
        calib = ((np.random.RandomState(0).rand(16, 3, SIZE, SIZE) - 0.45) / 0.225).astype("float32")
        quantize_static(folder / "fp32", folder / "int8", calib,
                        PTQSettings(algo="abs_max", batch_size=8, batch_nums=2,
                                    ops=("conv2d", "depthwise_conv2d", "mul", "matmul_v2")))
    report = {"name": name, "recipe": None, "settings": [{"input_size": SIZE}], "status": "PASS",
              "note": "random weights; made by benchmarks/bench_x86.py"}
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def prepare_entry(name: str, work: Path) -> Path:
    """`zoo reproduce NAME` into work/NAME (reused when already there)."""
    from zoo.registry import get_recipe
    from zoo.reproduce import ReproduceOptions, reproduce

    folder = work / name
    if (folder / "report.json").is_file() and (folder / "int8").is_dir():
        return folder
    with silenced():
        reproduce(get_recipe(name), ReproduceOptions(out=folder))
    return folder


def run_config(folder: Path, batch: int, threads: int, args: argparse.Namespace, data: Optional[Path]) -> Dict[str, Any]:
    from zoo.deploy.bench import bench_model

    started = time.perf_counter()
    result = bench_model(str(folder), backend="all", threads=threads, batch=batch, warmup=args.warmup,
                         repeat=args.repeat, data=data)
    out = result.as_dict()
    out["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def table(results: List[Dict[str, Any]]) -> str:
    """A markdown table: p50 per backend and precision, the fastest checked INT8 path and its speed-up."""
    backends = ["paddle-cpu-onednn", "lite-x86", "onnxruntime-cpu", "openvino-cpu"]
    short = {"paddle-cpu-onednn": "Paddle", "lite-x86": "Lite", "onnxruntime-cpu": "ORT", "openvino-cpu": "OpenVINO"}
    head = ["model", "batch", "threads"] + [f"{short[b]} {v}" for b in backends for v in ("FP32", "INT8")]
    head += ["fastest INT8 (checked)", "vs Paddle FP32", "INT8 top-1 / agreement"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        rows = {(r["variant"], r["backend"]): r for r in res["rows"]}
        cells = [res["label"], str(res["batch"]), str(res["threads"])]
        for b in backends:
            for v in ("fp32", "int8"):
                r = rows.get((v, b))
                ok = r is not None and r["p50_ms"] is not None
                decisive = (r or {}).get("check") or {}
                decisive = decisive.get("data") or decisive.get("noise_inputs")
                fail = ok and v == "int8" and decisive is not None and not decisive["passed"]
                cells.append((f"{r['p50_ms']:.2f}" + (" (wrong)" if fail else "")) if ok else "–")
        fastest = res.get("fastest") or {}
        cells.append(short.get(fastest.get("backend"), "none") if fastest else "none")
        cells.append(f"{fastest['speedup']:.2f}x" if fastest.get("speedup") else "–")
        if fastest.get("top1") is not None:
            cells.append(f"{fastest['top1']:.2f}% / {fastest['top1_agreement']:.1%} (fake-quant {res['reference_top1']:.2f}%)")
        else:
            agree = ((rows.get(("int8", fastest.get("backend"))) or {}).get("check") or {}).get("noise_inputs", {})
            cells.append(f"– / {agree['top1_agreement']:.0%} on noise" if agree.get("top1_agreement") is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_run_args(parser: argparse.ArgumentParser, warmup: int, repeat: int, work: str) -> None:
    """The timing and output flags both x86 benchmarks take."""
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--work", type=Path, default=Path(work), help="models are made (and kept) here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilenet_v1,mobilenet_v3_large,digits_mobilenetv1_ptq")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", default="1,2")
    add_run_args(parser, warmup=10, repeat=50, work="bench-x86-work")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    from zoo.data.digits import materialize
    from zoo.deploy.bench import cpu_flags
    from zoo.deploy.onnx import versions

    results: List[Dict[str, Any]] = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        digits = name.startswith("digits_")
        folder = prepare_entry(name, args.work) if digits else prepare_random(name, args.work)
        for batch in [int(b) for b in args.batches.split(",")]:
            for threads in [int(t) for t in args.threads.split(",")]:
                res = run_config(folder, batch, threads, args, materialize() if digits else None)
                res["label"] = name
                results.append(res)
                print(f"{name} batch {batch} threads {threads}: "
                      + next((n for n in res["notes"] if n.startswith("fastest INT8")), "no INT8 path"), flush=True)
    print()
    print(f"CPU: {os.cpu_count()} cores visible, INT8 instruction sets {', '.join(cpu_flags())}; "
          f"toolchain {versions()}; {args.repeat} timed runs after {args.warmup} warm-up, p50 in ms")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
