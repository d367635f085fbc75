"""Training progress on stderr: a live bar on a terminal, one plain line per epoch otherwise.

The strategies report through zoo.quant.base.TrainProgress; this module only renders. stdout is
never touched, so `--json` output stays machine-readable whatever is shown here.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from zoo.quant.base import TrainProgress


def epoch_line(epoch: int, epochs: int, metrics: Mapping[str, float]) -> str:
    """One finished epoch as plain text: "epoch 1/3: 22 steps, mean loss 0.4312, 3.1 s"."""
    parts = [f"{int(metrics.get('steps', 0))} steps"]
    if metrics.get("loss") is not None:
        parts.append(f"mean loss {float(metrics['loss']):.4f}")
    if metrics.get("seconds") is not None:
        parts.append(f"{float(metrics['seconds']):.1f} s")
    return f"epoch {epoch}/{epochs}: " + ", ".join(parts)


class TrainingDisplay(TrainProgress):
    """Renders TrainProgress reports on `console`: a bar (epoch, step/total, loss, ETA) when it is a terminal."""

    def __init__(self, console: Console, live: Optional[bool] = None) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.epochs = 0
        self._bar: Optional[Progress] = None
        self._task: Any = None

    def start(self, total_steps: int, epochs: int, done_steps: int = 0) -> None:
        self.epochs = epochs
        if not self.live:
            return
        fields = {"epoch": "-", "epochs": epochs, "loss": "-"}
        if self._bar is None:
            self._bar = Progress(
                TextColumn("training  epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("training", total=total_steps, completed=done_steps, **fields)
        else:  # a strategy that starts over (ACT retrying its final conversion)
            self._bar.reset(self._task, total=total_steps, completed=done_steps, **fields)

    def step(self, epoch: int, step: int, loss: Optional[float]) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, epoch=epoch, loss="-" if loss is None else f"{loss:.4f}")

    def epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        # under a live bar rich prints this above it, so finished epochs stay on screen
        self.console.print(epoch_line(epoch, self.epochs, metrics), markup=False, highlight=False)
        if epoch >= self.epochs:
            self.close()  # training is over: no finished bar lingers through the evaluation that follows

    def close(self) -> None:
        """Take the bar off the screen (the per-epoch lines stay)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextlib.contextmanager
def training_progress(console: Console, quiet: bool = False) -> Iterator[Optional[TrainProgress]]:
    """A TrainingDisplay on `console` for the duration, or None with `quiet`."""
    if quiet:
        yield None
        return
    display = TrainingDisplay(console)
    try:
        yield display
    finally:
        display.close()
