//! The conformance harness: runs every case of an ONNX-test-layout folder (`model.onnx` +
//! `test_data_set_*/input_N.pb`, `output_N.pb`), compares like the ONNX backend runner, classifies each
//! case, and renders a Markdown report with per-op pass rates.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use carve_frontend::ImportError;
use carve_frontend::onnx::canonical_domain;
use carve_runtime::interp::{NO_KERNEL, Value};

use crate::compare::{Tolerance, compare};
use crate::data::read_pb;

/// How one case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every output of every data set matched; the largest absolute error seen.
    Pass {
        /// Max absolute error over all float outputs.
        max_err: f64,
    },
    /// An output differs from the reference.
    Mismatch(String),
    /// The model uses an operator carve does not import.
    Unsupported(String),
    /// Import failed for another reason.
    ImportError(String),
    /// The interpreter has no kernel for an op of the model.
    NoKernel(String),
    /// Running failed (or the test data could not be read).
    RunError(String),
}

impl Outcome {
    /// Short label for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass { .. } => "pass",
            Outcome::Mismatch(_) => "mismatch",
            Outcome::Unsupported(_) => "unsupported op",
            Outcome::ImportError(_) => "import error",
            Outcome::NoKernel(_) => "no kernel",
            Outcome::RunError(_) => "run error",
        }
    }

    /// The detail message (empty for passes).
    pub fn detail(&self) -> String {
        match self {
            Outcome::Pass { .. } => String::new(),
            Outcome::Mismatch(m)
            | Outcome::Unsupported(m)
            | Outcome::ImportError(m)
            | Outcome::NoKernel(m)
            | Outcome::RunError(m) => m.clone(),
        }
    }
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// Case folder name.
    pub name: String,
    /// ONNX op types the model uses (`domain::Op`, subgraphs included), sorted.
    pub ops: Vec<String>,
    /// Outcome.
    pub outcome: Outcome,
    /// For native (JIT) runs: how many nodes ran through the interpreter fallback (the largest count
    /// over the case's data sets; a graph that could not be compiled at all counts all its nodes).
    /// `None` for interpreter runs or cases that never ran.
    pub fallback_nodes: Option<usize>,
}

impl CaseReport {
    /// True if the case passed with every node running natively.
    pub fn native_pass(&self) -> bool {
        matches!(self.outcome, Outcome::Pass { .. }) && self.fallback_nodes == Some(0)
    }
}

/// Which engine runs the cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The reference interpreter.
    Interpreter,
    /// Native code through the JIT (nodes without kernel fall back to the interpreter, counted).
    Jit {
        /// Threads per run.
        threads: usize,
    },
}

fn op_types(path: &Path) -> Vec<String> {
    fn walk(
        g: &carve_frontend::proto::GraphProto,
        out: &mut std::collections::BTreeSet<String>,
        depth: usize,
    ) {
        if depth > 32 {
            return;
        }
        for n in &g.node {
            let d = canonical_domain(&n.domain);
            out.insert(if d == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{d}::{}", n.op_type)
            });
            for a in &n.attribute {
                for sg in a.g.iter().chain(&a.graphs) {
                    walk(sg, out, depth + 1);
                }
            }
        }
    }
    let mut set = std::collections::BTreeSet::new();
    if let Ok(m) = carve_frontend::decode_file(path)
        && let Some(g) = &m.graph
    {
        walk(g, &mut set, 0);
    }
    set.into_iter().collect()
}

fn data_sets(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.is_dir()
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_"))
    });
    v.sort();
    v
}

/// Runs one case folder with the interpreter.
pub fn run_case(dir: &Path, tol: Tolerance) -> CaseReport {
    run_case_with(dir, tol, Engine::Interpreter)
}

/// Runs one case folder with `engine`.
pub fn run_case_with(dir: &Path, tol: Tolerance, engine: Engine) -> CaseReport {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let model_path = dir.join("model.onnx");
    let ops = op_types(&model_path);
    let mut fallback_nodes = None;
    let outcome = match crate::load(&model_path) {
        Err(ImportError::Unsupported(list)) => Outcome::Unsupported(
            list.iter()
                .map(|u| format!("{}::{}", u.domain, u.op_type))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Err(e) => Outcome::ImportError(e.to_string()),
        Ok(m) => {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_data_sets(dir, &m, tol, engine, &mut fallback_nodes)
            }));
            run.unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Outcome::RunError(format!("panic (a bug in carve): {msg}"))
            })
        }
    };
    CaseReport {
        name,
        ops,
        outcome,
        fallback_nodes,
    }
}

fn run_data_sets(
    dir: &Path,
    m: &crate::Model,
    tol: Tolerance,
    engine: Engine,
    fallback_nodes: &mut Option<usize>,
) -> Outcome {
    let g = &m.graph;
    let compiled = match engine {
        Engine::Interpreter => None,
        Engine::Jit { threads } => match crate::Compiler::new().threads(threads).compile(m) {
            Ok(c) => Some(c),
            Err(e) => return Outcome::RunError(format!("compiling: {e}")),
        },
    };
    let sets = data_sets(dir);
    if sets.is_empty() {
        return Outcome::RunError("no test_data_set_* folder".into());
    }
    let mut max_err = 0.0f64;
    for set in &sets {
        let mut inputs = Vec::new();
        for (i, &v) in g.inputs.iter().enumerate() {
            match read_pb(&set.join(format!("input_{i}.pb")), g.ty(v)) {
                Ok(x) => inputs.push(x),
                Err(e) => return Outcome::RunError(format!("reading inputs: {e}")),
            }
        }
        let result = match &compiled {
            None => {
                carve_runtime::interp::run(g, inputs).map_err(crate::compiler::CompileError::from)
            }
            Some(c) => match c.instance_for(&inputs) {
                Ok(inst) => {
                    let n = inst.fallback_count();
                    *fallback_nodes = Some(fallback_nodes.map_or(n, |f| f.max(n)));
                    inst.run(inputs)
                }
                Err(e) => Err(e),
            },
        };
        let outputs = match result {
            Ok(o) => o,
            Err(crate::compiler::CompileError::Interp(e)) if e.msg == NO_KERNEL => {
                return Outcome::NoKernel(format!("{} ({})", e.op, e.node));
            }
            Err(crate::compiler::CompileError::Exec(carve_runtime::exec::ExecError::Fallback(
                e,
            ))) if e.msg == NO_KERNEL => {
                return Outcome::NoKernel(format!("{} ({})", e.op, e.node));
            }
            Err(e) => return Outcome::RunError(e.to_string()),
        };
        for (k, (&v, got)) in g.outputs.iter().zip(&outputs).enumerate() {
            let expected: Value = match read_pb(&set.join(format!("output_{k}.pb")), g.ty(v)) {
                Ok(x) => x,
                Err(e) => return Outcome::RunError(format!("reading reference outputs: {e}")),
            };
            match compare(&expected, got, tol) {
                Ok(e) => max_err = max_err.max(e),
                Err(m) => {
                    return Outcome::Mismatch(format!("output {k} '{}': {m}", g.value(v).name));
                }
            }
        }
    }
    Outcome::Pass { max_err }
}

/// Runs every case folder under `root` (sorted), calling `progress(done, total, report)` after each.
pub fn run_dir(
    root: &Path,
    tol: Tolerance,
    engine: Engine,
    mut progress: impl FnMut(usize, usize, &CaseReport),
) -> Vec<CaseReport> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|p| p.join("model.onnx").is_file());
    dirs.sort();
    let total = dirs.len();
    let mut out = Vec::with_capacity(total);
    for (i, d) in dirs.iter().enumerate() {
        let r = run_case_with(d, tol, engine);
        progress(i + 1, total, &r);
        out.push(r);
    }
    out
}

/// Counts per outcome label, in a fixed order.
pub fn counts(reports: &[CaseReport]) -> Vec<(&'static str, usize)> {
    let labels = [
        "pass",
        "mismatch",
        "unsupported op",
        "import error",
        "no kernel",
        "run error",
    ];
    labels
        .iter()
        .map(|&l| (l, reports.iter().filter(|r| r.outcome.label() == l).count()))
        .collect()
}

/// The Markdown report: totals, per-op pass rates, and every failing case with its reason.
pub fn markdown(title: &str, reports: &[CaseReport]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {title}\n");
    let _ = writeln!(o, "| outcome | cases |\n|---|---|");
    for (l, n) in counts(reports) {
        let _ = writeln!(o, "| {l} | {n} |");
    }
    let _ = writeln!(o, "| **total** | {} |\n", reports.len());
    if reports.iter().any(|r| r.fallback_nodes.is_some()) {
        let native = reports.iter().filter(|r| r.native_pass()).count();
        let fb = reports
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Pass { .. }) && !r.native_pass())
            .count();
        let _ = writeln!(
            o,
            "Native code: {native} cases pass with every node native, {fb} pass with some nodes \
             falling back to the interpreter.\n"
        );
    }
    let mut per_op: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in reports {
        for op in &r.ops {
            let e = per_op.entry(op.as_str()).or_default();
            e.1 += 1;
            if matches!(r.outcome, Outcome::Pass { .. }) {
                e.0 += 1;
            }
        }
    }
    let _ = writeln!(
        o,
        "## Pass rate per op (cases using the op)\n\n| op | pass | cases | rate |\n|---|---|---|---|"
    );
    for (op, (p, n)) in &per_op {
        let _ = writeln!(
            o,
            "| {op} | {p} | {n} | {:.0}% |",
            100.0 * *p as f64 / (*n).max(1) as f64
        );
    }
    let _ = writeln!(
        o,
        "\n## Cases that do not pass\n\n| case | outcome | detail |\n|---|---|---|"
    );
    for r in reports
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Pass { .. }))
    {
        let d = r.outcome.detail().replace('|', "\\|").replace('\n', " ");
        let d: String = d.chars().take(300).collect();
        let _ = writeln!(o, "| {} | {} | {} |", r.name, r.outcome.label(), d);
    }
    o
}
