"""The architecture registry, the digits variants and inference export."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.errors import DuplicateNameError, ModelError, UnknownNameError
from zoo.models import INFERENCE_MODEL, available_models, build_model, register_model, save_inference


def test_builtin_archs_are_registered() -> None:
    assert {"mobilenet_v1", "mobilenet_v3_large_paddleclas", "mobilenet_v3_small",
            "digits_mobilenet_v1", "digits_mobilenet_v3_small"} <= set(available_models())


def test_duplicate_name_raises() -> None:
    with pytest.raises(DuplicateNameError, match="already registered"):
        register_model("mobilenet_v1")(lambda: None)
    with pytest.raises(DuplicateNameError, match="already registered"):
        register_model(INFERENCE_MODEL)(lambda: None)


def test_register_and_build_custom() -> None:
    @register_model("test_registry_identity")
    def _identity(width: int = 3):
        return ("identity", width)

    assert build_model("test_registry_identity", width=5) == ("identity", 5)


def test_unknown_and_inference_model_arch() -> None:
    with pytest.raises(UnknownNameError, match="unknown architecture 'nope'") as err:
        build_model("nope")
    assert "digits_mobilenet_v1" in err.value.hint
    with pytest.raises(ModelError, match="no network definition"):
        build_model(INFERENCE_MODEL)


@pytest.mark.parametrize("arch", ["digits_mobilenet_v1", "digits_mobilenet_v3_small"])
def test_digits_variants_export_and_match(arch: str, tmp_path: Path) -> None:
    import paddle

    from zoo.predictor import Predictor

    paddle.seed(0)
    net = build_model(arch)
    net.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
    want = net(paddle.to_tensor(x)).numpy()
    assert want.shape == (2, 10)
    files = save_inference(net, tmp_path / "m", (3, 32, 32))
    assert files.model_file.name == "inference.pdmodel" and files.params_file.name == "inference.pdiparams"
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".export")]
    pred = Predictor(files)
    got = pred.run(x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the spec's batch dimension is free
    assert pred.run(np.concatenate([x, x, x]))[0].shape == (6, 10)
