//! Recurrent ops — LSTM, GRU and RNN — as one kernel per node: forward, reverse and bidirectional; both
//! layouts; optional bias, initial states and `sequence_lens` (constant or runtime, i32 or i64); `clip`;
//! every activation of the vocabulary with its alpha/beta; LSTM peepholes and `input_forget`; GRU with
//! `linear_before_reset` either way.
//!
//! Each (direction, batch row) runs its whole sequence independently — these are the kernel's tiles
//! when there is enough work, so results do not depend on the thread count. Per step the gate
//! pre-activations are matrix-vector products of packed *projections* ([`Proj`]): gate rows packed at
//! compile time in blocks of 16, k-major over the projection's sources (`x_t`, `h_{t-1}`, or GRU's
//! `r ⊙ h_{t-1}`), started from the folded bias; then the cell update ([`cell`]) runs vectorized over
//! `H`. The projections of each cell (ONNX gate order `iofc`, `zrh`):
//! - LSTM: one projection of all `4H` rows over `[x; h]` with bias `Wb + Rb`;
//! - RNN: one projection of `H` rows over `[x; h]`;
//! - GRU: `z, r` over `[x; h]` (bias `Wb + Rb`); the candidate's input part `Wh·x + Wbh`; its
//!   recurrent part `Rh·h + Rbh` (`linear_before_reset`, multiplied by `r` in the cell) or
//!   `Rh·(r ⊙ h) + Rbh` (computed after the cell's first phase has formed `r ⊙ h`).
//!
//! The state (`h`, `c`, `r ⊙ h`, gates) lives in a stack slot of the kernel. Steps past a row's
//! length are zeros in `Y` and its `Y_h`/`Y_c` are the state after its length; lengths outside
//! `[0, S]` (which the interpreter rejects) are clamped.
//!
//! LSTMs over 8-bit weights quantized in their type (ONNX Runtime's DynamicQuantizeLSTM, one batch
//! row) are native too: the input and recurrent parts are two projections over centered i32 weights;
//! the whole input sequence is quantized to u8 once and `h` every step (range including 0, scale
//! `(max − min)/255`, zero point rounded half to even), products summed in i32 and scaled by the two
//! scales as ORT does.
//!
//! Falls back for: non-f32 types, weights, bias or peepholes that are not constants, and dynamically
//! quantized LSTMs over several batch rows (their h is quantized across rows).
//!
//! Sigmoid and tanh are the rational minimax forms ([`crate::lower::math::Fx::tanh_rational`],
//! `sigmoid_rational`; |error| < 1e-7); other activations come from the fused epilogue's
//! [`crate::lower::fused::emit_act`].

mod cell;
mod kernel;

use std::ops::Range;

use cranelift_codegen::ir::{Type, types};

use carve_ir::ops::activation::Activation;
use carve_ir::ops::rnn::{CellKind, Direction, Recurrent};
use carve_ir::{DType, Op};

use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, WeightRef, Weights, needs_constants};

/// Gate rows per packed weight block (4 vectors of 4 lanes).
const ROWS: usize = 16;
/// Most bytes of state a kernel keeps on its stack.
const MAX_STACK: usize = 64 * 1024;
/// Multiply-adds per (direction, batch) sequence above which those become parallel tiles.
const TILE_MACS: usize = 200_000;

/// What one k segment of a projection multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    /// The input row `x_t` (`I` values; weights from `W`).
    X,
    /// The previous state `h_{t-1}` (`H` values; weights from `R`).
    H,
    /// GRU's `r ⊙ h_{t-1}` (`H` values; weights from `R`), formed by the cell's first phase.
    ResetH,
}

/// One packed projection: gate rows `rows` (of ONNX's `W`/`R` row order) over the sources `segs`,
/// written to the gate scratch at element `dest`.
#[derive(Debug, Clone)]
struct Proj {
    /// Packed weights, per direction: blocks of [`ROWS`] rows, k-major.
    w: Vec<WeightRef>,
    /// Folded bias, per direction (padded to whole blocks).
    bias: Vec<WeightRef>,
    /// Gate rows padded to a multiple of [`ROWS`].
    rows_pad: usize,
    segs: Vec<Src>,
    dest: usize,
    /// Quantized weights (ONNX Runtime's DynamicQuantizeLSTM): `w` holds centered i16 values and
    /// these are the per-row weight scales, per direction; the single source is quantized to u8 at
    /// run time (see [`kernel`]).
    row_scales: Option<Vec<WeightRef>>,
    /// Adds to the gates already at `dest` instead of starting from the bias.
    accumulate: bool,
}

/// One projection of a cell's layout: ONNX gate rows, sources, bias from `Wb` / `Rb`, and whether it
/// adds to an earlier projection's gates.
struct ProjLayout {
    rows: Range<usize>,
    segs: Vec<Src>,
    wb: bool,
    rb: bool,
    accumulate: bool,
}

/// A weight matrix (`w` or `r`, `[D, G·H, K]`): f32 values, or 8-bit integers minus their zero points
/// with one scale per gate row.
enum Mat {
    F32(Vec<f32>),
    Quant {
        centered: Vec<i32>,
        row_scale: Vec<f32>,
    },
}

/// The projections of a cell. With quantized weights (LSTM only) the input and recurrent parts are
/// two projections over the same rows (each source has its own run-time scale), the second adding to
/// the first.
fn layout(cell: CellKind, h: usize, quantized: bool) -> Vec<ProjLayout> {
    use Src::*;
    let p = |rows: Range<usize>, segs: Vec<Src>, wb, rb, accumulate| ProjLayout {
        rows,
        segs,
        wb,
        rb,
        accumulate,
    };
    match cell {
        CellKind::Lstm { .. } if quantized => vec![
            p(0..4 * h, vec![X], true, true, false),
            p(0..4 * h, vec![H], false, false, true),
        ],
        CellKind::Lstm { .. } => vec![p(0..4 * h, vec![X, H], true, true, false)],
        CellKind::Rnn => vec![p(0..h, vec![X, H], true, true, false)],
        CellKind::Gru {
            linear_before_reset,
        } => vec![
            p(0..2 * h, vec![X, H], true, true, false),
            p(2 * h..3 * h, vec![X], true, false, false),
            p(
                2 * h..3 * h,
                vec![if linear_before_reset { H } else { ResetH }],
                false,
                true,
                false,
            ),
        ],
    }
}

/// Input `k` (`w` or `r`, `[D, rows, cols]`) as a [`Mat`]: f32 constants, or a constant 8-bit
/// integer tensor quantized per tensor or per gate row (dim 1) in its type. `None` if it is neither.
fn matrix(info: &NodeInfo, k: usize, rows: usize, cols: usize) -> Option<Mat> {
    if let Some(v) = info.const_f32s(k) {
        return Some(Mat::F32(v));
    }
    let v = info.node.inputs.get(k).copied().flatten()?;
    let t = info.graph.ty(v).as_tensor()?;
    let q = t.quant.as_deref()?;
    if !matches!(t.dtype, DType::I8 | DType::U8) || q.scale.len() != q.zero_point.len() {
        return None;
    }
    let per_row = q.scale.len() != 1;
    if per_row && q.scale.len() != rows {
        return None;
    }
    let vals = info.const_i64s(k)?;
    let mut centered = Vec::with_capacity(vals.len());
    let mut row_scale = Vec::new();
    // Rows of all directions in order: row r of direction d is chunk d·rows + r.
    for (r, chunk) in vals.chunks(cols.max(1)).enumerate() {
        let p = if per_row { r % rows } else { 0 };
        centered.extend(chunk.iter().map(|&x| (x - q.zero_point[p]) as i32));
        row_scale.push(q.scale[p]);
    }
    Some(Mat::Quant {
        centered,
        row_scale,
    })
}

/// Everything the kernel needs, fixed at compile time.
#[derive(Debug, Clone)]
struct Spec {
    s: usize,
    b: usize,
    i: usize,
    h: usize,
    nd: usize,
    cell: CellKind,
    /// Direction 1 of 1 runs in reverse.
    reverse: bool,
    batch_first: bool,
    clip: Option<f32>,
    /// Activations per direction (the cell's functions in ONNX order).
    acts: Vec<Vec<Activation>>,
    projs: Vec<Proj>,
    /// Element offset in the gate scratch of each gate group (LSTM `i, o, f, c`; GRU `z, r, h_x,
    /// h_h`; RNN the one gate).
    gate_off: Vec<usize>,
    /// Gate scratch length (elements); quantized sources' i32 scratch follows it.
    gates_len: usize,
    /// Whether the weights are quantized (sources quantized to u8 at run time).
    quantized: bool,
    /// LSTM peepholes (i, o, f) per direction, or none.
    peep: Vec<Option<WeightRef>>,
    has_h0: bool,
    has_c0: bool,
    /// Element type of a `sequence_lens` input the kernel reads (None: every length is S).
    lens: Option<Type>,
    n_out: usize,
}

fn is_lstm_cell(c: CellKind) -> bool {
    matches!(c, CellKind::Lstm { .. })
}

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    match info.op() {
        Op::Rnn(op) => select(info, &op.recurrent(), w),
        _ => Ok(Lowering::Fallback("not a recurrent op".into())),
    }
}

fn fallback(reason: impl Into<String>) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(reason.into()))
}

/// The activations of each direction: the ONNX defaults, or the listed functions with their
/// parameters; `None` if the list has the wrong length or a function has no native form.
fn activations(a: &Recurrent, nd: usize) -> Option<Vec<Vec<Activation>>> {
    let defaults = a.cell.default_activations();
    let funcs = defaults.len();
    let listed = !a.activations.is_empty();
    if listed
        && (a.activations.len() != funcs * nd
            || a.alpha.len() != a.activations.len()
            || a.beta.len() != a.activations.len())
    {
        return None;
    }
    let mut out = Vec::with_capacity(nd);
    for d in 0..nd {
        let mut acts = Vec::with_capacity(funcs);
        for (k, &def) in defaults.iter().enumerate() {
            let act = if listed {
                let i = d * funcs + k;
                Activation {
                    kind: a.activations[i],
                    alpha: a.alpha[i],
                    beta: a.beta[i],
                }
            } else {
                let (alpha, beta) = def.default_params();
                Activation {
                    kind: def,
                    alpha,
                    beta,
                }
            };
            if !crate::lower::fused::act_supported(&act) {
                return None;
            }
            acts.push(act);
        }
        out.push(acts);
    }
    Some(out)
}

fn select(info: &NodeInfo, a: &Recurrent, wts: &mut Weights) -> Result<Lowering, CodegenError> {
    if info.in_dtype(0)? != DType::F32 {
        return fallback("only f32 recurrent ops are native");
    }
    let nd = a.direction.count() as usize;
    let Some(acts) = activations(a, nd) else {
        return fallback("activations without a native form");
    };
    let x = info.in_shape(0)?;
    let [xa, xb, i] = x[..] else {
        return Err(info.err("x must have rank 3"));
    };
    let (s, b) = if a.batch_first { (xb, xa) } else { (xa, xb) };
    let r_shape = info.in_shape(2)?;
    let [_, _, h] = r_shape[..] else {
        return Err(info.err("r must have rank 3"));
    };
    let g = a.cell.gates() * h;
    if info.in_shape(1)? != [nd, g, i] || r_shape != [nd, g, h] {
        return Err(info.err("w/r shapes disagree with x and the hidden size"));
    }
    let (Some(wv), Some(rv)) = (matrix(info, 1, g, i), matrix(info, 2, g, h)) else {
        return Ok(needs_constants(
            &[1, 2, 3, 7],
            "w or r is not a constant (f32, or 8-bit quantized in its type)",
        ));
    };
    let quantized = match (&wv, &rv) {
        (Mat::F32(_), Mat::F32(_)) => false,
        (Mat::Quant { .. }, Mat::Quant { .. }) if is_lstm_cell(a.cell) && b == 1 => true,
        (Mat::Quant { .. }, Mat::Quant { .. }) if is_lstm_cell(a.cell) => {
            return fallback(
                "dynamically quantized LSTM over several batch rows (its hidden state is quantized across them)",
            );
        }
        _ => return fallback("w and r must both be f32 or both quantized (LSTM)"),
    };
    let bv = if info.has_input(3) {
        match info.const_f32s(3) {
            Some(v) if v.len() == nd * 2 * g => Some(v),
            Some(_) => return Err(info.err("b has the wrong size")),
            None => return Ok(needs_constants(&[1, 2, 3, 7], "b is not a constant")),
        }
    } else {
        None
    };
    // sequence_lens: absent or all equal to S needs no code; otherwise each row reads its length.
    let lens = if info.has_input(4) {
        let full = info
            .const_i64s(4)
            .is_some_and(|v| v.len() == b && v.iter().all(|&l| l == s as i64));
        match info.in_dtype(4)? {
            _ if full => None,
            DType::I32 if info.in_shape(4)? == [b] => Some(types::I32),
            DType::I64 if info.in_shape(4)? == [b] => Some(types::I64),
            _ => return Err(info.err(format!("sequence_lens must be i32[{b}]"))),
        }
    } else {
        None
    };
    let state = if a.batch_first {
        vec![b, nd, h]
    } else {
        vec![nd, b, h]
    };
    let is_lstm = matches!(a.cell, CellKind::Lstm { .. });
    let state_inputs: &[usize] = if is_lstm { &[5, 6] } else { &[5] };
    for &k in state_inputs {
        if info.has_input(k) && (info.in_shape(k)? != state || info.in_dtype(k)? != DType::F32) {
            return Err(info.err(format!("input {k} must be f32{state:?}")));
        }
    }
    let pv = if is_lstm && info.has_input(7) {
        match info.const_f32s(7) {
            Some(v) if v.len() == nd * 3 * h => Some(v),
            Some(_) => return Err(info.err("p has the wrong size")),
            None => return Ok(needs_constants(&[1, 2, 3, 7], "p is not a constant")),
        }
    } else {
        None
    };
    if (0..info.num_outputs()).any(|k| info.out_dtype(k).ok() != Some(DType::F32)) {
        return fallback("outputs are not f32");
    }
    // Projections: packed weights and folded biases per direction.
    let mut projs: Vec<Proj> = Vec::new();
    let mut dest = 0;
    for l in layout(a.cell, h, quantized) {
        let n = l.rows.len();
        let rows_pad = n.next_multiple_of(ROWS);
        let k_all: usize = l
            .segs
            .iter()
            .map(|&s| if s == Src::X { i } else { h })
            .sum();
        let (mut w, mut bias) = (Vec::with_capacity(nd), Vec::with_capacity(nd));
        let mut row_scales = Vec::new();
        for d in 0..nd {
            // Blocks of ROWS gate rows; within a block k-major: packed[blk][k][row] (f32, or centered
            // i32 for quantized weights, whose projection has one source).
            let mut pf = vec![0f32; rows_pad * k_all];
            let mut pi = vec![0i32; rows_pad * k_all];
            let mut rs = vec![0f32; rows_pad];
            for (local, row) in l.rows.clone().enumerate() {
                let (blk, lane) = (local / ROWS, local % ROWS);
                let mut k = 0;
                for &src in &l.segs {
                    let (m, cols) = if src == Src::X { (&wv, i) } else { (&rv, h) };
                    for c in 0..cols {
                        let at = (blk * k_all + k) * ROWS + lane;
                        match m {
                            Mat::F32(v) => pf[at] = v[(d * g + row) * cols + c],
                            Mat::Quant {
                                centered,
                                row_scale,
                            } => {
                                pi[at] = centered[(d * g + row) * cols + c];
                                rs[local] = row_scale[d * g + row];
                            }
                        }
                        k += 1;
                    }
                }
            }
            if quantized {
                // Centered 8-bit values lie in [−255, 255]: stored as i16 (half the bytes of i32 to
                // stream every step), sign-extended when loaded.
                let bytes: Vec<u8> = pi.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect();
                w.push(wts.add_bytes(&bytes));
                row_scales.push(wts.add_f32(&rs));
            } else {
                w.push(wts.add_f32(&pf));
            }
            let mut bb = vec![0f32; rows_pad];
            if let Some(bv) = &bv {
                for (local, row) in l.rows.clone().enumerate() {
                    let wb = if l.wb { bv[d * 2 * g + row] } else { 0.0 };
                    let rb = if l.rb { bv[d * 2 * g + g + row] } else { 0.0 };
                    bb[local] = wb + rb;
                }
            }
            bias.push(wts.add_f32(&bb));
        }
        // An accumulating projection writes where the previous one did.
        let at = match (l.accumulate, projs.last()) {
            (true, Some(prev)) => prev.dest,
            _ => dest,
        };
        projs.push(Proj {
            w,
            bias,
            rows_pad,
            segs: l.segs,
            dest: at,
            row_scales: quantized.then_some(row_scales),
            accumulate: l.accumulate,
        });
        if !l.accumulate {
            dest += rows_pad;
        }
    }
    let gates_len = dest;
    let gate_off = match a.cell {
        CellKind::Lstm { .. } => (0..4).map(|k| k * h).collect(),
        CellKind::Rnn => vec![0],
        CellKind::Gru { .. } => vec![0, h, projs[1].dest, projs[2].dest],
    };
    let peep = (0..nd)
        .map(|d| {
            pv.as_ref()
                .map(|pv| wts.add_f32(&pv[d * 3 * h..(d + 1) * 3 * h]))
        })
        .collect();
    let hp = h.next_multiple_of(4);
    // Quantized sources: x_t and h as centered i32 (after the gates).
    let qscratch = if quantized {
        i.next_multiple_of(4) + hp
    } else {
        0
    };
    let stack = (3 * hp + gates_len + qscratch) * 4;
    if stack > MAX_STACK {
        return fallback(format!(
            "state of {stack} bytes exceeds the kernel's stack budget"
        ));
    }
    // W, R, B and P live in the packed blob only.
    for k in [1, 2, 3, 7] {
        wts.baked(info, k);
    }
    let macs = s * (g * i + g * h);
    let spec = Spec {
        s,
        b,
        i,
        h,
        nd,
        cell: a.cell,
        reverse: a.direction == Direction::Reverse,
        batch_first: a.batch_first,
        clip: a.clip,
        acts,
        projs,
        gate_off,
        gates_len,
        quantized,
        peep,
        has_h0: info.has_input(5),
        has_c0: is_lstm && info.has_input(6),
        lens,
        n_out: info.num_outputs(),
    };
    let seqs = nd * b;
    let tiles = if seqs >= 2 && macs >= TILE_MACS {
        seqs
    } else {
        1
    };
    Ok(kernel::lowering(spec, tiles, stack))
}
