"""Keep Paddle's log noise (GLOG lines, PaddleSlim progress bars) out of the user's terminal.

Paddle reads GLOG_* variables when its C++ core loads, so `configure` must run before the first
`import paddle`; the CLI calls it at start-up. `--verbose` turns the noise back on.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

_VERBOSE = False
_QUIET_ENV = {
    "GLOG_minloglevel": "2",
    "GLOG_v": "0",
    "FLAGS_call_stack_level": "0",
    "TQDM_DISABLE": "1",
}
_set_by_us: set = set()


def configure(verbose: bool = False) -> None:
    """Set the environment and loggers so Paddle stays quiet unless `verbose`."""
    global _VERBOSE
    _VERBOSE = verbose
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


def is_verbose() -> bool:
    """Whether --verbose was given."""
    return _VERBOSE


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Redirect the process's stdout/stderr file descriptors to /dev/null unless verbose.

    PaddleSlim and Paddle's C++ core write straight to the file descriptors (progress bars,
    GLOG), so redirecting `sys.stdout` alone is not enough.
    """
    if _VERBOSE:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
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
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)
