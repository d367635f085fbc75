"""One wrapper around the Paddle Inference predictor (paddle.inference), used by eval, export and bench."""
from __future__ import annotations

from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Union

import numpy as np

from zoo.device import DeviceLike, require_device
from zoo.errors import ModelError, paddle_message
from zoo.modelcheck import check_model
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.program import int8_typed_weights, lite_only_error
from zoo.quiet import silenced


# The op types oneDNN runs in INT8: those post-training quantization calibrates (mul runs as oneDNN's fc).
# Left to itself, Paddle's oneDNN INT8 pass also quantizes ops that hold no calibrated scale of their own, concat
# among them, with scales taken from their neighbours: in a YOLOv3 detector that includes the concat gathering
# the decoded boxes and scores before NMS, so every box coordinate and score was rounded to 8 bits (the bundled
# PTQ detector: box AP 44.51 against the fake-quant graph's 57.03; with this set 57.12).
ONEDNN_INT8_OPS = frozenset({"conv2d", "depthwise_conv2d", "fc", "matmul", "matmul_v2"})


class Predictor:
    """A loaded Paddle Inference model: named inputs in, list of outputs out."""

    def __init__(
        self,
        model: Union[Path, ModelFiles],
        device: DeviceLike = "cpu",
        threads: int = 1,
        mkldnn: bool = False,
        int8: bool = False,
        ir_optim: bool = True,
        tensorrt: bool = False,
        optim_cache_dir: Optional[Path] = None,
    ) -> None:
        from paddle import inference  # heavy import, kept lazy

        self.files = model if isinstance(model, ModelFiles) else find_model_files(Path(model))
        desc = check_model(self.files)  # Paddle Inference crashes natively on some corrupt files; refuse them first
        lite_only = int8_typed_weights(desc)
        if lite_only:  # Paddle would load it and then fail on the first batch with an unrelated-looking error
            raise lite_only_error(self.files, lite_only)
        if self.files.params_file is not None:
            config = inference.Config(str(self.files.model_file), str(self.files.params_file))
        else:
            config = inference.Config(str(self.files.folder))
            if self.files.model_file.name != "__model__":
                config.set_model(str(self.files.model_file), "")
        target = require_device(device)
        target.configure_predictor(config)
        if target.is_gpu:
            if tensorrt:
                # a quantized model carries its own scales: INT8 TensorRT without a calibration pass
                precision = inference.PrecisionType.Int8 if int8 else inference.PrecisionType.Float32
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=64, min_subgraph_size=3,
                                              precision_mode=precision, use_static=False, use_calib_mode=False)
        else:
            config.set_cpu_math_library_num_threads(threads)
            if mkldnn:
                config.enable_mkldnn()
                if int8:
                    config.enable_mkldnn_int8(set(ONEDNN_INT8_OPS))
        config.switch_ir_optim(ir_optim)
        if optim_cache_dir is not None:
            # keeps the optimized program (_optimized.pdmodel) so callers can see which kernels were chosen
            config.enable_save_optim_model(True)
            config.set_optim_cache_dir(str(optim_cache_dir))
        config.disable_glog_info()
        config.switch_use_feed_fetch_ops(False)
        try:
            with silenced():  # oneDNN and the IR passes print past GLOG's settings while the predictor is built
                self._predictor = inference.create_predictor(config)
        except Exception as exc:  # paddle raises bare RuntimeError/ValueError subclasses from C++
            raise ModelError(f"Paddle Inference cannot load {self.files.folder}: {paddle_message(exc)}") from exc
        self.input_names: List[str] = list(self._predictor.get_input_names())
        self.output_names: List[str] = list(self._predictor.get_output_names())

    def run(self, inputs: Union[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray]]) -> List[np.ndarray]:
        """Run one batch; a single array feeds the only (or first) input."""
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if not isinstance(inputs, Mapping):
            if len(inputs) != len(self.input_names):
                raise ModelError(
                    f"the model takes {len(self.input_names)} input(s) {self.input_names}, got {len(inputs)}"
                )
            inputs = dict(zip(self.input_names, inputs))
        for name in self.input_names:
            if name not in inputs:
                raise ModelError(f"missing model input {name!r}; the model takes {self.input_names}")
            handle = self._predictor.get_input_handle(name)
            array = np.ascontiguousarray(inputs[name])
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        try:
            self._predictor.run()
        except Exception as exc:
            shapes = {k: tuple(np.shape(v)) for k, v in inputs.items()}
            raise ModelError(
                f"the model rejected inputs of shape {shapes}: {paddle_message(exc)}",
                hint="Check the input size and preprocessing flags.",
            ) from exc
        return [self._predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names]

    def output_lods(self) -> List[List[List[int]]]:
        """The LoD of each output of the last run (offsets per level; [] for a plain tensor).

        Legacy detection models return every image's boxes in one tensor and mark where each image's
        rows start only here: `run()` alone cannot split a batch.
        """
        return [[list(level) for level in self._predictor.get_output_handle(n).lod()] for n in self.output_names]
