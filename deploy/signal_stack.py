"""Keep the calling thread's alternate signal stack across calls into a native library that replaces it.

OpenVINO's CPU plugin points the calling thread's alternate signal stack (`sigaltstack`) at memory of its own
when it compiles a model (running it, at new input shapes too, leaves the stack alone), and gives it back only
when its objects are freed on that same thread. Freed on another thread (Python's garbage collector runs
wherever an allocation triggers it), the memory is unmapped while the calling thread still points at it. Python
installs its signal handlers with SA_ONSTACK, so the next signal with a Python handler (SIGCHLD, once Paddle's
multi-process DataLoader has run; SIGTERM under the CLI) cannot be delivered, and the kernel ends the process
with SIGSEGV. `kept_signal_stack` puts the thread's own stack back as soon as the library returns, so nothing
the library frees later is ever in use. It costs two system calls through ctypes (about 6 us), so it wraps
loading, not every run.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
from typing import Iterator, Optional


SS_DISABLE = 2  # <signal.h> on Linux


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc() -> Optional[ctypes.CDLL]:
    if not sys.platform.startswith("linux"):
        return None  # the plugin behaviour above was measured on Linux only
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc if hasattr(libc, "sigaltstack") else None
    except OSError:
        return None


_LIBC = _libc()


def current_signal_stack() -> Optional[_StackT]:
    """The calling thread's alternate signal stack, or None where it cannot be read."""
    if _LIBC is None:
        return None
    stack = _StackT()
    if _LIBC.sigaltstack(None, ctypes.byref(stack)) != 0:
        return None
    return stack


@contextlib.contextmanager
def kept_signal_stack() -> Iterator[None]:
    """Run the block, then give the calling thread back the alternate signal stack it had before."""
    before = current_signal_stack()
    try:
        yield
    finally:
        after = current_signal_stack()
        if before is not None and after is not None and (after.ss_sp, after.ss_size) != (before.ss_sp, before.ss_size):
            restore = _StackT(before.ss_sp, before.ss_flags & SS_DISABLE, before.ss_size)
            _LIBC.sigaltstack(ctypes.byref(restore), None)  # type: ignore[union-attr]
