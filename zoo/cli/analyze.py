"""`zoo analyze MODEL`: which layers cost accuracy when quantized (per-layer sensitivity)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


from zoo.cli.common import console, handle_errors, interrupt_on_sigterm, print_json, progress_log
from zoo.cli.image_flags import CHANNELS, FOLDER_INPUT_SIZE, MEAN, RESIZE, STD, image_choices
from zoo.cli.quantize import require_float_model, usage_checked, warn_short_calibration
from zoo.cli.tables import compact_table, print_table
from zoo.device import require_device
from zoo.fsutil import atomic_write_bytes
from zoo.modelfiles import find_model_files
from zoo.outdir import prepare_out, record_written
from zoo.quant.inputs import with_progress, calibration_input
from zoo.quant.settings import PTQSettings, SearchTarget
from zoo.quant.search import analyze, load_eval_data, plot_analysis


ANALYSIS_FILES = ("analysis.json", "analysis.png")


@handle_errors
def analyze_cmd(
    model_dir: Path = typer.Argument(..., help="Folder of a Paddle inference model (or its .pdmodel file)."),
    calib_data: Path = typer.Option(..., "--calib-data", help="ImageNet-layout folder, or .npy/.npz of (N, C, H, W) inputs."),
    eval_data: Path = typer.Option(..., "--eval-data",
                                   help="ImageNet-layout folder (val split), or .npz with x (N, C, H, W) and y (N,) labels "
                                        "(without labels: cosine similarity of the outputs to FP32)."),
    algo: str = typer.Option("KL", "--algo", help="Threshold search: KL (Paddle 2.x), KL_paddle1 (Paddle 1.x), hist, mse, avg, abs_max."),
    metric: Optional[str] = typer.Option(None, "--metric", help="top1 or cosine (default: top1 when labelled)."),
    max_drop: float = typer.Option(1.0, "--max-drop", min=0.0, help="The skip list is the float fallback meeting this drop."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Calibration batch size."),
    batch_nums: int = typer.Option(10, "--batch-nums", min=1, help="Number of calibration batches."),
    split: str = typer.Option("val", "--split", help="Split of an image folder to calibrate on: val or train."),
    hist_percent: float = typer.Option(0.9999, "--hist-percent", help="Percentile of the hist algo."),
    ops: str = typer.Option("conv2d,depthwise_conv2d,mul", "--ops", help="Comma-separated op types to quantize."),
    eval_samples: Optional[int] = typer.Option(None, "--eval-samples", min=1, help="Use N evenly spaced --eval-data inputs."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for analysis.json and analysis.png."),
    input_size: Optional[str] = FOLDER_INPUT_SIZE,
    channels: Optional[str] = CHANNELS,
    resize: Optional[str] = RESIZE,
    mean: Optional[str] = MEAN,
    std: Optional[str] = STD,
    device: str = typer.Option("cpu", "--device", metavar="cpu|gpu|gpu:N", help="Where the analysis runs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace same-named files in --out that the zoo did not write."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr (calibration batches, layers)."),
) -> None:
    """Per-layer sensitivity: the metric with only each layer INT8 and with only each layer float.

    Prints the layers ranked by what quantizing them alone costs, and a skip list (the float
    fallback that meets --max-drop) ready for `zoo quantize --skip` or a recipe's `quant.skip`.
    """

    target_device = require_device(device)
    settings = usage_checked(PTQSettings, algo=algo, batch_size=batch_size, batch_nums=batch_nums,
                             hist_percent=hist_percent, ops=ops)
    usage_checked(SearchTarget, max_drop, metric or "top1", (algo,))  # the simulator models the algo; metric known
    images = image_choices(input_size, channels, resize, mean, std)
    interrupt_on_sigterm()  # stopped like Ctrl-C: nothing half-written, no native traceback
    model = find_model_files(model_dir)
    require_float_model(model, "analyze")
    if out is not None:  # checked before the analysis, which takes minutes
        out = prepare_out(out, sources=[model.folder], names=ANALYSIS_FILES, overwrite=overwrite)
    calib, samples = calibration_input(calib_data, model, split, batch_size, batch_nums, images)
    calib = with_progress(calib, batch_size, batch_nums, progress_log(not (as_json or quiet)))
    warn_short_calibration(samples, batch_size, batch_nums)
    data = load_eval_data(eval_data, model, "val", eval_samples, images)
    log = progress_log(not (as_json or quiet))
    result = analyze(model, calib, data, settings, metric=metric, max_drop=max_drop, device=target_device, log=log)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot_analysis(result, out / "analysis.png")
        atomic_write_bytes(out / "analysis.json", (json.dumps(result, indent=2) + "\n").encode("utf-8"))
        record_written(out, ANALYSIS_FILES)
        result["files"] = {"json": str(out / "analysis.json"), "plot": str(out / "analysis.png")}
    if as_json:
        print_json(result)
        return
    m = result["metric"]
    table = compact_table(["rank", "layer", "op", "only INT8", "drop", "only float", "gain"],
                          title=f"{model.folder.name}: {algo}, {m} FP32 {result['fp32']:.2f}, all INT8 {result['all_int8']:.2f}",
                          numeric={"rank", "only INT8", "drop", "only float", "gain"})
    for rank, row in enumerate(result["layers"], start=1):
        table.add_row(str(rank), row["name"], row["op_type"], f"{row['only_this_int8']:.2f}",
                      f"{row['drop_only_this_int8']:+.2f}", f"{row['only_this_float']:.2f}", f"{row['gain_this_float']:+.2f}")
    print_table(console, table)
    got = result["skip_result"]
    if got is None:
        console.print(f"no float fallback met a drop of {max_drop:g}")
    else:
        console.print(f"skip list for a drop <= {max_drop:g} ({got['float_layers']} float, {m} {got['metric']:.2f}): "
                      f"{','.join(result['skip']) or '(none needed)'}")
    if out is not None:
        console.print(f"written: {result['files']['json']}, {result['files']['plot']}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
