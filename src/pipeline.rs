//! The driver's pipeline: the named stages every entry point runs a model through — import,
//! canonicalize, e-graph, schedule, emit — with one set of target parameters, and the report each stage
//! appends to.
//!
//! The JIT [`crate::Compiler`], `carve compile` and [`crate::build`] (AOT), and `carve ir --after STAGE`
//! all go through [`Pipeline`], so what `carve ir --after egraph` prints is the graph that gets compiled
//! (same e-graph cost parameters, taken from the [`Target`]). Every stage appends a [`StageReport`]:
//! nodes and ops before and after, constant (weight) bytes, wall time, and how it ended — it ran, or it
//! was skipped for a stated reason (never silently). A stage that fails is an error naming the stage.
//!
//! ```no_run
//! use carve::pipeline::{Pipeline, PipelineReport, Stage};
//! let target = carve::codegen::Target::host()?;
//! let pipeline = Pipeline::new(target);
//! let mut report = PipelineReport::default();
//! let model = pipeline.import("model.onnx", &mut report)?;
//! let optimized = pipeline.optimize(&model.graph, Stage::Egraph, &mut report)?;
//! print!("{report}"); // one line per stage
//! println!("{}", report.to_json());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Compression stages (calibrate, policies) will slot in between canonicalize and the e-graph.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use carve_codegen::Target;
use carve_ir::{ConstData, Graph, Op};
use carve_passes::PassError;
use carve_passes::cost::TargetParams;
use carve_passes::decompose::{decompose_attention, decompose_einsum, decompose_losses};
use carve_passes::fold::{canonicalize, canonicalize_before_egraph};

use crate::optimize::InterpEval;

/// A named pipeline stage, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Decode the ONNX file, import it into the IR, verify.
    Import,
    /// Decompose two-operand `einsum` into transposes and a `matmul`, fold constants and shape
    /// computations, remove dead code.
    Canonicalize,
    /// Equality saturation with the target's cost model, DAG-aware extraction, canonicalize again.
    Egraph,
    /// Codegen's preparation for the concrete shapes and the target-neutral kernel schedule: kernel
    /// selection, fusion groups, memory plan.
    Schedule,
    /// The emitter (Cranelift) turns the schedule into machine code (JIT memory or an object file).
    Emit,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 5] = [
        Stage::Import,
        Stage::Canonicalize,
        Stage::Egraph,
        Stage::Schedule,
        Stage::Emit,
    ];

    /// The stage's name (as `carve ir --after` takes it).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Import => "import",
            Stage::Canonicalize => "canonicalize",
            Stage::Egraph => "egraph",
            Stage::Schedule => "schedule",
            Stage::Emit => "emit",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Stage, String> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
                format!("unknown stage '{s}' (stages: {})", names.join(", "))
            })
    }
}

/// How a stage ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The stage ran.
    Ran,
    /// The stage did not change the graph, for this reason (e.g. the e-graph cannot represent it, or
    /// the user turned it off).
    Skipped(String),
}

/// What one stage did.
#[derive(Debug, Clone, PartialEq)]
pub struct StageReport {
    /// Which stage.
    pub stage: Stage,
    /// Nodes (constants excluded) before the stage.
    pub nodes_before: usize,
    /// Nodes (constants excluded) after it.
    pub nodes_after: usize,
    /// Op histogram before (op name → count, constants excluded).
    pub ops_before: BTreeMap<String, usize>,
    /// Op histogram after.
    pub ops_after: BTreeMap<String, usize>,
    /// Bytes of constant data (weights) before.
    pub weight_bytes_before: usize,
    /// Bytes of constant data after (for emit: the packed weights blob).
    pub weight_bytes_after: usize,
    /// Wall time.
    pub time: Duration,
    /// Ran or skipped (with the reason).
    pub outcome: Outcome,
    /// Stage-specific facts, one per line (e-graph stop reason and iterations, kernels, arena...).
    pub details: Vec<String>,
}

impl StageReport {
    fn new(stage: Stage, before: &Graph, after: &Graph, time: Duration, outcome: Outcome) -> Self {
        let (nb, ob, wb) = census(before);
        let (na, oa, wa) = census(after);
        StageReport {
            stage,
            nodes_before: nb,
            nodes_after: na,
            ops_before: ob,
            ops_after: oa,
            weight_bytes_before: wb,
            weight_bytes_after: wa,
            time,
            outcome,
            details: Vec::new(),
        }
    }

    /// The ops whose count changed, as `op: before -> after`, sorted by op name.
    pub fn op_changes(&self) -> Vec<(String, usize, usize)> {
        let mut names: Vec<&String> = self
            .ops_before
            .keys()
            .chain(self.ops_after.keys())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| {
                let b = self.ops_before.get(n).copied().unwrap_or(0);
                let a = self.ops_after.get(n).copied().unwrap_or(0);
                (a != b).then(|| (n.clone(), b, a))
            })
            .collect()
    }
}

/// Nodes (without constants), op histogram and constant bytes of a graph (top level).
fn census(g: &Graph) -> (usize, BTreeMap<String, usize>, usize) {
    let mut ops = BTreeMap::new();
    let mut nodes = 0;
    let mut bytes = 0;
    for n in &g.nodes {
        match &n.op {
            Op::Constant(c) => {
                bytes += match &c.data {
                    ConstData::Bytes(b) => b.as_bytes().len(),
                    _ => 0,
                }
            }
            op => {
                nodes += 1;
                *ops.entry(op.name().to_string()).or_insert(0) += 1;
            }
        }
    }
    (nodes, ops, bytes)
}

/// The stages a compilation ran, in order, with the target they ran for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineReport {
    /// The target (triple and ISA features), empty before one is chosen.
    pub target: String,
    /// One entry per stage run (or skipped).
    pub stages: Vec<StageReport>,
}

impl PipelineReport {
    /// The report of `stage`, if it ran.
    pub fn stage(&self, stage: Stage) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.stage == stage)
    }

    /// Total wall time of the stages.
    pub fn total_time(&self) -> Duration {
        self.stages.iter().map(|s| s.time).sum()
    }

    /// The report as JSON (deterministic key order; times in milliseconds).
    pub fn to_json(&self) -> String {
        let stages: Vec<serde_json::Value> = self
            .stages
            .iter()
            .map(|s| {
                let (outcome, reason) = match &s.outcome {
                    Outcome::Ran => ("ran", None),
                    Outcome::Skipped(r) => ("skipped", Some(r.clone())),
                };
                serde_json::json!({
                    "stage": s.stage.name(),
                    "outcome": outcome,
                    "skip_reason": reason,
                    "nodes_before": s.nodes_before,
                    "nodes_after": s.nodes_after,
                    "ops_before": s.ops_before,
                    "ops_after": s.ops_after,
                    "weight_bytes_before": s.weight_bytes_before,
                    "weight_bytes_after": s.weight_bytes_after,
                    "time_ms": s.time.as_secs_f64() * 1e3,
                    "details": s.details,
                })
            })
            .collect();
        let v = serde_json::json!({ "target": self.target, "stages": stages });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

impl fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.target.is_empty() {
            writeln!(f, "target: {}", self.target)?;
        }
        for s in &self.stages {
            let how = match &s.outcome {
                Outcome::Ran => String::new(),
                Outcome::Skipped(r) => format!("  SKIPPED: {r}"),
            };
            writeln!(
                f,
                "{:<13}{:>8.1} ms  nodes {} -> {}  weights {} -> {} bytes{how}",
                s.stage.name(),
                s.time.as_secs_f64() * 1e3,
                s.nodes_before,
                s.nodes_after,
                s.weight_bytes_before,
                s.weight_bytes_after,
            )?;
            let changes = s.op_changes();
            if !changes.is_empty() {
                let list: Vec<String> = changes
                    .iter()
                    .map(|(op, b, a)| format!("{op} {b}->{a}"))
                    .collect();
                writeln!(f, "{:13}ops: {}", "", list.join(", "))?;
            }
            for d in &s.details {
                writeln!(f, "{:13}{d}", "")?;
            }
        }
        Ok(())
    }
}

/// Why a pipeline stage failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading or importing the model failed.
    #[error(transparent)]
    Import(#[from] carve_frontend::ImportError),
    /// A graph-to-graph stage failed.
    #[error("stage '{stage}': {source}")]
    Pass {
        /// The stage.
        stage: Stage,
        /// The cause.
        source: PassError,
    },
}

/// The pipeline for one target: the same stages and cost parameters for every entry point.
#[derive(Debug, Clone)]
pub struct Pipeline {
    target: Target,
    egraph: bool,
}

impl Pipeline {
    /// A pipeline compiling for `target`, with every stage on.
    pub fn new(target: Target) -> Pipeline {
        Pipeline {
            target,
            egraph: true,
        }
    }

    /// Turn the e-graph stage on (the default) or off (`--no-egraph`: it is then reported as skipped).
    pub fn egraph(mut self, on: bool) -> Pipeline {
        self.egraph = on;
        self
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Whether the e-graph stage runs.
    pub fn egraph_enabled(&self) -> bool {
        self.egraph
    }

    /// The e-graph cost model's parameters for this target (vector width, FMA).
    pub fn cost_params(&self) -> TargetParams {
        TargetParams {
            vector_bits: 32 * self.target.f32_lanes(),
            has_fma: self.target.has_fma(),
            int8_dot: carve_codegen::x86::gemm_i8::I8Isa::for_target(&self.target)
                .is_some_and(|i| i.b_is_i8()),
            ..TargetParams::host_default()
        }
    }

    fn start(&self, report: &mut PipelineReport) {
        if report.target.is_empty() {
            report.target = self.target.to_string();
        }
    }

    /// The import stage: decode, import and verify `path`.
    pub fn import(
        &self,
        path: impl AsRef<Path>,
        report: &mut PipelineReport,
    ) -> Result<crate::Model, PipelineError> {
        self.start(report);
        let t0 = Instant::now();
        let m = crate::load(path)?;
        let empty = Graph::new("");
        let mut r = StageReport::new(Stage::Import, &empty, &m.graph, t0.elapsed(), Outcome::Ran);
        r.details.push(format!(
            "{} inputs, {} outputs",
            m.graph.inputs.len(),
            m.graph.outputs.len()
        ));
        r.details
            .extend(m.warnings.iter().map(|w| format!("warning: {w}")));
        report.stages.push(r);
        Ok(m)
    }

    /// Runs the graph-to-graph stages up to and including `until` (`Import`: none; `Canonicalize`;
    /// `Egraph` and later: canonicalize, then the e-graph — or its reported skip — then canonicalize
    /// again). Each stage appends to `report`.
    pub fn optimize(
        &self,
        graph: &Graph,
        until: Stage,
        report: &mut PipelineReport,
    ) -> Result<Graph, PipelineError> {
        self.start(report);
        let mut g = graph.clone();
        if until < Stage::Canonicalize {
            return Ok(g);
        }
        let eval = InterpEval;
        let opts = self.egraph_options();
        let t0 = Instant::now();
        // Ops without a native kernel that have an exact composition of ops that do (einsum,
        // attention, the losses).
        let pass_err = |source| PipelineError::Pass {
            stage: Stage::Canonicalize,
            source,
        };
        let dec = decompose_einsum(&mut g).map_err(pass_err)?;
        let attn = decompose_attention(&mut g).map_err(pass_err)?;
        let loss = decompose_losses(&mut g).map_err(pass_err)?;
        // With the e-graph to come, dequantized constants stay for its QDQ rules (it folds them too).
        let canon = if self.egraph && until >= Stage::Egraph {
            canonicalize_before_egraph(&mut g, Some(&eval), opts.fold_limit)
        } else {
            canonicalize(&mut g, Some(&eval), opts.fold_limit)
        }
        .map_err(|source| PipelineError::Pass {
            stage: Stage::Canonicalize,
            source,
        })?;
        let mut r = StageReport::new(Stage::Canonicalize, graph, &g, t0.elapsed(), Outcome::Ran);
        r.details.push(format!(
            "{} nodes folded, {} dead removed, {} rounds",
            canon.folded, canon.removed, canon.rounds
        ));
        for line in [
            dec.summary("einsum", "transpose/matmul"),
            attn.summary("attention", "matmul/softmax"),
            loss.summary("losses", "log_softmax/gather/reduce"),
        ]
        .into_iter()
        .flatten()
        {
            r.details.push(line);
        }
        report.stages.push(r);
        if until < Stage::Egraph {
            return Ok(g);
        }
        if !self.egraph {
            let r = StageReport::new(
                Stage::Egraph,
                &g,
                &g,
                Duration::ZERO,
                Outcome::Skipped("turned off (--no-egraph)".into()),
            );
            report.stages.push(r);
            return Ok(g);
        }
        let t0 = Instant::now();
        let before = g.clone();
        let (out, stats) = match carve_passes::egraph::optimize(&g, &opts, Some(&eval)) {
            Ok(x) => x,
            // A graph the e-graph cannot represent (e.g. sequence values) is kept as it is, and the
            // report says so; a rewrite that breaks the graph is an error.
            Err(PassError::Convert(reason)) => {
                // What canonicalize kept for the e-graph's rules is folded now.
                canonicalize(&mut g, Some(&eval), opts.fold_limit).map_err(|source| {
                    PipelineError::Pass {
                        stage: Stage::Egraph,
                        source,
                    }
                })?;
                let r = StageReport::new(
                    Stage::Egraph,
                    &g,
                    &g,
                    t0.elapsed(),
                    Outcome::Skipped(format!("the e-graph cannot represent this graph: {reason}")),
                );
                report.stages.push(r);
                return Ok(g);
            }
            Err(source) => {
                return Err(PipelineError::Pass {
                    stage: Stage::Egraph,
                    source,
                });
            }
        };
        g = out;
        canonicalize(&mut g, Some(&eval), opts.fold_limit).map_err(|source| {
            PipelineError::Pass {
                stage: Stage::Egraph,
                source,
            }
        })?;
        let outcome = match &stats.fallback {
            Some(reason) => Outcome::Skipped(reason.clone()),
            None => Outcome::Ran,
        };
        let mut r = StageReport::new(Stage::Egraph, &before, &g, t0.elapsed(), outcome);
        r.details.push(format!(
            "{} e-nodes, {} e-classes, {} iterations, stopped: {}; {} constants folded",
            stats.enodes, stats.eclasses, stats.iterations, stats.stop, stats.folds
        ));
        r.details.push(format!(
            "estimated cost {:.3e} -> {:.3e} cycles",
            stats.cost_before, stats.cost_after
        ));
        if !stats.applied.is_empty() {
            let rules: Vec<String> = stats
                .applied
                .iter()
                .map(|(rule, n)| format!("{rule} x{n}"))
                .collect();
            r.details.push(format!("rewrites: {}", rules.join(", ")));
        }
        report.stages.push(r);
        Ok(g)
    }

    /// The e-graph options this pipeline uses (default budgets, this target's cost parameters).
    pub fn egraph_options(&self) -> carve_passes::egraph::Options {
        carve_passes::egraph::Options {
            target: self.cost_params(),
            ..Default::default()
        }
    }

    /// The schedule stage's preparation: specialize the optimized graph for code generation (fold
    /// what the concrete shapes make constant, check every value is a static tensor). Returns the
    /// prepared graph and the number of nodes folded.
    pub fn prepare(
        &self,
        graph: &Graph,
        report: &mut PipelineReport,
    ) -> Result<(std::sync::Arc<Graph>, usize), carve_codegen::CodegenError> {
        self.start(report);
        let t0 = Instant::now();
        let (pg, folded, notes) = carve_codegen::prepare::specialize_noted(graph)?;
        let mut r = StageReport::new(Stage::Schedule, graph, &pg, t0.elapsed(), Outcome::Ran);
        r.details
            .push(format!("{folded} nodes folded for the concrete shapes"));
        r.details.extend(notes);
        report.stages.push(r);
        Ok((pg, folded))
    }

    /// The schedule stage in full, for inspection: prepares `graph` (see [`Pipeline::prepare`]) and
    /// returns the text form of the target-neutral kernel schedule the emitter would consume (the same
    /// [`carve_codegen::Schedule::build`] the JIT and AOT paths run; nodes without a native kernel are
    /// listed as fallbacks rather than refused).
    pub fn schedule_text(
        &self,
        graph: &Graph,
        report: &mut PipelineReport,
    ) -> Result<String, carve_codegen::CodegenError> {
        let (pg, folded) = self.prepare(graph, report)?;
        let t0 = Instant::now();
        let opts = carve_codegen::ScheduleOptions {
            allow_fallback: true,
            folded,
        };
        let schedule = carve_codegen::Schedule::build(&pg, &self.target, &opts)?;
        let text = schedule.to_text();
        if let Some(s) = report
            .stages
            .iter_mut()
            .rfind(|s| s.stage == Stage::Schedule)
        {
            s.time += t0.elapsed();
            s.details.push(format!(
                "{} kernels planned, {} split over threads",
                schedule.report.kernels,
                schedule.parallel_kernels()
            ));
        }
        Ok(text)
    }

    /// Appends an entry saying `stage` was skipped for `reason` (e.g. code generation for a graph
    /// with data-dependent shapes, which then runs in the interpreter).
    pub fn record_skip(
        &self,
        stage: Stage,
        graph: &Graph,
        reason: String,
        report: &mut PipelineReport,
    ) {
        let r = StageReport::new(
            stage,
            graph,
            graph,
            Duration::ZERO,
            Outcome::Skipped(reason),
        );
        report.stages.push(r);
    }

    /// Appends the emit stage's entry from the code generator's report (kernels, functions, arena,
    /// weights blob, fallbacks), and adds the memory plan to the schedule stage's entry.
    pub fn record_emit(
        &self,
        graph: &Graph,
        codegen: &carve_codegen::Report,
        time: Duration,
        report: &mut PipelineReport,
    ) {
        if let Some(s) = report
            .stages
            .iter_mut()
            .find(|s| s.stage == Stage::Schedule)
        {
            s.details.push(format!(
                "arena {} bytes (unshared {}), {} kernels",
                codegen.arena_bytes, codegen.unshared_bytes, codegen.kernels
            ));
        }
        let mut r = StageReport::new(Stage::Emit, graph, graph, time, Outcome::Ran);
        r.weight_bytes_after = codegen.weights_bytes;
        r.details.push(format!(
            "{} kernel calls, {} distinct functions; {} native nodes ({} fused, {} views), {} fallback",
            codegen.kernels,
            codegen.functions,
            codegen.native,
            codegen.fused,
            codegen.aliases,
            codegen.fallbacks.len()
        ));
        for fb in &codegen.fallbacks {
            r.details.push(format!(
                "fallback: node '{}' ({}): {}",
                fb.node, fb.op, fb.reason
            ));
        }
        report.stages.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = "graph @g(%x: f32[2,3]) -> (f32[2,3]) {\n  %0 = neg(%x) : f32[2,3]\n  %1 = neg(%0) : f32[2,3]\n  %2 = relu(%1) : f32[2,3]\n  return %2\n}\n";

    #[test]
    fn every_stage_up_to_the_egraph_reports_itself() {
        let g = carve_ir::text::parse(CHAIN).expect("parses");
        let p = Pipeline::new(Target::host().expect("host target"));
        let mut report = PipelineReport::default();
        let out = p.optimize(&g, Stage::Egraph, &mut report).expect("runs");
        assert_eq!(out.nodes.len(), 1);
        let names: Vec<Stage> = report.stages.iter().map(|s| s.stage).collect();
        assert_eq!(names, vec![Stage::Canonicalize, Stage::Egraph]);
        let e = report.stage(Stage::Egraph).expect("e-graph entry");
        assert_eq!((e.nodes_before, e.nodes_after), (3, 1));
        assert_eq!(
            e.op_changes(),
            vec![("neg".to_string(), 2, 0)],
            "the two negations cancel"
        );
        let text = report.to_string();
        assert!(
            text.contains("egraph") && text.contains("neg 2->0"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        assert_eq!(json["stages"][1]["stage"], "egraph");
        assert_eq!(json["stages"][1]["nodes_after"], 1);
    }

    #[test]
    fn a_disabled_egraph_is_reported_as_skipped() {
        let g = carve_ir::text::parse(CHAIN).expect("parses");
        let p = Pipeline::new(Target::host().expect("host target")).egraph(false);
        let mut report = PipelineReport::default();
        let out = p.optimize(&g, Stage::Egraph, &mut report).expect("runs");
        assert_eq!(out.nodes.len(), 3);
        let e = report.stage(Stage::Egraph).expect("e-graph entry");
        assert!(matches!(&e.outcome, Outcome::Skipped(r) if r.contains("--no-egraph")));
        assert!(report.to_string().contains("SKIPPED"));
    }

    #[test]
    fn stage_names_parse_back() {
        for s in Stage::ALL {
            assert_eq!(s.name().parse::<Stage>(), Ok(s));
        }
        assert!(
            "bogus"
                .parse::<Stage>()
                .unwrap_err()
                .contains("canonicalize")
        );
    }
}
