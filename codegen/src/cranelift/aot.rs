//! Ahead-of-time compilation: a prepared graph becomes a relocatable object file for any supported
//! triple (via `cranelift_object`), a C header describing its ABI, and optionally a separate weights
//! file. The object needs no runtime, no allocator and nothing from libc unless the header says so.
//!
//! The object exports:
//! - `<prefix>_run(weights, scratch, io, host) -> int32_t`: checks its arguments (NULL, alignment),
//!   substitutes the embedded weights when `weights` is NULL, and calls the entry;
//! - `<prefix>_entry`: the raw entry of `carve_runtime::abi` (same arguments, no checks);
//! - `<prefix>_weights` (when embedded): the 64-byte aligned read-only weights blob;
//! - `<prefix>_manifest`: a NUL-terminated text manifest (see [`Manifest`]).
//!
//! Everything in the object is a function of the graph, the target and the options: no timestamps,
//! paths or hash-map iteration orders, so the same inputs give a byte-identical object and header.

mod archive;
mod header;
mod manifest;
mod rust_wrapper;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Signature, types};
use cranelift_module::{DataDescription, Linkage, Module, default_libcall_names};
use cranelift_object::object::{self, Object as _, ObjectSymbol as _};
use cranelift_object::{ObjectBuilder, ObjectModule};

use carve_ir::{DType, Graph};
use carve_runtime::abi;
use carve_runtime::exec::Slot;

use crate::CodegenError;
use crate::compile::{ModuleOptions, Report, compile_into};
use crate::cranelift::kernel::ModuleCx;
use crate::target::Target;

pub use archive::static_archive;
pub use header::c_type;
pub use manifest::{MAGIC, Manifest, find_manifests};
pub use rust_wrapper::rust_wrapper;

/// Return code of `<prefix>_run`: a required pointer (weights when not embedded, scratch when its
/// size is not 0, the io table or one of its buffers) is NULL.
pub const ERR_NULL: i32 = 3;
/// Return code of `<prefix>_run`: a buffer is not aligned to [`abi::ALIGN`] bytes.
pub const ERR_ALIGN: i32 = 4;

/// Symbols an object may import from libc without the header calling it out as unusual.
pub const LIBC_MEMORY_SYMBOLS: &[&str] = &["memcpy", "memmove", "memset"];

/// Options of [`compile_object`].
#[derive(Debug, Clone)]
pub struct AotOptions {
    /// Prefix of every exported symbol and of the header's names (a C identifier).
    pub prefix: String,
    /// Embed the weights in the object's read-only data (else the caller loads them from a file).
    pub embed_weights: bool,
    /// Content hash of the model the graph came from (recorded in the manifest).
    pub model_hash: String,
    /// Further options to record in the manifest (e.g. bound input shapes), in order.
    pub extra: Vec<(String, String)>,
}

/// One input or output as the C side sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoInfo {
    /// The model's tensor name.
    pub name: String,
    /// The field name in `<prefix>_io` (a C identifier, unique within the struct).
    pub c_name: String,
    /// Element type.
    pub dtype: DType,
    /// Concrete shape.
    pub shape: Vec<usize>,
    /// Buffer size in bytes.
    pub bytes: usize,
}

impl IoInfo {
    /// Number of elements.
    pub fn count(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// Everything the header, the Rust wrapper and the manifest describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Symbol prefix.
    pub prefix: String,
    /// carve version that generated the object.
    pub carve_version: String,
    /// Model content hash.
    pub model_hash: String,
    /// Target description (triple and features).
    pub target: String,
    /// Every boolean ISA flag enabled in the code generator (Cranelift names, e.g. `has_sse41`): the
    /// features the object's code may use, explicit defaults included.
    pub isa_flags: Vec<String>,
    /// Weights blob size in bytes.
    pub weights_bytes: usize,
    /// Whether the blob is embedded in the object.
    pub weights_embedded: bool,
    /// Content hash of the weights blob.
    pub weights_hash: String,
    /// Scratch (arena) size in bytes.
    pub scratch_bytes: usize,
    /// Inputs in order.
    pub inputs: Vec<IoInfo>,
    /// Outputs in order.
    pub outputs: Vec<IoInfo>,
    /// Undefined symbols of the object, sorted.
    pub imports: Vec<String>,
    /// The manifest stored in the object.
    pub manifest: Manifest,
}

/// The result of [`compile_object`].
#[derive(Debug, Clone)]
pub struct AotOutput {
    /// The relocatable object file.
    pub object: Vec<u8>,
    /// The C header.
    pub header: String,
    /// The weights blob (also inside the object when embedded).
    pub weights: Vec<u8>,
    /// The interface.
    pub interface: Interface,
    /// What compilation did.
    pub report: Report,
}

/// `xxh3-128:<hex>` of `bytes`: the content hash used in manifests.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("xxh3-128:{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

const C_KEYWORDS: &[&str] = &[
    "auto", "bool", "break", "case", "char", "const", "continue", "default", "do", "double",
    "else", "enum", "extern", "false", "float", "for", "goto", "if", "inline", "int", "long",
    "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "true", "typedef", "union", "unsigned", "void", "volatile", "while",
    // Rust keywords too: the same names become fields of the generated Rust wrapper.
    "as", "fn", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "self",
    "super", "trait", "type", "use", "where", "crate", "dyn", "async", "await", "unsafe",
];

/// True if `s` is a valid C identifier that is not a keyword.
pub fn is_c_identifier(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !C_KEYWORDS.contains(&s)
}

/// A C identifier made from `s`: other characters become `_`, a leading digit or a keyword gets a
/// `_`/`t_` guard, an empty name becomes `t`.
pub fn sanitize_identifier(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() {
        out.push('t');
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "t_");
    }
    if C_KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

fn io_infos(
    slots: &[(String, Slot)],
    taken: &mut Vec<String>,
) -> Result<Vec<IoInfo>, CodegenError> {
    let mut out = Vec::with_capacity(slots.len());
    for (name, s) in slots {
        if c_type(s.dtype).is_none() {
            return Err(CodegenError::Unsupported {
                msg: format!(
                    "input/output '{name}' has dtype {}, which has no fixed-width C representation",
                    s.dtype
                ),
            });
        }
        let base = sanitize_identifier(name);
        // Field names are lower-cased for the macros' upper-casing to stay unique too.
        let mut c_name = base.clone();
        let mut k = 2;
        while taken.iter().any(|t| t.eq_ignore_ascii_case(&c_name)) {
            c_name = format!("{base}_{k}");
            k += 1;
        }
        taken.push(c_name.clone());
        out.push(IoInfo {
            name: name.clone(),
            c_name,
            dtype: s.dtype,
            shape: s.shape.clone(),
            bytes: s.bytes(),
        });
    }
    Ok(out)
}

fn describe_io(list: &[IoInfo]) -> String {
    list.iter()
        .map(|t| {
            let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            format!("{}:{}[{}]", t.name, t.dtype, dims.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn cl_err(what: &str) -> impl Fn(cranelift_module::ModuleError) -> CodegenError + '_ {
    move |e| CodegenError::Cranelift {
        msg: format!("{what}: {e:?}"),
    }
}

/// Compiles a prepared graph (concrete shapes, see [`crate::prepare::prepare`]) into an object file
/// for `target`, with its header. Every node must have a native kernel (an error names the first
/// one that does not).
pub fn compile_object(
    g: &Graph,
    target: &Target,
    folded: usize,
    opts: &AotOptions,
) -> Result<AotOutput, CodegenError> {
    let prefix = opts.prefix.as_str();
    if !is_c_identifier(prefix) {
        return Err(CodegenError::Target {
            msg: format!(
                "'{prefix}' cannot prefix C symbols (use letters, digits and '_', not starting with a digit)"
            ),
        });
    }
    if target.triple.pointer_width().map(|w| w.bits()) != Ok(64) {
        return Err(CodegenError::Target {
            msg: format!("{}: only 64-bit targets are supported", target.triple),
        });
    }
    let isa = target.isa(true)?;
    let isa_flags = enabled_isa_flags(&*isa);
    let mut builder = ObjectBuilder::new(isa, prefix.as_bytes().to_vec(), default_libcall_names())
        .map_err(cl_err("object builder"))?;
    builder.per_function_section(false);
    let mut module = ObjectModule::new(builder);
    let entry_name = format!("{prefix}_entry");
    // A kernel emitter bug can make Cranelift panic inside its backend; a build script should get an
    // error naming the target rather than an abort.
    let c = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        compile_into(
            &mut module,
            g,
            target,
            &ModuleOptions {
                entry_name,
                allow_fallback: false,
                folded,
            },
        )
    }))
    .map_err(|p| CodegenError::Cranelift {
        msg: format!(
            "the code generator panicked compiling for {target}: {}",
            p.downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)")
        ),
    })??;
    if let Some(f) = c.report.fallbacks.first() {
        return Err(CodegenError::Node {
            node: f.node.clone(),
            op: f.op.clone(),
            msg: format!("no native kernel ({})", f.reason),
        });
    }
    let mut taken = Vec::new();
    let inputs = io_infos(&c.inputs, &mut taken)?;
    let outputs = io_infos(&c.outputs, &mut taken)?;
    if outputs.is_empty() {
        return Err(CodegenError::Graph {
            msg: "the graph has no outputs".into(),
        });
    }
    let weights_hash = content_hash(c.weights.as_slice());
    let embed = opts.embed_weights;
    let mut manifest = Manifest::default();
    manifest.push("carve_version", env!("CARGO_PKG_VERSION"));
    manifest.push("name", prefix);
    manifest.push("model_hash", &opts.model_hash);
    manifest.push("target", &target.triple);
    manifest.push(
        "features",
        target
            .features
            .iter()
            .map(|f| format!("+{f}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    manifest.push("isa_flags", isa_flags.join(","));
    manifest.push("weights", if embed { "embedded" } else { "file" });
    manifest.push("weights_bytes", c.weights.len());
    manifest.push("weights_hash", &weights_hash);
    manifest.push("scratch_bytes", c.plan.arena_bytes);
    for (k, v) in &opts.extra {
        manifest.push(k, v);
    }
    manifest.push("inputs", describe_io(&inputs));
    manifest.push("outputs", describe_io(&outputs));

    // Data: weights and manifest.
    let weights_id = if embed && !c.weights.is_empty() {
        let id = module
            .declare_data(&format!("{prefix}_weights"), Linkage::Export, false, false)
            .map_err(cl_err("declaring the weights"))?;
        let mut d = DataDescription::new();
        d.define(c.weights.as_slice().into());
        d.set_align(abi::ALIGN as u64);
        module
            .define_data(id, &d)
            .map_err(cl_err("defining the weights"))?;
        Some(id)
    } else {
        None
    };
    let mid = module
        .declare_data(&format!("{prefix}_manifest"), Linkage::Export, false, false)
        .map_err(cl_err("declaring the manifest"))?;
    let mut d = DataDescription::new();
    let mut text = manifest.to_text().into_bytes();
    text.push(0);
    d.define(text.into_boxed_slice());
    d.set_align(8);
    module
        .define_data(mid, &d)
        .map_err(cl_err("defining the manifest"))?;

    // The checked C entry point.
    let io_bytes: Vec<usize> = inputs.iter().chain(&outputs).map(|t| t.bytes).collect();
    define_run(
        &mut module,
        target,
        prefix,
        c.entry,
        weights_id,
        c.weights.len(),
        c.plan.arena_bytes,
        &io_bytes,
    )?;

    let object = module
        .finish()
        .emit()
        .map_err(|e| CodegenError::Cranelift {
            msg: format!("writing the object file: {e}"),
        })?;
    let imports = undefined_symbols(&object)?;
    let interface = Interface {
        prefix: prefix.to_string(),
        carve_version: env!("CARGO_PKG_VERSION").to_string(),
        model_hash: opts.model_hash.clone(),
        target: target.to_string(),
        isa_flags,
        weights_bytes: c.weights.len(),
        weights_embedded: embed,
        weights_hash,
        scratch_bytes: c.plan.arena_bytes,
        inputs,
        outputs,
        imports,
        manifest,
    };
    let header = header::generate(&interface);
    Ok(AotOutput {
        object,
        header,
        weights: c.weights.as_slice().to_vec(),
        interface,
        report: c.report,
    })
}

/// Every boolean ISA flag that is on in `isa` (explicit features and the code generator's defaults).
pub fn enabled_isa_flags(isa: &dyn cranelift_codegen::isa::TargetIsa) -> Vec<String> {
    isa.isa_flags()
        .iter()
        .filter(|f| f.as_bool() == Some(true))
        .map(|f| f.name.to_string())
        .collect()
}

/// The undefined (imported) symbols of an object file, sorted.
pub fn undefined_symbols(object: &[u8]) -> Result<Vec<String>, CodegenError> {
    let f = object::File::parse(object).map_err(|e| CodegenError::Cranelift {
        msg: format!("reading back the object file: {e}"),
    })?;
    let mut out: Vec<String> = f
        .symbols()
        .filter(|s| s.is_undefined() && s.kind() != object::SymbolKind::File)
        .filter_map(|s| s.name().ok().map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Defines `<prefix>_run`: argument checks, then a tail call of the entry.
#[allow(clippy::too_many_arguments)]
fn define_run(
    module: &mut ObjectModule,
    target: &Target,
    prefix: &str,
    entry: cranelift_module::FuncId,
    weights_id: Option<cranelift_module::DataId>,
    weights_bytes: usize,
    scratch_bytes: usize,
    io_bytes: &[usize],
) -> Result<(), CodegenError> {
    let ptr = module.target_config().pointer_type();
    let cc = module.target_config().default_call_conv;
    let mut sig = Signature::new(cc);
    for _ in 0..4 {
        sig.params.push(AbiParam::new(ptr));
    }
    sig.returns.push(AbiParam::new(types::I32));
    let align_mask = (abi::ALIGN - 1) as i64;
    let mut mcx = ModuleCx::new(module, target);
    mcx.define(&format!("{prefix}_run"), Linkage::Export, sig, |b, m| {
        let start = b.create_block();
        b.append_block_params_for_function_params(start);
        b.switch_to_block(start);
        let p = b.block_params(start).to_vec();
        let (w, scratch, io, host) = (p[0], p[1], p[2], p[3]);
        let err_null = b.create_block();
        let err_align = b.create_block();
        // Fails with `target` if `cond` (an i8 truth value) holds, else continues in a new block.
        let check = |b: &mut cranelift_frontend::FunctionBuilder,
                     cond: cranelift_codegen::ir::Value,
                     target: cranelift_codegen::ir::Block| {
            let next = b.create_block();
            b.ins().brif(cond, target, &[], next, &[]);
            b.switch_to_block(next);
        };
        // Weights: NULL means the embedded copy (or is an error without one).
        let w = match weights_id {
            Some(id) => {
                let gv = m.declare_data_in_func(id, b.func);
                let embedded = b.ins().symbol_value(ptr, gv);
                b.ins().select(w, w, embedded)
            }
            None => {
                if weights_bytes > 0 {
                    let z = b.ins().icmp_imm_s(IntCC::Equal, w, 0);
                    check(b, z, err_null);
                }
                w
            }
        };
        if weights_bytes > 0 {
            let low = b.ins().band_imm_s(w, align_mask);
            check(b, low, err_align);
        }
        if scratch_bytes > 0 {
            let z = b.ins().icmp_imm_s(IntCC::Equal, scratch, 0);
            check(b, z, err_null);
            let low = b.ins().band_imm_s(scratch, align_mask);
            check(b, low, err_align);
        }
        let z = b.ins().icmp_imm_s(IntCC::Equal, io, 0);
        check(b, z, err_null);
        let fl = MemFlagsData::trusted().with_readonly();
        for (k, &bytes) in io_bytes.iter().enumerate() {
            if bytes == 0 {
                continue;
            }
            let q = b.ins().load(ptr, fl, io, (k * 8) as i32);
            let z = b.ins().icmp_imm_s(IntCC::Equal, q, 0);
            check(b, z, err_null);
            let low = b.ins().band_imm_s(q, align_mask);
            check(b, low, err_align);
        }
        let fref = m.declare_func_in_func(entry, b.func);
        let call = b.ins().call(fref, &[w, scratch, io, host]);
        let rc = b.inst_results(call)[0];
        b.ins().return_(&[rc]);
        b.switch_to_block(err_null);
        let e = b.ins().iconst(types::I32, ERR_NULL as i64);
        b.ins().return_(&[e]);
        b.switch_to_block(err_align);
        let e = b.ins().iconst(types::I32, ERR_ALIGN as i64);
        b.ins().return_(&[e]);
        Ok(())
    })?;
    mcx.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `y = identity(x)`: an output copy kernel (the only native code without kernel families).
    fn copy_graph() -> std::sync::Arc<Graph> {
        use carve_ir::ops::movement::Identity;
        let mut g = Graph::new("g");
        let x = g.add_input("x", carve_ir::TensorType::known(DType::F32, &[5, 7]).into());
        let y = g
            .add_node("id", Identity {}.into(), vec![Some(x)], vec!["y".into()])
            .unwrap();
        g.outputs = y;
        crate::prepare::prepare(&g).unwrap()
    }

    fn opts(embed: bool) -> AotOptions {
        AotOptions {
            prefix: "m".into(),
            embed_weights: embed,
            model_hash: "h".into(),
            extra: vec![],
        }
    }

    #[test]
    fn every_target_compiles_deterministically_with_a_manifest() {
        let g = copy_graph();
        for (triple, cpu) in [
            ("x86_64-unknown-linux-gnu", None),
            ("aarch64-unknown-linux-gnu", None),
            // Scalar riscv64: a vector type would panic inside Cranelift's backend.
            ("riscv64gc-unknown-linux-gnu", None),
            ("riscv64gc-unknown-linux-gnu", Some("+v")),
        ] {
            let t = Target::parse(triple, cpu).unwrap();
            let a = compile_object(&g, &t, 0, &opts(true)).unwrap();
            let b = compile_object(&g, &t, 0, &opts(true)).unwrap();
            assert!(a.object == b.object, "{triple} {cpu:?}");
            assert_eq!(a.header, b.header);
            let ms = find_manifests(&a.object);
            assert_eq!(ms.len(), 1);
            assert_eq!(ms[0], a.interface.manifest);
            assert_eq!(ms[0].get("target"), Some(triple));
            assert_eq!(a.interface.scratch_bytes, 0);
            assert_eq!(a.interface.inputs[0].bytes, 140);
            assert!(
                a.interface
                    .imports
                    .iter()
                    .all(|i| LIBC_MEMORY_SYMBOLS.contains(&i.as_str()))
            );
        }
    }

    #[test]
    fn bad_prefixes_are_errors_and_the_rust_wrapper_fits_the_weights() {
        let g = copy_graph();
        let t = Target::parse("x86_64-unknown-linux-gnu", None).unwrap();
        let mut o = opts(false);
        o.prefix = "9lives".into();
        assert!(compile_object(&g, &t, 0, &o).is_err());
        let rust = rust_wrapper(&compile_object(&g, &t, 0, &opts(false)).unwrap().interface);
        // No weights at all: both constructors work.
        assert!(rust.contains("pub fn with_weights"));
        assert!(rust.contains("pub fn new()"));
    }

    #[test]
    fn identifiers() {
        assert!(is_c_identifier("model_1"));
        assert!(!is_c_identifier("1model"));
        assert!(!is_c_identifier("int"));
        assert!(!is_c_identifier(""));
        assert_eq!(sanitize_identifier("input.1"), "input_1");
        assert_eq!(sanitize_identifier("0x"), "t_0x");
        assert_eq!(sanitize_identifier("float"), "float_");
        assert_eq!(sanitize_identifier(""), "t");
    }

    #[test]
    fn c_names_are_unique_case_insensitively() {
        let s = |name: &str| {
            (
                name.to_string(),
                Slot {
                    loc: carve_runtime::exec::Loc::Io(0, 0),
                    dtype: DType::F32,
                    shape: vec![2],
                },
            )
        };
        let mut taken = Vec::new();
        let v = io_infos(&[s("a.b"), s("a_b"), s("A_B")], &mut taken).unwrap();
        let names: Vec<&str> = v.iter().map(|t| t.c_name.as_str()).collect();
        assert_eq!(names, ["a_b", "a_b_2", "A_B_3"]);
    }
}
