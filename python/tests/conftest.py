"""Shared helpers of carve's Python tests: where the shared models are, reading a model folder's
``test_data_set_0`` (ONNX TensorProto ``.pb`` files, read with ``onnx.numpy_helper``) and comparing
outputs with the tolerances of ``shared/models/MANIFEST.md``."""

import glob
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CARVE_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"

# MANIFEST.md: rtol 1e-3 / atol 1e-4 for floats, integers exact.
RTOL = 1e-3
ATOL = 1e-4


def model_dirs():
    """Every shared model folder (model.onnx + test_data_set_0), sorted."""
    return sorted(Path(p).parent.name for p in glob.glob(str(MODELS / "*" / "model.onnx")))


def model_path(name):
    """The model.onnx of shared model ``name`` (the test is skipped only if shared/ is absent)."""
    p = MODELS / name / "model.onnx"
    if not MODELS.is_dir():
        pytest.fail(f"the shared models are missing: {MODELS} (set CARVE_SHARED)")
    return p


def read_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t.name, numpy_helper.to_array(t)


def case(name, model):
    """The inputs ``{input name: array}`` and the reference outputs ``[(output name, array)]`` of
    ``test_data_set_0``; files are matched to the model's inputs/outputs by position."""
    d = MODELS / name / "test_data_set_0"
    ins = sorted(d.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    outs = sorted(d.glob("output_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    inputs = {info.name: read_pb(p)[1] for info, p in zip(model.inputs, ins)}
    refs = [(info.name, read_pb(p)[1]) for info, p in zip(model.outputs, outs)]
    return inputs, refs


def assert_close(what, expected, actual, rtol=RTOL, atol=ATOL):
    """|actual - expected| <= atol + rtol * |expected| elementwise (NaN where the reference has NaN);
    integers and booleans exactly; same shape and dtype."""
    assert isinstance(actual, np.ndarray), f"{what}: a {type(actual).__name__}, not an array"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, reference {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, reference {expected.dtype}"
    if not np.issubdtype(expected.dtype, np.floating):
        bad = np.flatnonzero(actual != expected)
        assert bad.size == 0, f"{what}: {bad.size} elements differ, first at flat index {bad[0]}"
        return
    e = expected.astype(np.float64)
    a = actual.astype(np.float64)
    nan = np.isnan(e)
    assert np.array_equal(nan, np.isnan(a)), f"{what}: NaN positions differ"
    diff = np.abs(a - e)
    bad = ~nan & (diff > atol + rtol * np.abs(e))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        pytest.fail(
            f"{what}: {int(bad.sum())} of {e.size} elements out of tolerance (rtol {rtol}, atol {atol}); "
            f"first at flat index {i}: {a.flat[i]} vs reference {e.flat[i]}; max |diff| {diff[~nan].max()}"
        )
