//! The public compile-and-run API: [`Compiler`] turns an imported model into a [`CompiledModel`] whose
//! `run` validates inputs (like `carve run`), compiles native code for the concrete input shapes
//! (cached per shape binding; per value too for the few inputs a node needs as compile-time constants,
//! see [`crate::specialize`]), and executes it.
//!
//! ```no_run
//! let model = carve::load("model.onnx")?;
//! let compiled = carve::Compiler::new().target_host().compile(&model)?;
//! # let x = carve::Tensor::scalar_f32(0.0);
//! let outputs = compiled.run(vec![("x".to_string(), carve::Value::Tensor(x))])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carve_codegen::{CodegenError, Report, Target};
use carve_ir::{Constant, Graph, Shape, Type};
use carve_runtime::Tensor;
use carve_runtime::exec::{ExecError, Executable};
use carve_runtime::interp::{self, RunError, Value};

use crate::Model;
use crate::inputs::{InputError, order_and_check};
use crate::pipeline::{Pipeline, PipelineError, PipelineReport, Stage};
use crate::segments::{self, Part, Segments};
use crate::specialize;

/// How many shape bindings a compiled model keeps native code for.
pub const SHAPE_CACHE: usize = 8;

/// Why compiling or running failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The target or the code generator failed.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    /// The inputs do not fit the model.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Running native code failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Running the interpreter failed.
    #[error(transparent)]
    Interp(#[from] RunError),
    /// Binding the input shapes made the graph inconsistent.
    #[error("binding input shapes: {0}")]
    Bind(String),
    /// A pipeline stage failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Passing values between the segments of a split graph failed.
    #[error("segments: {0}")]
    Segments(String),
}

/// Compiler options (builder style).
#[derive(Debug, Clone)]
pub struct Compiler {
    target: Option<Target>,
    threads: usize,
    egraph: bool,
}

impl Default for Compiler {
    fn default() -> Self {
        Self::new()
    }
}

impl Compiler {
    /// Defaults: host target, one thread per available core.
    pub fn new() -> Compiler {
        Compiler {
            target: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            egraph: true,
        }
    }

    /// Run the e-graph optimizer before code generation (the default); `false` only canonicalizes
    /// (constant folding and dead-code removal), as `--no-egraph`.
    pub fn egraph(mut self, on: bool) -> Compiler {
        self.egraph = on;
        self
    }

    /// Compile for the machine this runs on (the default).
    pub fn target_host(mut self) -> Compiler {
        self.target = None;
        self
    }

    /// Compile for `target` (the JIT can only run host code).
    pub fn target(mut self, target: Target) -> Compiler {
        self.target = Some(target);
        self
    }

    /// Number of threads kernels are split over (≥ 1; results are identical for any count).
    pub fn threads(mut self, n: usize) -> Compiler {
        self.threads = n.max(1);
        self
    }

    /// Prepares `model` for running. If every input shape is static, native code is compiled now;
    /// otherwise on first run for each binding of the symbolic dims.
    pub fn compile(&self, model: &Model) -> Result<CompiledModel, CompileError> {
        let target = match &self.target {
            Some(t) => t.clone(),
            None => Target::host()?,
        };
        let cm = CompiledModel {
            graph: model.graph.clone(),
            target,
            threads: self.threads,
            egraph: self.egraph,
            cache: Mutex::new(Vec::new()),
        };
        if let Some(shapes) = static_input_shapes(&cm.graph) {
            cm.instance(&shapes)?;
        }
        Ok(cm)
    }
}

fn static_input_shapes(g: &Graph) -> Option<Vec<Vec<usize>>> {
    g.inputs
        .iter()
        .map(|&v| carve_codegen::prepare::concrete_shape(g, v))
        .collect()
}

/// How one shape binding runs.
pub enum Engine {
    /// Native code (possibly with fallback nodes, listed in the report).
    Native(Executable),
    /// Split at data-dependent shapes: native segments around nodes the interpreter runs (see
    /// [`crate::segments`]).
    Segmented(Box<Segments>),
    /// The whole graph runs in the interpreter, for the reason given (when it cannot be split).
    Interpreter {
        /// The specialized graph.
        graph: Arc<Graph>,
        /// Why native compilation was not possible.
        reason: String,
    },
}

/// Native code for one binding of the input shapes.
pub struct Instance {
    /// The input shapes it was compiled for.
    pub shapes: Vec<Vec<usize>>,
    /// How it runs.
    pub engine: Engine,
    /// What compilation did (empty for interpreter instances).
    pub report: Report,
    /// What each pipeline stage did (canonicalize, e-graph, schedule, emit).
    pub pipeline: PipelineReport,
    /// Wall time of shape binding + optimization + preparation + code generation.
    pub compile_time: Duration,
    /// Graph inputs (by position) that nodes of this instance need as compile-time constants: the
    /// model specializes on their values ([`CompiledModel::instance_for`]).
    pub by_value: Vec<usize>,
    /// Instances specialized on values of the `by_value` inputs.
    specialized: Mutex<Specialized>,
}

/// The value-specialized instances of one shape binding.
#[derive(Default)]
struct Specialized {
    /// One per distinct value of the `by_value` inputs (at most [`SHAPE_CACHE`]).
    entries: Vec<(Vec<Constant>, Arc<Instance>)>,
    /// Set when specializing did not reduce the fallbacks or the cache is full: the generic instance
    /// runs from then on.
    closed: bool,
}

impl Instance {
    /// Number of nodes that do not run natively (all of them for an interpreter instance).
    pub fn fallback_count(&self) -> usize {
        match &self.engine {
            Engine::Native(_) => self.report.fallbacks.len(),
            // The boundary node, and the head's fallbacks (the tail's are known per binding).
            Engine::Segmented(s) => 1 + s.head_report().map_or(0, |r| r.fallbacks.len()),
            Engine::Interpreter { graph, .. } => graph.nodes.len(),
        }
    }

    /// Runs on inputs in graph order (already validated).
    pub fn run(&self, inputs: Vec<Value>) -> Result<Vec<Value>, CompileError> {
        match &self.engine {
            Engine::Native(exe) => {
                let mut ts: Vec<Tensor> = Vec::with_capacity(inputs.len());
                for v in inputs {
                    match v {
                        Value::Tensor(t) => ts.push(t),
                        other => {
                            return Err(CompileError::Bind(format!(
                                "native code takes tensors, got a {}",
                                other.kind()
                            )));
                        }
                    }
                }
                Ok(exe.run(&ts)?.into_iter().map(Value::Tensor).collect())
            }
            Engine::Segmented(s) => s.run(inputs),
            Engine::Interpreter { graph, .. } => Ok(interp::run(graph, inputs)?),
        }
    }
}

/// A model ready to run: native code per input-shape binding, compiled on demand and cached.
pub struct CompiledModel {
    graph: Graph,
    target: Target,
    threads: usize,
    egraph: bool,
    cache: Mutex<Vec<Arc<Instance>>>,
}

fn shape_of(v: &Value) -> Vec<usize> {
    match v {
        Value::Tensor(t) => t.shape.clone(),
        _ => Vec::new(),
    }
}

impl CompiledModel {
    /// The model's graph (as imported).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Native code for these concrete input shapes (one per graph input, in order), compiled now if
    /// not cached.
    pub fn instance(&self, shapes: &[Vec<usize>]) -> Result<Arc<Instance>, CompileError> {
        if let Ok(c) = self.cache.lock()
            && let Some(i) = c.iter().find(|i| i.shapes == shapes)
        {
            return Ok(i.clone());
        }
        let inst = Arc::new(self.build(shapes)?);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= SHAPE_CACHE {
                c.remove(0);
            }
            c.push(inst.clone());
        }
        Ok(inst)
    }

    /// The instance to run `inputs` (in graph order) on: the one for their shapes, or — when its nodes
    /// need some inputs' values at compile time — the one specialized on those values (built now if
    /// new; see [`crate::specialize`]).
    pub fn instance_for(&self, inputs: &[Value]) -> Result<Arc<Instance>, CompileError> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(shape_of).collect();
        let inst = self.instance(&shapes)?;
        if inst.by_value.is_empty() {
            return Ok(inst);
        }
        let mut key = Vec::with_capacity(inst.by_value.len());
        for &p in &inst.by_value {
            match inputs.get(p) {
                Some(Value::Tensor(t)) => key.push(t.to_constant()),
                _ => return Ok(inst),
            }
        }
        let (hit, closed) = match inst.specialized.lock() {
            Ok(s) => (
                s.entries
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, i)| i.clone()),
                s.closed,
            ),
            Err(_) => (None, true),
        };
        if let Some(hit) = hit {
            return Ok(hit);
        }
        if closed {
            return Ok(inst);
        }
        let values: Vec<(usize, Constant)> =
            inst.by_value.iter().copied().zip(key.clone()).collect();
        let special = Arc::new(self.build_with(&shapes, &values)?);
        let better = special.fallback_count() < inst.fallback_count();
        if let Ok(mut s) = inst.specialized.lock() {
            if better {
                s.entries.push((key, special.clone()));
            }
            s.closed = !better || s.entries.len() >= SHAPE_CACHE;
        }
        Ok(if better { special } else { inst })
    }

    fn build(&self, shapes: &[Vec<usize>]) -> Result<Instance, CompileError> {
        self.build_with(shapes, &[])
    }

    /// Builds the instance for `shapes`, with the inputs at the positions in `values` replaced by
    /// those constants (a value-specialized instance) when `values` is not empty.
    fn build_with(
        &self,
        shapes: &[Vec<usize>],
        values: &[(usize, Constant)],
    ) -> Result<Instance, CompileError> {
        let t0 = Instant::now();
        let mut g = self.graph.clone();
        for (&v, dims) in g.inputs.clone().iter().zip(shapes) {
            if let Type::Tensor(t) = &mut g.values[v.index()].ty {
                t.shape = Some(Shape::known(
                    &dims.iter().map(|&d| d as u64).collect::<Vec<_>>(),
                ));
            }
        }
        if !values.is_empty() {
            g = specialize::bind_values(&g, values);
        }
        g.reinfer().map_err(|e| CompileError::Bind(e.to_string()))?;
        let pipeline = Pipeline::new(self.target.clone()).egraph(self.egraph);
        let mut preport = PipelineReport::default();
        let og = pipeline.optimize(&g, Stage::Egraph, &mut preport)?;
        let engine_report = match pipeline.prepare(&og, &mut preport) {
            Ok((pg, folded)) => {
                let t = Instant::now();
                carve_codegen::jit::compile_jit(pg.clone(), &self.target, self.threads, folded).map(
                    |(exe, rep)| {
                        pipeline.record_emit(&pg, &rep, t.elapsed(), &mut preport);
                        (Engine::Native(exe), rep)
                    },
                )
            }
            Err(e) => Err(e),
        };
        let (engine, report) = match engine_report {
            Ok(x) => x,
            Err(CodegenError::Unsupported { msg }) => {
                // Split at the data-dependent shape; if that is impossible (or fails), the whole
                // graph runs in the interpreter.
                let t = Instant::now();
                match segments::compile(&og, &self.target, self.threads) {
                    Ok(Some(Part::Segmented(s))) => {
                        pipeline.record_skip(
                            Stage::Schedule,
                            &og,
                            format!(
                                "split into segments at node '{}' ({}), which runs in the interpreter: {} ({:.1} ms)",
                                s.node,
                                s.op,
                                s.reason,
                                t.elapsed().as_secs_f64() * 1e3
                            ),
                            &mut preport,
                        );
                        let report = s.head_report().cloned().unwrap_or_default();
                        (Engine::Segmented(s), report)
                    }
                    Ok(Some(Part::Native(p))) => {
                        let p = *p;
                        (Engine::Native(p.exe), p.report)
                    }
                    other => {
                        let why = match other {
                            Err(e) => format!("{msg} (splitting into segments failed: {e})"),
                            _ => msg,
                        };
                        pipeline.record_skip(
                            Stage::Schedule,
                            &og,
                            format!("the whole graph runs in the interpreter: {why}"),
                            &mut preport,
                        );
                        (
                            Engine::Interpreter {
                                graph: Arc::new(g),
                                reason: why,
                            },
                            Report::default(),
                        )
                    }
                }
            }
            Err(e) => return Err(e.into()),
        };
        // Inputs whose values would let a fallback node (or the segment boundary) run natively.
        let by_value = if values.is_empty() {
            let mut wants: Vec<(String, Vec<usize>)> = report
                .fallbacks
                .iter()
                .filter(|f| !f.needs_constant.is_empty())
                .map(|f| (f.node.clone(), f.needs_constant.clone()))
                .collect();
            if let Engine::Segmented(s) = &engine {
                wants.push((s.node.clone(), specialize::integer_operands(&og, &s.node)));
            }
            specialize::candidates(&og, &wants)
        } else {
            Vec::new()
        };
        Ok(Instance {
            shapes: shapes.to_vec(),
            engine,
            report,
            pipeline: preport,
            compile_time: t0.elapsed(),
            by_value,
            specialized: Mutex::new(Specialized::default()),
        })
    }

    /// Runs the model on named inputs; validates them (names, kinds, dtypes, ranks, dims, symbols bound
    /// consistently) and returns the outputs with their names, in graph order.
    pub fn run(&self, inputs: Vec<(String, Value)>) -> Result<Vec<(String, Value)>, CompileError> {
        let ordered = order_and_check(&self.graph, inputs)?;
        let outs = self.run_ordered(ordered)?;
        Ok(self
            .graph
            .outputs
            .iter()
            .map(|&o| self.graph.value(o).name.clone())
            .zip(outs)
            .collect())
    }

    /// Runs on inputs already validated and in graph order.
    pub fn run_ordered(&self, inputs: Vec<Value>) -> Result<Vec<Value>, CompileError> {
        let inst = self.instance_for(&inputs)?;
        inst.run(inputs)
    }
}
