//! The JIT path: compile a prepared graph into executable memory in this process and wrap it in a
//! `carve_runtime::exec::Executable`.

use std::sync::Arc;

use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;

use carve_ir::Graph;
use carve_runtime::abi::EntryFn;
use carve_runtime::exec::{Code, Executable, Program};

use crate::CodegenError;
use crate::compile::{ModuleOptions, Report, compile_into};
use crate::target::Target;

/// JIT-compiled code; frees its memory on drop.
struct JitCode {
    module: Option<JITModule>,
    entry: EntryFn,
}

// SAFETY: after `finalize_definitions` the code memory is immutable and only executed; the module is
// not used again except to free the memory on drop.
unsafe impl Send for JitCode {}
// SAFETY: as above.
unsafe impl Sync for JitCode {}

impl Code for JitCode {
    fn entry(&self) -> EntryFn {
        self.entry
    }
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the executable owning this code is being dropped, so no function pointer into the
            // module can be called any more.
            unsafe { m.free_memory() };
        }
    }
}

/// Compiles a prepared graph (concrete shapes, see [`crate::prepare::prepare`]) for the host and
/// returns an executable using `threads` threads, with the compile report.
pub fn compile_jit(
    g: Arc<Graph>,
    target: &Target,
    threads: usize,
    folded: usize,
) -> Result<(Executable, Report), CodegenError> {
    if target.triple != target_lexicon::Triple::host() {
        return Err(CodegenError::Target {
            msg: format!(
                "the JIT runs on the host ({}), not {}",
                target_lexicon::Triple::host(),
                target.triple
            ),
        });
    }
    let t0 = std::time::Instant::now();
    let isa = target.isa(false)?;
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let c = compile_into(
        &mut module,
        &g,
        target,
        &ModuleOptions {
            entry_name: "carve_entry".into(),
            allow_fallback: true,
            folded,
        },
    )?;
    let t1 = t0.elapsed();
    module
        .finalize_definitions()
        .map_err(|e| CodegenError::Cranelift {
            msg: format!("finalizing: {e}"),
        })?;
    if std::env::var_os("CARVE_TIMINGS").is_some() {
        eprintln!("jit: compile_into {t1:?}, finalize {:?}", t0.elapsed() - t1);
    }
    let ptr = module.get_finalized_function(c.entry);
    // SAFETY: `c.entry` was defined with exactly the `EntryFn` signature (see compile::define_entry).
    let entry: EntryFn = unsafe { std::mem::transmute::<*const u8, EntryFn>(ptr) };
    let code = JitCode {
        module: Some(module),
        entry,
    };
    let program = Program {
        code: Box::new(code),
        weights: c.weights,
        arena_bytes: c.plan.arena_bytes,
        inputs: c.inputs,
        outputs: c.outputs,
        graph: g,
        fallbacks: c.fallbacks,
        parallel_kernels: c.parallel_kernels,
    };
    Ok((Executable::new(program, threads), c.report))
}
