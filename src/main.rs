//! The `carve` command-line driver: argument parsing and error reporting around the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use carve::pipeline::{Pipeline, PipelineReport, Stage};
use carve::shapes::{InputShape, bind_input_shapes};
use carve_runtime::interp::Value;

mod aot_cli;
mod compress_cli;

/// carve compiles neural-network graphs (ONNX) into kernels specialized to one target.
#[derive(Parser)]
#[command(name = "carve", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize a model: inputs/outputs with types, opsets, op histogram, parameters, compute estimate,
    /// and the operators carve cannot import yet.
    Inspect {
        /// The .onnx file.
        model: PathBuf,
        /// Bind an input's shape for the compute estimate, e.g. `--input-shape x=1,3,224,224` (repeatable;
        /// symbolic dims with the same name in other inputs are bound too).
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<InputShape>,
        /// Also compile for this target (`host` is the only one the JIT runs) and list the nodes that
        /// have no native kernel and would fall back to the interpreter, or — for a data-dependent
        /// shape — the native segments and the boundary node between them, with the reason. Needs
        /// static input shapes (declared or bound with --input-shape).
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
    },
    /// Run a model on inputs from .npy / .pb files and print (or save) its outputs. Compiles native code
    /// for the host (JIT) by default; `--interp` runs the reference interpreter instead.
    Run {
        /// The .onnx file.
        model: PathBuf,
        /// An input, `NAME=FILE` with FILE a .npy array or an ONNX TensorProto/SequenceProto .pb (repeatable).
        #[arg(short, long = "input", value_name = "NAME=FILE")]
        inputs: Vec<String>,
        /// A .npz archive whose arrays are inputs, by name.
        #[arg(long, value_name = "FILE")]
        inputs_npz: Option<PathBuf>,
        /// Write the outputs to this .npz archive (tensors only; written atomically).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Run the reference interpreter instead of native code.
        #[arg(long)]
        interp: bool,
        /// Threads for native code (default: all cores; results are identical for any count).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Skip the e-graph optimizer (only constant folding and dead-code removal), to compare.
        #[arg(long)]
        no_egraph: bool,
        #[command(flatten)]
        stats: StatsArgs,
    },
    /// Measure a model's native compile time and inference latency (median, p10, p90) on the host.
    /// Inputs: `-i NAME=FILE`, else the model folder's test_data_set_0, else deterministic random data.
    Bench {
        /// The .onnx file.
        model: PathBuf,
        /// Threads (default: all cores).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Timed runs.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Untimed warm-up runs.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Bind an input's shape, e.g. `--input-shape x=1,3,224,224` (repeatable).
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<InputShape>,
        /// An input, `NAME=FILE` (.npy or .pb; repeatable).
        #[arg(short, long = "input", value_name = "NAME=FILE")]
        inputs: Vec<String>,
        /// Print one machine-readable line (tab-separated): model, compile ms, median ms, p10 ms,
        /// p90 ms, arena bytes, fallback nodes, load ms.
        #[arg(long)]
        tsv: bool,
        /// Skip the e-graph optimizer (only constant folding and dead-code removal), to compare.
        #[arg(long)]
        no_egraph: bool,
    },
    /// Run every case of an ONNX-test-layout folder (model.onnx + test_data_set_*/input_N.pb, output_N.pb)
    /// through native code (or the interpreter), compare with the references and report pass rates per
    /// op, and how many cases ran with every node native.
    Conformance {
        /// Folder of case folders (e.g. the ONNX node test suite).
        dir: PathBuf,
        /// Only cases whose names contain one of these substrings (repeatable).
        #[arg(long, value_name = "SUBSTRING")]
        filter: Vec<String>,
        /// Write the Markdown report here (written atomically).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Relative tolerance for float outputs.
        #[arg(long, default_value_t = 1e-3)]
        rtol: f64,
        /// Absolute tolerance for float outputs (the node suite's is 1e-5; real models use 1e-4).
        #[arg(long, default_value_t = 1e-5)]
        atol: f64,
        /// Print every case, not only failures.
        #[arg(short, long)]
        verbose: bool,
        /// Run the reference interpreter instead of native code.
        #[arg(long)]
        interp: bool,
    },
    /// Compile a model ahead of time into a relocatable object file and a C header (see README,
    /// "Ahead-of-time compilation").
    Compile(aot_cli::CompileArgs),
    /// Compress a float model — int8 weights and activations (QDQ) or int4/int2 weights
    /// (MatMulNBits) — calibrated on your data and holding an accuracy budget, and write it as
    /// standard ONNX with a report of size, accuracy and speed per layer.
    Compress(compress_cli::CompressArgs),
    /// Print the model's IR in carve's text format after a pipeline stage (default: import), or its kernel
    /// schedule (`--after schedule`). Example: `carve ir model.onnx --after egraph --stats`.
    Ir {
        /// The .onnx file.
        model: PathBuf,
        /// Bind an input's shape, e.g. `--input-shape x=1,3,224,224` (repeatable); shapes are re-inferred.
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<InputShape>,
        /// Write the IR to this file instead of standard output (written atomically).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print the IR after this pipeline stage: `import` (default), `canonicalize` (constant and
        /// shape folding, dead code removal) or `egraph` (the e-graph optimizer, with the target's cost
        /// model: the graph `carve run` / `carve compile` compile for the same target); or `schedule`:
        /// the target-neutral kernel schedule (kernels, operands with arena offsets, tiles, thread
        /// split) the code emitter consumes. `schedule` needs static input shapes (--input-shape).
        #[arg(long, value_name = "STAGE", default_value = "import", value_parser = parse_ir_stage)]
        after: Stage,
        /// The target whose cost parameters the e-graph uses (a triple, default: this machine), as
        /// `carve compile --target`.
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
        /// ISA features of the target, as `carve compile --cpu` (e.g. `+avx,+fma`, `native`).
        #[arg(long, value_name = "FEATURES", allow_hyphen_values = true)]
        cpu: Option<String>,
        #[command(flatten)]
        stats: StatsArgs,
    },
}

/// `--stats` / `--stats-json`: the pipeline's per-stage report (shared by `ir`, `run` and `compile`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StatsArgs {
    /// Print what each pipeline stage did (nodes and ops before/after, weight bytes, time, what
    /// stopped or skipped it) to standard error.
    #[arg(long)]
    pub stats: bool,
    /// Write the same stage report as JSON to this file (written atomically).
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

impl StatsArgs {
    /// Prints and/or writes `report` as the flags ask.
    pub fn emit(&self, report: &PipelineReport) -> anyhow::Result<()> {
        if self.stats {
            eprint!("{report}");
        }
        if let Some(p) = &self.stats_json {
            write_report_json(p, report)?;
        }
        Ok(())
    }
}

/// The stages `carve ir --after` can print after: the graph up to the e-graph, the kernel schedule
/// after `schedule` (emit produces machine code, not text).
fn parse_ir_stage(s: &str) -> Result<Stage, String> {
    let st: Stage = s.parse()?;
    if st > Stage::Schedule {
        return Err(format!(
            "'{s}' produces machine code, not text: use `carve compile` (and `carve inspect FILE.o`) or \
             `carve inspect --target host` for the compile report"
        ));
    }
    Ok(st)
}

/// Writes to standard output; a closed pipe (`carve ... | head`) ends the program quietly, as Unix tools do.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

fn inspect(model: &Path, shapes: &[InputShape], target: Option<&str>) -> anyhow::Result<()> {
    if model.extension().is_some_and(|e| e == "o" || e == "a") {
        return emit(&aot_cli::inspect_object(model)?);
    }
    let s = carve::inspect::summarize(model, shapes)?;
    emit(&carve::inspect::render(model, &s))?;
    if let Some(t) = target {
        anyhow::ensure!(
            t == "host",
            "--target: only 'host' can be checked here (got '{t}'); use `carve compile` for others"
        );
        let mut m = load(model)?;
        bind_input_shapes(&mut m.graph, shapes)?;
        let c = carve::Compiler::new().threads(1).compile(&m)?;
        let Some(shapes) = static_shapes(c.graph()) else {
            anyhow::bail!("--target needs static input shapes: bind them with --input-shape");
        };
        let inst = c.instance(&shapes)?;
        emit("\nnative code (host):\n")?;
        match &inst.engine {
            carve::compiler::Engine::Native(_) => emit(&indent(&inst.report.to_string()))?,
            carve::compiler::Engine::Segmented(s) => {
                emit(&indent(&s.describe()))?;
                if let Some(r) = s.head_report() {
                    emit("  segment 1 in detail:\n")?;
                    emit(&indent(&indent(&r.to_string())))?;
                }
            }
            carve::compiler::Engine::Interpreter { reason, .. } => emit(&format!(
                "  the whole graph runs in the interpreter: {reason}\n"
            ))?,
        }
        if !inst.by_value.is_empty() {
            let g = c.graph();
            let names: Vec<String> = inst
                .by_value
                .iter()
                .map(|&p| format!("'{}'", g.value(g.inputs[p]).name))
                .collect();
            emit(&format!(
                "  specialized at run time on the values of input(s) {}: a node needs them as compile-time constants (native code is compiled per distinct value, at most {})\n",
                names.join(", "),
                carve::compiler::SHAPE_CACHE
            ))?;
        }
    }
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

fn static_shapes(g: &carve::ir::Graph) -> Option<Vec<Vec<usize>>> {
    g.inputs
        .iter()
        .map(|&v| carve::codegen::prepare::concrete_shape(g, v))
        .collect()
}

struct IrArgs<'a> {
    model: &'a Path,
    shapes: &'a [InputShape],
    output: Option<&'a Path>,
    after: Stage,
    target: Option<&'a str>,
    cpu: Option<&'a str>,
    stats: &'a StatsArgs,
}

fn ir(a: IrArgs) -> anyhow::Result<()> {
    let target = carve::build::resolve_target(a.target, a.cpu)?;
    let pipeline = Pipeline::new(target);
    let mut report = PipelineReport::default();
    let mut m = pipeline.import(a.model, &mut report)?;
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    bind_input_shapes(&mut m.graph, a.shapes)?;
    carve::ir::verify::verify(&m.graph).context("after binding input shapes")?;
    let graph = pipeline.optimize(&m.graph, a.after.min(Stage::Egraph), &mut report)?;
    let text = if a.after == Stage::Schedule {
        pipeline
            .schedule_text(&graph, &mut report)
            .context("building the kernel schedule")?
    } else {
        carve::ir::text::print(&graph)
    };
    a.stats.emit(&report)?;
    match a.output {
        Some(p) => carve::output::write_atomic(p, text.as_bytes())
            .with_context(|| format!("cannot write '{}'", p.display()))?,
        None => emit(&text)?,
    }
    Ok(())
}

/// Writes a pipeline report as JSON, atomically.
fn write_report_json(path: &Path, report: &PipelineReport) -> anyhow::Result<()> {
    let mut json = report.to_json();
    json.push('\n');
    carve::output::write_atomic(path, json.as_bytes())
        .with_context(|| format!("cannot write '{}'", path.display()))
}

fn read_input(g: &carve::ir::Graph, spec: &str) -> anyhow::Result<(String, Value)> {
    let (name, file) = spec
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("bad --input '{spec}': expected NAME=FILE"))?;
    let path = Path::new(file);
    let value = if file.ends_with(".pb") {
        let ty = g
            .inputs
            .iter()
            .find(|&&v| g.value(v).name == name)
            .map(|&v| g.ty(v).clone())
            .ok_or_else(|| {
                let names: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
                anyhow::anyhow!(
                    "the model has no input named '{name}'; its inputs are: {}",
                    names.join(", ")
                )
            })?;
        carve::data::read_pb(path, &ty)?
    } else {
        Value::Tensor(carve::npy::read_npy(path)?)
    };
    Ok((name.to_string(), value))
}

struct RunArgs<'a> {
    model: &'a Path,
    specs: &'a [String],
    npz: Option<&'a Path>,
    output: Option<&'a Path>,
    interp: bool,
    threads: Option<usize>,
    no_egraph: bool,
    stats: &'a StatsArgs,
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    let RunArgs {
        model,
        specs,
        npz,
        output,
        interp,
        threads,
        no_egraph,
        stats,
    } = a;
    let m = load(model)?;
    let g = &m.graph;
    let mut given = Vec::new();
    if let Some(p) = npz {
        for (n, t) in carve::npy::read_npz(p)? {
            given.push((n, Value::Tensor(t)));
        }
    }
    for s in specs {
        given.push(read_input(g, s)?);
    }
    let inputs = carve::inputs::order_and_check(g, given)?;
    let (outputs, elapsed, how) = if interp {
        let start = std::time::Instant::now();
        let o = carve_runtime::interp::run(g, inputs)?;
        (o, start.elapsed(), "reference interpreter".to_string())
    } else {
        let mut c = carve::Compiler::new().egraph(!no_egraph);
        if let Some(t) = threads {
            c = c.threads(t);
        }
        let compiled = c.compile(&m)?;
        let inst = compiled.instance_for(&inputs)?;
        stats.emit(&inst.pipeline)?;
        let start = std::time::Instant::now();
        let o = inst.run(inputs)?;
        let how = match &inst.engine {
            carve::compiler::Engine::Native(_) if inst.report.fallbacks.is_empty() => format!(
                "native, compiled in {:.1} ms",
                inst.compile_time.as_secs_f64() * 1e3
            ),
            carve::compiler::Engine::Native(_) => format!(
                "native, {} nodes through the interpreter fallback (see `carve inspect --target host`), compiled in {:.1} ms",
                inst.report.fallbacks.len(),
                inst.compile_time.as_secs_f64() * 1e3
            ),
            carve::compiler::Engine::Segmented(s) => format!(
                "native segments around node '{}' ({}) run by the interpreter: {}; compiled in {:.1} ms before the run, the rest when its shapes were first seen; `carve inspect --target host` shows the segments",
                s.node,
                s.op,
                s.reason,
                inst.compile_time.as_secs_f64() * 1e3
            ),
            carve::compiler::Engine::Interpreter { reason, .. } => {
                format!("interpreter: cannot compile natively: {reason}")
            }
        };
        (o, start.elapsed(), how)
    };
    for (&v, x) in g.outputs.iter().zip(&outputs) {
        emit(&format!(
            "{}: {}\n",
            g.value(v).name,
            carve::show::summary(x)
        ))?;
    }
    eprintln!("ran in {:.3} ms ({how})", elapsed.as_secs_f64() * 1e3);
    if let Some(p) = output {
        let mut arrays = Vec::new();
        for (&v, x) in g.outputs.iter().zip(outputs) {
            let name = g.value(v).name.clone();
            match x {
                Value::Tensor(t) => arrays.push((name, t)),
                other => anyhow::bail!(
                    "output '{name}' is a {}; only tensors can be written to .npz",
                    other.kind()
                ),
            }
        }
        carve::npy::write_npz(p, &arrays)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

struct BenchArgs<'a> {
    model: &'a Path,
    threads: Option<usize>,
    runs: usize,
    warmup: usize,
    shapes: &'a [InputShape],
    inputs: &'a [String],
    tsv: bool,
    no_egraph: bool,
}

/// Loads a model and prints its import warnings (e.g. a declared type inference overrides) to stderr.
fn load(path: impl AsRef<std::path::Path>) -> anyhow::Result<carve::Model> {
    let m = carve::load(path)?;
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    Ok(m)
}

fn bench(a: BenchArgs) -> anyhow::Result<()> {
    // Load (read, decode, import, verify) is timed apart from compile, which starts from the loaded
    // model; a peer's session creation includes both.
    let t_load = std::time::Instant::now();
    let mut m = load(a.model)?;
    let load_time = t_load.elapsed();
    bind_input_shapes(&mut m.graph, a.shapes)?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let inputs = if !a.inputs.is_empty() {
        let mut given = Vec::new();
        for s in a.inputs {
            given.push(read_input(&m.graph, s)?);
        }
        carve::inputs::order_and_check(&m.graph, given)?
    } else if let Some(x) = carve::bench::reference_inputs(a.model, &m.graph) {
        x
    } else {
        carve::bench::synthetic_inputs(&m.graph).map_err(|e| anyhow::anyhow!(e))?
    };
    let compiled = carve::Compiler::new()
        .threads(threads)
        .egraph(!a.no_egraph)
        .compile(&m)?;
    let inst = compiled.instance_for(&inputs)?;
    let st = carve::bench::measure(&compiled, &inputs, a.warmup, a.runs)?;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    if a.tsv {
        emit(&format!(
            "{}\t{:.3}\t{:.4}\t{:.4}\t{:.4}\t{}\t{}\t{:.3}\n",
            a.model.display(),
            ms(inst.compile_time),
            ms(st.median),
            ms(st.p10),
            ms(st.p90),
            inst.report.arena_bytes,
            inst.fallback_count(),
            ms(load_time)
        ))?;
        return Ok(());
    }
    let engine = match &inst.engine {
        carve::compiler::Engine::Native(_) => format!(
            "native ({} nodes, {} fallback)",
            inst.report.nodes,
            inst.report.fallbacks.len()
        ),
        carve::compiler::Engine::Segmented(s) => format!(
            "segmented at node '{}' ({}), which runs in the interpreter",
            s.node, s.op
        ),
        carve::compiler::Engine::Interpreter { reason, .. } => format!("interpreter ({reason})"),
    };
    // The optimizer's share of the compile (the e-graph phase is budgeted at < 20%).
    let total = ms(inst.compile_time).max(1e-9);
    let stage_ms = |st: Stage| inst.pipeline.stage(st).map_or(0.0, |r| ms(r.time));
    let opt = stage_ms(Stage::Canonicalize) + stage_ms(Stage::Egraph);
    let eg = stage_ms(Stage::Egraph);
    let phases = format!(
        " (optimizer {opt:.1} ms, of which e-graph {eg:.1} ms = {:.0}% of compile)",
        100.0 * eg / total
    );
    emit(&format!(
        "model:    {}\nengine:   {engine}\nthreads:  {threads}\nload:     {:.1} ms (read, import, verify)\ncompile:  {:.1} ms{phases}\nlatency:  median {:.3} ms, p10 {:.3} ms, p90 {:.3} ms ({} runs)\narena:    {} bytes, weights {} bytes\n",
        a.model.display(),
        ms(load_time),
        ms(inst.compile_time),
        ms(st.median),
        ms(st.p10),
        ms(st.p90),
        st.runs,
        inst.report.arena_bytes,
        inst.report.weights_bytes,
    ))?;
    Ok(())
}

struct ConformanceArgs<'a> {
    dir: &'a Path,
    filter: &'a [String],
    report: Option<&'a Path>,
    tol: carve::compare::Tolerance,
    verbose: bool,
    interp: bool,
}

fn conformance(a: ConformanceArgs) -> anyhow::Result<()> {
    use carve::conformance::{Engine, Outcome, counts, markdown, run_case_with};
    let engine = if a.interp {
        Engine::Interpreter
    } else {
        Engine::Jit { threads: 1 }
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(a.dir)
        .with_context(|| format!("cannot list '{}'", a.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            a.filter.is_empty() || a.filter.iter().any(|f| n.contains(f.as_str()))
        })
        .collect();
    dirs.sort();
    anyhow::ensure!(
        !dirs.is_empty(),
        "no case folders (with a model.onnx) in '{}'",
        a.dir.display()
    );
    let bar = indicatif::ProgressBar::new(dirs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut reports = Vec::with_capacity(dirs.len());
    for d in &dirs {
        let r = run_case_with(d, a.tol, engine);
        bar.set_message(r.name.clone());
        match &r.outcome {
            Outcome::Pass { .. } if !a.verbose => {}
            o => {
                let line = format!("{:<14} {}  {}", o.label(), r.name, o.detail());
                // A hidden bar (not a terminal) swallows println: print directly then.
                if bar.is_hidden() {
                    emit(&format!("{line}\n"))?
                } else {
                    bar.println(line)
                }
            }
        }
        bar.inc(1);
        reports.push(r);
    }
    bar.finish_and_clear();
    let c: Vec<String> = counts(&reports)
        .iter()
        .map(|(l, n)| format!("{l}: {n}"))
        .collect();
    emit(&format!("{} cases — {}\n", reports.len(), c.join(", ")))?;
    if !a.interp {
        let native = reports.iter().filter(|r| r.native_pass()).count();
        let passes = reports
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Pass { .. }))
            .count();
        emit(&format!(
            "native code: {native} pass with every node native, {} pass with interpreter fallback for some nodes\n",
            passes - native
        ))?;
    }
    if let Some(p) = a.report {
        let title = format!("carve conformance: {}", a.dir.display());
        carve::output::write_atomic(p, markdown(&title, &reports).as_bytes())
            .with_context(|| format!("cannot write '{}'", p.display()))?;
        emit(&format!("report written to {}\n", p.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "carve: internal error: {info}\nThis is a bug in carve; please report it with the model that triggers it."
        );
    }));
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect {
            model,
            input_shapes,
            target,
        } => inspect(model, input_shapes, target.as_deref()),
        Command::Compile(args) => aot_cli::compile(args),
        Command::Compress(args) => compress_cli::compress(args),
        Command::Ir {
            model,
            input_shapes,
            output,
            after,
            target,
            cpu,
            stats,
        } => ir(IrArgs {
            model,
            shapes: input_shapes,
            output: output.as_deref(),
            after: *after,
            target: target.as_deref(),
            cpu: cpu.as_deref(),
            stats,
        }),
        Command::Run {
            model,
            inputs,
            inputs_npz,
            output,
            interp,
            threads,
            no_egraph,
            stats,
        } => run(RunArgs {
            model,
            specs: inputs,
            npz: inputs_npz.as_deref(),
            output: output.as_deref(),
            interp: *interp,
            threads: *threads,
            no_egraph: *no_egraph,
            stats,
        }),
        Command::Bench {
            model,
            threads,
            runs,
            warmup,
            input_shapes,
            inputs,
            tsv,
            no_egraph,
        } => bench(BenchArgs {
            model,
            threads: *threads,
            runs: *runs,
            warmup: *warmup,
            shapes: input_shapes,
            inputs,
            tsv: *tsv,
            no_egraph: *no_egraph,
        }),
        Command::Conformance {
            dir,
            filter,
            report,
            rtol,
            atol,
            verbose,
            interp,
        } => conformance(ConformanceArgs {
            dir,
            filter,
            report: report.as_deref(),
            tol: carve::compare::Tolerance {
                rtol: *rtol,
                atol: *atol,
            },
            verbose: *verbose,
            interp: *interp,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
