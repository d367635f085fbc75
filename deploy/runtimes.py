"""The deployment runtimes, registered into the core's runtime interface (zoo.runtime, zoo.plugins.RUNTIMES):
`onnxruntime` / `openvino` run the ONNX file `zoo export --target onnx` writes (made here the same way), `lite`
the x86 `.nb` run by Paddle Lite (FP32 only), `paddle3` Paddle Inference 3.x (plain kernels) in the environment
`make setup` builds for it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from zoo.device import DeviceLike
from zoo.errors import ExportError
from zoo.modelfiles import ModelFiles
from zoo.plugins import RUNTIMES
from zoo.program import read_program
from zoo.runtime import Runner, RunnerFactory


class _OnnxRunner(Runner):
    """The ONNX export run by ONNX Runtime or OpenVINO. A model declared at one image size is converted again for
    each other size it is given (`image_sized`); a detector is fed image by image (its NMS graph takes one)."""

    def __init__(self, files: ModelFiles, runtime: str, threads: int, workdir: Path) -> None:
        from zoo.deploy.onnx_nms import NMS_OPS

        self._files, self._runtime_name, self._threads, self._workdir = files, runtime, threads, workdir
        info = read_program(files)
        image = next((s.shape for s in info.inputs if len(s.shape) == 4), None)
        self._declared = tuple(image[2:]) if image is not None and min(image[2:]) > 0 else None
        self._sessions: Dict[Any, Any] = {}
        self._session(self._declared)  # converted now: a model that does not convert fails here, not mid-run
        self.runtime = runtime
        self.detail = f"{runtime} on the ONNX export ({'QDQ INT8' if self._precision == 'int8' else 'FP32'})"
        self._per_image = bool(set(info.op_types) & set(NMS_OPS))
        self._lods: List[List[List[int]]] = []

    def _session(self, hw: Any) -> Any:
        """The session for images of `hw` (None: as the model is declared), converted on first use."""
        from zoo.deploy.onnx import OnnxSession, export_onnx, image_sized

        if hw == self._declared:
            hw = None
        if hw not in self._sessions:
            files, where = self._files, self._workdir / (f"{hw[0]}x{hw[1]}" if hw else "declared")
            where.mkdir(parents=True, exist_ok=True)
            if hw is not None:
                files = image_sized(files, where / "sized", hw)
            conversion = export_onnx(files, where / "model.onnx", where)
            self._precision = conversion.precision
            self._sessions[hw] = OnnxSession(conversion.path, self._runtime_name, threads=self._threads)
        return self._sessions[hw]

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        image = next((x for x in inputs if np.ndim(x) == 4), None)
        session = self._session(tuple(image.shape[2:]) if image is not None and self._declared else None)
        if not self._per_image:
            return session.run(list(inputs))
        from zoo.deploy.onnx_nms import run_per_image

        self._lods = []
        return run_per_image(session.run, inputs, self._lods)

    def output_lods(self) -> List[List[List[int]]]:
        return self._lods


class _LiteRunner(Runner):
    def __init__(self, files: ModelFiles, workdir: Path, opt_bin: Optional[Path]) -> None:
        from zoo.deploy.lite import convert
        from zoo.deploy.toolchain import find_converter

        if read_program(files).is_int8:
            raise ExportError("Paddle Lite's x86 backend does not run INT8 models (it returns NaN)",
                              hint="Score the FP32 model with --runtime lite, or this one with onnxruntime or openvino.")
        self._nb = convert(files, workdir / "model", "x86", find_converter("x86", opt_bin))
        self.runtime = "lite"
        self.detail = "Paddle Lite x86 .nb (MobileConfig)"

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        from zoo.deploy.lite import run_nb_lod

        outputs, self._lods = run_nb_lod(self._nb, list(inputs))
        return outputs

    def output_lods(self) -> List[List[List[int]]]:
        return getattr(self, "_lods", [])


class Paddle3Runner(Runner):
    """Paddle Inference 3.x in its own environment: one worker process (deploy/paddle3_worker.py) holds the
    loaded model and answers a batch per request, through .npz files in `workdir`."""

    def __init__(self, files: ModelFiles, threads: int, workdir: Path, int8: bool = False) -> None:
        import subprocess

        from zoo.deploy.toolchain import paddle3_python
        from zoo.modelcheck import check_model

        check_model(files)  # a corrupt file is refused here, not by a native crash in the worker
        python = paddle3_python()
        argv = [str(python), str(Path(__file__).with_name("paddle3_worker.py")), "--model-file", str(files.model_file),
                "--threads", str(threads)] + (["--params-file", str(files.params_file)] if files.params_file else [])
        self._workdir = workdir
        self._calls = 0
        self._proc = subprocess.Popen(argv + (["--int8"] if int8 else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        hello = self._answer()
        self.version = str(hello["paddle"])
        self.runtime = "paddle3"
        self.detail = f"Paddle Inference {self.version}" + (", oneDNN INT8 kernels" if int8 else ", plain kernels")
        self._lods: List[List[List[int]]] = []

    def _answer(self) -> dict:
        import json

        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line:
            self.close()
            raise ExportError("the Paddle 3.x worker ended without an answer",
                              hint="Run `make setup` again (it builds .venv-paddle3), or set ZOO_PADDLE3_PYTHON.")
        answer = json.loads(line)
        if "error" in answer:
            raise ExportError(f"Paddle Inference 3.x cannot run this model: {answer['error']}")
        return answer

    def _request(self, inputs: Sequence[np.ndarray], **fields: Any) -> dict:
        """Send `inputs` (as an .npz in the work folder) with `fields` to the worker; its answer."""
        import json

        self._calls += 1
        src = self._workdir / f"in-{self._calls}.npz"
        np.savez(src, **{str(i): np.ascontiguousarray(x) for i, x in enumerate(inputs)})
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"inputs": str(src), **fields}) + "\n")
        self._proc.stdin.flush()
        try:
            return self._answer()
        finally:
            src.unlink()

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        dst = self._workdir / f"out-{self._calls + 1}.npz"
        self._lods = self._request(inputs, outputs=str(dst)).get("lods", [])
        with np.load(dst) as data:
            outputs = [np.asarray(data[k]) for k in sorted(data.files, key=int)]
        dst.unlink()
        return outputs

    def output_lods(self) -> List[List[List[int]]]:
        return self._lods

    def time(self, inputs: Sequence[np.ndarray], warmup: int, repeat: int) -> dict:
        """Latencies (ms) of `repeat` runs on `inputs` after `warmup` untimed ones, and the worker's peak RSS (KiB)."""
        return self._request(inputs, warmup=warmup, repeat=repeat)

    def close(self) -> None:
        """End the worker (also when the runner is collected)."""
        if self._proc.poll() is None:
            try:
                if self._proc.stdin:
                    self._proc.stdin.write("\n")
                    self._proc.stdin.flush()
                self._proc.wait(timeout=10)
            except Exception:  # a worker that will not end cleanly is ended
                self._proc.kill()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()


def _onnx(runtime: str) -> RunnerFactory:
    def make(files: ModelFiles, workdir: Path, threads: int, device: DeviceLike, opt_bin: Optional[Path]) -> Runner:
        return _OnnxRunner(files, runtime, threads, workdir)
    return make


def _lite(files: ModelFiles, workdir: Path, threads: int, device: DeviceLike, opt_bin: Optional[Path]) -> Runner:
    return _LiteRunner(files, workdir, opt_bin)


def _paddle3(files: ModelFiles, workdir: Path, threads: int, device: DeviceLike, opt_bin: Optional[Path]) -> Runner:
    return Paddle3Runner(files, threads, workdir)


for _name, _factory in (("onnxruntime", _onnx("onnxruntime")), ("openvino", _onnx("openvino")), ("lite", _lite),
                        ("paddle3", _paddle3)):
    RUNTIMES.register(_name, _factory)
