"""Paddle Lite in its own process: convert (`opt`), run a `.nb` (`run`), time a `.nb` (`bench`).

Runs under either Lite environment (CPython 3.10 + paddlelite 2.13rc0 for arm/opencl, CPython 3.7 +
paddlelite 2.12 for x86), so it imports nothing from the zoo and stays Python 3.7 compatible.
A crash of Lite's C++ code kills only this process; the caller turns its exit status into an error.

    python lite_worker.py opt --model_file M --param_file P --optimize_out OUT --valid_targets arm
    python lite_worker.py run --nb FILE --inputs in.npz --output out.npz   (outputs "0", "1", ...; LoDs "lod<i>_<level>")
    python lite_worker.py bench --nb FILE --inputs in.npz --warmup 5 --repeat 50
"""
import argparse
import json
import resource
import sys
import time


def peak_rss_kb():
    """Peak resident memory of this process in KiB.

    VmHWM belongs to this program's own memory map; ru_maxrss can carry the parent's peak across exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def time_runs(run, warmup, repeat):
    """Milliseconds of each of `repeat` timed calls of `run()`, after `warmup` untimed ones (every bench worker)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _lite():
    import paddlelite.lite as lite

    return lite


def cmd_opt(args):
    lite = _lite()
    opt = lite.Opt()
    version = opt.version()
    if args.version:
        print(version)
        return 0
    print("converter: paddlelite %s (python %d.%d)" % (version, sys.version_info[0], sys.version_info[1]))
    sys.stdout.flush()
    if args.model_file:
        opt.set_model_file(args.model_file)
        if args.param_file:
            opt.set_param_file(args.param_file)
    elif args.model_dir:
        opt.set_model_dir(args.model_dir)
    else:
        print("error: --model_file or --model_dir is required", file=sys.stderr)
        return 2
    opt.set_model_type(args.optimize_out_type)
    opt.set_valid_places(args.valid_targets)
    if args.print_model_ops == "true":
        opt.check_if_model_supported(True)
        return 0
    if not args.optimize_out:
        print("error: --optimize_out is required", file=sys.stderr)
        return 2
    opt.set_optimize_out(args.optimize_out)
    opt.run()
    return 0


def _predictor(nb_path):
    lite = _lite()
    config = lite.MobileConfig()
    config.set_model_from_file(nb_path)
    return lite.create_paddle_predictor(config)


def _load_inputs(path):
    import numpy as np

    data = np.load(path)
    # keys are "0", "1", ...: the model's inputs in feed order
    return [np.ascontiguousarray(data[k]) for k in sorted(data.files, key=int)]


def _feed(predictor, arrays):
    # Lite's Tensor.from_numpy may keep pointing at the array it is given: the caller keeps
    # `arrays` alive until run() returns.
    for i, array in enumerate(arrays):
        predictor.get_input(i).from_numpy(array)


def cmd_run(args):
    import numpy as np

    predictor = _predictor(args.nb)
    arrays = _load_inputs(args.inputs)
    _feed(predictor, arrays)
    predictor.run()
    outputs = {}
    for i, _name in enumerate(predictor.get_output_names()):
        tensor = predictor.get_output(i)
        outputs[str(i)] = np.array(tensor.numpy(), copy=True)
        # a detection model's NMS output marks each image's rows only in its LoD: keep every level
        for level, offsets in enumerate(tensor.lod()):
            outputs["lod%d_%d" % (i, level)] = np.asarray(offsets, dtype=np.int64)
    np.savez(args.output, **outputs)
    del arrays
    return 0


def cmd_bench(args):
    _lite()  # the baseline includes the runtime, so the rest is the model's
    before = peak_rss_kb()
    predictor = _predictor(args.nb)
    arrays = _load_inputs(args.inputs)

    def step():
        _feed(predictor, arrays)
        predictor.run()
        return [predictor.get_output(i).numpy() for i in range(len(predictor.get_output_names()))]

    times = time_runs(step, args.warmup, args.repeat)
    print(json.dumps({
        "latencies_ms": times,
        "maxrss_kb": peak_rss_kb(),
        "baseline_rss_kb": before,
        "lite_version": _lite().Opt().version() if hasattr(_lite(), "Opt") else "unknown",
    }))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lite_worker")
    sub = parser.add_subparsers(dest="command")
    opt = sub.add_parser("opt")
    opt.add_argument("--model_file")
    opt.add_argument("--param_file")
    opt.add_argument("--model_dir")
    opt.add_argument("--optimize_out")
    opt.add_argument("--optimize_out_type", default="naive_buffer")
    opt.add_argument("--valid_targets", default="arm")
    opt.add_argument("--print_model_ops", default="false")
    opt.add_argument("--version", action="store_true")
    run = sub.add_parser("run")
    run.add_argument("--nb", required=True)
    run.add_argument("--inputs", required=True)
    run.add_argument("--output", required=True)
    bench = sub.add_parser("bench")
    bench.add_argument("--nb", required=True)
    bench.add_argument("--inputs", required=True)
    bench.add_argument("--warmup", type=int, default=5)
    bench.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)
    handlers = {"opt": cmd_opt, "run": cmd_run, "bench": cmd_bench}
    if args.command not in handlers:
        parser.print_help()
        return 2
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
