"""MobileNetV3 large (PaddleClas layout) loaded from legacy static-graph persistables by name."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from zoo.errors import ModelError
from zoo.models import build_model
from zoo.models.weights import load_persistables, load_pretrained, read_lod_tensor
from zoo.registry import get_recipe

# a few names and shapes of the published x1.0 SSLD checkpoint
KNOWN = {
    "conv1_weights": (16, 3, 3, 3),
    "conv1_bn_scale": (16,),
    "conv2_expand_weights": (16, 16, 1, 1),
    "conv2_depthwise_weights": (16, 1, 3, 3),
    "conv5_se_1_weights": (18, 72, 1, 1),
    "conv5_se_2_offset": (72,),
    "conv16_linear_bn_variance": (160,),
    "conv_last_weights": (960, 160, 1, 1),
    "last_1x1_conv_weights": (1280, 960, 1, 1),
    "fc_weights": (1280, 1000),
    "fc_offset": (1000,),
}


def write_persistables(folder: Path, arrays: Dict[str, np.ndarray]) -> None:
    """One LoDTensor file per variable, written by Paddle's own static-graph save_vars."""
    import paddle

    paddle.enable_static()
    try:
        prog = paddle.static.Program()
        block = prog.global_block()
        variables = [block.create_var(name=n, shape=a.shape, dtype=str(a.dtype), persistable=True) for n, a in arrays.items()]
        scope = paddle.static.Scope()
        for name, array in arrays.items():
            scope.var(name).get_tensor().set(array, paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            paddle.static.save_vars(paddle.static.Executor(paddle.CPUPlace()), str(folder), main_program=prog, vars=variables)
    finally:
        paddle.disable_static()


@pytest.fixture(scope="module")
def persistables(tmp_path_factory: pytest.TempPathFactory):
    """A full set of random persistables for the x1.0 network under its static names (in a sub-folder, like the archive)."""
    import paddle

    paddle.seed(1)
    net = build_model("mobilenet_v3_large_paddleclas")
    name_map = net.static_name_map()
    rng = np.random.default_rng(0)
    arrays, by_key = {}, {}
    for key, tensor in net.state_dict().items():
        value = (rng.standard_normal(tuple(tensor.shape)) * 0.1).astype("float32")
        if key.endswith("_variance"):
            value = np.abs(value) + 0.5
        arrays[name_map[key]] = value
        by_key[key] = value
    root = tmp_path_factory.mktemp("ssld") / "MobileNetV3_large_x1_0_ssld_pretrained"
    write_persistables(root, arrays)
    return root.parent, arrays, by_key


def test_name_map_covers_every_parameter() -> None:
    net = build_model("mobilenet_v3_large_paddleclas")
    name_map = net.static_name_map()
    state = net.state_dict()
    assert set(name_map) == set(state)
    assert len(set(name_map.values())) == len(name_map) == 270  # one-to-one
    shapes = {name_map[k]: tuple(v.shape) for k, v in state.items()}
    for name, shape in KNOWN.items():
        assert shapes[name] == shape, name
    assert all(n.startswith(("conv", "last_1x1", "fc_")) for n in name_map.values())


def test_reader_matches_paddle_writer(persistables) -> None:
    folder, arrays, _ = persistables
    root = folder / "MobileNetV3_large_x1_0_ssld_pretrained"
    for name in ("conv1_weights", "fc_offset", "conv14_se_2_weights"):
        np.testing.assert_array_equal(read_lod_tensor(root / name), arrays[name])
    assert len(load_persistables(root)) == 270


def test_loaded_forward_equals_direct_weights(persistables) -> None:
    import paddle

    folder, _, by_key = persistables
    recipe = get_recipe("mobilenetv3_large_pact_qat")
    loaded = build_model("mobilenet_v3_large_paddleclas")
    load_pretrained(loaded, recipe, folder)
    direct = build_model("mobilenet_v3_large_paddleclas")
    direct.set_state_dict({k: paddle.to_tensor(v) for k, v in by_key.items()})
    for key, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), by_key[key])
    loaded.eval()
    direct.eval()
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype("float32"))
    out = loaded(x).numpy()
    assert out.shape == (2, 1000)
    np.testing.assert_array_equal(out, direct(x).numpy())


def test_missing_variable_is_a_clear_error(persistables, tmp_path: Path) -> None:
    _, arrays, _ = persistables
    partial = {k: v for k, v in arrays.items() if k != "conv7_depthwise_bn_mean"}
    write_persistables(tmp_path / "p", partial)
    with pytest.raises(ModelError, match="conv7_depthwise_bn_mean"):
        load_pretrained(build_model("mobilenet_v3_large_paddleclas"), get_recipe("mobilenetv3_large_pact_qat"), tmp_path)


def test_wrong_width_is_a_clear_error(persistables) -> None:
    folder, _, _ = persistables
    with pytest.raises(ModelError, match="shape"):
        load_pretrained(build_model("mobilenet_v3_large_paddleclas", scale=0.5), get_recipe("mobilenetv3_large_pact_qat"), folder)


def test_not_a_tensor_file(tmp_path: Path) -> None:
    (tmp_path / "conv1_weights").write_bytes(b"\x00" * 7)
    with pytest.raises(ModelError, match="not a Paddle tensor file"):
        read_lod_tensor(tmp_path / "conv1_weights")


def test_unverified_pdparams_refused(tmp_path: Path) -> None:
    import paddle

    net = build_model("mobilenet_v1", scale=0.25, num_classes=10)
    path = tmp_path / "w.pdparams"
    paddle.save(net.state_dict(), str(path))
    with pytest.raises(Exception, match="refusing"):
        load_pretrained(net, get_recipe("mobilenetv1_qat"), path)
