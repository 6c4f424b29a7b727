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
    qemu: Some(("qemu-riscv64", &["-cpu", "rv64"])),
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
    for (k, cross) in [X86_64, AARCH64, RISCV64, RISCV64_V].into_iter().enumerate() {
        if cross.qemu.is_none() && !host_is_x86_64() {
            continue;
        }
        for weights_file in [false, true] {
            let dir = t.path().join(format!("t{k}_{weights_file}"));
            let c = compile(&model, &dir, cross.triple, cross.cpu, &[], weights_file);
            let exe = link(&c, cross);
            let got = run_demo(&exe, &c, cross, &[small_input()], 1, None);
            if got != expected {
                failures.push(format!("{} {:?} weights_file={weights_file}", cross.triple, cross.cpu));
            }
        }
    }
    assert!(failures.is_empty(), "wrong outputs: {failures:?}");
}
