#!/usr/bin/env python3
"""Side-by-side latency of a float model and its int8 (QDQ) export: carve (native JIT, `carve bench`) and
ONNX Runtime on both files, interleaved in one run, one thread by default. Prints a Markdown table of
medians (ms) and int8/float ratios.

Usage (from the repository root, after `cargo build --release`):
    python3 bench/int8_latency.py FLOAT.onnx INT8.onnx INPUT_DIR [--runs 50] [--rounds 3] [--threads 1]

INPUT_DIR holds input_N.pb files (e.g. ../shared/models/minilm_l6_v2/test_data_set_0), matched to the
models' inputs by position. Needs numpy, onnx, onnxruntime (pip).
"""
import argparse
import os
import statistics
import subprocess
import time

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARVE = os.path.join(ROOT, "target", "release", "carve")


def carve_ms(model, specs, runs, threads):
    cmd = [CARVE, "bench", model, "--runs", str(runs), "--threads", str(threads), "--tsv"] + specs
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().split("\t")
    return float(out[2])


def ort_ms(model, feeds, runs, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for _ in range(5):
        s.run(None, feeds)
    xs = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feeds)
        xs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("float_model")
    ap.add_argument("int8_model")
    ap.add_argument("input_dir")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    names = [i.name for i in onnx.load(a.float_model, load_external_data=False).graph.input]
    feeds, specs = {}, []
    for i, name in enumerate(names):
        p = os.path.join(a.input_dir, f"input_{i}.pb")
        t = onnx.TensorProto()
        with open(p, "rb") as f:
            t.ParseFromString(f.read())
        feeds[name] = numpy_helper.to_array(t)
        specs += ["-i", f"{name}={p}"]
    res = {k: [] for k in ["carve float", "carve int8", "ORT float", "ORT int8"]}
    for _ in range(a.rounds):
        res["carve float"].append(carve_ms(a.float_model, specs, a.runs, a.threads))
        res["carve int8"].append(carve_ms(a.int8_model, specs, a.runs, a.threads))
        res["ORT float"].append(ort_ms(a.float_model, feeds, a.runs, a.threads))
        res["ORT int8"].append(ort_ms(a.int8_model, feeds, a.runs, a.threads))
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"{a.threads} thread(s), median of {a.rounds} rounds × {a.runs} runs, interleaved\n")
    print("| engine | float ms | int8 ms | int8/float |")
    print("|---|---|---|---|")
    for e in ["carve", "ORT"]:
        f, q = med[f"{e} float"], med[f"{e} int8"]
        print(f"| {e} | {f:.3f} | {q:.3f} | {q / f:.2f} |")
    print(f"\ncarve int8 / ORT int8: {med['carve int8'] / med['ORT int8']:.2f}")


if __name__ == "__main__":
    main()
