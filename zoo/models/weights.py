"""Load published weights into zoo networks.

- `.pdparams` (a pickle): loaded only when the file's hash matches the recipe (or the caller
  vouches that zoo.hub verified it against its pin).
- Static-graph persistables (one LoDTensor file per variable): read with zoo.modelcheck's reader of
  Paddle's on-disk tensor format and mapped to the network's state dict by an explicit name map.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Mapping, Optional

import numpy as np

from zoo.errors import ModelError
from zoo.fsutil import hash_file
from zoo.modelcheck import read_lod_tensor
from zoo.schema import Layout, Recipe, Role

def persistables_root(folder: Path, probe: str) -> Path:
    """The folder holding the variable files (archives often add one top-level folder)."""
    folder = Path(folder)
    if (folder / probe).is_file():
        return folder
    for sub in sorted(p for p in folder.rglob(probe) if p.is_file()):
        return sub.parent
    raise ModelError(f"{folder} holds no variable file named {probe!r}",
                     hint="Pass the extracted static-graph persistables folder of this architecture.")


def load_persistables(folder: Path, names: Optional[list] = None) -> Dict[str, np.ndarray]:
    """Variable name -> array for `names` (or every regular file) of a persistables folder."""
    folder = Path(folder)
    if names is None:
        names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    out: Dict[str, np.ndarray] = {}
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelError(f"{folder} lacks variable file(s) {shown}",
                         hint="The persistables do not match this architecture (or the archive is incomplete).")
    for name in names:
        out[name] = read_lod_tensor(folder / name)
    return out


def state_from_persistables(model, folder: Path, name_map: Mapping[str, str]) -> Dict[str, np.ndarray]:
    """Build a full state dict for `model` from persistables through `name_map` (key -> static name).

    Every state-dict entry must be mapped and every shape must match; otherwise ModelError.
    """
    state = model.state_dict()
    unmapped = sorted(set(state) - set(name_map))
    if unmapped:
        raise ModelError(f"the name map misses {len(unmapped)} parameter(s), e.g. {unmapped[:3]}")
    root = persistables_root(folder, next(iter(name_map.values())))
    arrays = load_persistables(root, [name_map[k] for k in state])
    out: Dict[str, np.ndarray] = {}
    for key, tensor in state.items():
        value = arrays[name_map[key]]
        want = tuple(tensor.shape)
        if tuple(value.shape) != want:
            raise ModelError(f"{name_map[key]}: shape {tuple(value.shape)} does not fit {key} {want}",
                             hint="The persistables belong to another architecture or width.")
        out[key] = value.astype(np.float32) if value.dtype != np.float32 and np.issubdtype(value.dtype, np.floating) else value
    return out


def load_pretrained(model, recipe: Recipe, path: Path, verify: Optional[Callable[[Path], bool]] = None,
                    role: Role = Role.pretrained) -> None:
    """Load the recipe's `role` artifact (a fetched file or extracted folder of weights) into `model`.

    `.pdparams` are pickles: they load only if the recipe's sha256/md5 matches, or, for a recipe
    without a checksum, if `verify(path)` vouches for the file (e.g. the caller fetched it through zoo.hub,
    which checked it against its pin, or zoo.hub.verified_pdparams finds its hash pinned or published).
    """
    artifact = recipe.artifacts.get(role)
    if artifact is None:
        raise ModelError(f"{recipe.name} has no {role.value} artifact")
    path = Path(path)
    if artifact.layout is Layout.pdparams:
        if path.is_dir():
            found = sorted(path.rglob("*.pdparams"))
            if not found:
                raise ModelError(f"{path} holds no .pdparams file")
            path = found[0]
        if artifact.sha256 is not None:
            verified = hash_file(path)[0] == artifact.sha256
        elif artifact.md5 is not None:
            verified = hash_file(path)[1] == artifact.md5
        else:
            verified = verify is not None and verify(path)
        if not verified:
            raise ModelError(f"refusing to unpickle {path}: its hash does not match the recipe",
                             hint="Fetch it with `zoo fetch NAME` so it is verified, or check the file.")
        import paddle

        state = paddle.load(str(path))
        _set_state(model, state, str(path))
        return
    if artifact.layout is Layout.persistables:
        name_map = getattr(model, "static_name_map", None)
        if name_map is None:
            raise ModelError(f"{type(model).__name__} has no name map for static-graph persistables")
        _set_state(model, state_from_persistables(model, path, name_map()), str(path))
        return
    raise ModelError(f"{recipe.name}: a {artifact.layout.value} artifact is not a weight file",
                     hint="Use it as an inference model instead.")


def _set_state(model, state: Mapping[str, object], origin: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ModelError(f"{origin} misses {len(missing)} parameter(s) of the network, e.g. {missing[:3]}")
    for key, tensor in own.items():
        shape = tuple(np.shape(state[key]))
        if shape != tuple(tensor.shape):
            raise ModelError(f"{origin}: {key} has shape {shape}, the network wants {tuple(tensor.shape)}")
    model.set_state_dict({k: state[k] for k in own})
