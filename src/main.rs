//! The `carve` command-line driver: argument parsing and error reporting around the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use carve::shapes::{InputShape, bind_input_shapes};
use carve_runtime::interp::Value;

mod aot_cli;

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
    },
    /// Run a model on inputs from .npy / .pb files and print (or save) its outputs. Runs the reference
    /// interpreter (the native JIT comes with a later milestone).
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
    },
    /// Run every case of an ONNX-test-layout folder (model.onnx + test_data_set_*/input_N.pb, output_N.pb)
    /// through the interpreter, compare with the references and report pass rates per op.
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
    },
    /// Compile a model ahead of time into a relocatable object file and a C header (see README,
    /// "Ahead-of-time compilation").
    Compile(aot_cli::CompileArgs),
    /// Print the model's IR in carve's text format (after import and verification).
    Ir {
        /// The .onnx file.
        model: PathBuf,
        /// Bind an input's shape, e.g. `--input-shape x=1,3,224,224` (repeatable); shapes are re-inferred.
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<InputShape>,
        /// Write the IR to this file instead of standard output (written atomically).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
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

fn inspect(model: &Path, shapes: &[InputShape]) -> anyhow::Result<()> {
    if model.extension().is_some_and(|e| e == "o" || e == "a") {
        return emit(&aot_cli::inspect_object(model)?);
    }
    let s = carve::inspect::summarize(model, shapes)?;
    emit(&carve::inspect::render(model, &s))?;
    Ok(())
}

fn ir(model: &Path, shapes: &[InputShape], output: Option<&Path>) -> anyhow::Result<()> {
    let mut m = carve::load(model)?;
    bind_input_shapes(&mut m.graph, shapes)?;
    carve::ir::verify::verify(&m.graph).context("after binding input shapes")?;
    let text = carve::ir::text::print(&m.graph);
    match output {
        Some(p) => carve::output::write_atomic(p, text.as_bytes())
            .with_context(|| format!("cannot write '{}'", p.display()))?,
        None => emit(&text)?,
    }
    Ok(())
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

fn run(
    model: &Path,
    specs: &[String],
    npz: Option<&Path>,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let m = carve::load(model)?;
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
    let start = std::time::Instant::now();
    let outputs = carve_runtime::interp::run(g, inputs)?;
    let elapsed = start.elapsed();
    for (&v, x) in g.outputs.iter().zip(&outputs) {
        emit(&format!(
            "{}: {}\n",
            g.value(v).name,
            carve::show::summary(x)
        ))?;
    }
    eprintln!(
        "ran in {:.1} ms (reference interpreter)",
        elapsed.as_secs_f64() * 1e3
    );
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

struct ConformanceArgs<'a> {
    dir: &'a Path,
    filter: &'a [String],
    report: Option<&'a Path>,
    tol: carve::compare::Tolerance,
    verbose: bool,
}

fn conformance(a: ConformanceArgs) -> anyhow::Result<()> {
    use carve::conformance::{Outcome, counts, markdown, run_case};
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
        let r = run_case(d, a.tol);
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
        } => inspect(model, input_shapes),
        Command::Compile(args) => aot_cli::compile(args),
        Command::Ir {
            model,
            input_shapes,
            output,
        } => ir(model, input_shapes, output.as_deref()),
        Command::Run {
            model,
            inputs,
            inputs_npz,
            output,
        } => run(model, inputs, inputs_npz.as_deref(), output.as_deref()),
        Command::Conformance {
            dir,
            filter,
            report,
            rtol,
            atol,
            verbose,
        } => conformance(ConformanceArgs {
            dir,
            filter,
            report: report.as_deref(),
            tol: carve::compare::Tolerance {
                rtol: *rtol,
                atol: *atol,
            },
            verbose: *verbose,
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
