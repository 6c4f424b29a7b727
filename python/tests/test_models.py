"""Every shared model, loaded, compiled and run from Python, matches its reference outputs within the
tolerances of shared/models/MANIFEST.md (its "Tolerances" exceptions included)."""

import numpy as np
import pytest

import carve
from conftest import ATOL, RTOL, assert_close, case, model_dirs, model_path


def compare_detections(expected, actual):
    """isbnx_yolo26n's [1, 300, 6] top-300 list (x1, y1, x2, y2, score, class): rows whose reference
    score is >= 0.01 match in every column (rtol 1e-3, atol 1e-2); the score column of every row
    within atol 1e-4 (the order of the nearly tied low-score rows depends on float rounding)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    top = expected[0, :, 4] >= 0.01
    assert top.sum() >= 1, "the reference has no confident detection"
    assert_close("output0 (confident rows)", expected[0, top], actual[0, top], atol=1e-2)
    assert_close("output0 (scores)", expected[0, :, 4], actual[0, :, 4], atol=1e-4)


def check(name, out_name, expected, actual):
    what = f"{name}: {out_name}"
    if name == "isbnx_yolo26n":
        compare_detections(expected, actual)
    elif name == "voicefilter_lite_int8" and out_name in ("hN", "cN"):
        assert_close(what, expected, actual, atol=5e-3)
    elif name == "voicefilter_lite_int8" and out_name in ("mask", "f_adapt"):
        assert_close(what, expected, actual, atol=1e-3)
    elif name == "pyfrspell_derive_int8":
        assert_close(what, expected, actual, atol=0.05)
    else:
        assert_close(what, expected, actual, rtol=RTOL, atol=ATOL)


def test_every_shared_model_is_tested():
    assert len(model_dirs()) >= 12, model_dirs()


@pytest.mark.parametrize("name", model_dirs())
def test_shared_model_matches_reference(name):
    model = carve.load(model_path(name))
    inputs, refs = case(name, model)
    assert len(inputs) == len(model.inputs) and len(refs) == len(model.outputs)
    compiled = carve.compile(model)
    out = compiled.run(inputs)
    assert list(out) == [o.name for o in model.outputs]
    for out_name, expected in refs:
        check(name, out_name, expected, out[out_name])


def test_outputs_are_writable_arrays_that_own_nothing_copied():
    model = carve.load(model_path("sk_digits_mlp"))
    inputs, refs = case("sk_digits_mlp", model)
    out = carve.compile(model, threads=1).run(inputs)
    probs = out["probabilities"]
    assert probs.flags["C_CONTIGUOUS"] and probs.flags["WRITEABLE"]
    # The reshaped view's base is the 1-D array wrapping carve's buffer: no copy was made.
    assert probs.base is not None and probs.base.ndim == 1 and probs.base.size == probs.size
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert out["label"][0] == refs[0][1][0]


def test_model_description():
    m = carve.load(model_path("minilm_l6_v2"))
    assert [i.name for i in m.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i.dtype == "int64" for i in m.inputs)
    # Symbolic dims by name.
    assert m.inputs[0].shape == ["batch", "seq"], m.inputs[0].shape
    assert m.inputs[0].type == "i64[batch,seq]"
    assert [o.name for o in m.outputs] == ["last_hidden_state", "sentence_embedding"]
    assert m.outputs[1].dtype == "float32"
    assert m.path == model_path("minilm_l6_v2") and m.node_count > 100
    d = carve.load(model_path("sk_digits_mlp"))
    assert d.inputs[0].shape[1] == 64


def test_symbolic_batch_binds_at_run_time():
    m = carve.load(model_path("sk_digits_mlp"))
    c = carve.compile(m, threads=1)
    x = np.random.default_rng(0).random((5, 64), dtype=np.float32) * 16
    batch = c.run({"X": x})
    assert batch["probabilities"].shape == (5, 10)
    for k in range(5):
        one = c.run({"X": x[k : k + 1]})
        np.testing.assert_array_equal(one["label"], batch["label"][k : k + 1])
        np.testing.assert_allclose(one["probabilities"][0], batch["probabilities"][k], rtol=1e-5, atol=1e-7)


def test_non_contiguous_and_list_inputs_are_read_in_c_order():
    m = carve.load(model_path("sk_digits_mlp"))
    c = carve.compile(m, threads=1)
    x = np.random.default_rng(1).random((64, 3), dtype=np.float32) * 16
    strided = x.T  # (3, 64), Fortran order: contiguous, but not in C order
    assert strided.flags["F_CONTIGUOUS"] and not strided.flags["C_CONTIGUOUS"]
    a = c.run({"X": strided})
    b = c.run({"X": np.ascontiguousarray(strided)})
    np.testing.assert_array_equal(a["probabilities"], b["probabilities"])
    every_other = np.ascontiguousarray(np.repeat(x.T, 2, axis=0))[::2]  # strided rows
    assert not every_other.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(c.run({"X": every_other})["probabilities"], b["probabilities"])
    # Anything numpy.asarray takes is accepted; a list of Python floats is float64, not float32.
    with pytest.raises(carve.InputError, match="input 'X': dtype is f64, the model expects f32"):
        c({"X": strided[:1].tolist()})
