#!/usr/bin/env python
"""FP32 against INT8 for the bundled digits models: Paddle Inference (oneDNN) and Paddle Lite x86 timings,
top-1 on the digits val split, and Paddle Lite arm `.nb` sizes.

    .venv/bin/python benchmarks/bench_deploy.py [--models digits_mobilenetv1_ptq,...] [--reproduce DIR ...]
        [--batch 1] [--threads 1] [--repeat 100] [--json results.json]

Sources, in order: `--reproduce DIR` (folders written by `zoo reproduce ... --out DIR`, used as they are);
the `digits_*` recipes of the registry (their bundled FP32 model, quantized here with
zoo.quant.ptq.quantize_static on the digits train split with the recipe's calibration settings).
When the registry has no digits recipe yet, the digits architectures are built with untrained
weights (timings and sizes are still meaningful; top-1 is then left out).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

os.environ.setdefault("GLOG_minloglevel", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from zoo import quiet  # noqa: E402

quiet.configure(verbose=False)

from zoo.quiet import silenced  # noqa: E402


def _digits_arrays(pre, split: str, limit: Optional[int] = None):
    from zoo.data.digits import materialize
    from zoo.data.imagenet import ImageListDataset, iterate_batches
    from zoo.data.transforms import eval_transform

    ds = ImageListDataset(materialize(), split, eval_transform(pre), max_samples=limit)
    xs, ys = zip(*iterate_batches(ds, 64))
    return np.concatenate(xs), np.concatenate(ys)


def _top1(model_dir: Path, x: np.ndarray, y: np.ndarray, int8: bool) -> float:
    from zoo.predictor import Predictor

    with silenced():
        pred = Predictor(model_dir, threads=1, mkldnn=True, int8=int8)
        logits = np.concatenate([pred.run(x[i:i + 64])[0] for i in range(0, len(x), 64)])
    return float((logits.argmax(1) == y).mean() * 100)


def _quantize(fp32: Path, out: Path, calib: np.ndarray, quant: Any) -> None:
    from zoo.quant.ptq import quantize_static

    ops = [o for o in (quant.ops if quant else ["conv2d", "depthwise_conv2d", "mul"])]
    with silenced():
        quantize_static(fp32, out, calib, algo=(quant.algo if quant and quant.algo else "KL"),
                        batch_size=(quant.batch_size if quant and quant.batch_size else 32),
                        batch_nums=(quant.batch_nums if quant and quant.batch_nums else 10),
                        quantizable_op_type=ops, onnx_format=bool(quant.onnx_format) if quant else False)


def prepare_recipe(name: str, work: Path) -> Dict[str, Any]:
    """A reproduce-like folder (fp32/, int8/, report.json) for one digits recipe."""
    from zoo.hub import fetch
    from zoo.modelfiles import find_model_files
    from zoo.registry import load_registry
    from zoo.schema import Role

    recipe = load_registry().get(name)
    folder = work / name
    fp32_src = find_model_files(Path(fetch(recipe, Role.fp32).path))
    shutil.copytree(fp32_src.folder, folder / "fp32")
    calib, _ = _digits_arrays(recipe.preprocess, "train", limit=(recipe.quant.batch_size or 32) * (recipe.quant.batch_nums or 10))
    started = time.perf_counter()
    _quantize(folder / "fp32", folder / "int8", calib, recipe.quant)
    quant_s = time.perf_counter() - started
    (folder / "report.json").write_text(json.dumps({"name": name, "recipe": name, "settings": [{"input_size": 32}]}))
    x, y = _digits_arrays(recipe.preprocess, "val")
    return {"folder": folder, "top1": {"fp32": _top1(folder / "fp32", x, y, False),
                                        "int8": _top1(folder / "int8", x, y, True)}, "quantize_s": quant_s}


def prepare_untrained(arch: str, work: Path) -> Dict[str, Any]:
    """Fallback: an untrained digits network (for timings and sizes only)."""
    import paddle

    from zoo.models import build_model, save_inference

    paddle.seed(0)
    folder = work / arch
    save_inference(build_model(arch), folder / "fp32", (3, 32, 32))
    calib = np.random.RandomState(0).rand(320, 3, 32, 32).astype("float32")
    _quantize(folder / "fp32", folder / "int8", calib, None)
    (folder / "report.json").write_text(json.dumps({"name": arch, "recipe": None, "settings": [{"input_size": 32}]}))
    return {"folder": folder, "top1": None}


def discover() -> List[str]:
    from zoo.registry import load_registry
    from zoo.schema import Role

    names = []
    for recipe in load_registry().filter("digits_*"):
        fp32 = recipe.artifacts.get(Role.fp32)
        if fp32 is not None and fp32.bundled:
            names.append(recipe.name)
    return names


def run_one(label: str, folder: Path, top1: Optional[Dict[str, float]], args: argparse.Namespace,
            work: Path) -> Dict[str, Any]:
    from zoo.deploy.bench import bench_model
    from zoo.deploy.export import export_model

    bench = bench_model(str(folder), backend="all", threads=args.threads, batch=args.batch, warmup=args.warmup,
                        repeat=args.repeat)
    exported = export_model(str(folder), "lite", arches=["arm"], out=work / f"{label}-lite")
    sizes = {a.precision: a.size for a in exported.artifacts}
    return {"model": label, "top1": top1, "bench": bench.as_dict(), "arm_nb_bytes": sizes,
            "arm_int8_kernels": next((a.validation or {}).get("int8_kernels") for a in exported.artifacts
                                     if a.precision == "int8")}


def print_table(results: List[Dict[str, Any]]) -> None:
    head = f"{'model':28} {'variant':7} {'backend':18} {'p50 ms':>8} {'p90 ms':>8} {'samples/s':>10} {'peak RSS':>9} {'top-1':>6} {'arm .nb':>9}"
    print(head)
    print("-" * len(head))
    for res in results:
        for row in res["bench"]["rows"]:
            if row["p50_ms"] is None:
                continue
            top1 = (res["top1"] or {}).get(row["variant"])
            nb = res["arm_nb_bytes"].get(row["variant"])
            print(f"{res['model']:28} {row['variant']:7} {row['backend']:18} {row['p50_ms']:8.3f} {row['p90_ms']:8.3f} "
                  f"{row['throughput']:10.1f} {row['peak_rss_mb']:7.0f}MB "
                  f"{'' if top1 is None else f'{top1:.2f}':>6} {'' if nb is None else f'{nb / 1024:.0f}KB':>9}")
        for note in res["bench"]["notes"]:
            print(f"  note: {note}")
        for row in res["bench"]["rows"]:
            if row.get("note"):
                print(f"  {row['variant']}/{row['backend']}: {row['note']}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="", help="comma-separated digits recipe names (default: every digits_* recipe)")
    parser.add_argument("--reproduce", action="append", default=[], help="a `zoo reproduce --out` folder (repeatable)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    results = []
    try:
        prepared = []
        for folder in args.reproduce:
            prepared.append((Path(folder).name, Path(folder), None))
        names = [n for n in args.models.split(",") if n] or ([] if args.reproduce else discover())
        for name in names:
            info = prepare_recipe(name, work)
            prepared.append((name, info["folder"], info["top1"]))
        if not prepared:
            print("no digits recipe in the registry yet: using untrained digits networks (timings and sizes only)\n")
            for arch in ("digits_mobilenet_v1", "digits_mobilenet_v3_small"):
                info = prepare_untrained(arch, work)
                prepared.append((arch + " (untrained)", info["folder"], None))
        for label, folder, top1 in prepared:
            results.append(run_one(label.split(" ")[0], folder, top1, args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"batch {args.batch}, threads {args.threads}, {args.repeat} timed runs after {args.warmup} warm-up runs\n")
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
