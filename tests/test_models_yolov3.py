"""YOLOv3 networks: the 0.x persistable name maps, loading by name, and the legacy inference export."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest

from tests.test_models_mobilenet_v3 import write_persistables
from tests.yolov3_static_ref import benign, build_and_save
from zoo.errors import ModelError
from zoo.modelcheck import read_program_desc
from zoo.models import available_models, build_model
from zoo.models.yolov3 import ANCHORS, DOWNSAMPLE, decode_legacy, export_legacy, load_legacy_weights

ARCHS = {"yolov3_mobilenet_v1": "mobilenet_v1", "yolov3_resnet34": "resnet34",
         "yolov3_resnet50vd_dcn": "resnet50vd_dcn"}
# state-dict sizes of the published networks (docs/detection.md §1.4, counted on PaddleDetection's own layers)
COUNTS = {"yolov3_mobilenet_v1": 241, "yolov3_resnet34": 291, "yolov3_resnet50vd_dcn": 387}
# 0.x names and shapes at full width, 80 classes: every backbone rule and the head's concat widths
KNOWN: Dict[str, Dict[str, Tuple[int, ...]]] = {
    "yolov3_mobilenet_v1": {
        "conv1_weights": (32, 3, 3, 3), "conv1_bn_variance": (32,),
        "conv2_1_dw_weights": (32, 1, 3, 3), "conv2_1_dw_bn_mean": (32,), "conv2_1_sep_weights": (64, 32, 1, 1),
        "conv5_3_sep_bn_variance": (512,), "conv6_dw_bn_offset": (1024,), "conv6_sep_weights": (1024, 1024, 1, 1),
        "yolo_block.0.0.0.conv.weights": (512, 1024, 1, 1),
        "yolo_block.1.0.0.conv.weights": (256, 256 + 512, 1, 1),  # route 256 + conv4_2's 512
        "yolo_block.2.0.0.conv.weights": (128, 128 + 256, 1, 1),  # route 128 + conv3_2's 256
        "yolo_block.0.tip.conv.weights": (1024, 512, 3, 3), "yolo_block.2.1.1.bn.var": (256,),
        "yolo_transition.0.conv.weights": (256, 512, 1, 1), "yolo_transition.1.bn.offset": (128,),
        "yolo_output.0.conv.weights": (255, 1024, 1, 1), "yolo_output.2.conv.bias": (255,),
    },
    "yolov3_resnet34": {
        "conv1_weights": (64, 3, 7, 7), "bn_conv1_mean": (64,),
        "res2a_branch1_weights": (64, 64, 1, 1), "bn2a_branch1_variance": (64,),
        "res2a_branch2a_weights": (64, 64, 3, 3), "res3a_branch1_weights": (128, 64, 1, 1),
        "res4f_branch2b_weights": (256, 256, 3, 3), "bn5c_branch2b_scale": (512,),
        "yolo_block.0.0.0.conv.weights": (512, 512, 1, 1),
        "yolo_block.1.0.0.conv.weights": (256, 256 + 256, 1, 1),
        "yolo_block.2.0.0.conv.weights": (128, 128 + 128, 1, 1),
    },
    "yolov3_resnet50vd_dcn": {
        "conv1_1_weights": (32, 3, 3, 3), "bnv1_1_scale": (32,), "conv1_3_weights": (64, 32, 3, 3),
        "res2a_branch1_weights": (256, 64, 1, 1), "res3a_branch1_weights": (512, 256, 1, 1),
        "bn3a_branch1_variance": (512,), "res4f_branch2c_weights": (1024, 256, 1, 1),
        "res5a_branch2b_weights": (512, 512, 3, 3), "bn5a_branch2b_scale": (512,),
        "res5a_branch2b_conv_offset.w_0": (27, 512, 3, 3), "res5c_branch2b_conv_offset.b_0": (27,),
        "yolo_block.0.0.0.conv.weights": (512, 2048, 1, 1),
        "yolo_block.1.0.0.conv.weights": (256, 256 + 1024, 1, 1),
        "yolo_block.2.0.0.conv.weights": (128, 128 + 512, 1, 1),
    },
}
TINY = {"num_classes": 3, "width": 0.125}
IM_SIZE = np.array([[480, 640], [300, 200]], dtype="int32")  # (H, W) of two "original" images
X = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype("float32")


def random_state(net, seed: int) -> Dict[str, np.ndarray]:
    """Distinct random values for every state-dict entry that keep the signal alive (see benign)."""
    rng = np.random.default_rng(seed)
    names = net.static_name_map()
    return {key: benign(names[key], tuple(t.shape), rng) for key, t in net.state_dict().items()}


def forward(net, x: np.ndarray):
    import paddle

    net.eval()
    return [o.numpy() for o in net(paddle.to_tensor(x))]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory):
    """Per arch: a tiny 0.x static program (tests/yolov3_static_ref.py) saved as persistables with
    Paddle's save_vars in an archive's sub-folder, optimizer state beside them; its names, its arrays
    and its raw outputs on X."""
    out = {}
    for arch, backbone in ARCHS.items():
        root = tmp_path_factory.mktemp(arch)
        folder = root / f"{arch}_pretrained"
        arrays, outputs = build_and_save(backbone, TINY["width"], TINY["num_classes"], 64, folder, X, seed=len(out))
        write_persistables(folder, {"learning_rate_0": np.ones(1, "float32"),
                                    "yolo_output.0.conv.weights_velocity_0": np.zeros_like(arrays["yolo_output.0.conv.weights"])})
        out[arch] = (root, arrays, outputs)
    return out


@pytest.mark.parametrize("arch", list(ARCHS))
def test_full_width_name_map(arch: str) -> None:
    import paddle

    assert arch in available_models()
    with paddle.LazyGuard():  # shapes without allocating the full-size weights
        net = build_model(arch)
    names = net.static_name_map()
    state = net.state_dict()
    assert set(names) == set(state)
    assert len(set(names.values())) == len(names) == COUNTS[arch]
    shapes = {names[k]: tuple(v.shape) for k, v in state.items()}
    for name, shape in KNOWN[arch].items():
        assert shapes[name] == shape, name
    head = [n for n in names.values() if n.startswith("yolo_")]
    assert len(head) == 106
    assert all(n.endswith((".weights", ".bias", ".scale", ".offset", ".mean", ".var")) for n in head)
    # the bias-free rule: only the output convs and the DCN offset convs carry a bias
    biased = sorted(k for k in state if k.endswith(".bias") and ".bn." not in k)
    assert biased == sorted([f"outputs.{i}.bias" for i in range(3)]
                            + [f"backbone.stages.3.{i}.branch2b.conv_offset.bias" for i in range(3) if "dcn" in arch])


@pytest.mark.parametrize("arch", list(ARCHS))
def test_tiny_forward_shapes(arch: str) -> None:
    net = build_model(arch, **TINY)
    outs = forward(net, np.zeros((2, 3, 96, 64), "float32"))
    assert [o.shape for o in outs] == [(2, 3 * (5 + 3), 96 // s, 64 // s) for s in DOWNSAMPLE]


@pytest.mark.parametrize("arch", list(ARCHS))
def test_static_program_names_are_the_map(arch: str, tiny_weights) -> None:
    """The parameters a 0.x-style static program declares are exactly the map's names, with the network's shapes."""
    _, arrays, _ = tiny_weights[arch]
    net = build_model(arch, **TINY)
    names = net.static_name_map()
    assert set(arrays) == set(names.values())
    for key, tensor in net.state_dict().items():
        assert arrays[names[key]].shape == tuple(tensor.shape), key


@pytest.mark.parametrize("arch", list(ARCHS))
def test_persistables_land_by_name(arch: str, tiny_weights) -> None:
    """Every parameter lands where the map says, and the network then computes what the 0.x program computed."""
    root, arrays, outputs = tiny_weights[arch]
    loaded = build_model(arch, **TINY)
    load_legacy_weights(loaded, root, backbone=ARCHS[arch])
    names = loaded.static_name_map()
    for key, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), arrays[names[key]], err_msg=key)
    got = forward(loaded, X)
    assert [g.shape for g in got] == [(2, 3 * (5 + 3), 64 // s, 64 // s) for s in DOWNSAMPLE]
    for g, want in zip(got, outputs):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


def test_program_state_mapping_loads(tiny_weights) -> None:
    """Paddle's own reader of a persistables folder gives a mapping the loader takes as it is."""
    import paddle

    root, arrays, _ = tiny_weights["yolov3_mobilenet_v1"]
    state = paddle.static.load_program_state(str(root / "yolov3_mobilenet_v1_pretrained"))
    net = build_model("yolov3_mobilenet_v1", **TINY)
    load_legacy_weights(net, state)
    np.testing.assert_array_equal(net.state_dict()["backbone.blocks.0.dw.conv.weight"].numpy(),
                                  arrays["conv2_1_dw_weights"])


@pytest.mark.parametrize("arch,a,b", [
    ("yolov3_mobilenet_v1", "conv2_1_dw_bn_scale", "conv2_1_dw_bn_offset"),
    ("yolov3_mobilenet_v1", "yolo_block.1.0.0.bn.mean", "yolo_block.1.2.bn.mean"),
    ("yolov3_resnet34", "res2a_branch2a_weights", "res2b_branch2a_weights"),
    ("yolov3_resnet50vd_dcn", "bn5a_branch2b_scale", "bn5b_branch2b_scale"),
])
def test_misplaced_parameter_changes_output(arch: str, a: str, b: str, tiny_weights) -> None:
    _, arrays, _ = tiny_weights[arch]
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype("float32")
    right = build_model(arch, **TINY)
    load_legacy_weights(right, arrays)
    assert arrays[a].shape == arrays[b].shape
    swapped = {**arrays, a: arrays[b], b: arrays[a]}
    wrong = build_model(arch, **TINY)
    load_legacy_weights(wrong, swapped)
    diff = max(float(np.abs(g - w).max()) for g, w in zip(forward(wrong, x), forward(right, x)))
    assert diff > 1e-3


def test_dcn_offsets_are_used(tiny_weights) -> None:
    """Zero offsets and a zero mask logit (mask 0.5) give 0.5 x a plain conv: the learned offsets change the output."""
    _, arrays, _ = tiny_weights["yolov3_resnet50vd_dcn"]
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype("float32")
    right = build_model("yolov3_resnet50vd_dcn", **TINY)
    load_legacy_weights(right, arrays)
    zeroed = {k: (np.zeros_like(v) if "_conv_offset." in k else v) for k, v in arrays.items()}
    assert sum("_conv_offset." in k for k in arrays) == 6
    flat = build_model("yolov3_resnet50vd_dcn", **TINY)
    load_legacy_weights(flat, zeroed)
    assert max(float(np.abs(g - w).max()) for g, w in zip(forward(flat, x), forward(right, x))) > 1e-3


def test_missing_or_misnamed_parameter_is_refused(tiny_weights, tmp_path: Path) -> None:
    _, arrays, _ = tiny_weights["yolov3_mobilenet_v1"]
    net = build_model("yolov3_mobilenet_v1", **TINY)
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    partial = {k: v for k, v in arrays.items() if k != "yolo_output.2.conv.bias"}
    with pytest.raises(ModelError, match=r"lacks 1 parameter.*yolo_output\.2\.conv\.bias"):
        load_legacy_weights(net, partial)
    misnamed = {("conv2_1_dw_weight" if k == "conv2_1_dw_weights" else k): v for k, v in arrays.items()}
    with pytest.raises(ModelError, match="conv2_1_dw_weights") as err:
        load_legacy_weights(net, misnamed)
    assert "found conv2_1_dw_weight" in err.value.hint
    write_persistables(tmp_path / "p", {k: v for k, v in arrays.items() if k != "conv5_3_sep_bn_variance"})
    with pytest.raises(ModelError, match="conv5_3_sep_bn_variance"):
        load_legacy_weights(net, tmp_path)
    for key, value in net.state_dict().items():  # a refused load leaves the network as it was
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_other_backbone_or_width_is_refused(tiny_weights) -> None:
    root, _, _ = tiny_weights["yolov3_resnet34"]
    with pytest.raises(ModelError, match="lacks .* parameter"):
        load_legacy_weights(build_model("yolov3_mobilenet_v1", **TINY), root)
    with pytest.raises(ModelError, match="weights are for resnet34"):
        load_legacy_weights(build_model("yolov3_mobilenet_v1", **TINY), root, backbone="resnet34")
    with pytest.raises(ModelError, match="shape"):
        load_legacy_weights(build_model("yolov3_resnet34", num_classes=3, width=0.25), root)
    with pytest.raises(ModelError, match="shape"):  # another class count: the output convs differ
        load_legacy_weights(build_model("yolov3_resnet34", num_classes=4, width=0.125), root)


# ---------------------------------------------------------------------------------------------------
# the legacy inference export

SIZE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """A tiny MobileNetV1 YOLOv3 with random weights, exported with the legacy contract."""
    import paddle

    net = build_model("yolov3_mobilenet_v1", num_classes=3, width=0.25)
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in random_state(net, seed=7).items()})
    net.eval()
    files = export_legacy(net, tmp_path_factory.mktemp("legacy") / "model", SIZE)
    return net, files


def reference(net, x: np.ndarray, im_size: np.ndarray, conf_thresh: float = 0.01):
    import paddle

    return decode_legacy(net, net(paddle.to_tensor(x)), im_size, conf_thresh)


def sorted_rows(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


def images(size: int, n: int = 2, seed: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype("float32")


def test_export_program_is_the_legacy_contract(exported) -> None:
    _, files = exported
    assert files.model_file.name == "inference.pdmodel"
    desc = read_program_desc(files.model_file)
    block = desc.blocks[0]
    dims = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars}
    assert dims["image"] == [-1, 3, SIZE, SIZE] and dims["im_size"] == [-1, 2]
    types = [op.type for op in block.ops]
    assert types.count("yolo_box") == 3 and types.count("multiclass_nms") == 1
    assert not {"multiclass_nms2", "multiclass_nms3"} & set(types)
    attrs = {op.type + str(i): {a.name: a for a in op.attrs} for i, op in enumerate(block.ops)}
    boxes = [a for k, a in attrs.items() if k.startswith("yolo_box")]
    assert [a["downsample_ratio"].i for a in boxes] == list(DOWNSAMPLE)
    assert [list(a["anchors"].ints) for a in boxes] == [
        [v for i in m for v in ANCHORS[i]] for m in ([6, 7, 8], [3, 4, 5], [0, 1, 2])]
    assert all(abs(a["conf_thresh"].f - 0.01) < 1e-7 and a["class_num"].i == 3 and a["clip_bbox"].b for a in boxes)
    nms = next(a for k, a in attrs.items() if k.startswith("multiclass_nms"))
    assert (nms["background_label"].i, nms["nms_top_k"].i, nms["keep_top_k"].i, nms["normalized"].b) == (-1, 1000, 100, False)
    assert abs(nms["score_threshold"].f - 0.01) < 1e-7 and abs(nms["nms_threshold"].f - 0.45) < 1e-7
    assert not any(a.name == "op_callstack" for op in block.ops for a in op.attrs)


@pytest.mark.parametrize("size", [SIZE, 32])
def test_export_matches_dygraph_decode(exported, size: int) -> None:
    """Through Paddle Inference at the declared size and a smaller one: the rows of both images equal
    the dygraph network's outputs decoded by yolo_box + NMS."""
    from zoo.predictor import Predictor

    net, files = exported
    x = images(size)
    got = Predictor(files).run({"image": x, "im_size": IM_SIZE})[0]
    want = reference(net, x, IM_SIZE)
    assert got.shape == (sum(len(w) for w in want), 6) and len(want[0]) > 0 and len(want[1]) > 0
    np.testing.assert_allclose(sorted_rows(got), sorted_rows(np.concatenate(want)), rtol=1e-4, atol=1e-3)


def test_export_output_lod_splits_the_batch(exported) -> None:
    """Read as the 0.x eval did (Executor, return_numpy=False): a per-image LoD, boxes in original pixels."""
    import paddle

    from zoo.modelcheck import load_inference_program

    net, files = exported
    x = images(SIZE, seed=5)
    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(paddle.static.Scope()):
            program, feeds, fetches = load_inference_program(files, exe)
            assert feeds == ["image", "im_size"]
            (out,) = exe.run(program, feed={"image": x, "im_size": IM_SIZE}, fetch_list=fetches, return_numpy=False)
            rows, lod = np.array(out), out.lod()
    finally:
        paddle.disable_static()
    want = reference(net, x, IM_SIZE)
    assert lod == [[0, len(want[0]), len(want[0]) + len(want[1])]]
    for i, (h, w) in enumerate(IM_SIZE):
        mine = rows[lod[0][i]:lod[0][i + 1]]
        np.testing.assert_allclose(sorted_rows(mine), sorted_rows(want[i]), rtol=1e-4, atol=1e-3)
        assert set(np.unique(mine[:, 0])) <= {0.0, 1.0, 2.0} and (mine[:, 1] > 0.01).all()
        assert (mine[:, 2:4] >= 0).all() and (mine[:, 4] <= w - 1).all() and (mine[:, 5] <= h - 1).all()
        assert (mine[:, 4] >= mine[:, 2]).all() and (mine[:, 5] >= mine[:, 3]).all()


def test_export_legacy_names_and_no_box_sentinel(exported, tmp_path: Path) -> None:
    """`__model__`/`__params__` as the published archives name them; a batch without a box gives [[-1]]."""
    from zoo.modelfiles import find_model_files
    from zoo.predictor import Predictor

    net, _ = exported
    files = export_legacy(net, tmp_path / "archive", SIZE, conf_thresh=1.0, legacy_names=True)
    assert sorted(p.name for p in (tmp_path / "archive").iterdir()) == ["__model__", "__params__"]
    assert find_model_files(tmp_path / "archive") == files
    out = Predictor(files).run({"image": images(SIZE), "im_size": IM_SIZE})[0]
    np.testing.assert_array_equal(out, [[-1.0]])
    assert all(len(r) == 0 for r in reference(net, images(SIZE), IM_SIZE, conf_thresh=1.0))


def test_export_refuses_bad_size_and_mixed_folder(exported, tmp_path: Path) -> None:
    net, files = exported
    with pytest.raises(ModelError, match="multiple of 32"):
        export_legacy(net, tmp_path / "m", 100)
    assert not (tmp_path / "m").exists()
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "__model__").write_bytes(files.model_file.read_bytes())
    with pytest.raises(ModelError, match="other names"):
        export_legacy(net, tmp_path / "mixed", SIZE)
