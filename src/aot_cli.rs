//! The `carve compile` subcommand (ahead-of-time compilation to an object file and C header) and
//! `carve inspect` of an object file (its manifest).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use carve::build::{Options, compile_file_reported, read_manifests};
use carve::shapes::InputShape;

/// Arguments of `carve compile`.
#[derive(clap::Args)]
pub struct CompileArgs {
    /// The .onnx file.
    pub model: PathBuf,
    /// Target triple, e.g. x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu,
    /// riscv64gc-unknown-linux-gnu (default: this machine's triple).
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// ISA features beyond the architecture's baseline, e.g. `+avx,+fma`, `+dotprod`, `+v` (RISC-V
    /// vectors), `-sse42`; or `native` for every feature of this machine, optionally followed by
    /// changes (`native,-avx512f` uses the AVX2 tiles instead of the AVX-512 ones).
    #[arg(long, value_name = "FEATURES", allow_hyphen_values = true)]
    pub cpu: Option<String>,
    /// Bind an input's shape, e.g. `--input-shape x=1,3,224,224` (repeatable); every input shape must be
    /// static after binding.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<InputShape>,
    /// The object file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The C header to write (default: the object's path with extension .h).
    #[arg(long, value_name = "FILE")]
    pub header: Option<PathBuf>,
    /// Prefix of the exported symbols and header names (default: the model file's stem).
    #[arg(long, value_name = "PREFIX")]
    pub name: Option<String>,
    /// Write the weights to this file instead of embedding them in the object.
    #[arg(long, value_name = "FILE")]
    pub weights_file: Option<PathBuf>,
    /// Also write a safe Rust wrapper (for `include!`) to this file.
    #[arg(long, value_name = "FILE")]
    pub rust: Option<PathBuf>,
    /// Skip the e-graph optimizer (only constant folding and dead-code removal), to compare.
    #[arg(long)]
    pub no_egraph: bool,
    #[command(flatten)]
    pub stats: crate::StatsArgs,
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    carve::output::write_atomic(path, bytes)
        .with_context(|| format!("cannot write '{}'", path.display()))
}

/// Runs `carve compile`.
pub fn compile(a: &CompileArgs) -> anyhow::Result<()> {
    let opts = Options {
        target: a.target.clone(),
        cpu: a.cpu.clone(),
        input_shapes: a.input_shapes.clone(),
        name: a.name.clone(),
        weights_file: a.weights_file.is_some(),
        no_egraph: a.no_egraph,
    };
    let (out, target, report) = compile_file_reported(&a.model, &opts)
        .with_context(|| format!("compiling '{}'", a.model.display()))?;
    a.stats.emit(&report)?;
    for d in report.stages.iter().flat_map(|s| &s.details) {
        if d.starts_with("warning: ") {
            eprintln!("{d}");
        }
    }
    let itf = &out.interface;
    eprintln!("target: {}", target.triple);
    eprintln!(
        "features: {}",
        if target.features.is_empty() {
            "(the architecture's base ISA only)".to_string()
        } else {
            target
                .features
                .iter()
                .map(|f| format!("+{f}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    );
    eprintln!(
        "isa flags: {}",
        if itf.isa_flags.is_empty() {
            "(none beyond the base ISA)".to_string()
        } else {
            itf.isa_flags.join(" ")
        }
    );
    eprintln!(
        "vectors: {}",
        if target.f32_lanes() > 1 {
            format!("f32x{}", target.f32_lanes())
        } else {
            "none (scalar code only)".to_string()
        }
    );
    let r = &out.report;
    eprintln!(
        "nodes: {} ({} native, {} views), {} folded at compile time, {} kernels ({} distinct functions)",
        r.nodes, r.native, r.aliases, r.folded, r.kernels, r.functions
    );
    eprintln!(
        "weights: {} bytes ({}), scratch: {} bytes",
        itf.weights_bytes,
        if itf.weights_embedded {
            "embedded"
        } else {
            "separate file"
        },
        itf.scratch_bytes
    );
    eprintln!(
        "imports: {}",
        if itf.imports.is_empty() {
            "none".to_string()
        } else {
            itf.imports.join(", ")
        }
    );
    write(&a.output, &out.object)?;
    eprintln!("wrote {}", a.output.display());
    let header = a
        .header
        .clone()
        .unwrap_or_else(|| a.output.with_extension("h"));
    write(&header, out.header.as_bytes())?;
    eprintln!("wrote {}", header.display());
    if let Some(p) = &a.weights_file {
        write(p, &out.weights)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &a.rust {
        write(p, carve::codegen::aot::rust_wrapper(itf).as_bytes())?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// `carve inspect` of an object file, archive or executable: prints the manifests it contains.
pub fn inspect_object(path: &Path) -> anyhow::Result<String> {
    let ms = read_manifests(path)?;
    anyhow::ensure!(
        !ms.is_empty(),
        "'{}' contains no carve manifest (not an object written by `carve compile`?)",
        path.display()
    );
    let mut s = String::new();
    for m in &ms {
        s.push_str(&format!(
            "{}: carve AOT object `{}`\n",
            path.display(),
            m.get("name").unwrap_or("?")
        ));
        s.push_str(&m.to_string());
    }
    Ok(s)
}
