"""Serve one Paddle inference model with Paddle Inference 3.x, in the environment `make setup` builds for it
(.venv-paddle3). It imports numpy and paddle only: the zoo is not installed there.

    python paddle3_worker.py --model-file M --params-file P [--threads N] [--int8]

Prints one JSON line with the Paddle version when the model is loaded, then answers one JSON request per stdin
line, {"inputs": "in.npz", "outputs": "out.npz"} (arrays named 0, 1, ... in feed order), with one JSON line:
{"ok": true, "lods": [...]} once the outputs are written, or {"error": "..."}; a request with "warmup" and
"repeat" instead of "outputs" times the model on those inputs ({"latencies_ms": [...], "maxrss_kb": n}).
An empty line ends it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _reply(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from paddle import inference

    config = inference.Config(args.model_file, args.params_file) if args.params_file else inference.Config(args.model_file)
    config.set_cpu_math_library_num_threads(args.threads)
    if args.int8:
        config.enable_mkldnn()
        config.enable_mkldnn_int8()
    else:
        config.disable_mkldnn()
    config.disable_glog_info()
    config.switch_use_feed_fetch_ops(False)
    return inference.create_predictor(config)


def _time(predictor, warmup: int, repeat: int) -> dict:  # type: ignore[no-untyped-def]
    """Latencies (ms) of `repeat` runs after `warmup` untimed ones, and the process's peak RSS (KiB)."""
    import resource
    import time

    for _ in range(warmup):
        predictor.run()
    latencies = []
    for _ in range(repeat):
        began = time.perf_counter()
        predictor.run()
        latencies.append((time.perf_counter() - began) * 1000.0)
    return {"ok": True, "latencies_ms": latencies, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main() -> int:
    parser = argparse.ArgumentParser(prog="paddle3_worker")
    parser.add_argument("--model-file", required=True)
    parser.add_argument("--params-file", default="")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--int8", action="store_true", help="oneDNN with its INT8 kernels")
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    import numpy as np
    import paddle

    try:
        predictor = _load(args)
    except Exception as exc:  # reported to the caller, which names the model and the runtime
        _reply({"error": f"{type(exc).__name__}: {exc}"[-2000:]})
        return 1
    names = list(predictor.get_input_names())
    _reply({"paddle": paddle.__version__, "inputs": names, "outputs": list(predictor.get_output_names())})
    for line in sys.stdin:
        if not line.strip():
            break
        request = json.loads(line)
        try:
            with np.load(request["inputs"]) as data:
                arrays = [np.ascontiguousarray(data[k]) for k in sorted(data.files, key=int)]
            for name, array in zip(names, arrays):
                handle = predictor.get_input_handle(name)
                handle.reshape(list(array.shape))
                handle.copy_from_cpu(array)
            if "repeat" in request:  # a timing: the same inputs, run warmup + repeat times
                _reply(_time(predictor, int(request.get("warmup", 0)), int(request["repeat"])))
                continue
            predictor.run()
            handles = [predictor.get_output_handle(n) for n in predictor.get_output_names()]
            np.savez(request["outputs"], **{str(i): h.copy_to_cpu() for i, h in enumerate(handles)})
            _reply({"ok": True, "lods": [[list(level) for level in h.lod()] for h in handles]})
        except Exception as exc:
            _reply({"error": f"{type(exc).__name__}: {exc}"[-2000:]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
