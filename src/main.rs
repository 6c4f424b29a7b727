//! The `carve` command-line driver: argument parsing and error reporting around the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use carve::shapes::{InputShape, bind_input_shapes};

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

fn inspect(model: &Path, shapes: &[InputShape]) -> anyhow::Result<()> {
    let s = carve::inspect::summarize(model, shapes)?;
    print!("{}", carve::inspect::render(model, &s));
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
        None => print!("{text}"),
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
        Command::Ir {
            model,
            input_shapes,
            output,
        } => ir(model, input_shapes, output.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
