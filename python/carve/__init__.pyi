"""Type stubs for carve (the native module ``carve._carve``, re-exported here)."""

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_Inputs = Mapping[str, Union[npt.ArrayLike, List[npt.ArrayLike], None]]
_Output = Union[np.ndarray, List[Any], None]

class Error(Exception):
    """Base class of every error carve raises."""

class ModelError(Error):
    """The model file could not be read, decoded, imported or verified."""

class UnsupportedError(Error):
    """Something carve does not support yet: an operator, an element type, a target."""

class InputError(Error):
    """The inputs do not fit the model: a missing, unknown or repeated name, a wrong dtype, rank or dim."""

class CompileError(Error):
    """Compiling failed: the target, an option, shape binding, an optimizer stage or the code generator."""

class RunError(Error):
    """Running compiled code (or the interpreter) failed."""

class CompressError(Error):
    """Compression failed: its data, metric, a model variant or the export."""

class TensorInfo:
    """One input or output as the model declares it."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> Optional[str]:
        """numpy dtype name (``"float32"``, ``"int64"``, ``"bool"``, ``"str"``); None for sequences/optionals."""
    @property
    def shape(self) -> Optional[List[Union[int, str, None]]]:
        """int for a fixed dim, the symbol's name for a symbolic one, None for an unknown one."""
    @property
    def type(self) -> str:
        """The full type as carve prints it, e.g. ``f32[N,64]``."""

class Model:
    """An imported and verified ONNX model (from :func:`load`)."""

    @property
    def path(self) -> Path: ...
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> List[TensorInfo]: ...
    @property
    def outputs(self) -> List[TensorInfo]: ...
    @property
    def node_count(self) -> int: ...

class CompiledModel:
    """A model compiled to native code for this machine (from :func:`compile`)."""

    def run(self, inputs: _Inputs) -> Dict[str, _Output]:
        """Runs on ``{input name: array}``; returns ``{output name: array}`` in output order.

        >>> out = compiled.run({"X": x})
        >>> out["probabilities"].shape
        (1, 10)
        """
    def __call__(self, inputs: _Inputs) -> Dict[str, _Output]: ...
    def bench(
        self, inputs: Optional[_Inputs] = None, runs: int = 20, warmup: int = 3
    ) -> Dict[str, float]:
        """Times ``runs`` runs after ``warmup``: ``{"runs", "warmup", "median_ms", "p10_ms", "p90_ms"}``."""
    @property
    def inputs(self) -> List[TensorInfo]: ...
    @property
    def outputs(self) -> List[TensorInfo]: ...
    @property
    def threads(self) -> int: ...
    @property
    def egraph(self) -> bool: ...
    @property
    def target(self) -> str: ...
    @property
    def features(self) -> List[str]: ...

class CompressResult:
    """What :func:`compress` returns."""

    @property
    def model(self) -> bytes:
        """The compressed model (encoded ONNX)."""
    @property
    def path(self) -> Optional[Path]: ...
    @property
    def report(self) -> Dict[str, Any]:
        """The report (the content of ``report.json``)."""
    @property
    def markdown(self) -> str: ...
    @property
    def timing(self) -> Optional[Dict[str, Any]]: ...

def load(path: _Path) -> Model:
    """Loads, imports and verifies an ONNX model file.

    >>> m = carve.load("model.onnx")
    >>> [(i.name, i.dtype, i.shape) for i in m.inputs]
    [('X', 'float32', [None, 64])]
    """

def compile(
    model: Model,
    threads: Optional[int] = None,
    target: str = "host",
    egraph: bool = True,
    cpu: Optional[str] = None,
) -> CompiledModel:
    """Compiles for this machine (JIT).

    >>> compiled = carve.compile(carve.load("model.onnx"), threads=2)
    >>> compiled.run({"X": np.zeros((1, 64), np.float32)})["label"]
    array([0])
    """

def compile_aot(
    model: Union[Model, _Path],
    output: _Path,
    target: Optional[str] = None,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    cpu: Optional[str] = None,
    header: Optional[_Path] = None,
    name: Optional[str] = None,
    weights_file: Optional[_Path] = None,
    egraph: bool = True,
) -> Dict[str, Any]:
    """Compiles ahead of time to an object file and C header.

    >>> carve.compile_aot(m, output="m.o", target="aarch64-unknown-linux-gnu", input_shapes={"X": [1, 64]})
    """

def compress(
    model: Union[Model, _Path],
    calib: Optional[Union[_Path, Mapping[str, npt.ArrayLike]]] = None,
    *,
    output: Optional[_Path] = None,
    report_dir: Optional[_Path] = None,
    weights: Optional[str] = None,
    prune: Optional[float] = None,
    prune_criterion: str = "l1",
    sparsity: Optional[float] = None,
    sparsity_method: Optional[str] = None,
    eval: Optional[Union[_Path, Mapping[str, npt.ArrayLike]]] = None,
    labels: Optional[str] = None,
    calib_indices: Optional[str] = None,
    calib_samples: Optional[int] = None,
    metric: str = "top1",
    max_drop: Optional[float] = None,
    block_size: int = 32,
    asymmetric_blocks: bool = False,
    calibrator: str = "percentile:99.99",
    signed_activations: bool = False,
    sensitivity_samples: int = 64,
    timing_runs: int = 20,
    threads: Optional[int] = None,
) -> CompressResult:
    """Compresses a float model (int8 QDQ, weight-only int4/int2, channel pruning with ``prune``, or
    unstructured sparsity with ``sparsity``).

    >>> r = carve.compress(m, calib="digits.npz:X=Xtr", eval="digits.npz", labels="y", metric="accuracy")
    >>> r.report["scheme"]
    """
