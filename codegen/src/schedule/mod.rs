//! The schedule: what a compiled model runs, as target-neutral data. [`Schedule::build`] selects a
//! kernel family per node ([`crate::lower::select`]), fuses elementwise chains ([`fuse`]), plans the
//! arena ([`plan`]) and records, per step in execution order, the node(s) it covers, its operand
//! buffers with their locations, the kernel choice and its parameters, the thread split and in-place
//! reuse — plus aliases, interpreter fallbacks and the copies of outputs. Its text form ([`text`]) is
//! deterministic and snapshot tested; emitters (today [`crate::cranelift`]) consume it.
//!
//! What is data and what is not: the kernel family, fused chain, epilogue, micro-tile, packed-weight
//! range, operand locations and per-kernel tile counts are data here. How a family generates its
//! Cranelift code for those choices is still a closure ([`crate::lower::EmitFn`]) built by the
//! lowering at selection time and kept in the schedule (not printed), keyed by step: the Cranelift
//! emitter calls it. Tile counts come from running each closure once against a planning context
//! ([`crate::cranelift::kernel::ModuleCx::planning`]), which records kernels without generating them.

pub mod fuse;
pub mod plan;
mod text;

use carve_ir::{DType, Graph, Op, ValueId};
use carve_runtime::exec::{AlignedBytes, FallbackStep, Loc, Slot};

use crate::CodegenError;
use crate::compile::{FallbackNode, Report};
use crate::cranelift::kernel::{Emitter, ModuleCx};
use crate::lower::gemm::micro;
use crate::lower::{self, EmitFn, Family, Lowering, NodeInfo, WeightRef, Weights};
use crate::prepare::concrete_shape;
use crate::target::Target;
use crate::x86::TileNote;
use plan::{Plan, StepMem};

/// Options of [`Schedule::build`].
#[derive(Debug, Clone, Default)]
pub struct ScheduleOptions {
    /// Whether nodes without a native kernel may run through the host's interpreter fallback (JIT
    /// only). When false, such a node is an error naming it.
    pub allow_fallback: bool,
    /// Nodes folded at compile time before (for the report).
    pub folded: usize,
}

/// How an operand's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Dense, row-major, no padding (every arena, weights and I/O buffer today; weights a kernel
    /// packs into its own layout are listed separately as the step's packed range).
    RowMajor,
}

/// One operand buffer of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operand {
    /// The value's name in the graph (`#<value index>` for an unnamed value).
    pub value: String,
    /// Element type and static shape (`None` for a value that is not a tensor with a static shape,
    /// which only an interpreter fallback can read).
    pub tensor: Option<(DType, Vec<usize>)>,
    /// Where its bytes live while the model runs; `None` for a constant the kernel never reads at run
    /// time (baked into packed weights or into the code).
    pub loc: Option<Loc>,
    /// Layout of the bytes.
    pub layout: Layout,
}

/// A fused elementwise chain computed by one kernel (see [`fuse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FusedChain {
    /// Names of the absorbed nodes (their outputs are never materialized), in graph order.
    pub members: Vec<String>,
    /// The chain's expression over the step's inputs (`Leaf(j)` = input `j`), in debug form.
    pub expr: String,
}

/// The kernel choice of a native step and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    /// The kernel family the lowering table chose.
    pub family: Family,
    /// For a fused conv/matmul: the family of the inner op.
    pub inner: Option<Family>,
    /// A fused elementwise chain this step computes.
    pub chain: Option<FusedChain>,
    /// For a fused conv/matmul: the epilogue applied after the product (activation, bias input).
    pub epilogue: Option<String>,
    /// Register tile (rows × columns) of GEMM-based families.
    pub micro_tile: Option<(usize, usize)>,
    /// The x86 machine-code tile the micro-kernel blocks call (its shape is `micro_tile`), if the
    /// lowering chose one ([`crate::x86`]); `None`: Cranelift's inline micro-kernel.
    pub x86: Option<TileNote>,
    /// Weights the lowering packed into the blob for this step (offset and bytes).
    pub packed: Option<WeightRef>,
    /// Input whose buffer the kernel may write its output over (if it dies here).
    pub in_place: Option<usize>,
    /// True if the memory plan took that input's buffer for output 0.
    pub reused: bool,
    /// Kernel calls in order, each with its tile count (calls with more than one tile are split
    /// over threads by the host).
    pub tiles: Vec<u64>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Native kernels.
    Kernel(Kernel),
    /// Output 0 is a view of input 0's bytes: no code.
    Alias,
    /// Every output is empty: no code.
    Empty,
    /// Runs through the interpreter (JIT only).
    Fallback {
        /// Why there is no native kernel.
        reason: String,
        /// Index of the fallback (the number the entry passes to the host).
        index: u32,
    },
}

/// One step of the schedule: a node (or a fused chain rooted at it) in execution order.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Index of the node in the graph.
    pub node: usize,
    /// Node name.
    pub name: String,
    /// Op name.
    pub op: String,
    /// What runs.
    pub kind: StepKind,
    /// Operands read (a fused chain's leaves; `None` for absent optional inputs).
    pub inputs: Vec<Option<Operand>>,
    /// Operands written.
    pub outputs: Vec<Operand>,
}

/// A graph output that could not be computed in its caller buffer and is copied there at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputCopy {
    /// The output value's name.
    pub value: String,
    /// Where it was computed.
    pub from: Loc,
    /// Its I/O slot.
    pub io: usize,
    /// Bytes copied.
    pub bytes: usize,
}

/// A compiled model's schedule (see the module documentation).
pub struct Schedule<'g> {
    pub(crate) graph: &'g Graph,
    /// The target description.
    pub target: String,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Output copies after the last step.
    pub copies: Vec<OutputCopy>,
    /// Graph inputs (name, slot) in order.
    pub inputs: Vec<(String, Slot)>,
    /// Graph outputs (name, slot) in order.
    pub outputs: Vec<(String, Slot)>,
    /// Fallback steps, indexed by [`StepKind::Fallback::index`].
    pub fallbacks: Vec<FallbackStep>,
    /// The memory plan.
    pub plan: Plan,
    /// The weights blob the kernels read (64-byte aligned).
    pub weights: AlignedBytes,
    /// Counts and sizes (`functions` is filled by the emitter).
    pub report: Report,
    /// The Cranelift realization of each step's kernel choice (`Some` for native steps).
    pub(crate) realize: Vec<Option<EmitFn>>,
}

impl std::fmt::Debug for Schedule<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

fn tensor_of(g: &Graph, v: ValueId) -> Result<(DType, Vec<usize>), CodegenError> {
    let t = g
        .ty(v)
        .as_tensor()
        .ok_or_else(|| CodegenError::Unsupported {
            msg: format!("value '{}' is not a tensor", g.value(v).name),
        })?;
    let shape = concrete_shape(g, v).ok_or_else(|| CodegenError::Unsupported {
        msg: format!("value '{}' has no static shape", g.value(v).name),
    })?;
    Ok((t.dtype, shape))
}

fn slot(g: &Graph, plan: &Plan, v: ValueId) -> Result<Slot, CodegenError> {
    let (dtype, shape) = tensor_of(g, v)?;
    let loc = plan.loc[v.index()].ok_or_else(|| CodegenError::Graph {
        msg: format!("value '{}' has no planned location", g.value(v).name),
    })?;
    Ok(Slot { loc, dtype, shape })
}

fn operand(g: &Graph, plan: &Plan, v: ValueId) -> Operand {
    let name = &g.value(v).name;
    Operand {
        value: if name.is_empty() {
            format!("#{}", v.index())
        } else {
            name.clone()
        },
        tensor: tensor_of(g, v).ok(),
        loc: plan.loc[v.index()],
        layout: Layout::RowMajor,
    }
}

/// What selection decided for one node, before planning.
enum Selected {
    Skip,
    Empty,
    Native { lowering: EmitFn, kernel: Kernel },
    Alias,
    Fallback(String),
}

impl<'g> Schedule<'g> {
    /// Plans `g` (a prepared graph, see [`crate::prepare::prepare`]) for `target`.
    pub fn build(
        g: &'g Graph,
        target: &Target,
        opts: &ScheduleOptions,
    ) -> Result<Schedule<'g>, CodegenError> {
        let mut weights = Weights::for_graph(g);
        let mut report = Report {
            target: target.to_string(),
            folded: opts.folded,
            ..Report::default()
        };
        let fusion = fuse::fuse(g, target);
        // Select.
        let mut mem = Vec::with_capacity(g.nodes.len());
        let mut selected = Vec::with_capacity(g.nodes.len());
        for (i, n) in g.nodes.iter().enumerate() {
            if matches!(n.op, Op::Constant(_)) {
                mem.push(StepMem::Const);
                selected.push(Selected::Skip);
                continue;
            }
            report.nodes += 1;
            let empty = n
                .outputs
                .iter()
                .all(|&o| concrete_shape(g, o).is_some_and(|s| s.iter().product::<usize>() == 0));
            if empty {
                mem.push(StepMem::Skip);
                selected.push(Selected::Empty);
                report.native += 1;
                continue;
            }
            if fusion.is_absorbed(i) {
                report.native += 1;
                report.fused += 1;
                mem.push(StepMem::Skip);
                selected.push(Selected::Skip);
                continue;
            }
            let info = NodeInfo {
                graph: g,
                node: n,
                target,
            };
            let before = weights.blob.len();
            let (l, family, chain) = match fusion.group_at(i) {
                Some(gr) => (
                    lower::elementwise::lower_group(&info, &gr.leaves, &gr.expr)?,
                    Some(Family::Elementwise),
                    Some(FusedChain {
                        members: gr
                            .members
                            .iter()
                            .map(|&m| g.nodes[m].name.clone())
                            .collect(),
                        expr: format!("{:?}", gr.expr),
                    }),
                ),
                None => (
                    lower::select(&info, &mut weights)?,
                    lower::family(&info),
                    None,
                ),
            };
            let after = weights.blob.len();
            let x86 = weights.take_tile();
            match l {
                Lowering::Native { in_place, emit } => {
                    report.native += 1;
                    mem.push(StepMem::Writes { in_place });
                    let family =
                        family.ok_or_else(|| info.err("native lowering without family"))?;
                    let inner = lower::fused_inner_family(&info);
                    let tiled =
                        family.uses_micro_tile() || inner.is_some_and(Family::uses_micro_tile);
                    let micro_tile = match x86 {
                        Some(t) => Some((t.mr, t.nr)),
                        None => tiled.then(|| {
                            let s = micro::Shape::for_target(target);
                            (s.mr, s.nr())
                        }),
                    };
                    let packed = (after > before).then(|| {
                        let offset = before.next_multiple_of(carve_runtime::abi::ALIGN);
                        WeightRef {
                            offset,
                            len: after - offset,
                        }
                    });
                    selected.push(Selected::Native {
                        lowering: emit,
                        kernel: Kernel {
                            family,
                            inner,
                            chain,
                            epilogue: epilogue(&info),
                            micro_tile,
                            x86,
                            packed,
                            in_place,
                            reused: false,
                            tiles: Vec::new(),
                        },
                    });
                }
                Lowering::Alias => {
                    report.aliases += 1;
                    mem.push(StepMem::Alias);
                    selected.push(Selected::Alias);
                }
                l @ (Lowering::Fallback(_) | Lowering::NeedsConstants { .. }) => {
                    let (reason, needs_constant) = match l {
                        Lowering::NeedsConstants { inputs, reason } => (reason, inputs),
                        Lowering::Fallback(reason) => (reason, Vec::new()),
                        Lowering::Native { .. } | Lowering::Alias => continue,
                    };
                    if !opts.allow_fallback {
                        return Err(info.err(format!(
                            "no native kernel ({reason}); ahead-of-time code cannot fall back to the interpreter"
                        )));
                    }
                    report.fallbacks.push(FallbackNode {
                        node: n.name.clone(),
                        op: n.op.name().to_string(),
                        reason: reason.clone(),
                        needs_constant,
                    });
                    mem.push(StepMem::Writes { in_place: None });
                    selected.push(Selected::Fallback(reason));
                }
            }
        }
        // Plan (fused roots read their groups' leaves; absorbed nodes read nothing).
        let plan = if fusion.groups.is_empty() {
            plan::plan(g, &mem, &mut weights)?
        } else {
            plan::plan(&fusion.plan_graph(g), &mem, &mut weights)?
        };
        report.arena_bytes = plan.arena_bytes;
        report.unshared_bytes = plan.unshared_bytes;
        // Steps, with each native lowering run once against a planning context for its kernels.
        let mut planning = ModuleCx::planning(target);
        let mut steps = Vec::new();
        let mut realize = Vec::new();
        let mut fallbacks = Vec::new();
        for (i, (n, sel)) in g.nodes.iter().zip(selected).enumerate() {
            let reads: Vec<Option<ValueId>> = match fusion.group_at(i) {
                Some(gr) => gr.leaves.iter().map(|&v| Some(v)).collect(),
                None => n.inputs.clone(),
            };
            let inputs: Vec<Option<Operand>> = reads
                .iter()
                .map(|v| v.map(|v| operand(g, &plan, v)))
                .collect();
            let mut outputs = Vec::with_capacity(n.outputs.len());
            for &o in &n.outputs {
                outputs.push(operand(g, &plan, o));
            }
            let (kind, lowering) = match sel {
                Selected::Skip => continue,
                Selected::Empty => (StepKind::Empty, None),
                Selected::Alias => (StepKind::Alias, None),
                Selected::Native {
                    lowering,
                    mut kernel,
                } => {
                    kernel.reused = kernel.in_place.is_some_and(|j| {
                        let src = reads.get(j).copied().flatten();
                        src.is_some_and(|x| {
                            let xl = plan.loc[x.index()];
                            xl.is_some() && xl == outputs.first().and_then(|o| o.loc)
                        })
                    });
                    let mut e = Emitter {
                        mcx: &mut planning,
                        info: NodeInfo {
                            graph: g,
                            node: n,
                            target,
                        },
                        in_locs: inputs
                            .iter()
                            .map(|o| o.as_ref().and_then(|o| o.loc))
                            .collect(),
                        out_locs: out_locs(&outputs),
                        calls: Vec::new(),
                    };
                    lowering(&mut e)?;
                    kernel.tiles = e.calls.iter().map(|c| c.n_tiles).collect();
                    report.kernels += kernel.tiles.len();
                    (StepKind::Kernel(kernel), Some(lowering))
                }
                Selected::Fallback(reason) => {
                    let mut fin = Vec::with_capacity(n.inputs.len());
                    for v in &n.inputs {
                        fin.push(match v {
                            Some(v) => Some(slot(g, &plan, *v)?),
                            None => None,
                        });
                    }
                    let mut fout = Vec::with_capacity(n.outputs.len());
                    for &o in &n.outputs {
                        fout.push(slot(g, &plan, o)?);
                    }
                    let mut captures = Vec::new();
                    for sg in n.op.subgraphs() {
                        for c in &sg.captures {
                            if !captures.iter().any(|(v, _)| *v == c.outer) {
                                captures.push((c.outer, slot(g, &plan, c.outer)?));
                            }
                        }
                    }
                    let index = fallbacks.len() as u32;
                    fallbacks.push(FallbackStep {
                        node: i,
                        inputs: fin,
                        outputs: fout,
                        captures,
                    });
                    (StepKind::Fallback { reason, index }, None)
                }
            };
            steps.push(Step {
                node: i,
                name: n.name.clone(),
                op: n.op.name().to_string(),
                kind,
                inputs,
                outputs,
            });
            realize.push(lowering);
        }
        // Copies of outputs that could not be computed in place.
        let mut copies = Vec::new();
        for &(v, io) in &plan.copies {
            let s = slot(g, &plan, v)?;
            copies.push(OutputCopy {
                value: g.value(v).name.clone(),
                from: s.loc,
                io,
                bytes: s.bytes(),
            });
            report.kernels += 1;
        }
        let mut inputs = Vec::new();
        for &v in &g.inputs {
            inputs.push((g.value(v).name.clone(), slot(g, &plan, v)?));
        }
        let mut outputs = Vec::new();
        for (k, &v) in g.outputs.iter().enumerate() {
            let mut s = slot(g, &plan, v)?;
            s.loc = Loc::Io(g.inputs.len() + k, 0);
            outputs.push((g.value(v).name.clone(), s));
        }
        report.weights_bytes = weights.blob.len();
        Ok(Schedule {
            graph: g,
            target: target.to_string(),
            steps,
            copies,
            inputs,
            outputs,
            fallbacks,
            plan,
            weights: weights.blob,
            report,
            realize,
        })
    }

    /// The graph the schedule was built for.
    pub fn graph(&self) -> &'g Graph {
        self.graph
    }

    /// Kernel calls with more than one tile (split over threads by the host's `parallel_for`).
    pub fn parallel_kernels(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::Kernel(k) => k.tiles.iter().filter(|&&t| t > 1).count(),
                _ => 0,
            })
            .sum()
    }
}

/// Output locations as the emitters see them (an output without a location is an unread empty
/// tensor: any address will do).
pub(crate) fn out_locs(outputs: &[Operand]) -> Vec<Loc> {
    outputs
        .iter()
        .map(|o| o.loc.unwrap_or(Loc::Arena(0)))
        .collect()
}

/// The epilogue of a fused conv/matmul, as text: the steps the product's tile applies in registers,
/// then those a pass over the output applies (see [`lower::fused::split`]), each operand step with its
/// input.
fn epilogue(info: &NodeInfo) -> Option<String> {
    let Op::Fused(f) = info.op() else {
        return None;
    };
    let depthwise = lower::fused_inner_family(info) == Some(lower::Family::Depthwise);
    let list = |steps: &[(carve_ir::ops::fused::EpiStep, Option<usize>)]| {
        steps
            .iter()
            .map(|(s, k)| match k {
                Some(k) => format!("{s}(input {k})"),
                None => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if f.epilogue().is_empty() {
        return None;
    }
    Some(match lower::fused::split(f, depthwise) {
        Ok(sp) => {
            let mut parts = Vec::new();
            if !sp.tile.is_empty() {
                parts.push(format!("tile [{}]", list(&sp.tile)));
            }
            if !sp.pass.is_empty() {
                parts.push(format!("pass [{}]", list(&sp.pass)));
            }
            parts.join(" then ")
        }
        Err(r) => format!("[{}] ({r})", list(&f.epilogue().with_inputs())),
    })
}
