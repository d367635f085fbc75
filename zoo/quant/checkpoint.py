"""Per-epoch training checkpoints, written atomically, so an interrupted run resumes without losing an epoch.

Layout of the folder: epoch_K.pdparams (model), epoch_K.pdopt (optimizer + schedule), and
state.json, written last: a checkpoint exists only once state.json names it. Optimizer state is
stored under the model's structured parameter names, so it loads into a freshly built network
whose generated parameter names differ (a new process, or a second build in the same one).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from zoo.errors import TrainError
from zoo.fsutil import atomic_write_text, staged_file

STATE_FILE = "state.json"
KEEP = 2  # checkpoints kept on disk (the newest ones)


def _atomic_paddle_save(obj: Any, path: Path) -> None:
    import paddle

    with staged_file(path) as tmp:
        paddle.save(obj, str(tmp))


def _param_names(model: Any) -> Dict[str, str]:
    """Generated parameter name -> structured name (the state-dict key)."""
    return {p.name: key for key, p in model.named_parameters()}


def optimizer_state_out(opt_state: Dict[str, Any], model: Any) -> Dict[str, Any]:
    """Rename optimizer accumulators from generated parameter names to structured names."""
    names = sorted(_param_names(model).items(), key=lambda kv: -len(kv[0]))
    out: Dict[str, Any] = {}
    for key, value in opt_state.items():
        for generated, structured in names:
            if key.startswith(generated + "_"):
                out["@" + structured + key[len(generated):]] = value
                break
        else:
            out[key] = value
    return out


def optimizer_state_in(saved: Dict[str, Any], model: Any) -> Dict[str, Any]:
    """The inverse of `optimizer_state_out` for the parameters of `model`."""
    names = sorted(((s, g) for g, s in _param_names(model).items()), key=lambda kv: -len(kv[0]))
    out: Dict[str, Any] = {}
    for key, value in saved.items():
        if key.startswith("@"):
            body = key[1:]
            for structured, generated in names:
                if body.startswith(structured + "_"):
                    out[generated + body[len(structured):]] = value
                    break
        else:
            out[key] = value
    return out


class Checkpoints:
    """Epoch checkpoints of one training run in `folder`."""

    def __init__(self, folder: Path, fingerprint: Dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    def state(self) -> Optional[Dict[str, Any]]:
        path = self.folder / STATE_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrainError(
                f"{path} is unreadable: {exc}",
                hint="Remove the checkpoints folder to start training from scratch.",
            ) from exc

    def history(self) -> List[Dict[str, Any]]:
        state = self.state()
        return list(state.get("history", [])) if state else []

    def clear(self) -> None:
        """Forget earlier checkpoints (a run without --resume starts from scratch)."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.name == STATE_FILE or path.name.startswith("epoch_"):
                    path.unlink()

    def save(self, epoch: int, model: Any, optimizer: Any, record: Dict[str, Any]) -> None:
        """Checkpoint after `epoch` (1-based) finished; state.json is replaced last."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_paddle_save(model.state_dict(), self.folder / f"epoch_{epoch}.pdparams")
        _atomic_paddle_save(optimizer_state_out(optimizer.state_dict(), model), self.folder / f"epoch_{epoch}.pdopt")
        history = [h for h in self.history() if h.get("epoch", 0) < epoch] + [dict(record, epoch=epoch)]
        state = {"epochs_done": epoch, "fingerprint": self.fingerprint, "history": history}
        atomic_write_text(self.folder / STATE_FILE, json.dumps(state, indent=2))
        for old in range(1, epoch - KEEP + 1):
            for suffix in (".pdparams", ".pdopt"):
                stale = self.folder / f"epoch_{old}{suffix}"
                if stale.exists():
                    stale.unlink()

    def load_latest(self, model: Any, optimizer: Any) -> int:
        """Load the newest checkpoint into model + optimizer; return the number of finished epochs (0: none)."""
        import paddle

        state = self.state()
        if not state:
            return 0
        if state.get("fingerprint") != self.fingerprint:
            raise TrainError(
                f"the checkpoints in {self.folder} were made with different settings "
                f"({state.get('fingerprint')} vs {self.fingerprint})",
                hint="Resume with the same options, or drop --resume to start over.",
            )
        epoch = int(state["epochs_done"])
        params = self.folder / f"epoch_{epoch}.pdparams"
        opt = self.folder / f"epoch_{epoch}.pdopt"
        if not params.is_file() or not opt.is_file():
            raise TrainError(f"checkpoint of epoch {epoch} is missing in {self.folder}")
        weights = paddle.load(str(params))
        missing = set(model.state_dict()) - set(weights)
        if missing:
            raise TrainError(f"checkpoint {params} lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
        model.set_state_dict(weights)
        optimizer.set_state_dict(optimizer_state_in(paddle.load(str(opt)), model))
        return epoch
