"""What every command shares: consoles, error rendering, JSON output."""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
import traceback
from typing import Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from zoo.modelcheck import is_no_space
from zoo.errors import ZooError

F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # no hard wraps inside paths


def debug_enabled() -> bool:
    """ZOO_DEBUG=1 shows tracebacks."""
    return os.environ.get("ZOO_DEBUG", "") not in ("", "0", "false", "no")


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (a scheduler's or `kill`'s stop) act like Ctrl-C: finished stages kept, the --resume hint
    printed. Paddle installs a C++ SIGTERM handler that prints a native traceback when it is imported, so
    Paddle is imported first and its handler replaced."""
    import paddle  # noqa: F401 - see above: its handler must be installed before ours replaces it

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


def render_error(exc: BaseException) -> int:
    """Print an error as message + hint on stderr and return the exit code to use."""
    if not isinstance(exc, ZooError) and is_no_space(exc):  # a full disk at any stage is the user's to fix, not a bug
        where = getattr(exc, "filename", None)
        exc = ZooError(f"no space left on device{f' while writing {where}' if where else ''}",
                       hint="Free some space on that file system and run again (`zoo reproduce --resume` keeps the "
                            "finished stages).")
    if isinstance(exc, ZooError):
        # messages quote paths and file contents: escape them so a "[/x]" in them is printed, not parsed
        err_console.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, highlight=False)
        if exc.hint:
            err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", markup=True, highlight=False)
        code = exc.exit_code
    elif isinstance(exc, KeyboardInterrupt):
        err_console.print("[bold red]interrupted[/]")
        code = 130
    else:
        err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}", markup=True)
        err_console.print("[yellow]hint:[/] rerun with ZOO_DEBUG=1 for the traceback and report it.")
        code = 1
    if debug_enabled():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return code


def handle_errors(func: F) -> F:
    """Decorate a command: ZooError (and any other failure) becomes a clean message and exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the CLI is the one place that renders every failure
            raise typer.Exit(render_error(exc)) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (no rich markup, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def human_size(n: Optional[int]) -> str:
    """A byte count as people read it (rich's decimal units: 6.3 MB); "–" when unknown."""
    from rich.filesize import decimal

    return "–" if n is None else decimal(int(n))


def progress_log(enabled: bool) -> Callable[[str], None]:
    """Progress lines on stderr (dimmed), or a sink when `enabled` is False (--quiet, --json)."""
    from rich.markup import escape

    if not enabled:
        return lambda message: None
    return lambda message: err_console.print(f"[dim]{escape(message)}[/]")
