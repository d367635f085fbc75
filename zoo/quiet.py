"""Keep Paddle's log noise (GLOG lines, PaddleSlim progress bars) out of the user's terminal.

Paddle reads GLOG_* variables when its C++ core loads, so `configure` must run before the first
`import paddle`; the CLI calls it at start-up. `--verbose` turns the noise back on.

A library call changes nothing in the process unless asked: until `configure(verbose=False)` runs
(the CLI's start-up, or a Python caller that wants the quiet), `silenced()` redirects nothing.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from typing import Iterator, Optional, Tuple

_SILENCE = False  # set by configure(): silenced() redirects file descriptors only when the caller asked
_QUIET_ENV = {
    "GLOG_minloglevel": "2",
    "GLOG_v": "0",
    "FLAGS_call_stack_level": "0",
    "TQDM_DISABLE": "1",
}
_set_by_us: set = set()


# UserWarnings Paddle and its imports give on every training or export run; they say nothing about the user's run
_KNOWN_NOISE = (
    "Setuptools is replacing distutils",
    "When training, we now always track global mean and variance",
    "full_graph=False don't support input_spec arguments",
)


def configure(verbose: bool = False) -> None:
    """Set the environment and loggers so Paddle stays quiet unless `verbose`."""
    global _SILENCE
    _SILENCE = not verbose
    if verbose:
        for key in list(_set_by_us):
            os.environ.pop(key, None)
            _set_by_us.discard(key)
        for name in ("paddle", "paddleslim", "PaddleSlim"):
            logging.getLogger(name).setLevel(logging.INFO)
        return
    for key, value in _QUIET_ENV.items():
        if key not in os.environ:
            os.environ[key] = value
            _set_by_us.add(key)
    for name in ("paddle", "paddleslim", "PaddleSlim", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in _KNOWN_NOISE:  # by message: a warning of the same category that says something else still shows
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


def is_verbose() -> bool:
    """Whether Paddle's own output should show: --verbose, or nobody asked for quiet (a plain library call)."""
    return not _SILENCE


# the terminal's stdout/stderr, saved by the outermost silenced() block in progress (None: nothing redirected)
_terminal: Optional[Tuple[int, int]] = None
_devnull: Optional[int] = None
_lock = threading.RLock()


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Redirect the process's stdout/stderr file descriptors to /dev/null around one noisy call, when the
    caller asked for quiet (`configure(verbose=False)`: the CLI does).

    PaddleSlim and Paddle's C++ core write straight to the file descriptors (progress bars,
    GLOG), so redirecting `sys.stdout` alone is not enough. The descriptors are restored on every
    exit path; wrap only the call that prints, and report progress from inside it through `audible()`.
    """
    global _terminal, _devnull
    if not _SILENCE:
        yield
        return
    with _lock:
        outermost = _terminal is None
        sys.stdout.flush()
        sys.stderr.flush()
        if outermost:
            _terminal = (os.dup(1), os.dup(2))
            _devnull = os.open(os.devnull, os.O_WRONLY)
        saved = (os.dup(1), os.dup(2))  # what this block restores (an inner block restores the outer's redirect)
        os.dup2(_devnull, 1)  # type: ignore[arg-type]
        os.dup2(_devnull, 2)  # type: ignore[arg-type]
    try:
        with _paddleslim_loggers_off():
            yield
    finally:
        with _lock:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if outermost:
                for fd in (*_terminal, _devnull):  # type: ignore[misc]
                    os.close(fd)
                _terminal = _devnull = None


@contextlib.contextmanager
def audible() -> Iterator[None]:
    """Inside silenced(): let this block's output (the zoo's own progress reports) reach the terminal again."""
    with _lock:
        if _terminal is None:
            yield
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(_terminal[0], 1)
        os.dup2(_terminal[1], 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(_devnull, 1)  # type: ignore[arg-type]
            os.dup2(_devnull, 2)  # type: ignore[arg-type]


@contextlib.contextmanager
def _paddleslim_loggers_off() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("paddleslim", "PaddleSlim", "paddle")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    # PaddleSlim's module loggers set their own INFO level and keep their own stream handle
    # (a copy of the original stderr), so levels and fd redirection do not reach them.
    modules = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
               if n.lower().startswith("paddleslim")]
    disabled = [lg.disabled for lg in modules]
    for lg in modules:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)
        for lg, was in zip(modules, disabled):
            lg.disabled = was
