//! Whole-model compilation into a Cranelift module: [`compile_into`] builds the target-neutral
//! [`Schedule`] and hands it to the Cranelift emitter ([`crate::cranelift::emit`]). Shared by the JIT
//! and AOT paths. Also holds the compile [`Report`].

use std::fmt;

use cranelift_module::{FuncId, Module};

use carve_ir::Graph;
use carve_runtime::exec::{AlignedBytes, FallbackStep, Slot};

use crate::CodegenError;
use crate::cranelift::emit;
use crate::schedule::plan::Plan;
use crate::schedule::{Schedule, ScheduleOptions};
use crate::target::Target;

/// One node that runs through the interpreter, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackNode {
    /// Node name.
    pub node: String,
    /// Op name.
    pub op: String,
    /// Why there is no native kernel.
    pub reason: String,
    /// Inputs (by index) whose values native code needs at compile time: with them constant, the
    /// node would have a kernel (the JIT may specialize on them, see `carve::specialize`).
    pub needs_constant: Vec<usize>,
}

/// What compilation did: counts, sizes and fallbacks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// The target.
    pub target: String,
    /// Nodes in the prepared graph (after constant folding), constants excluded.
    pub nodes: usize,
    /// Nodes folded to constants at compile time.
    pub folded: usize,
    /// Nodes lowered to native kernels.
    pub native: usize,
    /// Nodes that are views of their input (no code).
    pub aliases: usize,
    /// Elementwise nodes computed inside another node's kernel (fused chains; counted in `native`).
    pub fused: usize,
    /// Kernel calls generated.
    pub kernels: usize,
    /// Distinct kernel functions compiled (calls of the same geometry share one; see `emit`).
    pub functions: usize,
    /// Nodes running through the interpreter.
    pub fallbacks: Vec<FallbackNode>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Arena bytes without buffer sharing (what liveness planning saved).
    pub unshared_bytes: usize,
    /// Weights blob size in bytes.
    pub weights_bytes: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "target: {}", self.target)?;
        writeln!(
            f,
            "nodes: {} ({} native of which {} fused, {} views, {} fallback), {} folded at compile time, {} kernels ({} distinct functions)",
            self.nodes,
            self.native,
            self.fused,
            self.aliases,
            self.fallbacks.len(),
            self.folded,
            self.kernels,
            self.functions
        )?;
        writeln!(
            f,
            "arena: {} bytes (unshared {}), weights: {} bytes",
            self.arena_bytes, self.unshared_bytes, self.weights_bytes
        )?;
        for fb in &self.fallbacks {
            writeln!(f, "fallback: node '{}' ({}): {}", fb.node, fb.op, fb.reason)?;
        }
        Ok(())
    }
}

/// The result of compiling into a module.
pub struct Compiled {
    /// The entry function.
    pub entry: FuncId,
    /// The weights blob the code was compiled against (64-byte aligned).
    pub weights: AlignedBytes,
    /// The plan.
    pub plan: Plan,
    /// Input slots (name, slot) in order.
    pub inputs: Vec<(String, Slot)>,
    /// Output slots in order.
    pub outputs: Vec<(String, Slot)>,
    /// Fallback steps (indexed by the number the entry passes to the host).
    pub fallbacks: Vec<FallbackStep>,
    /// Kernel calls with more than one tile (split over threads by the host's `parallel_for`).
    pub parallel_kernels: usize,
    /// Counts and sizes.
    pub report: Report,
}

/// Options of [`compile_into`].
#[derive(Debug, Clone)]
pub struct ModuleOptions {
    /// Symbol name of the entry function (exported).
    pub entry_name: String,
    /// Whether nodes without native kernel may run through the host's fallback (JIT only). When
    /// false, such a node is an error naming it.
    pub allow_fallback: bool,
    /// Nodes folded at compile time before (for the report).
    pub folded: usize,
}

/// Compiles a prepared graph (see [`crate::prepare::prepare`]) into `module`: schedule, then emit.
pub fn compile_into(
    module: &mut dyn Module,
    g: &Graph,
    target: &Target,
    opts: &ModuleOptions,
) -> Result<Compiled, CodegenError> {
    let schedule = Schedule::build(
        g,
        target,
        &ScheduleOptions {
            allow_fallback: opts.allow_fallback,
            folded: opts.folded,
        },
    )?;
    let emitted = emit::emit(module, &schedule, target, &opts.entry_name)?;
    let parallel_kernels = schedule.parallel_kernels();
    let Schedule {
        weights,
        plan,
        inputs,
        outputs,
        fallbacks,
        mut report,
        ..
    } = schedule;
    report.functions = emitted.functions;
    Ok(Compiled {
        entry: emitted.entry,
        weights,
        plan,
        inputs,
        outputs,
        fallbacks,
        parallel_kernels,
        report,
    })
}
