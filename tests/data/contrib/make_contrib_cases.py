#!/usr/bin/env python3
"""Generates the ONNX Runtime contrib-op test cases read by tests/contrib_ops.rs.

Each case is a folder in the ONNX node-test layout (model.onnx, test_data_set_0/input_N.pb and
output_N.pb) holding one com.microsoft op with small deterministic inputs; the reference outputs are
ONNX Runtime's (CPU, graph optimizations off, so the op runs as written). Run from anywhere:

    python3 tests/data/contrib/make_contrib_cases.py

Needs numpy, onnx and onnxruntime (pip). The Rust tests need only the committed files.
"""
import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.capi._pybind_state import (quantize_matmul_2bits, quantize_matmul_4bits,
                                            quantize_matmul_8bits)

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(20261205)


def rand(*shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, size=shape).astype(np.float32)


def case(name, op, inputs, outputs, attrs=None, consts=None, numpy_reference=None,
         domain="com.microsoft", out_type=TensorProto.FLOAT, prelude=None):
    """inputs: the node's inputs as (name, array) fed at run time, or (name, None) for an initializer
    listed in consts as (name, array); outputs: output names ('' for an unlisted optional output).
    numpy_reference: for an op ONNX Runtime has no CPU kernel for, the outputs computed in numpy
    from the node's inputs (run-time and initializers, in order) following ORT's documentation.
    out_type: the element type of every output.
    prelude: (nodes, run-time inputs as (name, array)) computed before the op, whose outputs the op's
    inputs may name (with None, and not listed in consts)."""
    consts = consts or []
    before, before_inputs = prelude or ([], [])
    runtime = before_inputs + [(n, a) for n, a in inputs if a is not None]
    node = helper.make_node(op, [n for n, _ in inputs], outputs, domain=domain, **(attrs or {}))
    g = helper.make_graph(
        before + [node], name,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in runtime],
        [helper.make_tensor_value_info(o, out_type, None) for o in outputs if o],
        initializer=[numpy_helper.from_array(a, n) for n, a in consts],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "test_data_set_0"))
    onnx.save(m, os.path.join(d, "model.onnx"))
    if numpy_reference is None:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        s = ort.InferenceSession(os.path.join(d, "model.onnx"), so,
                                 providers=["CPUExecutionProvider"])
        outs = s.run([o for o in outputs if o], dict(runtime))
    else:
        c = dict(consts)
        outs = numpy_reference(*[a if a is not None else c[n] for n, a in inputs])
    for k, (n, a) in enumerate(runtime):
        write(d, f"input_{k}.pb", a, n)
    for k, (n, a) in enumerate(zip([o for o in outputs if o], outs)):
        write(d, f"output_{k}.pb", a, n)


def ort_quantize(w, bits, block_size, symmetric):
    """ONNX Runtime's own MatMulNBits packer (what its matmul_nbits_quantizer writes): a float
    weight w [K, N] (as MatMul's B) to (b [N, k_blocks, blob] u8, scales [N * k_blocks] f32, packed
    zero points u8, or None when symmetric)."""
    k, n = w.shape
    blocks = (k + block_size - 1) // block_size
    b = np.zeros((n, blocks, block_size * bits // 8), np.uint8)
    scales = np.zeros(n * blocks, np.float32)
    zp = np.zeros(n * ((blocks * bits + 7) // 8), np.uint8)
    f = {2: quantize_matmul_2bits, 4: quantize_matmul_4bits, 8: quantize_matmul_8bits}[bits]
    f(b, np.ascontiguousarray(w), scales, zp, block_size, n, k, symmetric)
    return b, scales, (None if symmetric else zp)


def matmul_nbits(name, a, k, n, bits=4, block_size=32, symmetric=False, bias=False,
                 float_zp=False):
    """A MatMulNBits case over weights packed by ONNX Runtime's packer (for small weights, the float
    weight and the packed arrays also go to nbits_quantizer/NAME.npz, for carve's packer to be
    checked against)."""
    w = rand(k, n, lo=-1.0, hi=1.0)
    b, scales, zp = ort_quantize(w, bits, block_size, symmetric)
    arrays = {"w": w, "b": b, "scales": scales, "bits": np.array(bits, np.int64),
              "block_size": np.array(block_size, np.int64)}
    if zp is not None:
        arrays["zero_points"] = zp
    if k * n <= 4096:  # small ones only: the float weight is 4 bytes per element
        os.makedirs(os.path.join(HERE, "nbits_quantizer"), exist_ok=True)
        np.savez(os.path.join(HERE, "nbits_quantizer", name + ".npz"), **arrays)
    consts = [("b", b), ("scales", scales)]
    inputs = [("a", a), ("b", None), ("scales", None)]
    if zp is not None and float_zp:
        # Zero points of the scales' type (unpacked, one per block).
        blocks = b.shape[1]
        zf = np.array([(zp[j * ((blocks + 1) // 2) + q // 2] >> (4 * (q % 2))) & 15
                       for j in range(n) for q in range(blocks)], np.float32)
        consts.append(("zero_points", zf))
        inputs.append(("zero_points", None))
    elif zp is not None:
        consts.append(("zero_points", zp))
        inputs.append(("zero_points", None))
    if bias:
        if len(inputs) == 3:
            inputs.append(("", None))
        inputs += [("", None), ("bias", None)]
        consts.append(("bias", rand(n)))
    case(name, "MatMulNBits", [(nm, arr) for nm, arr in inputs],
         ["y"], attrs={"K": k, "N": n, "bits": bits, "block_size": block_size},
         consts=consts)


def write(d, f, a, name):
    t = numpy_helper.from_array(np.asarray(a), name)
    with open(os.path.join(d, "test_data_set_0", f), "wb") as fh:
        fh.write(t.SerializeToString())


def main():
    x, skip = rand(2, 4, 8), rand(2, 4, 8)
    g, b, bias = rand(8, lo=0.5, hi=1.5), rand(8), rand(8)
    # Run-time inputs are (name, array); initializers are listed in consts and named in inputs with None.
    case("fast_gelu", "FastGelu", [("x", x)], ["y"])
    case("fast_gelu_bias", "FastGelu", [("x", x), ("bias", None)], ["y"], consts=[("bias", bias)])
    case("bias_gelu", "BiasGelu", [("a", x), ("b", None)], ["y"], consts=[("b", bias)])
    # BiasAdd has only a CUDA kernel in ONNX Runtime: numpy reference (x + bias + skip).
    case("bias_add", "BiasAdd", [("x", x), ("bias", None), ("skip", skip)], ["y"],
         consts=[("bias", bias)], numpy_reference=lambda a, c, s: [(a + c) + s])
    case("skip_layer_norm", "SkipLayerNormalization",
         [("x", x), ("skip", skip), ("gamma", None), ("beta", None), ("bias", None)],
         ["y", "", "", "sum"], attrs={"epsilon": 1e-5},
         consts=[("gamma", g), ("beta", b), ("bias", bias)])
    case("skip_layer_norm_plain", "SkipLayerNormalization",
         [("x", x), ("skip", skip), ("gamma", None)], ["y"], consts=[("gamma", g)])
    case("skip_simplified_layer_norm", "SkipSimplifiedLayerNormalization",
         [("x", x), ("skip", skip), ("gamma", None), ("bias", None)], ["y", "", "", "sum"],
         attrs={"epsilon": 1e-6}, consts=[("gamma", g), ("bias", bias)])
    # ONNX Runtime registers SimplifiedLayerNormalization in the ONNX domain (opset 1).
    case("simplified_layer_norm", "SimplifiedLayerNormalization", [("x", x), ("scale", None)],
         ["y"], attrs={"axis": -1, "epsilon": 1e-6}, consts=[("scale", g)], domain="")
    case("fused_matmul", "FusedMatMul", [("a", rand(2, 3, 4)), ("b", rand(2, 5, 4))], ["y"],
         attrs={"transB": 1, "alpha": 0.5})
    case("fused_matmul_trans_a", "FusedMatMul", [("a", rand(4, 3)), ("b", None)], ["y"],
         attrs={"transA": 1}, consts=[("b", rand(4, 5))])
    case("fused_gemm_relu", "FusedGemm", [("a", rand(3, 4)), ("b", None), ("c", None)], ["y"],
         attrs={"transB": 1, "alpha": 0.7, "beta": 1.3, "activation": "Relu"},
         consts=[("b", rand(5, 4)), ("c", rand(5))])
    case("fused_gemm_leaky_relu", "FusedGemm", [("a", rand(3, 4)), ("b", None)], ["y"],
         attrs={"activation": "LeakyRelu", "activation_alpha": 0.2}, consts=[("b", rand(4, 5))])
    w = rand(4, 3, 3, 3, lo=-0.5, hi=0.5)
    case("fused_conv_relu", "FusedConv", [("x", rand(1, 3, 6, 6)), ("w", None), ("b", None)],
         ["y"], attrs={"pads": [1, 1, 1, 1], "activation": "Relu"},
         consts=[("w", w), ("b", rand(4))])
    case("fused_conv_clip_sum", "FusedConv",
         [("x", rand(1, 3, 6, 6)), ("w", None), ("b", None), ("z", rand(1, 4, 6, 6))], ["y"],
         attrs={"pads": [1, 1, 1, 1], "activation": "Clip", "activation_params": [-0.5, 0.5]},
         consts=[("w", w), ("b", rand(4))])
    case("fused_conv_hard_sigmoid", "FusedConv", [("x", rand(1, 3, 7, 7)), ("w", None)], ["y"],
         attrs={"strides": [2, 2], "activation": "HardSigmoid", "activation_params": [0.3, 0.4]},
         consts=[("w", w)])
    # Activations and ORT's quantized ops (its quantization tool writes these).
    case("gelu", "Gelu", [("x", x)], ["y"])
    case("quick_gelu", "QuickGelu", [("x", x)], ["y"], attrs={"alpha": 1.5})
    a_u8 = RNG.integers(0, 256, size=(3, 8)).astype(np.uint8)
    b_i8 = RNG.integers(-128, 128, size=(8, 5)).astype(np.int8)
    case("matmul_integer_to_float", "MatMulIntegerToFloat",
         [("a", a_u8), ("b", None), ("a_scale", None), ("b_scale", None), ("a_zp", None),
          ("b_zp", None), ("bias", None)], ["y"],
         consts=[("b", b_i8), ("a_scale", np.array(0.02, np.float32)),
                 ("b_scale", rand(5, lo=0.01, hi=0.05)), ("a_zp", np.array(120, np.uint8)),
                 ("b_zp", np.array([1, -2, 0, 3, -1], np.int8)), ("bias", rand(5))])
    case("dynamic_quantize_matmul", "DynamicQuantizeMatMul",
         [("a", rand(2, 3, 8)), ("b", None), ("b_scale", None), ("b_zp", None), ("bias", None)],
         ["y"], consts=[("b", b_i8), ("b_scale", np.array(0.03, np.float32)),
                        ("b_zp", np.array(0, np.int8)), ("bias", rand(5))])
    case("dynamic_quantize_matmul_plain", "DynamicQuantizeMatMul",
         [("a", rand(4, 8)), ("b", None), ("b_scale", None)], ["y"],
         consts=[("b", b_i8), ("b_scale", np.array(0.03, np.float32))])
    case("qlinear_sigmoid", "QLinearSigmoid",
         [("x", RNG.integers(0, 256, size=(2, 10)).astype(np.uint8)), ("xs", None), ("xz", None),
          ("ys", None), ("yz", None)], ["y"],
         consts=[("xs", np.array(0.05, np.float32)), ("xz", np.array(128, np.uint8)),
                 ("ys", np.array(1 / 256, np.float32)), ("yz", np.array(0, np.uint8))],
         out_type=TensorProto.UINT8)
    case("qlinear_leaky_relu", "QLinearLeakyRelu",
         [("x", RNG.integers(-128, 128, size=(2, 10)).astype(np.int8)), ("xs", None), ("xz", None),
          ("ys", None), ("yz", None)], ["y"], attrs={"alpha": 0.1},
         consts=[("xs", np.array(0.1, np.float32)), ("xz", np.array(3, np.int8)),
                 ("ys", np.array(0.08, np.float32)), ("yz", np.array(-5, np.int8))],
         out_type=TensorProto.INT8)
    u8 = lambda *shape: RNG.integers(0, 256, size=shape).astype(np.uint8)
    case("qlinear_concat", "QLinearConcat",
         [("ys", None), ("yz", None), ("a", u8(2, 3, 4)), ("as", None), ("az", None),
          ("b", u8(2, 2, 4)), ("bs", None), ("bz", None)], ["y"], attrs={"axis": 1},
         consts=[("ys", np.array(0.07, np.float32)), ("yz", np.array(100, np.uint8)),
                 ("as", np.array(0.05, np.float32)), ("az", np.array(128, np.uint8)),
                 ("bs", np.array(0.11, np.float32)), ("bz", np.array(90, np.uint8))],
         out_type=TensorProto.UINT8)
    qpool = [("xs", np.array(0.04, np.float32)), ("xz", np.array(110, np.uint8)),
             ("ys", np.array(0.03, np.float32)), ("yz", np.array(120, np.uint8))]
    case("qlinear_global_average_pool", "QLinearGlobalAveragePool",
         [("x", u8(1, 3, 5, 5)), ("xs", None), ("xz", None), ("ys", None), ("yz", None)], ["y"],
         consts=qpool, out_type=TensorProto.UINT8)
    case("qlinear_average_pool", "QLinearAveragePool",
         [("x", u8(1, 2, 7, 7)), ("xs", None), ("xz", None), ("ys", None), ("yz", None)], ["y"],
         attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
         consts=qpool, out_type=TensorProto.UINT8)
    # MatMulNBits (weights packed by ORT's own quantizer; accuracy_level unset: f32 compute).
    matmul_nbits("matmul_nbits_4bit_zp", rand(2, 3, 64), 64, 10, block_size=32)
    matmul_nbits("matmul_nbits_4bit_sym_bias", rand(5, 40), 40, 7, block_size=16,
                 symmetric=True, bias=True)
    matmul_nbits("matmul_nbits_4bit_bs128_partial", rand(3, 200), 200, 9, block_size=128,
                 bias=True)
    matmul_nbits("matmul_nbits_4bit_float_zp", rand(4, 48), 48, 6, block_size=16,
                 float_zp=True)
    matmul_nbits("matmul_nbits_8bit", rand(3, 72), 72, 5, bits=8, block_size=32)
    matmul_nbits("matmul_nbits_2bit", rand(3, 80), 80, 6, bits=2, block_size=16)
    # Model-sized: a MiniLM projection (K = N = 384, block 32) over 8 tokens.
    matmul_nbits("matmul_nbits_384", rand(1, 8, 384), 384, 384, block_size=32, bias=True)
    # Quantized Gemm and the quantized binary ops (ORT's QOperator format writes them).
    f32 = lambda v: np.array(v, np.float32)
    i8 = lambda *shape: RNG.integers(-128, 128, size=shape).astype(np.int8)
    case("qgemm_float", "QGemm",
         [("a", u8(3, 8)), ("as", None), ("az", None), ("b", None), ("bs", None), ("bz", None),
          ("c", None)], ["y"], attrs={"alpha": 0.5},
         consts=[("as", f32(0.02)), ("az", np.array(120, np.uint8)), ("b", i8(8, 5)),
                 ("bs", rand(5, lo=0.01, hi=0.05)), ("bz", np.array([1, -2, 0, 3, -1], np.int8)),
                 ("c", RNG.integers(-500, 500, size=5).astype(np.int32))])
    case("qgemm_quant_trans_b", "QGemm",
         [("a", u8(4, 8)), ("as", None), ("az", None), ("b", None), ("bs", None), ("bz", None),
          ("c", None), ("ys", None), ("yz", None)], ["y"], attrs={"transB": 1},
         consts=[("as", f32(0.03)), ("az", np.array(128, np.uint8)), ("b", i8(6, 8)),
                 ("bs", f32(0.04)), ("bz", np.array(0, np.int8)),
                 ("c", RNG.integers(-300, 300, size=(4, 6)).astype(np.int32)),
                 ("ys", f32(0.05)), ("yz", np.array(100, np.uint8))],
         out_type=TensorProto.UINT8)
    case("qgemm_trans_a_i8", "QGemm",
         [("a", i8(8, 3)), ("as", None), ("az", None), ("b", None), ("bs", None), ("bz", None),
          ("", None), ("ys", None), ("yz", None)], ["y"], attrs={"transA": 1, "alpha": 2.0},
         consts=[("as", f32(0.02)), ("az", np.array(-3, np.int8)), ("b", i8(8, 5)),
                 ("bs", f32(0.01)), ("bz", np.array(0, np.int8)),
                 ("ys", f32(0.3)), ("yz", np.array(-10, np.int8))],
         out_type=TensorProto.INT8)
    qadd = [("as", f32(0.05)), ("az", np.array(118, np.uint8)), ("bs", f32(0.02)),
            ("bz", np.array(125, np.uint8)), ("cs", f32(0.1)), ("cz", np.array(100, np.uint8))]
    qbin = [("as", None), ("az", None), ("b", u8(2, 3, 16)), ("bs", None), ("bz", None),
            ("cs", None), ("cz", None)]
    case("qlinear_add", "QLinearAdd", [("a", u8(2, 3, 16))] + qbin, ["y"],
         consts=qadd, out_type=TensorProto.UINT8)
    case("qlinear_add_column", "QLinearAdd", [("a", u8(2, 3, 1))] + qbin, ["y"],
         consts=qadd, out_type=TensorProto.UINT8)
    case("qlinear_mul", "QLinearMul",
         [("a", i8(2, 3, 16)), ("as", None), ("az", None), ("b", i8(16)), ("bs", None),
          ("bz", None), ("cs", None), ("cz", None)], ["y"],
         consts=[("as", f32(0.05)), ("az", np.array(-7, np.int8)), ("bs", f32(0.02)),
                 ("bz", np.array(3, np.int8)), ("cs", f32(0.3)), ("cz", np.array(-2, np.int8))],
         out_type=TensorProto.INT8)
    # QGemm after a QuantizeLinear with the same constant scale and zero point (ORT's QOperator
    # format): `a` is typed, so carve imports the product as `matmul` over quantized types.
    # Per-column weight scales, transB, an i32 C, quantized output.
    quantize = helper.make_node("QuantizeLinear", ["x", "as", "az"], ["a"])
    case("qgemm_typed_per_column", "QGemm",
         [("a", None), ("as", None), ("az", None), ("b", None), ("bs", None), ("bz", None),
          ("c", None), ("ys", None), ("yz", None)], ["y"], attrs={"transB": 1},
         consts=[("as", f32(0.025)), ("az", np.array(131, np.uint8)), ("b", i8(7, 24)),
                 ("bs", rand(7, lo=0.005, hi=0.03)), ("bz", np.zeros(7, np.int8)),
                 ("c", RNG.integers(-400, 400, size=7).astype(np.int32)),
                 ("ys", f32(0.04)), ("yz", np.array(90, np.uint8))],
         out_type=TensorProto.UINT8, prelude=([quantize], [("x", rand(5, 24))]))


if __name__ == "__main__":
    main()
