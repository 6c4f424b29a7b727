#!/usr/bin/env python3
"""ONNX Runtime's f32 MatMul M×K×N (constant B, as carve's `isa` criterion bench) on one thread, in
GFLOP/s: the peer row of the GEMM comparison. Run it in the same session as
`cargo bench -p carve-codegen --bench kernels -- isa`, which prints carve's rows.

Usage: python3 bench/gemm_ort.py [--m 1024 --k 1024 --n 1024] [--runs 15]
Needs: numpy, onnx, onnxruntime (pip).
"""
import argparse
import os
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=1024)
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    b = rng.uniform(-1, 1, (a.k, a.n)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [a.m, a.k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [a.m, a.n])],
        [numpy_helper.from_array(b, "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "gemm.onnx")
        onnx.save(model, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feeds = {"a": rng.uniform(-1, 1, (a.m, a.k)).astype(np.float32)}
        for _ in range(3):
            s.run(None, feeds)
        ts = []
        for _ in range(a.runs):
            t = time.perf_counter()
            s.run(None, feeds)
            ts.append(time.perf_counter() - t)
    ts.sort()
    flops = 2.0 * a.m * a.k * a.n
    med = ts[len(ts) // 2]
    print(f"onnxruntime {ort.__version__} matmul_{a.m}x{a.k}x{a.n} (1 thread): best {ts[0] * 1e3:.3f} ms = "
          f"{flops / ts[0] / 1e9:.1f} GFLOP/s, median {med * 1e3:.3f} ms = {flops / med / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
