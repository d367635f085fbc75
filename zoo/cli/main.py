"""The `zoo` console script."""
from __future__ import annotations

import importlib
from typing import Optional

import typer

from zoo import __version__, quiet
from zoo.numerics import pin_cpu_math

app = typer.Typer(
    name="zoo",
    help="A model zoo for quantized PaddlePaddle models: list, fetch, reproduce, evaluate, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: flags read as flags (rich panels label every flag `<bool>`), nothing
    # to wrap but the text, and no box drawing in a pipe; subcommands inherit it
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each module registers its commands on `app` through a `register(app)` function.
COMMAND_MODULES = [
    "zoo.cli.fetch",
    "zoo.cli.catalog",
    "zoo.cli.reproduce",
    "zoo.cli.quantize",
    "zoo.cli.export",
    "zoo.cli.evaluate",
    "zoo.cli.analyze",
    "zoo.cli.matrix",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Paddle's own logs and progress bars."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    quiet.configure(verbose=verbose)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def run() -> None:
    """Entry point of the console script."""
    quiet.configure(verbose=False)  # before any paddle import; --verbose undoes it
    pin_cpu_math()  # before Paddle's first MKL call: training gives the same result on every x86 CPU
    app()


if __name__ == "__main__":
    run()
