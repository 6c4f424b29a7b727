//! The per-target cost model: estimated cycles of one kernel from the work the op reports
//! ([`Op::work`]: multiply-accumulates, other FLOPs, transcendental functions, bytes read and written)
//! and the target's vector width, FMA support and memory bandwidth. Extraction minimizes the sum over
//! the chosen DAG; codegen uses the same numbers to choose kernels. Costs are f64 cycles.
//!
//! Model: `cycles = max(flops / flops_per_cycle, bytes / bytes_per_cycle) + launch`, where
//! `flops_per_cycle = lanes · (2 if FMA else 1)` for multiply-accumulates (2 FLOPs each; lanes = vector
//! bits / element bits) and `lanes` for other arithmetic, transcendental functions count
//! [`TRANSCENDENTAL_FLOPS`] each, `bytes` is every input read once (weights included) plus the results
//! written once, and `launch` is a fixed per-kernel overhead. Fusion savings fall out of the model: a
//! fused epilogue adds its FLOPs but no intermediate tensor traffic or launch. Views (ops whose
//! [`Op::is_view`] holds: `reshape` and friends) cost only a small constant. Dims that are not concrete
//! count as [`SYMBOLIC_DIM_GUESS`]. The FLOP and byte counts are the ops' own (one estimate, shared
//! with `carve inspect`); only the target parameters and the transcendental weight are added here.

use carve_ir::ops::{NodeTypes, Sizes, Work};
use carve_ir::{Op, Type};

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
    /// The target has 8-bit dot-product kernels (x86 VNNI tiles: four u8×s8 products per i32 lane
    /// per instruction), so products of 8-bit operands run [`INT8_DOT_SPEEDUP`]× as many
    /// multiply-accumulates per cycle as f32 ones. Without them 8-bit products cost as f32.
    pub int8_dot: bool,
}

/// Multiply-accumulate throughput of 8-bit operands relative to f32 where [`TargetParams::int8_dot`]
/// holds (a `vpdpbusd` lane does 4 products).
pub const INT8_DOT_SPEEDUP: f64 = 4.0;

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
            int8_dot: false,
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

/// The sizing of dims the cost model uses: symbolic dims count as [`SYMBOLIC_DIM_GUESS`].
pub const SIZES: Sizes = Sizes::guess(SYMBOLIC_DIM_GUESS);

/// The op's own estimate of its work ([`Op::work`]) for operands of these types, with symbolic dims
/// sized by [`SIZES`] (so it is always known).
pub fn work(op: &Op, inputs: &[Option<&Type>], outputs: &[Type]) -> Work {
    op.work(&NodeTypes {
        inputs,
        outputs,
        sizes: SIZES,
    })
    .unwrap_or_default()
}

/// Estimated cycles of one kernel on `t`.
pub fn cycles(t: &TargetParams, op: &Op, inputs: &[Option<&Type>], outputs: &[Type]) -> f64 {
    if op.is_view() {
        return t.view_cycles;
    }
    if matches!(op, Op::Constant(_)) {
        return 0.0;
    }
    let w = work(op, inputs, outputs);
    let bits = outputs
        .first()
        .and_then(Type::as_tensor)
        .map_or(32.0, |o| f64::from(o.dtype.bits().max(1)));
    let lanes = t.lanes(bits);
    let fma = if t.has_fma { 2.0 } else { 1.0 };
    let flops = w.flops + w.transcendental * (TRANSCENDENTAL_FLOPS - 1.0);
    // Products of integer operands (input 0's element type): 8-bit ones on dot-product kernels,
    // others as a multiply and an add per lane.
    let a = inputs.first().copied().flatten().and_then(Type::as_tensor);
    let (mac_lanes, mac_fma) = match a.map(|a| a.dtype) {
        Some(d) if d.is_int() && d.bits() == 8 && t.int8_dot => (lanes * INT8_DOT_SPEEDUP, fma),
        Some(d) if d.is_int() => (lanes, 1.0),
        _ => (lanes, fma),
    };
    let compute = 2.0 * w.macs / (mac_lanes * mac_fma) + flops / lanes;
    let memory = w.bytes() / t.bytes_per_cycle();
    compute.max(memory) + t.launch_cycles
}
