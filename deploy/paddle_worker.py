"""Time one Paddle Inference model in its own process, so its peak memory (ru_maxrss) is its own.

    python -m zoo.deploy.paddle_worker --model DIR --inputs in.npz [--device cpu|gpu:N] [--mkldnn] [--int8] ...

Prints one JSON line (after the marker) with the latencies, the peak RSS and which kernels the
optimized program uses.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from zoo.deploy.lite_worker import peak_rss_kb, time_runs  # one reading of peak RSS for both worker kinds
from zoo.device import Device, parse_device
from zoo.errors import UsageError

MARKER = "ZOO-BENCH-RESULT "


def _device(text: str) -> Device:
    """argparse type of --device: the zoo's one parser, its refusal as an argparse error."""
    try:
        return parse_device(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message}; {exc.hint}") from None


def optimized_kernels(cache_dir: Path) -> Optional[Dict[str, int]]:
    """Counts of oneDNN INT8 ops and quantize/dequantize ops in the saved optimized program."""
    found = sorted(cache_dir.glob("*.pdmodel"))
    if not found:
        return None
    from paddle.base.proto import framework_pb2

    desc = framework_pb2.ProgramDesc()
    desc.ParseFromString(found[0].read_bytes())
    int8 = reorder = fake = 0
    for op in desc.blocks[0].ops:
        if op.type in ("quantize", "dequantize", "requantize"):
            reorder += 1
        elif op.type.startswith(("fake_", "quantize_linear", "dequantize_linear")):
            fake += 1
        elif any(a.name == "mkldnn_data_type" and a.s == "int8" for a in op.attrs):
            int8 += 1
    return {"onednn_int8_ops": int8, "onednn_reorders": reorder, "fake_quant_ops_left": fake}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="paddle_worker")
    parser.add_argument("--model", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--mkldnn", action="store_true")
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--device", type=_device, default="cpu", help="cpu, gpu or gpu:N")
    parser.add_argument("--tensorrt", action="store_true")
    args = parser.parse_args(argv)

    from zoo import quiet

    quiet.configure(verbose=False)
    import numpy as np

    from zoo.predictor import Predictor

    with quiet.silenced():
        import paddle.inference  # noqa: F401  (the baseline includes the runtime, so the rest is the model's)
    baseline = peak_rss_kb()
    with np.load(args.inputs) as data:
        arrays = [np.ascontiguousarray(data[k]) for k in sorted(data.files, key=int)]
    with tempfile.TemporaryDirectory(prefix="zoo-optim-") as cache, quiet.silenced():
        predictor = Predictor(Path(args.model), device=args.device, threads=args.threads, mkldnn=args.mkldnn,
                              int8=args.int8, tensorrt=args.tensorrt, optim_cache_dir=Path(cache))
        times = time_runs(lambda: predictor.run(arrays), args.warmup, args.repeat)
        kernels = optimized_kernels(Path(cache))
    result = {"latencies_ms": times, "maxrss_kb": peak_rss_kb(),
              "baseline_rss_kb": baseline, "kernels": kernels}
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
