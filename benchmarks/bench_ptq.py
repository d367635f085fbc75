"""Post-training quantization speed: the zoo's fast engine against PaddleSlim's quant_post_static.

Same model, same calibration array, same settings, each in a fresh process (so both pay the
interpreter start and the `import paddle`), timed from outside:

- zoo:        `zoo quantize MODEL --calib-data X.npy --engine fast --json` (falls back to
              zoo.quant.ptq.quantize_static in a subprocess when the command is missing)
- paddleslim: paddleslim.quant.quant_post_static with a static-mode paddle.io.DataLoader, with
              PostTrainingQuantization's phases timed by a subclass (no library file touched)

Cases:
  digits  the bundled digits MobileNetV1 (zoo/assets/digits_mobilenetv1_fp32.tar) at the settings
          of recipes/digits_mobilenetv1_ptq.yaml, calibrating on digits train images
  mv3     MobileNetV3 small (paddle.vision, scale 1.0, random init, softmax appended) at 224x224,
          KL, batch size 32, 10 batches, on generated inputs (timing only)

Prediction written before measuring: threshold phase >= 100x faster (about 2 ms instead of about
0.3 s per activation tensor); histogram sampling about 4-5x faster; end to end about 4x on mv3
(both engines run the same two forward passes over 320 images) and about 5-8x on digits with KL.
The digits recipe calibrates with `hist`, whose threshold search is cheap in Paddle too, so at
the recipe's own settings both engines take about the process start-up time; `--algo KL` shows
the KL case.

Usage:
  python benchmarks/bench_ptq.py [--case digits|mv3|all] [--repeat 2] [--work DIR] [--json FILE]
  python benchmarks/bench_ptq.py record-histograms OUT.npz   # activation histograms for the tests
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OPS = ("conv2d", "depthwise_conv2d", "mul")  # `zoo quantize` quantizes these op types


# ---------------------------------------------------------------- cases


def prepare_digits(work: Path) -> Optional[dict]:
    """The bundled digits model and 160 train images preprocessed as the recipe says."""
    tar = REPO / "zoo" / "assets" / "digits_mobilenetv1_fp32.tar"
    recipe_path = REPO / "recipes" / "digits_mobilenetv1_ptq.yaml"
    if not tar.is_file() or not recipe_path.is_file():
        return None
    from zoo.data.digits import materialize
    from zoo.data.imagenet import ImageListDataset, iterate_batches
    from zoo.data.transforms import eval_transform
    from zoo.registry import load_recipe_file

    recipe = load_recipe_file(recipe_path)
    q = recipe.quant
    model = work / "digits_fp32"
    if not (model / "inference.pdmodel").is_file():
        model.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar) as archive:
            archive.extractall(model)
    calib = work / "digits_calib.npy"
    if not calib.is_file():
        n = q.batch_size * q.batch_nums
        dataset = ImageListDataset(materialize(work / "home"), "train", eval_transform(recipe.preprocess), max_samples=n)
        np.save(calib, np.concatenate([x for x, _ in iterate_batches(dataset, 64)]))
    return dict(
        name="digits",
        title=f"digits MobileNetV1 x0.25 32x32 ({recipe.name}: {q.algo}, batch {q.batch_size} x {q.batch_nums})",
        model=model,
        calib=calib,
        algo=q.algo or "KL",
        batch_size=q.batch_size,
        batch_nums=q.batch_nums,
        hist_percent=q.hist_percent or 0.9999,
        recipe_ops=list(q.ops),
    )


def prepare_mv3(work: Path) -> dict:
    """MobileNetV3 small at 224 (random init, softmax appended) and 320 generated inputs."""
    model = work / "mv3_small_fp32"
    if not (model / "inference.pdmodel").is_file():
        _run_python(
            "import paddle, sys\n"
            "paddle.seed(0)\n"
            "net = paddle.nn.Sequential(paddle.vision.models.mobilenet_v3_small(scale=1.0), paddle.nn.Softmax())\n"
            "net.eval()\n"
            "spec = [paddle.static.InputSpec([None, 3, 224, 224], 'float32', 'x')]\n"
            "paddle.jit.save(net, sys.argv[1] + '/inference', input_spec=spec)\n",
            [str(model)],
        )
    calib = work / "mv3_calib.npy"
    if not calib.is_file():
        rng = np.random.default_rng(0)
        np.save(calib, rng.standard_normal((320, 3, 224, 224), dtype=np.float32))
    return dict(
        name="mv3",
        title="MobileNetV3 small 224x224 (KL, batch 32 x 10, published settings)",
        model=model,
        calib=calib,
        algo="KL",
        batch_size=32,
        batch_nums=10,
        hist_percent=0.9999,
        recipe_ops=None,
    )


# ---------------------------------------------------------------- runners


def _run_python(code: str, args: Sequence[str]) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"helper failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _zoo_command() -> Optional[List[str]]:
    zoo = shutil.which("zoo") or str(Path(sys.executable).with_name("zoo"))
    try:
        help_text = subprocess.run([zoo, "quantize", "--help"], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [zoo, "quantize"] if "--calib-data" in help_text else None


def run_zoo(case: dict, out: Path) -> dict:
    """The zoo's fast engine in a fresh process; wall time measured here."""
    cmd = _zoo_command()
    env = dict(os.environ)
    if cmd is not None:
        argv = cmd + [
            str(case["model"]), "--calib-data", str(case["calib"]), "--algo", case["algo"],
            "--batch-size", str(case["batch_size"]), "--batch-nums", str(case["batch_nums"]),
            "--hist-percent", str(case["hist_percent"]), "--out", str(out), "--engine", "fast", "--json",
        ]
        how = "zoo quantize"
    else:
        argv = [sys.executable, str(Path(__file__).resolve()), "_zoo-worker", json.dumps(_settings(case, out))]
        how = "quantize_static (zoo quantize not available)"
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"zoo run failed ({' '.join(argv)}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    timings = result.get("timings", result)
    return dict(how=how, argv=argv, wall=wall, sampling=timings.get("sampling"), threshold=timings.get("threshold"))


def run_paddleslim(case: dict, out: Path) -> dict:
    """PaddleSlim's quant_post_static in a fresh process; wall time measured here."""
    argv = [sys.executable, str(Path(__file__).resolve()), "_slim-worker", json.dumps(_settings(case, out))]
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"paddleslim run failed:\n{proc.stderr[-3000:]}")
    timings = json.loads(proc.stdout.strip().splitlines()[-1])
    return dict(how="paddleslim.quant.quant_post_static", argv=argv, wall=wall, **timings)


def _settings(case: dict, out: Path) -> dict:
    return dict(
        model=str(case["model"]), calib=str(case["calib"]), out=str(out), algo=case["algo"],
        batch_size=case["batch_size"], batch_nums=case["batch_nums"], hist_percent=case["hist_percent"],
        ops=list(DEFAULT_OPS),
    )


def _zoo_worker(settings: dict) -> None:
    from zoo.quant.ptq import quantize_static
    from zoo.quant.settings import PTQSettings

    timings: Dict[str, float] = {}
    ptq = PTQSettings(algo=settings["algo"], batch_size=settings["batch_size"], batch_nums=settings["batch_nums"],
                      hist_percent=settings["hist_percent"], ops=settings["ops"], engine="fast")
    quantize_static(Path(settings["model"]), Path(settings["out"]), np.load(settings["calib"]), ptq, timings=timings)
    print(json.dumps({"timings": timings}))


def _slim_worker(settings: dict) -> None:
    """Plain quant_post_static; phases timed by a subclass put where quant_post_static looks it up."""
    import paddle
    import paddleslim.quant.quanter as quanter
    from paddle.static.quantization import PostTrainingQuantization

    phases = {"sampling": 0.0, "threshold": 0.0}

    def timed(method: str, phase: str):
        def wrapper(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return getattr(PostTrainingQuantization, method)(self, *args, **kwargs)
            finally:
                phases[phase] += time.perf_counter() - started
        return wrapper

    TimedPTQ = type("TimedPTQ", (PostTrainingQuantization,), {
        "_collect_activation_abs_min_max": timed("_collect_activation_abs_min_max", "sampling"),
        "_sampling": timed("_sampling", "sampling"),
        "_calculate_kl_hist_threshold": timed("_calculate_kl_hist_threshold", "threshold"),
    })
    quanter.PostTrainingQuantization = TimedPTQ

    paddle.enable_static()
    data = np.load(settings["calib"])
    exe = paddle.static.Executor(paddle.CPUPlace())
    model = Path(settings["model"])
    _, feed_names, _ = paddle.static.load_inference_model(str(model / "inference"), exe)
    batch_size = settings["batch_size"]

    class Batches(paddle.io.IterableDataset):
        def __iter__(self):
            for start in range(0, len(data), batch_size):
                yield (data[start:start + batch_size],)

    image = paddle.static.data(feed_names[0], [-1, *data.shape[1:]], "float32")
    loader = paddle.io.DataLoader(Batches(), feed_list=[image], places=paddle.CPUPlace(), return_list=False, batch_size=None)
    quanter.quant_post_static(
        executor=exe, model_dir=str(model), quantize_model_path=settings["out"], data_loader=loader,
        model_filename="inference.pdmodel", params_filename="inference.pdiparams",
        save_model_filename="inference.pdmodel", save_params_filename="inference.pdiparams",
        batch_size=batch_size, batch_nums=settings["batch_nums"], algo=settings["algo"],
        hist_percent=settings["hist_percent"], quantizable_op_type=settings["ops"],
        weight_quantize_type="channel_wise_abs_max", onnx_format=False,
    )
    print(json.dumps(phases))


def max_output_diff(case: dict, a: Path, b: Path) -> float:
    """Largest |difference| between the two INT8 models' outputs on the first calibration batch."""
    out = _run_python(
        "import sys, numpy as np\n"
        "from zoo.predictor import Predictor\n"
        "x = np.load(sys.argv[1])[:8]\n"
        "ya = Predictor(sys.argv[2]).run(x)[0]; yb = Predictor(sys.argv[3]).run(x)[0]\n"
        "print(float(np.abs(ya - yb).max()))\n",
        [str(case["calib"]), str(a), str(b)],
    )
    return float(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- histograms for the tests


def record_histograms(out: Path, limit: int = 6) -> None:
    """Save activation histograms of the digits model on digits images (the tests' recorded cases)."""
    import paddle

    from zoo.modelfiles import find_model_files
    from zoo.program import static_mode
    from zoo.quant import fast_ptq
    from zoo.quant.calib_batches import calibration_batches, model_inputs, static_loader

    work = out.parent / ".record"
    case = prepare_digits(work)
    if case is None:
        raise SystemExit("the bundled digits model is missing")
    files = find_model_files(case["model"])
    feeds, _ = model_inputs(files)
    batches = calibration_batches(np.load(case["calib"]), feeds, case["batch_size"])
    with static_mode():
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe = paddle.static.Executor(paddle.CPUPlace())
            loader = static_loader(batches, feeds, paddle.CPUPlace())
            ptq = fast_ptq.FastPostTrainingQuantization(
                executor=exe, model_dir=str(files.folder), model_filename=files.model_file.name,
                params_filename=files.params_filename, data_loader=loader, scope=scope,
                batch_size=case["batch_size"], batch_nums=case["batch_nums"], algo="KL",
                quantizable_op_type=list(case["recipe_ops"]),
            )
            class Collected(Exception):
                pass

            def stop() -> None:  # only the histograms are wanted: leave before thresholds
                raise Collected()

            ptq._calculate_kl_hist_threshold = stop
            try:
                ptq.quantize()
            except Collected:
                pass
    names = sorted(ptq._sampling_act_histogram)
    step = max(1, len(names) // limit)
    chosen = names[::step][:limit]
    np.savez_compressed(
        out,
        names=np.array(chosen),
        hists=np.stack([ptq._sampling_act_histogram[n][0] for n in chosen]),
        edges=np.stack([ptq._sampling_act_histogram[n][1] for n in chosen]),
    )
    shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- main


def bench(case: dict, repeat: int, work: Path) -> dict:
    runs = []
    for attempt in range(repeat):
        zoo_out, slim_out = work / f"{case['name']}_zoo_int8", work / f"{case['name']}_slim_int8"
        slim = run_paddleslim(case, slim_out)
        zoo = run_zoo(case, zoo_out)
        runs.append(dict(zoo=zoo, paddleslim=slim, diff=max_output_diff(case, zoo_out, slim_out)))
        _print_run(case, attempt + 1, runs[-1])
    return dict(case=case["name"], title=case["title"], runs=[_plain(r) for r in runs])


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.1f}x" if a and b else "n/a"


def _print_run(case: dict, attempt: int, run: dict) -> None:
    zoo, slim = run["zoo"], run["paddleslim"]
    print(f"\n[{case['name']} run {attempt}] {case['title']}")
    print(f"  zoo ({zoo['how']}): {' '.join(Path(a).name if os.sep in a else a for a in zoo['argv'])}")
    print(f"  {'':14s} {'paddleslim':>12s} {'zoo fast':>12s} {'speedup':>9s}")
    for key, label in (("wall", "end to end s"), ("sampling", "sampling s"), ("threshold", "threshold s")):
        a, b = slim.get(key), zoo.get(key)
        fa = f"{a:12.2f}" if a is not None else f"{'n/a':>12s}"
        fb = f"{b:12.3f}" if b is not None else f"{'n/a':>12s}"
        print(f"  {label:14s} {fa} {fb} {_ratio(a, b):>9s}")
    print(f"  max |output difference| between the two INT8 models: {run['diff']:.3g}")


def _plain(run: dict) -> dict:
    return {
        engine: {k: v for k, v in run[engine].items() if k != "argv"} | {"command": " ".join(run[engine]["argv"])}
        for engine in ("zoo", "paddleslim")
    } | {"max_output_diff": run["diff"]}


def _override(case: dict, algo: Optional[str]) -> dict:
    if algo and algo != case["algo"]:
        case = dict(case, algo=algo, title=f"{case['title']}, algo overridden to {algo}")
    return case


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_slim-worker"]:
        _slim_worker(json.loads(argv[1]))
        return 0
    if argv[:1] == ["_zoo-worker"]:
        _zoo_worker(json.loads(argv[1]))
        return 0
    if argv[:1] == ["record-histograms"]:
        record_histograms(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("digits", "mv3", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case (the machine may be shared)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "zoo-bench-ptq")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--algo", help="override the case's calibration algorithm (e.g. KL for digits, whose recipe uses hist)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    if args.case in ("digits", "all"):
        case = prepare_digits(args.work)
        if case is None:
            print("digits: the bundled model (zoo/assets/digits_mobilenetv1_fp32.tar) or its recipe is missing; skipped")
        else:
            if case["recipe_ops"] and set(case["recipe_ops"]) != set(DEFAULT_OPS):
                print(f"note: the recipe lists ops {case['recipe_ops']}; `zoo quantize` quantizes {list(DEFAULT_OPS)}, "
                      "so both engines use the latter")
            results.append(bench(_override(case, args.algo), args.repeat, args.work))
    if args.case in ("mv3", "all"):
        results.append(bench(_override(prepare_mv3(args.work), args.algo), args.repeat, args.work))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
