"""Input validation and the other errors: each is a carve.Error subclass whose message is the one the
`carve` command line prints (e.g. `carve run` on the same inputs)."""

import numpy as np
import pytest

import carve
from conftest import model_path


@pytest.fixture(scope="module")
def digits():
    return carve.compile(carve.load(model_path("sk_digits_mlp")), threads=1)


@pytest.fixture(scope="module")
def minilm():
    return carve.compile(carve.load(model_path("minilm_l6_v2")), threads=1)


def x(n=1):
    return np.zeros((n, 64), np.float32)


def test_exception_hierarchy():
    for e in (carve.ModelError, carve.UnsupportedError, carve.InputError, carve.CompileError,
              carve.RunError, carve.CompressError):
        assert issubclass(e, carve.Error)
    assert issubclass(carve.Error, Exception)
    assert carve.InputError.__module__ == "carve"


def test_unknown_input_name(digits):
    with pytest.raises(carve.InputError) as e:
        digits.run({"X": x(), "Y": x()})
    assert str(e.value) == "the model has no input named 'Y'; its inputs are: X"


def test_missing_input(digits):
    with pytest.raises(carve.InputError) as e:
        digits.run({})
    assert str(e.value).startswith("input 'X' (f32[") and str(e.value).endswith(") is missing")


def test_wrong_dtype(digits):
    with pytest.raises(carve.InputError) as e:
        digits.run({"X": np.zeros((1, 64), np.float64)})
    assert str(e.value) == "input 'X': dtype is f64, the model expects f32"
    with pytest.raises(carve.InputError, match="input 'X': dtype is i32, the model expects f32"):
        digits.run({"X": np.zeros((1, 64), np.int32)})


def test_wrong_rank_and_dim(digits):
    with pytest.raises(carve.InputError) as e:
        digits.run({"X": np.zeros(64, np.float32)})
    assert str(e.value).startswith("input 'X': shape [64] has rank 1, the model expects rank 2")
    with pytest.raises(carve.InputError) as e:
        digits.run({"X": np.zeros((1, 63), np.float32)})
    assert str(e.value).startswith("input 'X': dim 1 is 63, the model expects 64")


def test_symbol_bound_inconsistently(minilm):
    ids = np.zeros((1, 8), np.int64)
    with pytest.raises(carve.InputError) as e:
        minilm.run({"input_ids": ids, "attention_mask": np.ones((1, 7), np.int64), "token_type_ids": ids})
    assert str(e.value) == "input 'attention_mask': dim 1 is 7, but symbol 'seq' is 8 in input 'input_ids'"


def test_inputs_must_be_a_mapping(digits):
    with pytest.raises(carve.InputError, match="inputs must be a dict"):
        digits.run([x()])
    with pytest.raises(carve.InputError, match="input names must be str"):
        digits.run({0: x()})


def test_unconvertible_dtype(digits):
    with pytest.raises(carve.InputError, match="input 'X': numpy dtype .* has no carve element type"):
        digits.run({"X": np.zeros((1, 64), "datetime64[s]")})


def test_missing_model_file(tmp_path):
    p = tmp_path / "nope.onnx"
    with pytest.raises(carve.ModelError) as e:
        carve.load(p)
    assert str(e.value).startswith(f"cannot read '{p}'")


def test_invalid_model_file(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"this is not protobuf \xff\xff\xff")
    with pytest.raises(carve.ModelError, match="is not a valid ONNX model"):
        carve.load(p)


def test_jit_target_must_be_this_machine():
    m = carve.load(model_path("sk_digits_mlp"))
    with pytest.raises(carve.UnsupportedError, match="use carve.compile_aot for other targets"):
        carve.compile(m, target="riscv64gc-unknown-linux-gnu")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        carve.compile(m, threads=0)
    with pytest.raises(carve.CompileError, match="cpu features '\\+no_such_feature'"):
        carve.compile(m, cpu="+no_such_feature")
