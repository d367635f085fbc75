#!/usr/bin/env python
"""FP32 against INT8 for the bundled digits models: Paddle Inference (oneDNN) and Paddle Lite x86 timings,
top-1 on the digits val split, and Paddle Lite arm `.nb` sizes.

    .venv/bin/python benchmarks/bench_deploy.py [--models digits_mobilenetv1_ptq,...] [--reproduce DIR ...]
        [--batch 1] [--threads 1] [--repeat 100] [--json results.json]

Sources: `--reproduce DIR` (folders written by `zoo reproduce ... --out DIR`, used as they are), else
the `digits_*` recipes of the registry, each reproduced here with its own strategy (PTQ, QAT, ACT) on
the bundled data; top-1 is the reproduction's, on the digits val split.
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

from zoo import quiet  # noqa: E402

quiet.configure(verbose=False)

from zoo.quiet import silenced  # noqa: E402


def prepare_recipe(name: str, work: Path) -> Dict[str, Any]:
    """`zoo reproduce NAME` into work/NAME: the recipe's own strategy makes the INT8 model."""
    from zoo.registry import get_recipe
    from zoo.reproduce import ReproduceOptions, reproduce

    folder = work / name
    started = time.perf_counter()
    with silenced():
        report = reproduce(get_recipe(name), ReproduceOptions(out=folder))
    setting = report["settings"][0]
    top1 = {"fp32": setting["fp32"]["top1"]["measured"], "int8": setting["metrics"]["top1"]["measured"]}
    return {"folder": folder, "top1": top1, "reproduce_s": time.perf_counter() - started}


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
