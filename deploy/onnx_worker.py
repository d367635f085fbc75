"""Time one ONNX model with ONNX Runtime or OpenVINO in its own process, so its peak memory is its own.

    python -m zoo.deploy.onnx_worker --runtime onnxruntime|openvino --model model.onnx --inputs in.npz ...

Prints one JSON line (after the marker) with the latencies and the peak RSS.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from zoo.deploy.lite_worker import peak_rss_kb, time_runs
from zoo.deploy.paddle_worker import MARKER


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="onnx_worker")
    parser.add_argument("--runtime", required=True, choices=("onnxruntime", "openvino"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)

    import numpy as np

    if args.runtime == "onnxruntime":
        import onnxruntime  # noqa: F401  (the baseline includes the runtime, so the rest is the model's)
    else:
        import openvino  # noqa: F401
    from zoo.deploy.onnx import OnnxSession
    from zoo.deploy.onnx_nms import has_nms_graph, run_per_image

    baseline = peak_rss_kb()
    with np.load(args.inputs) as data:
        arrays = [np.ascontiguousarray(data[k]) for k in sorted(data.files, key=int)]
    session = OnnxSession(Path(args.model), args.runtime, threads=args.threads)
    if has_nms_graph(Path(args.model)):  # a detector's file takes one image per run: a batch is its images in turn
        times = time_runs(lambda: run_per_image(session.run, arrays, []), args.warmup, args.repeat)
    else:
        times = time_runs(lambda: session.run(arrays), args.warmup, args.repeat)
    result = {"latencies_ms": times, "maxrss_kb": peak_rss_kb(), "baseline_rss_kb": baseline}
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
