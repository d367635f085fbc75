"""Peak memory of `zoo bench --backend all`'s INT8 check (the bench process itself; the timed runs are
separate worker processes).

The check runs noise inputs through Paddle's fake-quant graph and through every INT8 runtime and
compares their outputs. It builds a plain conv net (4 convs of 32 channels) at SIDE x SIDE, quantizes it
with `zoo quantize --algo abs_max`, runs `bench_model(..., backend="all")` in this process and prints
the peak resident memory of the process and the seconds spent.

    python benchmarks/bench_check_memory.py --side 320 --json out.json     # the README's numbers
    python benchmarks/bench_check_memory.py --side 640 --dense             # a detector-like model at 640x640
    python benchmarks/bench_check_memory.py --side 64                      # smoke size (make test)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def build(folder: Path, side: int, dense: bool = False) -> Path:
    """The FP32 conv net at `side` and calibration inputs for it; `dense`: a detector-like variant with a dynamic
    H and W and a sigmoid probability map (N, 1, H, W) as output, saved with an open input size."""
    import paddle

    class Net(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.convs = paddle.nn.LayerList([paddle.nn.Conv2D(3 if i == 0 else 32, 32, 3, padding=1) for i in range(4)])
            self.fc = paddle.nn.Linear(32, 10)
            self.head = paddle.nn.Conv2D(32, 1, 1)
            self.dense = dense

        def forward(self, x):  # type: ignore[no-untyped-def]
            for conv in self.convs:
                x = paddle.nn.functional.relu(conv(x))
            if self.dense:
                return paddle.nn.functional.sigmoid(self.head(x))
            return self.fc(paddle.flatten(paddle.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    paddle.seed(0)
    net = Net()
    net.eval()
    declared = [None, 3, None, None] if dense else [None, 3, side, side]
    paddle.jit.save(net, str(folder / "fp32" / "inference"), input_spec=[paddle.static.InputSpec(declared, "float32", "x")])
    np.save(folder / "calib.npy", np.random.default_rng(0).random((8, 3, side, side), dtype=np.float32))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=320)
    parser.add_argument("--dense", action="store_true", help="the detector-like model (dynamic H, W; a dense map out)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoo-bench-mem-") as tmp:
        folder = build(Path(tmp), args.side, args.dense)
        subprocess.run([sys.executable, "-m", "zoo", "quantize", str(folder / "fp32"), "--calib-data",
                        str(folder / "calib.npy"), "--algo", "abs_max", "--batch-size", "4", "--batch-nums", "2",
                        "--out", str(folder / "int8")], check=True, capture_output=True)
        from zoo.deploy.bench import bench_model

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        started = time.time()
        result = bench_model(str(folder / "int8"), backend="all", batch=1, warmup=0, repeat=2,
                             input_size=(args.side, args.side) if args.dense else None)
        out = {
            "side": args.side,
            "model": "dense map, dynamic H and W" if args.dense else "class scores",
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "peak_rss_mb_workers": max((row.peak_rss_mb or 0) for row in result.rows),
            "peak_rss_mb_before_bench": before,
            "seconds": round(time.time() - started, 1),
            "checks": {row.backend: (row.check or {}).get("noise_inputs", {}).get("passed")
                       for row in result.rows if row.variant == "int8"},
        }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
