"""Load an exported file and run it: numpy in, numpy out, as a deployment would.

Shared by the fresh-process parity worker and by in-process latency. Importing this module
imports neither torch nor onnxruntime: the ONNX path must work where torch is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# A model's input: one array (a table's encoded rows, a batch of images), or named arrays in
# the graph's input order (text: input_ids, attention_mask).
Inputs = np.ndarray | dict[str, np.ndarray]
Runner = Callable[[Inputs], np.ndarray]


def take_rows(x: Inputs, n: int) -> Inputs:
    """The first `n` rows of every input array, contiguous."""
    if isinstance(x, dict):
        return {k: np.ascontiguousarray(v[:n]) for k, v in x.items()}
    return np.ascontiguousarray(x[:n])


def n_rows(x: Inputs) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def ort_session_options(threads: int | None) -> Any:
    """ONNX Runtime session options; `threads` pins intra-op threads (None: ORT's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        # inter-op threads only matter in parallel execution mode, which we do not use.
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def describe_session_options(options: Any) -> dict[str, Any]:
    return {
        "intra_op_num_threads": options.intra_op_num_threads,
        "inter_op_num_threads": options.inter_op_num_threads,
        "execution_mode": str(options.execution_mode),
        "graph_optimization_level": str(options.graph_optimization_level),
    }


def _onnx_runner(path: str, threads: int | None) -> tuple[Runner, dict[str, Any]]:
    import onnxruntime as ort

    options = ort_session_options(threads)
    session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name

    def run(x: Inputs) -> np.ndarray:
        feed = dict(x) if isinstance(x, dict) else {input_name: x}
        return session.run([output_name], feed)[0]

    info = {
        "runtime": "onnxruntime",
        "version": ort.__version__,
        "providers": session.get_providers(),
        "session_options": describe_session_options(options),
        "input_name": input_name,
        "output_name": output_name,
    }
    return run, info


def torch_runner(module: Any) -> Runner:
    import torch

    def run(x: Inputs) -> np.ndarray:
        arrays = list(x.values()) if isinstance(x, dict) else [x]
        with torch.inference_mode():
            return module(*(torch.from_numpy(a) for a in arrays)).numpy()

    return run


def _torchscript_runner(path: str, threads: int | None) -> tuple[Runner, dict[str, Any]]:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    module = torch.jit.load(path, map_location="cpu").eval()
    info = {
        "runtime": "torchscript",
        "version": torch.__version__,
        "num_threads": torch.get_num_threads(),
    }
    return torch_runner(module), info


def _pt2_runner(path: str, threads: int | None) -> tuple[Runner, dict[str, Any]]:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    # .module() is already in the mode it was exported in (eval); calling .eval() on it raises.
    module = torch.export.load(path).module()
    info = {
        "runtime": "torch.export",
        "version": torch.__version__,
        "num_threads": torch.get_num_threads(),
    }
    return torch_runner(module), info


_LOADERS: dict[str, Callable[[str, int | None], tuple[Runner, dict[str, Any]]]] = {
    "onnx": _onnx_runner,
    "torchscript": _torchscript_runner,
    "pt2": _pt2_runner,
}


def load_runner(
    fmt: str, path: str, *, threads: int | None = None
) -> tuple[Runner, dict[str, Any]]:
    """A callable running the export at `path`, and what it runs on (versions, threads)."""
    if fmt not in _LOADERS:
        raise ValueError(f"format must be one of {sorted(_LOADERS)} but got {fmt!r}")
    return _LOADERS[fmt](path, threads)
