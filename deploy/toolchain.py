"""Find the Paddle Lite converters and runtimes, and Paddle 3.x, by configuration, never by a fixed path.

Order: `--opt-bin` (a paddle_lite_opt-compatible executable), then ZOO_LITE_OPT, then the
environments `make setup` builds: this interpreter's paddlelite (2.13rc0) for arm/opencl, and the
CPython 3.7 + paddlelite 2.12 toolchain (ZOO_LITE_PYTHON, or `.venv-lite` next to this environment
or next to the repository) for x86, whose converter paddlelite 2.13rc0 crashes on. Paddle Inference 3.x runs
in a third environment (ZOO_PADDLE3_PYTHON, or `.venv-paddle3`), through deploy/paddle3_worker.py.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from zoo.errors import ConverterError

WORKER = Path(__file__).resolve().with_name("lite_worker.py")
ARCHES = ("arm", "x86", "opencl")


@dataclass(frozen=True)
class Converter:
    """A command line that accepts paddle_lite_opt's flags."""

    argv: List[str]
    label: str  # for messages: where it came from
    builtin: bool  # our worker (prints its version as its first line)


def side_python(env_var: str, folder: str, what: str, required: bool = True) -> Optional[Path]:
    """The interpreter of a side environment `make setup` builds (`folder` next to this environment or the
    repository), or the one `env_var` names; None when absent and not `required`."""
    env = os.environ.get(env_var)
    if env:
        path = Path(env).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ConverterError(f"{env_var}={env} is not an executable interpreter",
                             hint=f"Point {env_var} at the python of an environment with {what}, or unset it.")
    repo = Path(__file__).resolve().parents[1]
    for root in (Path(sys.prefix).parent, repo):
        candidate = root / folder / "bin" / "python"
        if candidate.is_file():
            return candidate
    if not required:
        return None
    raise ConverterError(f"no {what} environment found",
                         hint=f"Run `make setup` (it builds {folder}), or set {env_var} to that interpreter.")


def lite_python(required: bool = True) -> Optional[Path]:
    """The CPython 3.7 interpreter with paddlelite 2.12 (the x86 converter and .nb runtime)."""
    return side_python("ZOO_LITE_PYTHON", ".venv-lite", "CPython 3.7 + paddlelite 2.12 (x86 Paddle Lite)", required)


def paddle3_python(required: bool = True) -> Optional[Path]:
    """The interpreter with Paddle 3.x (`--runtime paddle3`, the export's Paddle 3 check)."""
    return side_python("ZOO_PADDLE3_PYTHON", ".venv-paddle3", "Paddle Inference 3.x", required)


def find_converter(arch: str, opt_bin: Optional[Path] = None) -> Converter:
    """The converter to use for `arch`."""
    if arch not in ARCHES:
        raise ConverterError(f"unknown Lite target {arch!r}", hint=f"Use one of {', '.join(ARCHES)}.")
    explicit = [(str(opt_bin), "--opt-bin")] if opt_bin else []
    if os.environ.get("ZOO_LITE_OPT"):
        explicit.append((os.environ["ZOO_LITE_OPT"], "ZOO_LITE_OPT"))
    if explicit:
        path_text, origin = explicit[0]
        on_path = shutil.which(path_text) if os.sep not in path_text else None  # a bare name: looked up on PATH
        # absolute: the converter runs with another working folder, where ./tool would name nothing
        path = Path(on_path or path_text).expanduser().absolute()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise ConverterError(f"{origin} {path_text} is not an executable file ({path})",
                                 hint="Give the path of a paddle_lite_opt-compatible converter (or its name on PATH).")
        return Converter([str(path)], f"{path} (from {origin})", builtin=False)
    if arch == "x86":
        python = lite_python()
        return Converter([str(python), str(WORKER), "opt"], f"paddlelite in {python}", builtin=True)
    if importlib.util.find_spec("paddlelite") is None:
        raise ConverterError(
            "paddlelite is not installed in this environment (needed to convert for arm/opencl)",
            hint="Run `make setup`, `pip install paddlelite==2.13rc0`, or pass --opt-bin / ZOO_LITE_OPT.",
        )
    return Converter([sys.executable, str(WORKER), "opt"], f"paddlelite in {sys.executable}", builtin=True)


def runtime_python() -> Path:
    """The interpreter that runs x86 `.nb` files (they must be run by the Lite version that wrote them)."""
    python = lite_python()
    assert python is not None
    return python
