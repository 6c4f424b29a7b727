//! The per-target cost model: estimated cycles of one kernel from its FLOPs, the bytes it moves, the
//! target's vector width, FMA support and memory bandwidth. Extraction minimizes the sum over the chosen
//! DAG; codegen uses the same numbers to choose kernels. Costs are f64 cycles.
//!
//! Model: `cycles = max(flops / flops_per_cycle, bytes / bytes_per_cycle) + launch`, where
//! `flops_per_cycle = lanes · (2 if FMA else 1)` for multiply-accumulate heavy ops (lanes = vector bits /
//! element bits) and `lanes` for other arithmetic, transcendental functions count
//! [`TRANSCENDENTAL_FLOPS`] each, `bytes` is every input read once (weights included) plus the result written
//! once, and `launch` is a fixed per-kernel overhead. Fusion savings fall out
//! of the model: a fused epilogue adds its FLOPs but no intermediate tensor traffic or launch. Views
//! (ops whose [`Op::is_view`] holds: `reshape` and friends) cost only a small constant. Dims that are not
//! concrete count as [`SYMBOLIC_DIM_GUESS`].

use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::elementwise::ElementwiseOp as E;
use carve_ir::ops::fused::{ActKind, EpiStep, FusedOp};
use carve_ir::ops::linalg::LinalgOp;
use carve_ir::{Dim, Op, TensorType, Type};

/// Size assumed for a symbolic or unknown dim.
pub const SYMBOLIC_DIM_GUESS: f64 = 16.0;
/// FLOPs charged per element for exp, erf, tanh, sigmoid, pow, sqrt, division and similar.
pub const TRANSCENDENTAL_FLOPS: f64 = 8.0;

/// What the cost model knows about a target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetParams {
    /// Width of one vector register in bits (128 for SSE/NEON, 256 for AVX2, 512 for AVX-512).
    pub vector_bits: u32,
    /// Fused multiply-add available (doubles multiply-accumulate throughput).
    pub has_fma: bool,
    /// Sustained memory bandwidth in GB/s.
    pub mem_bandwidth_gbs: f64,
    /// Clock frequency in GHz (converts bandwidth to bytes per cycle).
    pub freq_ghz: f64,
    /// Fixed cycles per kernel launch (loop setup, call).
    pub launch_cycles: f64,
    /// Cycles of a view op (reshape and friends: no data moves).
    pub view_cycles: f64,
}

impl TargetParams {
    /// Parameters for the machine carve runs on (by architecture; conservative bandwidth).
    pub fn host_default() -> TargetParams {
        let (vector_bits, has_fma) = if cfg!(target_arch = "x86_64") {
            (256, true)
        } else if cfg!(target_arch = "aarch64") {
            (128, true)
        } else {
            (128, false)
        };
        TargetParams {
            vector_bits,
            has_fma,
            mem_bandwidth_gbs: 20.0,
            freq_ghz: 3.0,
            launch_cycles: 200.0,
            view_cycles: 1.0,
        }
    }

    /// Bytes per cycle of memory traffic.
    pub fn bytes_per_cycle(&self) -> f64 {
        (self.mem_bandwidth_gbs / self.freq_ghz).max(1e-9)
    }

    /// Vector lanes for elements of `bits` bits.
    pub fn lanes(&self, bits: f64) -> f64 {
        (f64::from(self.vector_bits) / bits.max(1.0)).max(1.0)
    }
}

/// FLOPs and bytes of one kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// Multiply-accumulate FLOPs (2 per MAC).
    pub mac_flops: f64,
    /// Other arithmetic, transcendental functions weighted.
    pub flops: f64,
    /// Bytes read and written.
    pub bytes: f64,
    /// True for view ops (no kernel).
    pub view: bool,
}

fn dim(d: &Dim) -> f64 {
    match d {
        Dim::Known(n) => *n as f64,
        _ => SYMBOLIC_DIM_GUESS,
    }
}

fn elems(t: &TensorType) -> f64 {
    match t.dims() {
        Some(d) => d.iter().map(dim).product(),
        None => SYMBOLIC_DIM_GUESS * SYMBOLIC_DIM_GUESS,
    }
}

fn elem_bits(t: &TensorType) -> f64 {
    f64::from(t.dtype.bits().max(1))
}

fn bytes(t: &TensorType) -> f64 {
    elems(t) * elem_bits(t) / 8.0
}

fn tensor(t: Option<&Type>) -> Option<&TensorType> {
    t.and_then(Type::as_tensor)
}

/// FLOPs per element of a fused activation.
pub fn act_flops(a: ActKind) -> f64 {
    a.flops(TRANSCENDENTAL_FLOPS)
}

/// FLOPs per element of a fused op's epilogue beyond the one the product's base cost already counts
/// for a bias: an activation's own, one per scale, residual or clamp step, three for a requantize.
pub fn epilogue_flops(e: &carve_ir::ops::fused::Epilogue) -> f64 {
    e.steps()
        .iter()
        .map(|s| match s {
            EpiStep::Act(a) => act_flops(a.kind),
            EpiStep::Requant { .. } => 3.0,
            EpiStep::Bias => 0.0,
            EpiStep::Scale | EpiStep::Residual | EpiStep::Clamp { .. } => 1.0,
        })
        .sum()
}

fn unary_flops(e: &E) -> f64 {
    match e {
        E::Exp(_)
        | E::Log(_)
        | E::Erf(_)
        | E::Tanh(_)
        | E::Sigmoid(_)
        | E::Sqrt(_)
        | E::Reciprocal(_)
        | E::Div(_)
        | E::Pow(_)
        | E::Sin(_)
        | E::Cos(_)
        | E::Gelu(_)
        | E::Mish(_)
        | E::Softplus(_)
        | E::Elu(_)
        | E::Selu(_)
        | E::Swish(_) => TRANSCENDENTAL_FLOPS,
        _ => 1.0,
    }
}

/// The work of `op` given its input types (`None` for absent inputs) and result types.
pub fn work(op: &Op, inputs: &[Option<&Type>], outputs: &[Type]) -> Work {
    let out = outputs.first().and_then(Type::as_tensor);
    let out_elems = out.map_or(1.0, elems);
    let out_bytes: f64 = outputs.iter().filter_map(Type::as_tensor).map(bytes).sum();
    let in_bytes: f64 = inputs.iter().filter_map(|t| tensor(*t)).map(bytes).sum();
    let mut w = Work {
        mac_flops: 0.0,
        flops: out_elems,
        bytes: in_bytes + out_bytes,
        view: false,
    };
    let in0 = inputs.first().copied().flatten().and_then(Type::as_tensor);
    let in1 = inputs.get(1).copied().flatten().and_then(Type::as_tensor);
    match op {
        Op::Constant(_) => return Work::default(),
        op if op.is_view() => {
            return Work {
                view: true,
                ..Work::default()
            };
        }
        Op::Movement(_) => w.flops = 0.0,
        Op::Elementwise(e) => {
            w.flops = out_elems * unary_flops(e);
            if let E::Gelu(_) = e {
                w.flops = out_elems * (TRANSCENDENTAL_FLOPS + 2.0);
            }
        }
        Op::Conv(ConvOp::Conv(_)) | Op::Fused(FusedOp::FusedConv(_)) => {
            // Each output element: C_in/group · prod(kernel) MACs = w.shape[1..] product.
            let per = in1
                .and_then(|w| w.dims())
                .map_or(SYMBOLIC_DIM_GUESS, |d| d.iter().skip(1).map(dim).product());
            w.mac_flops = 2.0 * out_elems * per;
            w.flops = out_elems;
            if let Op::Fused(FusedOp::FusedConv(f)) = op {
                w.flops += out_elems * epilogue_flops(&f.epilogue);
            }
        }
        Op::Linalg(LinalgOp::MatMul(_) | LinalgOp::Gemm(_))
        | Op::Fused(FusedOp::FusedMatMul(_)) => {
            // K from A's last dim (or first, for transposed Gemm A: same count either way for square).
            let k = in0
                .and_then(|a| a.dims())
                .and_then(|d| d.last())
                .map_or(SYMBOLIC_DIM_GUESS, dim);
            let k = match op {
                Op::Linalg(LinalgOp::Gemm(g)) if g.trans_a => in0
                    .and_then(|a| a.dims())
                    .and_then(|d| d.first())
                    .map_or(k, dim),
                _ => k,
            };
            w.mac_flops = 2.0 * out_elems * k;
            w.flops = out_elems;
            if let Op::Fused(FusedOp::FusedMatMul(f)) = op {
                w.flops += out_elems * epilogue_flops(&f.epilogue);
            }
        }
        Op::Norm(_) => w.flops = 8.0 * in0.map_or(out_elems, elems),
        Op::Reduce(_) => w.flops = 2.0 * in0.map_or(out_elems, elems) + out_elems,
        _ => w.flops = in0.map_or(out_elems, elems).max(out_elems),
    }
    w
}

/// Estimated cycles of one kernel on `t`.
pub fn cycles(t: &TargetParams, op: &Op, inputs: &[Option<&Type>], outputs: &[Type]) -> f64 {
    let w = work(op, inputs, outputs);
    if w.view {
        return t.view_cycles;
    }
    if matches!(op, Op::Constant(_)) {
        return 0.0;
    }
    let bits = outputs
        .first()
        .and_then(Type::as_tensor)
        .map_or(32.0, elem_bits);
    let lanes = t.lanes(bits);
    let fma = if t.has_fma { 2.0 } else { 1.0 };
    let compute = w.mac_flops / (lanes * fma) + w.flops / lanes;
    let memory = w.bytes / t.bytes_per_cycle();
    compute.max(memory) + t.launch_cycles
}
