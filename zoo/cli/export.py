"""`zoo export` (Paddle Inference folder, Paddle Lite .nb files or ONNX, validated) and `zoo bench`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer
from rich.markup import escape
from rich.table import Table

from zoo.cli.common import console, handle_errors, human_size, print_json, progress_log
from zoo.cli.image_flags import CHANNELS, INPUT_SIZE_HELP, MEAN, RESIZE, STD, image_overrides, parse_input_size
from zoo.cli.tables import compact_table, print_table
from zoo.deploy.export import export_model
from zoo.deploy.bench import BenchRow, bench_model
from zoo.device import parse_device


def _num(v: Optional[float], fmt: str = "{:.3f}") -> str:
    return "–" if v is None else fmt.format(v)


@handle_errors
def export_cmd(
    model: str = typer.Argument(..., help="Recipe name, `zoo reproduce` output folder, or Paddle inference model folder."),
    target: str = typer.Option(..., "--target", "-t", help="inference | lite | onnx"),
    arch: Optional[str] = typer.Option(None, "--arch", help="Lite targets, comma-separated: arm, x86, opencl (default: the entry's validated targets, else arm)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default ./NAME-TARGET)."),
    opt_bin: Optional[Path] = typer.Option(None, "--opt-bin", help="A paddle_lite_opt-compatible converter (else ZOO_LITE_OPT, else the `make setup` environments)."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", help="Validation inputs: .npy (one input) or .npz keyed by input name; default random."),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset of --target onnx (default 13)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Real images that validate the export: --target onnx, an ImageNet-layout folder; a detection model, "
                                                             "a COCO folder (val2017) for every target (digits entries use their bundled data)."),
    no_validate: bool = typer.Option(False, "--no-validate", help="Skip validating the artifacts against the source."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help=INPUT_SIZE_HELP + " Sizes the validation inputs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace same-named files in --out that the zoo did not write."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Export a model to Paddle Inference, Paddle Lite or ONNX and validate it against its source."""
    # long by its signature only (every option is declared there); the body is one job under 60 lines

    result = export_model(model, target.lower(), arches=arch.split(",") if arch is not None else None, out=out, opt_bin=opt_bin,
                          validate=not no_validate, inputs_path=inputs, opset=opset, data=data,
                          overwrite=overwrite, input_size=parse_input_size(input_size))
    if as_json:
        print_json(result.as_dict())
        return
    src = result.source
    console.print(f"[bold]{escape(model)}[/] ({src['kind']}, {src['precision'].upper()}"
                  + (f", {src['quantized_ops']} quantized ops" if src["quantized_ops"] else "") + f") -> {escape(str(result.out))}")
    table = Table(title=f"zoo export --target {result.target}")
    for col in ("artifact", "arch", "precision", "size", "vs FP32", "validation"):
        table.add_column(col, overflow="fold", no_wrap=(col == "artifact"))
    for art in result.artifacts:
        v = art.validation
        if v is None:
            check = "skipped (--no-validate)"
        elif v["kind"] == "outputs" and art.target == "onnx" and v.get("onnxruntime", {}).get("top1_agreement") is not None:
            check = f"ORT top-1 {v['onnxruntime']['top1_agreement']:.0%}, rel.err {v['max_rel_error']:.0e}"
        elif v["kind"] == "outputs" and v.get("onnxruntime", {}).get("cosine") is not None:
            ort = v["onnxruntime"]
            check = f"ORT cosine {ort['cosine']:.4f}, {ort['close_share']:.1%} close"
        elif v["kind"] == "outputs":
            check = f"ran: rel.err {v['max_rel_error']:.1e}"
        elif v["kind"] == "detections" and art.target == "onnx":
            check = ", ".join(f"{short}: {v[r]['matched']}/{v[r]['top_boxes']} boxes"
                              for r, short in (("onnxruntime", "ORT"), ("openvino", "OV")) if "matched" in v.get(r, {}))
        elif v["kind"] == "detections":
            check = f"ran: {v['matched']}/{v['top_boxes']} top boxes matched"
        elif art.precision == "int8":
            check = f"{v['int8_kernels']} INT8 kernels / {v['int8_ops_in_source']} ops"
        else:
            check = "kernels listed"
        ratio = "–" if art.size_vs_fp32 is None else f"{art.size_vs_fp32:.2f}x"
        name = art.path.name if art.target in ("lite", "onnx") else str(art.path)
        table.add_row(escape(name), art.arch or ("x86" if art.target == "onnx" else "cpu/gpu"), art.precision, human_size(art.size), ratio, check)
    console.print(table)
    if any(a.validation for a in result.artifacts) and result.target == "onnx":
        for art in result.artifacts:
            console.print(f"{art.path.name}: {art.validation['detail']}" if art.validation else "", markup=False)
            ov = (art.validation or {}).get("openvino") or {}
            if ov.get("top1_agreement") is not None:
                console.print(f"{art.path.name}: OpenVINO vs Paddle Inference: top-1 agreement {ov['top1_agreement']:.1%}, "
                              f"relative error {ov['max_rel_error']:.3g}")
            if (art.validation or {}).get("rewritten"):
                console.print(f"{art.path.name}: {art.validation['rewritten']}", markup=False)
    elif any(a.validation for a in result.artifacts):
        console.print("validation: inference folders and x86 .nb files ran against Paddle Inference on the same inputs; "
                      "arm/opencl .nb files cannot run here, so their kernels were checked")
    for art in result.artifacts:
        kernels = (art.validation or {}).get("kernels")
        if kernels and art.precision == "int8":
            int8 = ", ".join(f"{k} x{n}" for k, n in kernels.items() if "/int8" in k and not k.startswith("calib"))
            console.print(f"{art.path.name}: INT8 kernels: {int8 or 'none'}")
        decoding = (art.validation or {}).get("detection_ops")
        if decoding:
            console.print(f"{art.path.name}: detection ops: " + ", ".join(f"{k} x{n}" for k, n in decoding.items()))
        fallback = (art.validation or {}).get("float_fallback")
        if fallback:
            console.print(f"[yellow]{escape(art.path.name)}: the converter left quantized op(s) in float: {escape(', '.join(fallback))}[/]")
    for note in result.notes:
        console.print(f"note: {note}", markup=False)


@handle_errors
def bench_cmd(
    model: str = typer.Argument(..., help="Recipe name, `zoo reproduce` output folder, or Paddle inference model folder."),
    backend: str = typer.Option("paddle", "--backend", "-b", help="paddle (Paddle Inference, oneDNN on CPU) | lite (Paddle Lite x86, FP32 only) | onnxruntime | openvino (the ONNX export, CPU) | paddle3 (Paddle Inference 3.x, plain kernels) | all"),
    threads: int = typer.Option(1, "--threads", help="CPU threads (Paddle Inference)."),
    batch: int = typer.Option(1, "--batch", help="Batch size."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed runs first."),
    repeat: int = typer.Option(50, "--repeat", help="Timed runs."),
    device: str = typer.Option("cpu", "--device", metavar="cpu|gpu|gpu:N", help="Where Paddle Inference runs."),
    tensorrt: bool = typer.Option(False, "--tensorrt", help="On --device gpu: TensorRT (INT8 for quantized models)."),
    opt_bin: Optional[Path] = typer.Option(None, "--opt-bin", help="Converter for the Lite x86 run."),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageNet-layout folder: score each INT8 path's top-1 (val split) and its agreement with Paddle's fake-quant graph."),
    max_samples: Optional[int] = typer.Option(None, "--max-samples", min=1, help="With --data: score an evenly spaced subsample of N images."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help=INPUT_SIZE_HELP),
    channels: Optional[str] = CHANNELS,
    resize: Optional[str] = RESIZE,
    mean: Optional[str] = MEAN,
    std: Optional[str] = STD,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    wide: bool = typer.Option(False, "--wide", help="Every column: p90, throughput and file size too."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line on stderr as each backend finishes."),
) -> None:
    """Latency (p50/p90), throughput, peak memory and size; FP32 and INT8 side by side, the fastest INT8 path named."""

    target = parse_device(device)  # a misspelt device is refused before any model is resolved or run

    result = bench_model(model, backend=backend.lower(), threads=threads, batch=batch, warmup=warmup,
                         repeat=repeat, device=target, tensorrt=tensorrt, opt_bin=opt_bin, data=data,
                         max_samples=max_samples, input_size=parse_input_size(input_size),
                         image_overrides=image_overrides(channels, resize, mean, std),
                         on_row=_row_line(progress_log(not (as_json or quiet))))
    if as_json:
        print_json(result.as_dict())
        return
    checked = any(r.check for r in result.rows)
    # narrow by default (readable at 80 columns); --wide adds p90, throughput and file size
    columns = (["variant", "backend", "p50 ms", "p90 ms", "samples/s", "peak RSS", "file"] if wide else
               ["variant", "backend", "p50 ms", "peak RSS"]) + (["vs fake-quant"] if checked else [])
    table = compact_table(columns, numeric={"p50 ms", "p90 ms", "samples/s", "peak RSS", "file"}, keep_whole={"backend"},
                          title=f"zoo bench {escape(str(model))} ({result.device}, batch {batch}, threads {threads}, "
                                f"{repeat} runs)")
    for r in result.rows:
        cells = [r.variant, r.backend, _num(r.p50_ms)]
        if wide:
            cells += [_num(r.p90_ms), _num(r.throughput, "{:.1f}")]
        cells.append(_num(r.peak_rss_mb, "{:.0f} MB"))
        if wide:
            cells.append(human_size(r.file_size))
        if checked:
            cells.append(_agreement(r.check))
        table.add_row(*cells)
    print_table(console, table)
    console.print("peak RSS: the peak resident memory of the worker process, runtime included")
    if checked:
        console.print("vs fake-quant: each INT8 path against Paddle's fake-quant graph (top-1 agreement of class "
                      "scores; cosine, and per-position agreement, of dense maps and sequences) "
                      + ("on --data (top-1 there in brackets)" if result.data else "on 32 noise inputs"))
    for r in result.rows:
        if r.note:
            console.print(f"{r.variant} / {r.backend}: {r.note}", markup=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)


def _row_line(log: Callable[[str], None]) -> Callable[[BenchRow], None]:
    """One progress line per measured row: a long `--backend all` run shows what it has as it goes."""
    def line(row: BenchRow) -> None:
        timing = f"p50 {row.p50_ms:.3f} ms" if row.p50_ms is not None else (row.note or "not timed")
        log(f"{row.variant} on {row.backend}: {timing}")
    return line


def _agreement(check: Optional[dict]) -> str:
    if not check:
        return "–"
    part = check.get("data") or check.get("noise_inputs") or {}
    agree = part.get("top1_agreement")
    text = "–" if agree is None else f"{agree:.1%}"
    if agree is None and part.get("cosine") is not None:  # a dense map or a sequence
        positions = part.get("position_agreement")
        text = f"cos {part['cosine']:.3f}" + (f", {positions:.0%} pos." if positions is not None else "")
    if "top1" in part:
        text += f" ({part['top1']:.2f}%)"
    return text + ("" if part.get("passed") else " FAIL")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.command("bench")(bench_cmd)
