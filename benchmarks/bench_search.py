#!/usr/bin/env python
"""Accuracy-targeted PTQ (`zoo quantize --max-drop`) against one plain PTQ run and PaddleSlim's quant_post_hpo.

Cases (the bundled digits MobileNetV1 x0.25; calibration on 160 train images, scored on the 364 val images):
  digits          the model as shipped
  digits-outlier  the same FP32 function with outlier activation channels: in three pointwise blocks one
                  batch-norm channel is scaled up 1000x (ReLU passes it) and the next conv's weights
                  reading it scaled down 1000x; per-tensor activation scales collapse plain PTQ

For each case, each a fresh process: `zoo quantize --algo KL` (plain PTQ), `zoo quantize --max-drop 1`
(the search over every algorithm), `zoo quantize --algo KL --max-drop 1` (KL fixed: rounding, bias
correction and float fallback only), and PaddleSlim's quant_post_hpo (SMAC over KL/hist/avg/mse x bias
correction x hist percent, scored by its own output distance; needs smac==1.4.0, which pins an old
ConfigSpace: install it apart with `pip install --target DIR smac==1.4.0 ConfigSpace==0.6.1` and pass
`--hpo-site DIR`; it is appended to sys.path so the zoo's own packages win). Every INT8 model is scored
the same way (Paddle Inference, top-1 on the val split).

  .venv/bin/python benchmarks/bench_search.py [--case digits|digits-outlier|all] [--hpo-site DIR] [--hpo-runs 10] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ZOO = [sys.executable, "-m", "zoo"]
OPS = "conv2d,depthwise_conv2d,mul,matmul,matmul_v2"  # the digits recipe's ops
OUTLIER = 1000.0


def prepare(work: Path) -> Dict[str, Path]:
    """The bundled FP32 model, 160 train images (calibration) and the 364 val images with labels."""
    sys.path.insert(0, str(REPO))
    from zoo.data.digits import materialize
    from zoo.data.imagenet import ImageListDataset, iterate_batches
    from zoo.data.transforms import eval_transform
    from zoo.registry import load_recipe_file

    recipe = load_recipe_file(REPO / "recipes" / "digits_mobilenetv1_ptq.yaml")
    model = work / "digits_fp32"
    if not (model / "inference.pdmodel").is_file():
        model.mkdir(parents=True, exist_ok=True)
        with tarfile.open(REPO / "zoo" / "assets" / "digits_mobilenetv1_fp32.tar") as archive:
            archive.extractall(model)
    home = materialize(work / "home")
    train = ImageListDataset(home, "train", eval_transform(recipe.preprocess), max_samples=160)
    np.savez(work / "calib.npz", x=np.concatenate([x for x, _ in iterate_batches(train, 64)]))
    val = ImageListDataset(home, "val", eval_transform(recipe.preprocess))
    xs, ys = zip(*iterate_batches(val, 64))
    np.savez(work / "eval.npz", x=np.concatenate(xs), y=np.concatenate(ys))
    return {"model": model, "calib": work / "calib.npz", "eval": work / "eval.npz"}


def make_outlier(model: Path, out: Path, blocks: int = 3) -> Path:
    """The same function with one outlier channel in `blocks` batch_norm -> relu -> conv2d (1x1) chains."""
    import paddle

    paddle.enable_static()
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(paddle.CPUPlace())
    with paddle.static.scope_guard(scope):
        program, feeds, fetches = paddle.static.load_inference_model(str(model / "inference"), exe)
        ops = program.global_block().ops
        producer = {o: op for op in ops for o in op.output_arg_names}
        done = 0
        for op in ops:
            if op.type != "conv2d" or done >= blocks:
                continue
            relu = producer.get(op.input("Input")[0])
            bn = producer.get(relu.input("X")[0]) if relu is not None and relu.type == "relu" else None
            if bn is None or bn.type != "batch_norm":
                continue
            channel = 1
            for slot in ("Scale", "Bias"):
                t = scope.find_var(bn.input(slot)[0]).get_tensor()
                v = np.array(t)
                v[channel] *= OUTLIER
                t.set(v, paddle.CPUPlace())
            t = scope.find_var(op.input("Filter")[0]).get_tensor()
            w = np.array(t)
            w[:, channel] /= OUTLIER
            t.set(w, paddle.CPUPlace())
            done += 1
        block = program.global_block()
        paddle.static.save_inference_model(str(out / "inference"), [block.var(n) for n in feeds], fetches, exe,
                                           program=program)
    return out


def top1(model: Path, data: Path) -> float:
    sys.path.insert(0, str(REPO))
    from zoo.predictor import Predictor

    d = np.load(data)
    return float((Predictor(model).run(d["x"])[0].argmax(1) == d["y"]).mean() * 100)


def run_zoo(args: List[str]) -> Dict[str, object]:
    started = time.perf_counter()
    proc = subprocess.run(ZOO + args, cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, GLOG_minloglevel="2"))
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        raise SystemExit(f"zoo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    info = json.loads(proc.stdout) if "--json" in args else {}
    return {"seconds": round(seconds, 2), "exit": proc.returncode, "report": info}


HPO = r'''
import sys, time, json, numpy as np
sys.path.append(sys.argv[1])
import paddle
paddle.enable_static()
from paddleslim.quant import quant_post_hpo
calib = np.load(sys.argv[3])["x"]; ev = np.load(sys.argv[4])
def train():
    for i in range(0, len(calib), 32):
        yield [calib[i:i + 32]]
def evals():
    for i in range(0, len(ev["x"]), 64):
        yield [ev["x"][i:i + 64]]
class Loader:
    def __init__(self, gen): self.gen = gen
    def __call__(self): return self.gen()
sys.path.insert(0, sys.argv[8])
from pathlib import Path
from zoo.modelfiles import find_model_files
from zoo.quant.calib_batches import calibration_batches, model_inputs, static_loader
feeds, _ = model_inputs(find_model_files(Path(sys.argv[2])))
# PaddleSlim's PTQ takes only a static paddle.io.DataLoader: the one the zoo's PTQ builds
calib_loader = static_loader(calibration_batches(calib, feeds, 32), feeds, paddle.CPUPlace())
exe = paddle.static.Executor(paddle.CPUPlace())
started = time.perf_counter()
def top1(executor, program, feed_names, fetch_targets):
    outs = [executor.run(program, feed={feed_names[0]: x}, fetch_list=fetch_targets)[0] for (x,) in evals()]
    return float((np.concatenate(outs).argmax(1) == ev["y"]).mean())
# scored by top-1 on the same val images as the zoo's search (its own default is an output distance)
quant_post_hpo(exe, paddle.CPUPlace(), sys.argv[2], sys.argv[5], train_dataloader=calib_loader,
               eval_dataloader=Loader(lambda: ({"x": b[0]} for b in evals())), eval_function=top1,
               model_filename="inference.pdmodel",
               params_filename="inference.pdiparams", save_model_filename="inference.pdmodel",
               save_params_filename="inference.pdiparams", quantizable_op_type=sys.argv[6].split(","),
               batch_size=[32], batch_num=[5], onnx_format=False, runcount_limit=int(sys.argv[7]))
print(json.dumps({"seconds": time.perf_counter() - started}))
'''


def run_hpo(site: Path, model: Path, calib: Path, evaluation: Path, out: Path, runs: int) -> Dict[str, object]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpo-") as tmp:
        proc = subprocess.run([sys.executable, "-c", HPO, str(site), str(model), str(calib), str(evaluation), str(out),
                               OPS, str(runs), str(REPO)], cwd=tmp, capture_output=True, text=True,
                              env=dict(os.environ, GLOG_minloglevel="2"))
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:]}
    return {"seconds": round(time.perf_counter() - started, 2), "top1": round(top1(out, evaluation), 2)}


def bench(name: str, model: Path, paths: Dict[str, Path], work: Path, hpo_site: Optional[Path], hpo_runs: int) -> Dict[str, object]:
    common = ["--calib-data", str(paths["calib"]), "--batch-size", "32", "--batch-nums", "5", "--ops", OPS]
    fp32 = top1(model, paths["eval"])
    rows: Dict[str, object] = {"fp32": round(fp32, 2)}
    plain = run_zoo(["quantize", str(model), *common, "--algo", "KL", "--out", str(work / f"{name}-plain"), "--json"])
    rows["plain KL"] = {"seconds": plain["seconds"], "top1": round(top1(work / f"{name}-plain", paths["eval"]), 2)}
    for label, extra in (("search (all algos)", []), ("search (KL only)", ["--algo", "KL"])):
        out = work / f"{name}-{'kl' if extra else 'all'}"
        r = run_zoo(["quantize", str(model), *common, *extra, "--eval-data", str(paths["eval"]), "--max-drop", "1",
                     "--out", str(out), "--json"])
        rep = r["report"]
        rows[label] = {"seconds": r["seconds"], "exit": r["exit"], "top1": round(top1(out, paths["eval"]), 2),
                       "settings": rep["settings"]["algo"] + (", bias correction" if rep["settings"]["bias_correction"] else "")
                       + f", {rep['settings']['rounding']}",
                       "int8_layers": f"{rep['int8_layers']}/{rep['quantizable_layers']}", "trials": len(rep["trials"]),
                       "timings": rep["timings"]}
    if hpo_site is not None:
        rows["quant_post_hpo"] = run_hpo(hpo_site, model, paths["calib"], paths["eval"], work / f"{name}-hpo", hpo_runs)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--case", choices=("digits", "digits-outlier", "all"), default="all")
    parser.add_argument("--hpo-site", type=Path, help="folder holding smac==1.4.0 (pip install --target)")
    parser.add_argument("--hpo-runs", type=int, default=10, help="quant_post_hpo's runcount_limit")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(work)
    results = {}
    if args.case in ("digits", "all"):
        results["digits"] = bench("digits", paths["model"], paths, work, args.hpo_site, args.hpo_runs)
    if args.case in ("digits-outlier", "all"):
        outlier = make_outlier(paths["model"], work / "digits_outlier")
        results["digits-outlier"] = bench("outlier", outlier, paths, work, args.hpo_site, args.hpo_runs)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
