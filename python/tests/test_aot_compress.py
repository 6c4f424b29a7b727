"""compile_aot writes an object file and header (as `carve compile`); compress returns the compressed
model and its report as a dict (as `carve compress`)."""

import json

import numpy as np
import onnx
import pytest

import carve
from conftest import MODELS, case, model_path


@pytest.mark.parametrize(
    "triple, machine",
    [("x86_64-unknown-linux-gnu", 62), ("aarch64-unknown-linux-gnu", 183), ("riscv64gc-unknown-linux-gnu", 243)],
)
def test_compile_aot_writes_an_object_and_a_header(tmp_path, triple, machine):
    m = carve.load(model_path("sk_digits_mlp"))
    out = tmp_path / "digits.o"
    r = carve.compile_aot(m, output=out, target=triple, input_shapes={"X": [1, 64]})
    obj = out.read_bytes()
    assert obj[:4] == b"\x7fELF"
    assert int.from_bytes(obj[18:20], "little") == machine  # e_machine
    assert r["object"] == out and r["target"] == triple
    header = (tmp_path / "digits.h").read_text()
    assert r["header"] == tmp_path / "digits.h"
    # The symbol prefix defaults to the model file's stem.
    assert "model_run" in header and r["name"] == "model"
    assert r["weights"] is None and r["weights_bytes"] > 0
    assert r["nodes"] >= r["native"] > 0


def test_compile_aot_separate_weights_and_errors(tmp_path):
    out = tmp_path / "m.o"
    w = tmp_path / "m.weights"
    r = carve.compile_aot(model_path("sk_digits_mlp"), output=out, input_shapes={"X": [2, 64]},
                          weights_file=w, name="mlp")
    assert w.stat().st_size == r["weights_bytes"] > 0 and r["weights"] == w
    assert "mlp_run" in (tmp_path / "m.h").read_text()
    with pytest.raises(carve.InputError, match="input 'X' has no static shape"):
        carve.compile_aot(model_path("sk_digits_mlp"), output=out)
    with pytest.raises(carve.InputError, match="the model has no input named 'Y'"):
        carve.compile_aot(model_path("sk_digits_mlp"), output=out, input_shapes={"Y": [1, 64]})
    with pytest.raises(carve.CompileError):
        carve.compile_aot(model_path("sk_digits_mlp"), output=out, target="sparc-unknown-nowhere",
                          input_shapes={"X": [1, 64]})


def test_compress_int8_returns_model_and_report(tmp_path):
    digits = MODELS / "sk_digits_mlp" / "digits.npz"
    out = tmp_path / "digits.int8.onnx"
    rep = tmp_path / "report"
    r = carve.compress(
        model_path("sk_digits_mlp"), calib=f"{digits}:X=Xtr", eval=digits, labels="y",
        metric="accuracy", output=out, report_dir=rep, timing_runs=0, calib_samples=200,
        sensitivity_samples=16,
    )
    assert isinstance(r.report, dict)
    assert r.report == json.loads((rep / "report.json").read_text())
    assert (rep / "report.md").read_text() == r.markdown
    assert r.timing is None and r.path == out
    assert out.read_bytes() == r.model
    rep = r.report
    assert (rep["metric"], rep["calibration_samples"], rep["evaluation_samples"]) == ("accuracy", 200, 540)
    assert rep["layers_int8"] + rep["layers_float"] == len(rep["layers"]) == 3 and rep["layers_int8"] >= 1
    assert rep["technique"].startswith("int8 post-training quantization")
    # Standard ONNX that onnx accepts and carve runs: QDQ nodes, accuracy close to the float model's.
    proto = onnx.load_from_string(r.model)
    ops = {n.op_type for n in proto.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops, ops
    q = carve.compile(carve.load(out), threads=1)
    data = np.load(digits)
    pred = q.run({"X": data["X"].astype(np.float32)})["label"]
    assert (pred == data["y"]).mean() > 0.95


def test_compress_int4_without_calibration(tmp_path):
    digits = MODELS / "sk_digits_mlp" / "digits.npz"
    r = carve.compress(carve.load(model_path("sk_digits_mlp")), eval=digits, weights="int4",
                       block_size=16, timing_runs=0)
    assert r.path is None and isinstance(r.report, dict)
    assert (r.report["layers_int4"], r.report["calibration_samples"], r.report["metric"]) == (3, 0, "top1")
    assert "blocks of 16 along K" in r.report["technique"] and "round-to-nearest" in r.report["technique"]
    ops = {n.op_type for n in onnx.load_from_string(r.model).graph.node}
    assert "MatMulNBits" in ops, ops


def test_compress_from_arrays_in_memory():
    d = np.load(MODELS / "sk_digits_mlp" / "digits.npz")
    # int32 labels and float32 samples, as a user would have them; the first axis indexes samples.
    r = carve.compress(model_path("sk_digits_mlp"), calib={"X": d["Xtr"][:100]},
                       eval={"X": d["X"], "y": d["y"].astype(np.int32)}, labels="y", metric="accuracy",
                       timing_runs=0, sensitivity_samples=8)
    rep = r.report
    assert (rep["metric"], rep["calibration_samples"], rep["evaluation_samples"]) == ("accuracy", 100, 540)
    with pytest.raises(carve.CompressError, match="has no array 'X'"):
        carve.compress(model_path("sk_digits_mlp"), calib={"images": d["Xtr"][:10]}, timing_runs=0)


def test_compress_errors():
    digits = MODELS / "sk_digits_mlp" / "digits.npz"
    with pytest.raises(carve.InputError, match="int8 needs calib data"):
        carve.compress(model_path("sk_digits_mlp"), eval=digits)
    with pytest.raises(ValueError, match="weights: 'int3'"):
        carve.compress(model_path("sk_digits_mlp"), calib=digits, weights="int3")
    with pytest.raises(carve.CompressError, match="has no array 'nope'"):
        carve.compress(model_path("sk_digits_mlp"), calib=f"{digits}:X=nope", timing_runs=0)


def test_compress_prune_returns_a_smaller_model_and_its_report(tmp_path):
    digits = MODELS / "sk_digits_mlp" / "digits.npz"
    r = carve.compress(model_path("sk_digits_mlp"), calib=f"{digits}:X=Xtr", eval=digits, labels="y",
                       metric="accuracy", prune=0.3, max_drop=0.02, timing_runs=0, threads=1)
    p = r.report["pruning"]
    assert p["params"]["pruned"] < p["params"]["float"]
    assert len(r.model) < (model_path("sk_digits_mlp")).stat().st_size
    # The written model is standard ONNX that carve runs, with the accuracy the report states.
    data = np.load(digits)
    out = carve.compile(_load(tmp_path, r.model), threads=1).run({"X": data["X"].astype(np.float32)})
    pred = out["probabilities"].argmax(axis=1)
    assert abs((pred == data["y"]).mean() - r.report["score"]["pruned"]) < 1e-12
    with pytest.raises(ValueError, match="prune and weights"):
        carve.compress(model_path("sk_digits_mlp"), eval=digits, prune=0.3, weights="int8")
    with pytest.raises(ValueError, match=r"prune takes a fraction in \[0, 1\)"):
        carve.compress(model_path("sk_digits_mlp"), eval=digits, prune=1.5)
    with pytest.raises(ValueError, match="prune_criterion"):
        carve.compress(model_path("sk_digits_mlp"), eval=digits, prune=0.3, prune_criterion="l3")


def _load(tmp_path, model_bytes):
    path = tmp_path / "pruned.onnx"
    path.write_bytes(model_bytes)
    return carve.load(path)


def test_compress_sparsity_zeros_half_the_weights_and_reports_the_accuracy(tmp_path):
    digits = MODELS / "sk_digits_mlp" / "digits.npz"
    r = carve.compress(model_path("sk_digits_mlp"), calib=f"{digits}:X=Xtr", eval=digits, labels="y",
                       metric="accuracy", sparsity=0.5, max_drop=0.01, timing_runs=0, threads=1)
    sp = r.report["sparsity"]
    assert sp["layers_sparse"] == len(sp["layers"]) == 3
    assert all(abs(l["sparsity"] - 0.5) < 0.01 for l in sp["layers"])
    assert {c["method"] for c in sp["candidates"]} == {"magnitude", "sparsegpt"}
    data = np.load(digits)
    out = carve.compile(_load(tmp_path, r.model), threads=1).run({"X": data["X"].astype(np.float32)})
    pred = out["probabilities"].argmax(axis=1)
    assert abs((pred == data["y"]).mean() - r.report["score"]["sparse"]) < 1e-12
    with pytest.raises(ValueError, match="sparsity is not combined"):
        carve.compress(model_path("sk_digits_mlp"), eval=digits, sparsity=0.5, prune=0.3)
    with pytest.raises(ValueError, match=r"sparsity takes a fraction in \[0, 1\)"):
        carve.compress(model_path("sk_digits_mlp"), eval=digits, sparsity=1.0)
    with pytest.raises(ValueError, match="sparsity_method"):
        carve.compress(model_path("sk_digits_mlp"), eval=digits, sparsity=0.5, sparsity_method="l1")
