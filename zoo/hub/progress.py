"""Progress display: a pass-through wrapper around a download's chunk iterator.

The downloader knows nothing about terminals; `fetch(progress=True)` hands it `bar(label)`, which
shows a rich bar on stderr (a spinner when the size is unknown) only when stderr is a terminal.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Optional

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)


def terminal() -> bool:
    """Both stdout and stderr are terminals (so a bar cannot end up in a pipe or a log)."""
    return sys.stderr.isatty() and sys.stdout.isatty()


class Bar:
    """One progress line per file; `wrap` may be called again for each resumed attempt."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._progress: Optional[Progress] = None
        self._task = None

    def _start(self, total: Optional[int]) -> None:
        console = Console(stderr=True)
        columns = [SpinnerColumn() if total is None else TextColumn(""), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        else:
            columns += [DownloadColumn(), TransferSpeedColumn()]
        self._progress = Progress(*columns, console=console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=total)

    def wrap(self, chunks: Iterator[bytes], total: Optional[int], completed: int) -> Iterator[bytes]:
        if self._progress is None:
            self._start(total)
        assert self._progress is not None
        self._progress.update(self._task, total=total, completed=completed)
        for chunk in chunks:
            self._progress.advance(self._task, len(chunk))
            yield chunk

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def bar(label: str, enabled: bool) -> Iterator[Optional[Bar]]:
    """A Bar when enabled and on a terminal, else None (no output at all)."""
    if not (enabled and terminal()):
        yield None
        return
    b = Bar(label)
    try:
        yield b
    finally:
        b.close()
