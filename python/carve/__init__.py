"""carve from Python: load an ONNX model, compile it for this machine and run it on numpy arrays,
compile it ahead of time for any target, or compress it.

>>> import carve, numpy as np
>>> model = carve.load("../shared/models/sk_digits_mlp/model.onnx")
>>> compiled = carve.compile(model, threads=2)
>>> out = compiled.run({"X": np.zeros((1, 64), np.float32)})
>>> sorted(out)
['label', 'probabilities']

Errors are subclasses of :class:`carve.Error` and carry the messages the ``carve`` command line prints.
"""

from ._carve import (
    CompiledModel,
    CompileError,
    CompressError,
    CompressResult,
    Error,
    InputError,
    Model,
    ModelError,
    RunError,
    TensorInfo,
    UnsupportedError,
    __version__,
    compile,
    compile_aot,
    compress,
    load,
)

__all__ = [
    "CompiledModel",
    "CompileError",
    "CompressError",
    "CompressResult",
    "Error",
    "InputError",
    "Model",
    "ModelError",
    "RunError",
    "TensorInfo",
    "UnsupportedError",
    "__version__",
    "compile",
    "compile_aot",
    "compress",
    "load",
]
