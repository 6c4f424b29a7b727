//! Ahead-of-time compilation end to end: `carve compile` writes an object and header for x86_64,
//! aarch64 and riscv64 (scalar and RVV); the C example (`examples/c/main.c`) is linked against it with
//! the host or Debian cross gcc and run natively or under qemu-user; outputs are compared with the
//! JIT (bit-identical on the host) and the reference outputs. Also: byte-identical recompilation, the
//! manifest read back by `carve inspect`, the object's imports, valgrind, and the Rust build API.
//!
//! Cross toolchains, qemu and valgrind are required (CI installs them, see `.ci/run`): a test that
//! needs a missing tool fails with a message naming the Debian package.

use std::path::{Path, PathBuf};
use std::process::Command;

use carve::frontend::proto::tensor_shape_proto::{Dimension, dimension};
use carve::frontend::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, type_proto,
};
use carve::runtime::interp::Value;
use carve::runtime::{Data, Tensor};
use prost::Message;

mod common;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

// ---------- tools ----------

/// A cross/emulation setup: how to link and how to run.
#[derive(Clone, Copy, Debug)]
struct Cross {
    triple: &'static str,
    cpu: Option<&'static str>,
    cc: &'static str,
    cc_package: &'static str,
    /// qemu command and its extra arguments (None: run natively).
    qemu: Option<(&'static str, &'static [&'static str])>,
}

const X86_64: Cross = Cross {
    triple: "x86_64-unknown-linux-gnu",
    cpu: None,
    cc: "cc",
    cc_package: "gcc",
    qemu: None,
};
const AARCH64: Cross = Cross {
    triple: "aarch64-unknown-linux-gnu",
    cpu: None,
    cc: "aarch64-linux-gnu-gcc",
    cc_package: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    qemu: Some(("qemu-aarch64", &[])),
};
const RISCV64: Cross = Cross {
    triple: "riscv64gc-unknown-linux-gnu",
    cpu: None,
    cc: "riscv64-linux-gnu-gcc",
    cc_package: "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
    qemu: Some(("qemu-riscv64", &["-cpu", "rv64,v=false"])),
};
const RISCV64_V: Cross = Cross {
    triple: "riscv64gc-unknown-linux-gnu",
    cpu: Some("+v"),
    cc: "riscv64-linux-gnu-gcc",
    cc_package: "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
    qemu: Some((
        "qemu-riscv64",
        &["-cpu", "rv64,v=true,vlen=128,vext_spec=v1.0"],
    )),
};

/// `--cpu` for objects run under valgrind, which cannot decode AVX-512 (EVEX) instructions: every
/// feature of this machine except AVX-512, so GEMMs use the AVX2+FMA machine-code tiles.
const NATIVE_FOR_VALGRIND: &str = "native,-avx512f,-avx512vl,-avx512dq,-avx512vnni";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// Panics with an install hint if `tool` is missing.
fn need(tool: &str, package: &str) {
    assert!(
        have(tool),
        "`{tool}` is missing: install it with `apt-get install -y {package}` (see .ci/run)"
    );
}

fn host_is_x86_64() -> bool {
    cfg!(all(target_arch = "x86_64", target_os = "linux"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn carve() -> Command {
    Command::new(env!("CARGO_BIN_EXE_carve"))
}

// ---------- small test models (ONNX, built here) ----------

fn f32_type(dims: &[i64]) -> Option<TypeProto> {
    Some(TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: 1,
            shape: Some(TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&d| Dimension {
                        value: Some(dimension::Value::DimValue(d)),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    })
}

fn vinfo(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: f32_type(dims),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A model whose ops are native today: `y = reshape(x, [3, 8])` (a view, then a copy into the
/// output) and `table = identity(W)` (a constant from the weights blob, copied into the output).
fn small_model() -> Vec<u8> {
    let table: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
    let graph = GraphProto {
        name: "small".into(),
        node: vec![
            node("Reshape", "reshape", &["x", "shape"], &["y"]),
            node("Identity", "id", &["W"], &["table"]),
        ],
        initializer: vec![
            TensorProto {
                name: "shape".into(),
                dims: vec![2],
                data_type: 7,
                int64_data: vec![3, 8],
                ..Default::default()
            },
            TensorProto {
                name: "W".into(),
                dims: vec![4, 25],
                data_type: 1,
                float_data: table,
                ..Default::default()
            },
        ],
        input: vec![vinfo("x", &[2, 3, 4])],
        output: vec![vinfo("y", &[3, 8]), vinfo("table", &[4, 25])],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn small_input() -> Tensor {
    let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    Tensor::new(vec![2, 3, 4], Data::F32(v)).unwrap()
}

// ---------- compile / link / run helpers ----------

struct Compiled {
    dir: PathBuf,
    object: PathBuf,
    header: PathBuf,
    weights: Option<PathBuf>,
    log: String,
}

fn compile(
    model: &Path,
    dir: &Path,
    target: &str,
    cpu: Option<&str>,
    shapes: &[String],
    weights_file: bool,
) -> Compiled {
    std::fs::create_dir_all(dir).unwrap();
    let object = dir.join("model.o");
    let header = dir.join("model.h");
    let mut cmd = carve();
    cmd.arg("compile")
        .arg(model)
        .args(["--target", target, "--name", "model", "-o"])
        .arg(&object)
        .arg("--header")
        .arg(&header);
    if let Some(c) = cpu {
        cmd.arg(format!("--cpu={c}"));
    }
    for s in shapes {
        cmd.args(["--input-shape", s]);
    }
    let weights = weights_file.then(|| dir.join("model.bin"));
    if let Some(w) = &weights {
        cmd.arg("--weights-file").arg(w);
    }
    let out = cmd.output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "carve compile {} for {target} failed:\n{log}",
        model.display()
    );
    Compiled {
        dir: dir.to_path_buf(),
        object,
        header,
        weights,
        log,
    }
}

/// Links the C example against the object with `cross.cc`; returns the executable.
fn link(c: &Compiled, cross: Cross) -> PathBuf {
    need(cross.cc, cross.cc_package);
    let exe = c.dir.join("demo");
    let mut cmd = Command::new(cross.cc);
    cmd.args(["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&c.dir)
        .arg("-DMODEL_HEADER=\"model.h\"")
        .arg(Path::new(ROOT).join("examples/c/main.c"))
        .arg(&c.object)
        .args(["-lpthread", "-o"])
        .arg(&exe);
    if cross.qemu.is_some() {
        cmd.arg("-static");
    }
    let _ = c.header.as_path();
    run_ok(&mut cmd);
    exe
}

/// Runs the linked example on `inputs` (raw files written here); returns the raw output bytes.
fn run_demo(
    exe: &Path,
    c: &Compiled,
    cross: Cross,
    inputs: &[Tensor],
    threads: usize,
    wrapper: Option<&[&str]>,
) -> Vec<Vec<u8>> {
    let out_dir = c.dir.join(format!("out_t{threads}"));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut args: Vec<String> = Vec::new();
    for (k, t) in inputs.iter().enumerate() {
        let p = c.dir.join(format!("input_{k}.bin"));
        std::fs::write(&p, t.data.to_le_bytes().unwrap()).unwrap();
        args.push(p.display().to_string());
    }
    let mut cmd = match (wrapper, cross.qemu) {
        (Some(w), _) => {
            let mut cmd = Command::new(w[0]);
            cmd.args(&w[1..]).arg(exe);
            cmd
        }
        (None, Some((q, qargs))) => {
            need(q, "qemu-user");
            let mut cmd = Command::new(q);
            cmd.args(qargs).arg(exe);
            cmd
        }
        (None, None) => Command::new(exe),
    };
    cmd.args(["-t", &threads.to_string(), "-o"]).arg(&out_dir);
    if let Some(w) = &c.weights {
        cmd.arg("-w").arg(w);
    }
    cmd.args(&args);
    run_ok(&mut cmd);
    (0..)
        .map(|k| out_dir.join(format!("output_{k}.bin")))
        .take_while(|p| p.exists())
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Outputs of the JIT for the host target with every host feature (what `--cpu native` compiles for).
fn jit_outputs(model: &Path, inputs: &[Tensor]) -> Vec<Tensor> {
    let m = carve::load(model).unwrap();
    let c = carve::Compiler::new()
        .threads(1)
        .compile(&m)
        .unwrap_or_else(|e| panic!("JIT: {e}"));
    c.run_ordered(inputs.iter().cloned().map(Value::Tensor).collect())
        .unwrap_or_else(|e| panic!("JIT run: {e}"))
        .into_iter()
        .map(|v| match v {
            Value::Tensor(t) => t,
            other => panic!("JIT output is a {}", other.kind()),
        })
        .collect()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write_small_model(dir: &Path) -> PathBuf {
    let p = dir.join("small.onnx");
    std::fs::write(&p, small_model()).unwrap();
    p
}

/// Outputs of the reference interpreter.
fn interp_outputs(model: &Path, inputs: &[Tensor]) -> Vec<Tensor> {
    let m = carve::load(model).unwrap();
    carve::runtime::interp::run(
        &m.graph,
        inputs.iter().cloned().map(Value::Tensor).collect(),
    )
    .unwrap()
    .into_iter()
    .map(|v| match v {
        Value::Tensor(t) => t,
        other => panic!("output is a {}", other.kind()),
    })
    .collect()
}

fn bytes_of(ts: &[Tensor]) -> Vec<Vec<u8>> {
    ts.iter().map(|t| t.data.to_le_bytes().unwrap()).collect()
}

// ---------- tests ----------

#[test]
fn small_model_runs_on_every_target() {
    let t = tmp();
    let model = write_small_model(t.path());
    let expected = bytes_of(&interp_outputs(&model, &[small_input()]));
    let mut failures = Vec::new();
    for (k, cross) in [X86_64, AARCH64, RISCV64, RISCV64_V]
        .into_iter()
        .enumerate()
    {
        if cross.qemu.is_none() && !host_is_x86_64() {
            continue;
        }
        for weights_file in [false, true] {
            let dir = t.path().join(format!("t{k}_{weights_file}"));
            let c = compile(&model, &dir, cross.triple, cross.cpu, &[], weights_file);
            let exe = link(&c, cross);
            let got = run_demo(&exe, &c, cross, &[small_input()], 1, None);
            if got != expected {
                failures.push(format!(
                    "{} {:?} weights_file={weights_file}",
                    cross.triple, cross.cpu
                ));
            }
        }
    }
    assert!(failures.is_empty(), "wrong outputs: {failures:?}");
}

const ALL: [Cross; 4] = [X86_64, AARCH64, RISCV64, RISCV64_V];

#[test]
fn recompiling_is_byte_identical_and_inspect_reads_the_manifest() {
    let t = tmp();
    let model = write_small_model(t.path());
    for (k, cross) in ALL.into_iter().enumerate() {
        for weights_file in [false, true] {
            // Two separate processes (different hash-map seeds), different output paths.
            let a = compile(
                &model,
                &t.path().join(format!("a{k}{weights_file}")),
                cross.triple,
                cross.cpu,
                &[],
                weights_file,
            );
            let b = compile(
                &model,
                &t.path().join(format!("b{k}{weights_file}/deeper")),
                cross.triple,
                cross.cpu,
                &[],
                weights_file,
            );
            for (x, y) in [(&a.object, &b.object), (&a.header, &b.header)] {
                assert!(
                    std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
                    "{} and {} differ ({} {:?})",
                    x.display(),
                    y.display(),
                    cross.triple,
                    cross.cpu
                );
            }
            if let (Some(x), Some(y)) = (&a.weights, &b.weights) {
                assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
            }
            assert!(a.log.contains("isa flags:"), "{}", a.log);
        }
    }
    // In-process too (the library API), against the CLI's bytes.
    let c = compile(
        &model,
        &t.path().join("cli"),
        X86_64.triple,
        None,
        &[],
        false,
    );
    let lib = carve::build::compile_file(
        &model,
        &carve::build::Options {
            target: Some(X86_64.triple.into()),
            name: Some("model".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .0;
    assert!(lib.object == std::fs::read(&c.object).unwrap());
    // The manifest reads back.
    let out = run_ok(carve().arg("inspect").arg(&c.object));
    let hash = carve::codegen::aot::content_hash(&small_model());
    for want in [
        "carve AOT object `model`",
        &format!("model_hash     {hash}"),
        &format!("carve_version  {}", env!("CARGO_PKG_VERSION")),
        "target         x86_64-unknown-linux-gnu",
        "features       +popcnt,+sse3,+sse41,+sse42,+ssse3",
        "weights        embedded",
        "inputs         x:f32[2,3,4]",
        "outputs        y:f32[3,8];table:f32[4,25]",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    let rv = compile(
        &model,
        &t.path().join("rvv"),
        RISCV64_V.triple,
        RISCV64_V.cpu,
        &["x=2,3,4".into()],
        true,
    );
    let out = run_ok(carve().arg("inspect").arg(&rv.object));
    for want in [
        "features       +v",
        "has_v",
        "weights        file",
        "input_shapes   x=2,3,4",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
}

#[test]
fn objects_import_nothing_beyond_memcpy_and_memset() {
    let t = tmp();
    let model = write_small_model(t.path());
    for (k, cross) in ALL.into_iter().enumerate() {
        let c = compile(
            &model,
            &t.path().join(k.to_string()),
            cross.triple,
            cross.cpu,
            &[],
            false,
        );
        let bytes = std::fs::read(&c.object).unwrap();
        let imports = carve::codegen::aot::undefined_symbols(&bytes).unwrap();
        for i in &imports {
            assert!(
                carve::codegen::aot::LIBC_MEMORY_SYMBOLS.contains(&i.as_str()),
                "{}: unexpected import {i}",
                cross.triple
            );
        }
        let header = std::fs::read_to_string(&c.header).unwrap();
        if imports.is_empty() {
            assert!(header.contains("Imports: none"), "{header}");
        } else {
            assert!(header.contains(&imports.join(", ")), "{header}");
        }
        // Cross-check with binutils' view of the object.
        need("nm", "binutils");
        let nm = run_ok(Command::new("nm").arg("-u").arg(&c.object));
        let nm: Vec<&str> = nm
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        assert_eq!(nm, imports, "{}", cross.triple);
    }
}

/// A C program that checks `model_run`'s argument validation.
const ABI_CHECK_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
int main(void) {
    static _Alignas(64) float x[2 * 3 * 4];
    static _Alignas(64) float y[3 * 8 + 16];
    static _Alignas(64) float table[4 * 25];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    model_io io = {x, y, table};
    int rc = model_run(NULL, NULL, &io, NULL);
    if (rc != MODEL_OK) { printf("ok-run %d\n", rc); return 1; }
    for (int i = 0; i < 24; i++) if (y[i] != (float)i) { printf("value %d\n", i); return 1; }
    for (int i = 0; i < 100; i++) if (table[i] != model_weights[64 + 4 * i] * 0.0f + table[i]) return 1;
    if (model_run(NULL, NULL, NULL, NULL) != MODEL_ERR_NULL) { printf("null io\n"); return 1; }
    model_io bad = {x, NULL, table};
    if (model_run(NULL, NULL, &bad, NULL) != MODEL_ERR_NULL) { printf("null out\n"); return 1; }
    model_io mis = {x, y + 1, table};
    if (model_run(NULL, NULL, &mis, NULL) != MODEL_ERR_ALIGN) { printf("misaligned out\n"); return 1; }
    if (model_run(model_weights + 4, NULL, &io, NULL) != MODEL_ERR_ALIGN) { printf("misaligned w\n"); return 1; }
    if (model_run(model_weights, NULL, &io, NULL) != MODEL_OK) { printf("explicit w\n"); return 1; }
    if (strncmp(model_manifest, "CARVE-AOT-MANIFEST/1\n", 21) != 0) { printf("manifest\n"); return 1; }
    printf("abi ok\n");
    return 0;
}
"#;

#[test]
fn run_checks_null_and_misaligned_buffers() {
    let t = tmp();
    let model = write_small_model(t.path());
    for (k, cross) in ALL.into_iter().enumerate() {
        if cross.qemu.is_none() && !host_is_x86_64() {
            continue;
        }
        let c = compile(
            &model,
            &t.path().join(k.to_string()),
            cross.triple,
            cross.cpu,
            &[],
            false,
        );
        need(cross.cc, cross.cc_package);
        let src = c.dir.join("abi_check.c");
        std::fs::write(&src, ABI_CHECK_C).unwrap();
        let exe = c.dir.join("abi_check");
        let mut cc = Command::new(cross.cc);
        cc.args(["-O1", "-std=c11", "-Wall", "-Werror", "-I"])
            .arg(&c.dir)
            .arg(&src)
            .arg(&c.object)
            .arg("-o")
            .arg(&exe);
        if cross.qemu.is_some() {
            cc.arg("-static");
        }
        run_ok(&mut cc);
        let out = match cross.qemu {
            Some((q, args)) => {
                need(q, "qemu-user");
                run_ok(Command::new(q).args(args).arg(&exe))
            }
            None => run_ok(&mut Command::new(&exe)),
        };
        assert_eq!(out.trim(), "abi ok", "{}", cross.triple);
    }
}

/// A second small model: two inputs, rank changes only.
fn two_input_model() -> Vec<u8> {
    let graph = GraphProto {
        name: "two".into(),
        node: vec![
            node("Flatten", "flat", &["a"], &["fa"]),
            node("Reshape", "re", &["b", "shape"], &["rb"]),
        ],
        initializer: vec![TensorProto {
            name: "shape".into(),
            dims: vec![1],
            data_type: 7,
            int64_data: vec![-1],
            ..Default::default()
        }],
        input: vec![vinfo("a", &[3, 5, 7]), vinfo("b", &[4, 4])],
        output: vec![vinfo("fa", &[3, 35]), vinfo("rb", &[16])],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn x86_64_binaries_are_valgrind_clean() {
    assert!(host_is_x86_64(), "this test runs on x86_64 Linux hosts");
    need("valgrind", "valgrind");
    let t = tmp();
    let small = write_small_model(t.path());
    let two = t.path().join("two.onnx");
    std::fs::write(&two, two_input_model()).unwrap();
    let a = Tensor::new(
        vec![3, 5, 7],
        Data::F32((0..105).map(|i| i as f32).collect()),
    )
    .unwrap();
    let b = Tensor::new(
        vec![4, 4],
        Data::F32((0..16).map(|i| -(i as f32)).collect()),
    )
    .unwrap();
    let cases: [(&Path, Vec<Tensor>); 2] = [(&small, vec![small_input()]), (&two, vec![a, b])];
    for (k, (model, inputs)) in cases.iter().enumerate() {
        for weights_file in [false, true] {
            let c = compile(
                model,
                &t.path().join(format!("v{k}{weights_file}")),
                X86_64.triple,
                // valgrind cannot decode AVX-512: the host without it, so GEMMs run on the AVX2 tiles.
                Some(NATIVE_FOR_VALGRIND),
                &[],
                weights_file,
            );
            let exe = link(&c, X86_64);
            let vg = [
                "valgrind",
                "-q",
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
            ];
            let got = run_demo(&exe, &c, X86_64, inputs, 2, Some(&vg));
            assert_eq!(got, bytes_of(&interp_outputs(model, inputs)));
        }
    }
}

#[test]
fn jit_and_aot_outputs_are_bit_identical_on_the_host() {
    assert!(host_is_x86_64(), "this test runs on x86_64 Linux hosts");
    let t = tmp();
    let model = write_small_model(t.path());
    let c = compile(
        &model,
        &t.path().join("n"),
        X86_64.triple,
        Some("native"),
        &[],
        false,
    );
    let exe = link(&c, X86_64);
    let got = run_demo(&exe, &c, X86_64, &[small_input()], 1, None);
    assert_eq!(got, bytes_of(&jit_outputs(&model, &[small_input()])));
}

#[test]
fn rust_build_api_links_the_object_and_the_wrapper_runs() {
    let t = tmp();
    let model = write_small_model(t.path());
    let out = t.path().join("out");
    let built = carve::build::compile_model(&model)
        .name("small")
        .out_dir(&out)
        .build()
        .unwrap();
    assert!(built.library.ends_with("libsmall_carve.a"));
    let main = t.path().join("main.rs");
    std::fs::write(
        &main,
        format!(
            r#"mod small {{ include!({:?}); }}
fn main() {{
    let mut m = small::Model::new();
    for (i, v) in m.input_x().iter_mut().enumerate() {{ *v = i as f32 * 0.5 - 3.0; }}
    m.run().unwrap();
    assert_eq!(small::OUTPUT_Y_SHAPE, [3, 8]);
    let y: Vec<String> = m.output_y().iter().map(|v| v.to_string()).collect();
    println!("{{}}", y.join(","));
    println!("{{}}", m.output_table()[1]);
    assert!(small::manifest().starts_with("CARVE-AOT-MANIFEST/1\nc"));
}}
"#,
            built.rust
        ),
    )
    .unwrap();
    let exe = t.path().join("app");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    run_ok(
        Command::new(rustc)
            .args(["--edition", "2024", "-D", "warnings", "-O"])
            .arg(&main)
            .arg("-L")
            .arg(&out)
            .args(["-l", "static=small_carve", "-o"])
            .arg(&exe),
    );
    let stdout = run_ok(&mut Command::new(&exe));
    let want: Vec<String> = (0..24)
        .map(|i| (i as f32 * 0.5 - 3.0).to_string())
        .collect();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(want.join(",").as_str()));
    assert_eq!(lines.next(), Some((0.37f32).sin().to_string().as_str()));
}

// ---------- the real models ----------

fn models_dir() -> PathBuf {
    common::shared_dir().join("models")
}

/// Compiles `name` for every target, runs it, compares with the reference outputs (and bit-exactly
/// with the JIT on the host); valgrind on x86_64 when `valgrind` is set. Returns one line per target.
fn check_real_model(name: &str, valgrind: bool) {
    let dir = models_dir().join(name);
    let model_path = dir.join("model.onnx");
    assert!(
        model_path.is_file(),
        "{} is missing (the shared test data must be at ../shared)",
        model_path.display()
    );
    let m = carve::load(&model_path).unwrap();
    let g = &m.graph;
    let mut inputs = Vec::new();
    let mut shapes = Vec::new();
    for (k, &v) in g.inputs.iter().enumerate() {
        let p = dir.join("test_data_set_0").join(format!("input_{k}.pb"));
        let t = match carve::data::read_pb(&p, g.ty(v)).unwrap() {
            Value::Tensor(t) => t,
            other => panic!("input {k} is a {}", other.kind()),
        };
        let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        shapes.push(format!("{}={}", g.value(v).name, dims.join(",")));
        inputs.push(t);
    }
    let mut expected = Vec::new();
    for (k, &v) in g.outputs.iter().enumerate() {
        let p = dir.join("test_data_set_0").join(format!("output_{k}.pb"));
        expected.push(carve::data::read_pb(&p, g.ty(v)).unwrap());
    }
    let t = tmp();
    let mut report = Vec::new();
    let mut ok = true;
    // Under valgrind the host's object uses the AVX2 tiles (see NATIVE_FOR_VALGRIND); otherwise
    // the AVX-512 ones where this machine has them.
    let native = if valgrind {
        NATIVE_FOR_VALGRIND
    } else {
        "native"
    };
    let configs: Vec<(Cross, Option<&str>)> = vec![
        (X86_64, Some(native)),
        (AARCH64, None),
        (RISCV64, None),
        (RISCV64_V, RISCV64_V.cpu),
    ];
    for (k, (cross, cpu)) in configs.into_iter().enumerate() {
        let label = format!("{} {}", cross.triple, cpu.unwrap_or(""));
        let sub = t.path().join(k.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        // Compile through the CLI; a failure (e.g. an op without native kernel) is reported per target.
        let mut cmd = carve();
        cmd.arg("compile")
            .arg(&model_path)
            .args(["--target", cross.triple, "--name", "model", "-o"])
            .arg(sub.join("model.o"));
        if let Some(c) = cpu {
            cmd.arg(format!("--cpu={c}"));
        }
        for s in &shapes {
            cmd.args(["--input-shape", s]);
        }
        let out = cmd.output().unwrap();
        if !out.status.success() {
            ok = false;
            let err = String::from_utf8_lossy(&out.stderr);
            report.push(format!(
                "{label}: compile failed: {}",
                err.lines().last().unwrap_or("")
            ));
            continue;
        }
        let c = Compiled {
            dir: sub.clone(),
            object: sub.join("model.o"),
            header: sub.join("model.h"),
            weights: None,
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let exe = link(&c, cross);
        let got = run_demo(&exe, &c, cross, &inputs, 2, None);
        let mut line = format!("{label}: ");
        for (k, ((e, bytes), &v)) in expected.iter().zip(&got).zip(&g.outputs).enumerate() {
            let et = e.as_tensor().unwrap();
            let data = Data::from_le_bytes(et.dtype(), bytes, et.len()).unwrap();
            let actual = Value::Tensor(Tensor::new(et.shape.clone(), data).unwrap());
            let r = carve::compare::compare(
                e,
                &actual,
                carve::compare::Tolerance {
                    rtol: 1e-3,
                    atol: 1e-4,
                },
            );
            match r {
                Ok(d) => line.push_str(&format!("output {k} ok (max err {d:.2e}) ")),
                Err(msg) => {
                    ok = false;
                    line.push_str(&format!("output {k} '{}' WRONG: {msg} ", g.value(v).name));
                }
            }
        }
        if got.len() != expected.len() {
            ok = false;
            line.push_str(&format!(
                "{} outputs, expected {}",
                got.len(),
                expected.len()
            ));
        }
        if cross.qemu.is_none() {
            // A second compilation (another process, another path) gives the same bytes.
            let again = sub.join("again.o");
            let mut cmd2 = carve();
            cmd2.arg("compile")
                .arg(&model_path)
                .args(["--target", cross.triple, "--name", "model", "-o"])
                .arg(&again);
            if let Some(c) = cpu {
                cmd2.arg(format!("--cpu={c}"));
            }
            for s in &shapes {
                cmd2.args(["--input-shape", s]);
            }
            run_ok(&mut cmd2);
            if std::fs::read(&again).unwrap() == std::fs::read(&c.object).unwrap() {
                line.push_str("recompiled byte-identical ");
            } else {
                ok = false;
                line.push_str("RECOMPILATION DIFFERS ");
            }
            // Same options on the host: the JIT must give the same bits.
            let jit = bytes_of(&jit_outputs(&model_path, &inputs));
            if jit != got {
                ok = false;
                line.push_str("JIT/AOT outputs differ ");
            } else {
                line.push_str("JIT bit-identical ");
            }
            if valgrind {
                need("valgrind", "valgrind");
                let vg = ["valgrind", "-q", "--error-exitcode=99"];
                let again = run_demo(&exe, &c, cross, &inputs, 2, Some(&vg));
                if again != got {
                    ok = false;
                    line.push_str("valgrind run differs ");
                } else {
                    line.push_str("valgrind clean ");
                }
            }
        }
        report.push(line);
    }
    let text = report.join("\n");
    println!("{name}:\n{text}");
    assert!(ok, "{name}:\n{text}");
}

#[test]
fn real_model_magika() {
    check_real_model("magika_standard_v3_3", false);
}

#[test]
fn real_model_ppocr_mobile_v2_cls() {
    check_real_model("ppocr_mobile_v2_cls", false);
}

#[test]
fn real_model_ppocrv4_det() {
    check_real_model("ppocrv4_det", false);
}

#[test]
fn real_model_silero_vad() {
    check_real_model("silero_vad_openvino_16k", true);
}

#[test]
fn real_model_minilm() {
    check_real_model("minilm_l6_v2", false);
}

#[test]
fn real_model_sk_digits_mlp() {
    check_real_model("sk_digits_mlp", true);
}
