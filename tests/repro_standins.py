"""Tiny stand-ins for the ImageNet entries: small networks saved like the published artifacts,
a tiny ImageNet-layout folder, and recipe copies that point at a local HTTP server.

The copies keep every setting of the real recipe (same URLs, preprocessing, quant and train
sections) except: the name (`standin_` prefix, names must be unique in the registry), the
published checksums (a stand-in cannot match them) and `arch_args` (width 0.25).
"""
from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path
from typing import Dict, Tuple
from urllib.parse import urlparse

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SCALE = 0.25


def make_imagenet(root: Path, classes: int = 3, per_class: int = 2) -> Path:
    """train/<class>/ and val/<class>/ folders with small random JPEGs (resized to 224 by the recipes)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img_{i}.jpg", quality=85)
    return root


def _tar(files: Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _inference_tar(net: object, folder_name: str, tmp: Path) -> bytes:
    import paddle

    spec = [paddle.static.InputSpec([None, 3, 224, 224], "float32", name="x")]
    net.eval()  # type: ignore[attr-defined]
    paddle.jit.save(net, str(tmp / "inference"), input_spec=spec)
    return _tar({
        f"{folder_name}/inference.pdmodel": (tmp / "inference.pdmodel").read_bytes(),
        f"{folder_name}/inference.pdiparams": (tmp / "inference.pdiparams").read_bytes(),
    })


def _lod_tensor(array: np.ndarray) -> bytes:
    """One static-graph variable file (LoDTensor version 0, no LoD, float32)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    desc = bytes([0x08, 5])  # data_type FP32
    for d in array.shape:
        desc += bytes([0x10]) + _varint(int(d))
    return struct.pack("<IQI", 0, 0, 0) + struct.pack("<i", len(desc)) + desc + array.tobytes()


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def build_artifacts(tmp: Path) -> Dict[str, bytes]:
    """URL path -> bytes of every stand-in artifact the four ImageNet recipes fetch."""
    import paddle
    from paddle.vision.models import MobileNetV1, MobileNetV3Small

    from zoo.models import build_model

    paddle.seed(0)
    out: Dict[str, bytes] = {}
    work = tmp / "standin-build"
    for sub in ("v3s", "v3l"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    # mobilenetv3_small_ptq: the reprod FP32 inference model (softmax appended)
    small = paddle.nn.Sequential(MobileNetV3Small(scale=SCALE, num_classes=1000), paddle.nn.Softmax())
    out["/model/mobilenetv3_reprod/mobilenet_v3_small_infer.tar"] = _inference_tar(small, "mobilenet_v3_small_infer", work / "v3s")
    # mobilenetv1_qat: a paddle.vision state dict (.pdparams)
    buf = io.BytesIO()
    paddle.save(MobileNetV1(scale=SCALE, num_classes=1000).state_dict(), buf)
    out["/models/mobilenetv1_1.0.pdparams"] = buf.getvalue()
    # mobilenetv3_large_pact_qat: PaddleClas static-graph persistables + the PaddleClas inference model
    large = build_model("mobilenet_v3_large_paddleclas", scale=SCALE, num_classes=1000)
    names = large.static_name_map()
    files = {f"MobileNetV3_large_x1_0_ssld_pretrained/{names[k]}": _lod_tensor(v.numpy()) for k, v in large.state_dict().items()}
    out["/MobileNetV3_large_x1_0_ssld_pretrained.tar"] = _tar(files)
    # mobilenetv3_act works on this FP32 inference model alone (arch inference_model), and PaddleSlim's
    # quant passes cost time quadratic in the op count: a MobileNetV1 0.25 graph stands in for it to keep
    # the test short (the PACT QAT entry exports its FP32 model from the network and never reads this one).
    v1 = MobileNetV1(scale=SCALE, num_classes=1000)
    out["/dygraph/inference/MobileNetV3_large_x1_0_infer.tar"] = _inference_tar(v1, "MobileNetV3_large_x1_0_infer", work / "v3l")
    return out


def standin_recipe(name: str, folder: Path) -> str:
    """Copy recipes/NAME.yaml as standin_NAME into `folder` (checksums dropped, width 0.25)."""
    data = yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text())
    data["name"] = f"standin_{name}"
    data.pop("aliases", None)
    for art in data["artifacts"].values():
        art.pop("sha256", None)
        art.pop("md5", None)
        art.pop("size", None)
    if data["arch"] != "inference_model":
        data["arch_args"] = {"scale": SCALE}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"standin_{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return data["name"]


def url_paths(name: str) -> Tuple[str, ...]:
    data = yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text())
    return tuple(urlparse(u).path for art in data["artifacts"].values() for u in art.get("urls", []))
