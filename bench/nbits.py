#!/usr/bin/env python3
"""Side-by-side latency of 4-bit weight-only MatMulNBits against the float MatMul of the same shape:
carve (native JIT, `carve bench --tsv`) and ONNX Runtime, one model per (M, K = N, form), in one run.

Usage (from the repository root, after `cargo build --release`):
    python3 bench/nbits.py [--carve target/release/carve] [--runs 50] [--threads 1] [--dir /tmp/nbits]

The models (A: f32[M, K] input; weights random, block 32, asymmetric 4-bit packed by ONNX Runtime's
own quantizer) are written to --dir and never committed. Needs numpy, onnx, onnxruntime (pip).
"""
import argparse
import os
import statistics
import subprocess
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.capi._pybind_state import quantize_matmul_4bits

SHAPES = [(1, 384), (128, 384), (1, 1536), (128, 1536)]
BLOCK = 32


def model(path, m, k, nbits):
    rng = np.random.default_rng(k)
    w = rng.uniform(-1, 1, (k, k)).astype(np.float32)
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, k])
    if nbits:
        blocks = (k + BLOCK - 1) // BLOCK
        b = np.zeros((k, blocks, BLOCK // 2), np.uint8)
        s = np.zeros(k * blocks, np.float32)
        z = np.zeros(k * ((blocks + 1) // 2), np.uint8)
        quantize_matmul_4bits(b, w, s, z, BLOCK, k, k, False)
        node = helper.make_node("MatMulNBits", ["a", "b", "s", "z"], ["y"], domain="com.microsoft",
                                K=k, N=k, bits=4, block_size=BLOCK)
        init = [numpy_helper.from_array(b, "b"), numpy_helper.from_array(s, "s"),
                numpy_helper.from_array(z, "z")]
    else:
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        init = [numpy_helper.from_array(w, "w")]
    g = helper.make_graph([node], "g", [a], [y], initializer=init)
    mo = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                             helper.make_opsetid("com.microsoft", 1)])
    mo.ir_version = 8
    onnx.save(mo, path)


def carve_ms(carve, path, runs, threads):
    out = subprocess.run([carve, "bench", path, "--tsv", "--runs", str(runs), "--threads",
                          str(threads)], check=True, capture_output=True, text=True).stdout
    f = out.strip().split("\t")
    return float(f[2]), int(f[6])


def ort_ms(path, m, k, runs, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = {"a": np.random.default_rng(1).uniform(-1, 1, (m, k)).astype(np.float32)}
    for _ in range(5):
        s.run(None, x)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, x)
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--carve", default="target/release/carve")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dir", default="/tmp/carve-nbits-bench")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    print(f"threads {args.threads}, median of {args.runs} runs, ms; 4-bit = MatMulNBits block "
          f"{BLOCK} asymmetric; ORT {ort.__version__}")
    print("| M | K=N | carve f32 | carve 4-bit | 4-bit/f32 | ORT f32 | ORT 4-bit | fallback |")
    print("|---|---|---|---|---|---|---|---|")
    for m, k in SHAPES:
        row = []
        fb = 0
        for nbits in (False, True):
            p = os.path.join(args.dir, f"{'nbits' if nbits else 'f32'}_m{m}_k{k}.onnx")
            model(p, m, k, nbits)
            c, f = carve_ms(args.carve, p, args.runs, args.threads)
            fb += f
            row.append((c, ort_ms(p, m, k, args.runs, args.threads)))
        (cf, of), (cn, on) = row
        print(f"| {m} | {k} | {cf:.4f} | {cn:.4f} | {cn / cf:.2f} | {of:.4f} | {on:.4f} | {fb} |")


if __name__ == "__main__":
    main()
