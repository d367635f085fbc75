"""`zoo list`, `zoo info`, `zoo docs`: browse the registry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Tuple

import typer
from rich.markup import escape
from rich.tree import Tree

from zoo import catalog
from zoo.cli.common import console, handle_errors, print_json
from zoo.cli.tables import compact_table, print_table
from zoo.errors import UsageError, ZooError
from zoo.modelcheck import check_model
from zoo.modelfiles import find_model_files
from zoo.program import read_program
from zoo.registry import load_registry
from zoo.plugins import STRATEGIES, TASKS
from zoo.schema import Recipe, Task
from zoo.models.registry import INFERENCE_MODEL, get_architecture

docs_app = typer.Typer(help="Generated documentation.", no_args_is_help=True)


def _headline(recipe: Recipe) -> Tuple[str, str, str]:
    """(metric label, INT8, FP32) of the headline metric at the headline setting, as table cells."""
    row, key = recipe.headline(), recipe.primary_metric()
    digits = 2 if recipe.task == Task.classification else 1  # as published: top-1 73.52, box AP 35.2
    label = "top-1" if key == "top1" else f"AP {row.input_size}"

    def cell(value: Optional[float]) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    return label, cell(row.metrics().get(key)), cell(row.fp32().get(key))


@handle_errors
def list_cmd(
    pattern: Optional[str] = typer.Argument(None, help="fnmatch pattern or substring of the name."),
    task: Optional[str] = typer.Option(None, "--task", help="Only this task (classification, detection, or a registered one)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Only this strategy (ptq, qat, act, or a registered one)."),
    wide: bool = typer.Option(False, "--wide", help="Every column: the task, and all published metrics at every setting."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the registry with published metrics.

    The compact table (80 columns) shows the headline metric: top-1, or box AP at the first
    published input size; --wide shows every metric at every setting.
    """
    for flag, name, table in (("--task", task, TASKS), ("--strategy", strategy, STRATEGIES)):
        if name is not None and name not in table:
            raise UsageError(f"{flag}: unknown {table.kind} {name!r}", hint=f"Known {table.plural}: {', '.join(table.names())}.")
    recipes = load_registry().filter(pattern, task, strategy)
    if as_json:
        print_json([catalog.summary(r) for r in recipes])
        return
    if not recipes:
        console.print("no entry matches")
        return
    title = f"zoo: {len(recipes)} entr{'y' if len(recipes) == 1 else 'ies'}"
    if wide:
        table = compact_table(["name", "task", "strategy", "INT8 (published)", "FP32", "drop"], title=title,
                              numeric={"drop"}, keep_whole={"name"})
    else:
        table = compact_table(["name", "strategy", "metric", "INT8", "FP32", "drop"], title=title,
                              numeric={"INT8", "FP32", "drop"}, keep_whole={"name"})
    for r in recipes:
        d = catalog.drop(r)
        drop = "–" if d is None else f"{d:.2f}"
        if wide:
            table.add_row(r.name, r.task, r.strategy, catalog.metric_text(r),
                          catalog.metric_text(r, fp32=True), drop)
        else:
            table.add_row(r.name, r.strategy, *_headline(r), drop)
    print_table(console, table)


def _tree(label: str, data: object, node: Optional[Tree] = None) -> Tree:
    node = node if node is not None else Tree(label)
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list)) and value:
                _tree(str(key), value, node.add(f"[bold]{key}[/]"))
            else:
                node.add(f"[bold]{key}[/]: {value}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            if isinstance(value, (dict, list)):
                _tree(str(i), value, node.add(f"[dim]{i}[/]"))
            else:
                node.add(str(value))
    return node


@handle_errors
def info_cmd(
    name: str = typer.Argument(..., help="Entry name or alias, or a Paddle inference model folder."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show everything in one recipe, with where its numbers come from; or what a model folder holds."""
    if Path(name).expanduser().is_dir():
        _folder_info(Path(name).expanduser(), as_json)
        return
    registry = load_registry()
    recipe = registry.get(name)
    data = recipe.model_dump(mode="json", exclude_none=True)
    if as_json:
        data["recipe_file"] = str(registry.origins.get(recipe.name, ""))
        print_json(data)
        return
    console.print(f"[bold]{recipe.name}[/]: {recipe.summary}")
    console.print(f"published numbers from: {recipe.source.doc}\n  {recipe.source.url}", markup=False)
    console.print(_architecture_line(recipe))
    console.print(_tree(recipe.name, data))


RECORDS = ("zoo-quantize.json", "zoo_export.json", "zoo-artifact.json")  # what the zoo wrote about a folder's model


def model_summary(folder: Path) -> dict:
    """A model folder as the program declares it: files, inputs, outputs, precision, op counts, and the
    records the zoo wrote beside it (its FP32 source and settings, its export, its download)."""
    files = find_model_files(folder)
    check_model(files)  # a damaged file is named, not parsed
    info = read_program(files)
    counts: dict = {}
    for op in info.ops:
        counts[op.type] = counts.get(op.type, 0) + 1
    records = {}
    for name in RECORDS:
        try:
            records[name] = json.loads((files.folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return {
        "folder": str(files.folder), "model_file": str(files.model_file),
        "params_file": str(files.params_file) if files.params_file else None,
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in info.inputs],
        "outputs": list(info.outputs), "precision": info.precision, "quantized_ops": len(info.quantized),
        "ops": dict(sorted(counts.items(), key=lambda kv: -kv[1])), "records": records,
    }


def _folder_info(folder: Path, as_json: bool) -> None:
    summary = model_summary(folder)
    if as_json:
        print_json(summary)
        return
    console.print(f"[bold]{escape(summary['folder'])}[/]: {summary['precision'].upper()} Paddle inference model"
                  + (f", {summary['quantized_ops']} quantized ops" if summary["quantized_ops"] else ""))
    for spec in summary["inputs"]:
        shape = ", ".join("N" if d < 0 else str(d) for d in spec["shape"])
        console.print(f"  input   {escape(spec['name'])}: ({shape}) {spec['dtype']}")
    console.print(f"  outputs {escape(', '.join(summary['outputs']))}")
    console.print("  ops     " + escape(", ".join(f"{k} x{n}" for k, n in list(summary["ops"].items())[:12]))
                  + (", ..." if len(summary["ops"]) > 12 else ""))
    for name, record in summary["records"].items():
        source = record.get("model") or record.get("source") or record.get("url")
        console.print(f"  {escape(name)}: " + escape(str(source) if source else "present"))


def _architecture_line(recipe: Recipe) -> str:
    """What builds the entry's network and which weights it loads (or that it has no network definition)."""

    if recipe.arch == INFERENCE_MODEL:
        return "network: none (the strategy works on the FP32 inference model itself)"
    arch = get_architecture(recipe.arch)
    args = ", ".join(f"{k}={v}" for k, v in recipe.arch_args.items())
    return f"network: {arch.name}({args}) from zoo.models.archs; loads {arch.weights}"


@docs_app.command("model-zoo")
@handle_errors
def model_zoo_cmd(
    write: bool = typer.Option(False, "--write", help="Write the file instead of printing it."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when the file differs from the registry."),
    output: Path = typer.Option(Path("MODEL_ZOO.md"), "--output", "-o", help="Where MODEL_ZOO.md lives."),
    matrix: Path = typer.Option(Path("benchmarks/matrix-receipt.json"), "--matrix",
                                help="A `zoo matrix` receipt whose matrix the file shows (skipped when absent)."),
) -> None:
    """Generate MODEL_ZOO.md from the registry (and the deployed-accuracy matrix from a `zoo matrix` receipt)."""
    if write and check:
        raise UsageError("give --write or --check, not both")
    receipt = None
    if matrix.is_file():
        try:
            receipt = json.loads(matrix.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UsageError(f"{matrix} is not a `zoo matrix` receipt: {exc}", hint="Write it again with `zoo matrix`.") from None
    text = catalog.render_model_zoo(load_registry().filter(), receipt)
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            # a failed check, not a usage mistake: exit 1 like `zoo cache verify`
            raise ZooError(f"{output} is out of sync with recipes/", hint="Run `zoo docs model-zoo --write`.")
        console.print(f"{output} is in sync", markup=False)
    elif write:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}", markup=False)
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
    app.command("info")(info_cmd)
    app.add_typer(docs_app, name="docs")
