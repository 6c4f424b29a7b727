//! Ahead-of-time compilation of a model file into an object, a C header and (for Rust users) a static
//! library with a safe wrapper: the library side of `carve compile` and the API for build scripts.
//!
//! In a `build.rs` (with `carve` as a build-dependency):
//!
//! ```no_run
//! // in build.rs's main:
//! carve::build::compile_model("models/digits.onnx")
//!     .name("digits")
//!     .input_shape("x=1,64")
//!     .build()
//!     .expect("compiling the model");
//! ```
//!
//! and in the crate: `mod digits { include!(concat!(env!("OUT_DIR"), "/digits.rs")); }`, then
//! `let mut m = digits::Model::new(); m.input_x().copy_from_slice(&x); m.run()?; m.output_y()`.
//! The object is compiled for cargo's `TARGET` with the ISA features of the crate's target features
//! (`CARGO_CFG_TARGET_FEATURE`) unless [`ModelBuild::cpu`] says otherwise, packed into
//! `lib<name>_carve.a` in `OUT_DIR` and linked with `cargo:rustc-link-lib=static=<name>_carve`.

use std::path::{Path, PathBuf};

use carve_codegen::aot::{self, AotOptions, AotOutput};
use carve_codegen::{CodegenError, Target};
use carve_ir::Graph;

use crate::pipeline::{Pipeline, PipelineError, PipelineReport, Stage};
use crate::shapes::{BindError, InputShape, bind_input_shapes};

/// Why an AOT compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading or importing the model failed, or a pipeline stage failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Binding input shapes failed.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The code generator failed.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    /// An input shape is still unknown.
    #[error(
        "input '{name}' has no static shape ({ty}): give it with --input-shape {name}=D1,D2,... (or .input_shape(..))"
    )]
    Unbound {
        /// The input.
        name: String,
        /// Its type.
        ty: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Options of [`compile_file`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Target triple (default: the host's).
    pub target: Option<String>,
    /// ISA features, e.g. `+avx,+fma` or `+v`; `native` = every feature of this machine (host
    /// triple only), optionally followed by changes (`native,-avx512f`). Default: the architecture's
    /// baseline.
    pub cpu: Option<String>,
    /// Input shapes to bind.
    pub input_shapes: Vec<InputShape>,
    /// Symbol prefix (default: from the model file's name).
    pub name: Option<String>,
    /// Keep the weights out of the object (the caller loads [`AotOutput::weights`] from a file).
    pub weights_file: bool,
    /// Skip the e-graph optimizer (canonicalize only), as `--no-egraph`.
    pub no_egraph: bool,
}

/// The target for a triple and feature list (`cpu == "native"`: the host with all its features).
pub fn resolve_target(triple: Option<&str>, cpu: Option<&str>) -> Result<Target, BuildError> {
    let host_target = Target::host()?;
    let host = host_target.triple.to_string();
    let triple = triple.unwrap_or(&host);
    // `native`, optionally followed by changes: `native,-avx512f,...`.
    let native = cpu.map(str::trim).and_then(|c| {
        let rest = c.strip_prefix("native")?;
        if rest.is_empty() {
            Some("")
        } else {
            rest.strip_prefix(',')
        }
    });
    if let Some(changes) = native {
        let t = host_target.with_changes(changes)?;
        if t.triple.to_string() != triple {
            return Err(BuildError::Invalid(format!(
                "--cpu native describes this machine ({host}), not {triple}"
            )));
        }
        return Ok(t);
    }
    Ok(Target::parse(triple, cpu)?)
}

/// The default symbol prefix for a model file: its stem as a C identifier.
pub fn default_name(model: &Path) -> String {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    aot::sanitize_identifier(&stem)
}

/// Binds shapes, then runs the pipeline's canonicalize, e-graph and schedule-preparation stages on
/// `graph` for `target` (the same steps as the JIT path); returns the prepared graph and the number of
/// folded nodes. Each stage appends to `report`.
pub fn prepare_graph(
    graph: &Graph,
    shapes: &[InputShape],
    pipeline: &Pipeline,
    report: &mut PipelineReport,
) -> Result<(std::sync::Arc<Graph>, usize), BuildError> {
    let mut g = graph.clone();
    bind_input_shapes(&mut g, shapes)?;
    for &v in &g.inputs {
        if carve_codegen::prepare::concrete_shape(&g, v).is_none() {
            return Err(BuildError::Unbound {
                name: g.value(v).name.clone(),
                ty: g.ty(v).to_string(),
            });
        }
    }
    let og = pipeline.optimize(&g, Stage::Egraph, report)?;
    Ok(pipeline.prepare(&og, report)?)
}

/// Compiles the model file at `model` ahead of time.
pub fn compile_file(model: &Path, opts: &Options) -> Result<(AotOutput, Target), BuildError> {
    compile_file_reported(model, opts).map(|(out, target, _)| (out, target))
}

/// Compiles the model file at `model` ahead of time, with the pipeline's report of every stage.
pub fn compile_file_reported(
    model: &Path,
    opts: &Options,
) -> Result<(AotOutput, Target, PipelineReport), BuildError> {
    let bytes = std::fs::read(model).map_err(io_err(model))?;
    let target = resolve_target(opts.target.as_deref(), opts.cpu.as_deref())?;
    let pipeline = Pipeline::new(target.clone()).egraph(!opts.no_egraph);
    let mut report = PipelineReport::default();
    let m = pipeline.import(model, &mut report)?;
    let (g, folded) = prepare_graph(&m.graph, &opts.input_shapes, &pipeline, &mut report)?;
    let prefix = opts.name.clone().unwrap_or_else(|| default_name(model));
    let shapes: Vec<String> = opts
        .input_shapes
        .iter()
        .map(|s| {
            let d: Vec<String> = s.dims.iter().map(|d| d.to_string()).collect();
            format!("{}={}", s.name, d.join(","))
        })
        .collect();
    let aopts = AotOptions {
        prefix,
        embed_weights: !opts.weights_file,
        model_hash: aot::content_hash(&bytes),
        extra: vec![("input_shapes".into(), shapes.join(" "))],
    };
    let t0 = std::time::Instant::now();
    let out = aot::compile_object(&g, &target, folded, &aopts)?;
    pipeline.record_emit(&g, &out.report, t0.elapsed(), &mut report);
    Ok((out, target, report))
}

/// The manifests in an object, archive or executable file.
pub fn read_manifests(path: &Path) -> Result<Vec<aot::Manifest>, BuildError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    Ok(aot::find_manifests(&bytes))
}

/// Starts a build-script compilation of `model` (see the module docs).
pub fn compile_model(model: impl AsRef<Path>) -> ModelBuild {
    ModelBuild {
        model: model.as_ref().to_path_buf(),
        opts: Options::default(),
        out_dir: None,
    }
}

/// A model compiled from a build script: builder for [`compile_model`].
#[derive(Debug, Clone)]
pub struct ModelBuild {
    model: PathBuf,
    opts: Options,
    out_dir: Option<PathBuf>,
}

/// What [`ModelBuild::build`] wrote.
#[derive(Debug, Clone)]
pub struct Built {
    /// Symbol prefix (and module file stem).
    pub name: String,
    /// The target compiled for.
    pub target: Target,
    /// The Rust wrapper to `include!`.
    pub rust: PathBuf,
    /// The C header.
    pub header: PathBuf,
    /// The object file.
    pub object: PathBuf,
    /// The static library holding it.
    pub library: PathBuf,
    /// The weights file (only with [`ModelBuild::weights_file`]).
    pub weights: Option<PathBuf>,
    /// The symbols the object imports.
    pub imports: Vec<String>,
}

/// Maps rustc target-feature names to carve's (Cranelift's) feature names; others are ignored.
fn cranelift_feature(rustc: &str) -> Option<&'static str> {
    Some(match rustc {
        "sse3" => "sse3",
        "ssse3" => "ssse3",
        "sse4.1" => "sse41",
        "sse4.2" => "sse42",
        "popcnt" => "popcnt",
        "avx" => "avx",
        "avx2" => "avx2",
        "fma" => "fma",
        "bmi1" => "bmi1",
        "bmi2" => "bmi2",
        "lzcnt" => "lzcnt",
        "avx512f" => "avx512f",
        "avx512vl" => "avx512vl",
        "avx512dq" => "avx512dq",
        "avx512vnni" => "avx512vnni",
        "dotprod" => "dotprod",
        "i8mm" => "i8mm",
        "v" => "v",
        _ => return None,
    })
}

impl ModelBuild {
    /// Symbol prefix and name of the generated files (default: the model file's stem).
    pub fn name(mut self, name: &str) -> Self {
        self.opts.name = Some(name.to_string());
        self
    }

    /// Binds an input shape, `NAME=D1,D2,...` (panics on a malformed literal: build scripts only).
    pub fn input_shape(mut self, spec: &str) -> Self {
        match spec.parse::<InputShape>() {
            Ok(s) => self.opts.input_shapes.push(s),
            Err(e) => panic!("{e}"),
        }
        self
    }

    /// ISA features (`+avx,+fma`, `+v`, `native`), instead of those of the crate's target features.
    pub fn cpu(mut self, features: &str) -> Self {
        self.opts.cpu = Some(features.to_string());
        self
    }

    /// Target triple, instead of cargo's `TARGET`.
    pub fn target(mut self, triple: &str) -> Self {
        self.opts.target = Some(triple.to_string());
        self
    }

    /// Write the weights to `<name>.bin` instead of embedding them.
    pub fn weights_file(mut self, yes: bool) -> Self {
        self.opts.weights_file = yes;
        self
    }

    /// Output directory, instead of cargo's `OUT_DIR` (for use outside build scripts).
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Compiles, writes `<name>.o`, `lib<name>_carve.a`, `<name>.h`, `<name>.rs` (and `<name>.bin`)
    /// to the output directory and prints the cargo directives that link the library.
    pub fn build(self) -> Result<Built, BuildError> {
        let in_cargo = std::env::var_os("OUT_DIR").is_some();
        let out_dir = match self
            .out_dir
            .clone()
            .or_else(|| std::env::var_os("OUT_DIR").map(PathBuf::from))
        {
            Some(d) => d,
            None => {
                return Err(BuildError::Invalid(
                    "no output directory: set one with .out_dir(..) or run from a build script (OUT_DIR)"
                        .into(),
                ));
            }
        };
        let mut opts = self.opts.clone();
        if opts.target.is_none() {
            opts.target = std::env::var("TARGET").ok();
        }
        if opts.cpu.is_none()
            && let Ok(fs) = std::env::var("CARGO_CFG_TARGET_FEATURE")
        {
            let mut list: Vec<String> = fs
                .split(',')
                .filter_map(cranelift_feature)
                .map(|f| format!("+{f}"))
                .collect();
            list.sort();
            list.dedup();
            opts.cpu = Some(list.join(","));
        }
        let (out, target) = compile_file(&self.model, &opts)?;
        let name = out.interface.prefix.clone();
        std::fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
        let write = |file: &str, bytes: &[u8]| -> Result<PathBuf, BuildError> {
            let p = out_dir.join(file);
            crate::output::write_atomic(&p, bytes).map_err(io_err(&p))?;
            Ok(p)
        };
        let object = write(&format!("{name}.o"), &out.object)?;
        let mut symbols = vec![
            format!("{name}_entry"),
            format!("{name}_manifest"),
            format!("{name}_run"),
        ];
        if out.interface.weights_embedded && out.interface.weights_bytes > 0 {
            symbols.push(format!("{name}_weights"));
        }
        let lib = aot::static_archive(&format!("{name}.o"), &out.object, &symbols);
        let library = write(&format!("lib{name}_carve.a"), &lib)?;
        let header = write(&format!("{name}.h"), out.header.as_bytes())?;
        let rust = write(
            &format!("{name}.rs"),
            aot::rust_wrapper(&out.interface).as_bytes(),
        )?;
        let weights = if opts.weights_file {
            Some(write(&format!("{name}.bin"), &out.weights)?)
        } else {
            None
        };
        if in_cargo {
            println!("cargo:rerun-if-changed={}", self.model.display());
            println!("cargo:rustc-link-search=native={}", out_dir.display());
            println!("cargo:rustc-link-lib=static={name}_carve");
        }
        Ok(Built {
            name,
            target,
            rust,
            header,
            object,
            library,
            weights,
            imports: out.interface.imports.clone(),
        })
    }
}
