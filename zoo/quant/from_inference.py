"""Load a network's weights from an FP32 inference model of the same architecture.

An inference model keeps its weights under generated names (conv2d_0.w_0, ...) that need not
match a freshly built network's. The network is traced the same way (paddle.jit.save to a scratch
folder), and the persistable inputs of both programs are paired in op order, with every shape
checked; a program of another architecture is refused.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from zoo.errors import ModelError
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.program import open_program
from zoo.quiet import silenced


def _persistables_in_op_order(files: ModelFiles) -> Tuple[List[str], Dict[str, np.ndarray]]:
    with open_program(files) as opened:
        block, scope = opened.program.global_block(), opened.scope
        order: List[str] = []
        for op in block.ops:
            for name in op.input_arg_names:
                if name not in order and block.has_var(name) and block.var(name).persistable and name not in ("feed", "fetch"):
                    order.append(name)
        values = {n: np.array(scope.find_var(n).get_tensor()) for n in order if scope.find_var(n) is not None}
    return order, values


def load_from_inference(network: Any, model: ModelFiles, input_shape: Tuple[int, int, int]) -> None:
    """Set `network`'s parameters and buffers from the inference model `model`."""
    import paddle

    names = {t.name: key for key, t in list(network.named_parameters()) + list(network.named_buffers())}
    with tempfile.TemporaryDirectory(prefix="zoo-trace-") as tmp:
        was_training = network.training
        network.eval()
        spec = [paddle.static.InputSpec([None, *input_shape], "float32", name="x")]
        with silenced():
            paddle.jit.save(network, str(Path(tmp) / "inference"), input_spec=spec)
        if was_training:
            network.train()
        mine, _ = _persistables_in_op_order(find_model_files(Path(tmp)))
        theirs, values = _persistables_in_op_order(model)
    if len(mine) != len(theirs):
        raise ModelError(
            f"{model.folder} has {len(theirs)} weight tensors, the network {len(mine)}",
            hint="The FP32 model and the recipe's `arch` must be the same architecture and width.",
        )
    state = network.state_dict()
    new: Dict[str, np.ndarray] = {}
    for ours, their in zip(mine, theirs):
        key = names.get(ours)
        if key is None:
            continue
        value = values.get(their)
        if value is None or tuple(value.shape) != tuple(state[key].shape):
            raise ModelError(
                f"{model.folder}: {their} {None if value is None else value.shape} does not fit {key} {tuple(state[key].shape)}",
                hint="The FP32 model and the recipe's `arch` must be the same architecture and width.",
            )
        new[key] = value
    missing = sorted(set(state) - set(new))
    if missing:
        raise ModelError(f"{model.folder} gives no value for {len(missing)} tensors of the network, e.g. {missing[:3]}")
    network.set_state_dict(new)
