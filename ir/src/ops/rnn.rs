//! Recurrent layers: `lstm`, `gru` and `rnn` (ONNX LSTM/GRU/RNN), each one op over the whole sequence
//! in one or both directions, with ONNX's gate layouts (`iofc` for LSTM, `zrh` for GRU) and optional
//! inputs/outputs.
//!
//! The three stay separate ops (their inputs, outputs and cell equations differ); they share the
//! attribute vocabulary below and one inference routine. Activation lists are typed: an empty
//! `activations` means the ONNX defaults (LSTM `sigmoid, tanh, tanh`; GRU `sigmoid, tanh`; RNN `tanh`, per
//! direction); otherwise it holds one entry per function per direction (forward first) and
//! `activation_alpha`/`activation_beta` hold one value per entry (the frontend resolves ONNX's
//! "consumed in order by the functions that take them" lists and fills in defaults).
//!
//! `lstm`'s `w` and `r` may be 8-bit integers with quantization in their types (per tensor, or per
//! gate row along dim 1): the op then has ONNX Runtime's DynamicQuantizeLSTM semantics — each
//! projection quantizes its float operand (the whole input sequence once, the hidden state at every
//! step) to `u8` with a scale and zero point from its range (including 0, as DynamicQuantizeLinear
//! does), multiplies in `i32` and scales the sums by the two scales' product.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError};
pub use crate::ops::activation::ActKind;
use crate::ops::{ChannelMap, NodeTypes, Work};
use crate::{DType, Dim, Shape, TensorType, Type};

crate::attr_enum! {
    /// Which way a recurrent layer runs over the sequence.
    pub enum Direction {
        /// First to last step.
        Forward = "forward",
        /// Last to first step.
        Reverse = "reverse",
        /// Both; outputs stack forward then reverse along the direction axis.
        Bidirectional = "bidirectional",
    }
}

impl Direction {
    /// Number of directions (1 or 2).
    pub fn count(self) -> u64 {
        match self {
            Direction::Bidirectional => 2,
            _ => 1,
        }
    }
}

define_ops! {
    /// Recurrent layers.
    pub enum RnnOp {
        /// LSTM `(x, w[D,4H,I], r[D,4H,H], b[D,8H]?, sequence_lens: i32[B]?, initial_h?, initial_c?,
        /// p[D,3H]?) -> (y?, y_h?, y_c?)`, gates `i, o, f, c`; activations `f, g, h` per direction.
        Lstm = "lstm" {
            /// Hidden size (`None`: from `r`).
            hidden_size: Option<i64> = None,
            /// Direction.
            direction: Direction = Direction::Forward,
            /// Activations (empty: ONNX defaults), see the module doc.
            activations: Vec<ActKind> = Vec::new(),
            /// One alpha per entry of `activations`.
            activation_alpha: Vec<f32> = Vec::new(),
            /// One beta per entry of `activations`.
            activation_beta: Vec<f32> = Vec::new(),
            /// Clip gate pre-activations to `[-clip, clip]`.
            clip: Option<f32> = None,
            /// Batch-major layout (ONNX `layout=1`): `x[B,S,I]`, `y[B,S,D,H]`, states `[B,D,H]`.
            batch_first: bool = false,
            /// Couple the input and forget gates.
            input_forget: bool = false,
        },
        /// GRU `(x, w[D,3H,I], r[D,3H,H], b[D,6H]?, sequence_lens: i32[B]?, initial_h?) -> (y?, y_h?)`,
        /// gates `z, r, h`; activations `f, g` per direction.
        Gru = "gru" {
            /// Hidden size (`None`: from `r`).
            hidden_size: Option<i64> = None,
            /// Direction.
            direction: Direction = Direction::Forward,
            /// Activations (empty: ONNX defaults), see the module doc.
            activations: Vec<ActKind> = Vec::new(),
            /// One alpha per entry of `activations`.
            activation_alpha: Vec<f32> = Vec::new(),
            /// One beta per entry of `activations`.
            activation_beta: Vec<f32> = Vec::new(),
            /// Clip gate pre-activations to `[-clip, clip]`.
            clip: Option<f32> = None,
            /// Batch-major layout (ONNX `layout=1`).
            batch_first: bool = false,
            /// Apply the reset gate after the recurrent linear transform.
            linear_before_reset: bool = false,
        },
        /// Simple RNN `(x, w[D,H,I], r[D,H,H], b[D,2H]?, sequence_lens: i32[B]?, initial_h?) ->
        /// (y?, y_h?)`; activation `f` per direction.
        Rnn = "rnn" {
            /// Hidden size (`None`: from `r`).
            hidden_size: Option<i64> = None,
            /// Direction.
            direction: Direction = Direction::Forward,
            /// Activations (empty: ONNX defaults), see the module doc.
            activations: Vec<ActKind> = Vec::new(),
            /// One alpha per entry of `activations`.
            activation_alpha: Vec<f32> = Vec::new(),
            /// One beta per entry of `activations`.
            activation_beta: Vec<f32> = Vec::new(),
            /// Clip pre-activations to `[-clip, clip]`.
            clip: Option<f32> = None,
            /// Batch-major layout (ONNX `layout=1`).
            batch_first: bool = false,
        },
    }
}

/// Which cell a recurrent op runs, with its cell-specific flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// LSTM (gates `i, o, f, c`).
    Lstm {
        /// Couple the input and forget gates (`f = 1 − i`).
        input_forget: bool,
    },
    /// GRU (gates `z, r, h`).
    Gru {
        /// Apply the reset gate after the recurrent projection of the candidate.
        linear_before_reset: bool,
    },
    /// Simple RNN (one gate).
    Rnn,
}

impl CellKind {
    /// Gates per cell: `w` and `r` have `gates · hidden_size` rows.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Lstm { .. } => 4,
            CellKind::Gru { .. } => 3,
            CellKind::Rnn => 1,
        }
    }

    /// The ONNX default activations of one direction (their count is the functions per direction).
    pub fn default_activations(self) -> &'static [ActKind] {
        match self {
            CellKind::Lstm { .. } => &LSTM_ACTIVATIONS,
            CellKind::Gru { .. } => &GRU_ACTIVATIONS,
            CellKind::Rnn => &RNN_ACTIVATIONS,
        }
    }
}

/// One view over `lstm`, `gru` and `rnn`: the cell and the attributes they share.
#[derive(Debug, Clone, Copy)]
pub struct Recurrent<'a> {
    /// The cell.
    pub cell: CellKind,
    /// Hidden size, when given.
    pub hidden_size: Option<i64>,
    /// Direction(s).
    pub direction: Direction,
    /// Activation functions (empty: the cell's defaults), per direction.
    pub activations: &'a [ActKind],
    /// One alpha per listed activation.
    pub alpha: &'a [f32],
    /// One beta per listed activation.
    pub beta: &'a [f32],
    /// Bound on the activations' inputs.
    pub clip: Option<f32>,
    /// `layout = 1` (batch-major inputs and outputs).
    pub batch_first: bool,
}

impl RnnOp {
    /// The op as a [`Recurrent`] view.
    pub fn recurrent(&self) -> Recurrent<'_> {
        match self {
            RnnOp::Lstm(o) => Recurrent {
                cell: CellKind::Lstm {
                    input_forget: o.input_forget,
                },
                hidden_size: o.hidden_size,
                direction: o.direction,
                activations: &o.activations,
                alpha: &o.activation_alpha,
                beta: &o.activation_beta,
                clip: o.clip,
                batch_first: o.batch_first,
            },
            RnnOp::Gru(o) => Recurrent {
                cell: CellKind::Gru {
                    linear_before_reset: o.linear_before_reset,
                },
                hidden_size: o.hidden_size,
                direction: o.direction,
                activations: &o.activations,
                alpha: &o.activation_alpha,
                beta: &o.activation_beta,
                clip: o.clip,
                batch_first: o.batch_first,
            },
            RnnOp::Rnn(o) => Recurrent {
                cell: CellKind::Rnn,
                hidden_size: o.hidden_size,
                direction: o.direction,
                activations: &o.activations,
                alpha: &o.activation_alpha,
                beta: &o.activation_beta,
                clip: o.clip,
                batch_first: o.batch_first,
            },
        }
    }

    /// Properties (see [`crate::ops::Props`]): pure, not elementwise.
    pub fn props(&self) -> crate::ops::Props {
        crate::ops::Props::NONE
    }

    /// Arithmetic (see [`Work`]): every time step of every sequence multiplies the input and the
    /// hidden state by `W` and `R` (multiply-accumulates), plus one operation per output element.
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        let steps = t.in_elems(0)? / t.in_dim(0, -1)?.max(1.0);
        let w = t.input(1).map_or(Some(0.0), |w| t.sizes.elems(w))?;
        let r = t.input(2).map_or(Some(0.0), |r| t.sizes.elems(r))?;
        Some(Work::mac(steps * (w + r), t.out_elems()?))
    }

    /// Channel map (see [`ChannelMap`]): opaque (gates interleave the hidden channels).
    pub fn channels(&self, _t: &NodeTypes) -> ChannelMap {
        ChannelMap::Opaque
    }
}

/// Default activations of one direction of an LSTM.
pub const LSTM_ACTIVATIONS: [ActKind; 3] = [ActKind::Sigmoid, ActKind::Tanh, ActKind::Tanh];
/// Default activations of one direction of a GRU.
pub const GRU_ACTIVATIONS: [ActKind; 2] = [ActKind::Sigmoid, ActKind::Tanh];
/// Default activation of one direction of a simple RNN.
pub const RNN_ACTIVATIONS: [ActKind; 1] = [ActKind::Tanh];

/// The attributes every recurrent op shares, plus its cell's shape facts.
struct Cell<'a> {
    /// Gates per cell (4, 3, 1): `w` has `gates·H` rows.
    gates: u64,
    /// Activations per direction.
    funcs: usize,
    /// Number of optional outputs (3 for LSTM).
    max_outputs: usize,
    hidden_size: Option<i64>,
    direction: Direction,
    activations: &'a [ActKind],
    alpha: &'a [f32],
    beta: &'a [f32],
    clip: Option<f32>,
    batch_first: bool,
    /// `w` and `r` may be quantized 8-bit integers (LSTM).
    quantized_weights: bool,
}

/// True if input `i` (`w` or `r`) is an 8-bit integer tensor quantized per tensor or along dim 1.
fn quantized_weight(t: &TensorType) -> bool {
    matches!(t.dtype, DType::I8 | DType::U8)
        && t.quant.as_deref().is_some_and(|q| {
            matches!(
                q.axis,
                crate::QuantAxis::PerTensor | crate::QuantAxis::PerAxis { axis: 1 }
            )
        })
}

fn dim(t: &TensorType, i: usize) -> Dim {
    t.dims()
        .and_then(|d| d.get(i))
        .cloned()
        .unwrap_or(Dim::Unknown)
}

/// `d / n` when `d` is known (error if not divisible), else unknown.
fn div(cx: &InferCtx, what: &str, d: &Dim, n: u64) -> Result<Dim, InferError> {
    match d {
        Dim::Known(v) if v % n != 0 => {
            Err(cx.err(format!("{what} ({v}) must be a multiple of {n}")))
        }
        Dim::Known(v) => Ok(Dim::Known(v / n)),
        _ => Ok(Dim::Unknown),
    }
}

/// Accumulates several descriptions of one dim, erroring on the first conflict.
struct Agree<'c, 'a> {
    cx: &'c InferCtx<'a>,
    what: &'static str,
    dim: Dim,
    from: String,
}

impl<'c, 'a> Agree<'c, 'a> {
    fn new(cx: &'c InferCtx<'a>, what: &'static str) -> Self {
        Agree {
            cx,
            what,
            dim: Dim::Unknown,
            from: String::new(),
        }
    }

    fn add(&mut self, d: Dim, from: impl Into<String>) -> Result<(), InferError> {
        let from = from.into();
        if self.dim.conflicts(&d) {
            return Err(self.cx.err(format!(
                "{}: {} gives {}, {} gives {d}",
                self.what, self.from, self.dim, from
            )));
        }
        if matches!(self.dim, Dim::Unknown)
            || (matches!(self.dim, Dim::Sym(_)) && d.known().is_some())
        {
            self.dim = d;
            self.from = from;
        }
        Ok(())
    }
}

fn infer_recurrent(cell: &Cell, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(1)?;
    let r = cx.tensor(2)?;
    if !x.dtype.is_float() {
        return Err(cx.err(format!("expects a floating-point input, got {}", x.dtype)));
    }
    // Inputs: 0 x, 1 w, 2 r, 3 b, 4 sequence_lens, 5 initial_h, 6 initial_c (LSTM), 7 p (LSTM).
    let max_inputs = if cell.max_outputs == 3 { 8 } else { 6 };
    if cx.num_inputs() > max_inputs {
        return Err(cx.err(format!(
            "takes at most {max_inputs} inputs, got {}",
            cx.num_inputs()
        )));
    }
    if cx.num_outputs() > cell.max_outputs {
        return Err(cx.err(format!(
            "has at most {} outputs, the node has {}",
            cell.max_outputs,
            cx.num_outputs()
        )));
    }
    let ranks: [(usize, usize); 7] = [(0, 3), (1, 3), (2, 3), (3, 2), (4, 1), (5, 3), (6, 3)];
    for (i, want) in ranks.into_iter().chain([(7, 2)]) {
        let Some(t) = cx.opt_tensor(i)? else { continue };
        if i == 4 {
            if t.dtype != DType::I32 {
                return Err(cx.err(format!("sequence_lens must be i32, got {}", t.dtype)));
            }
        } else if (i == 1 || i == 2) && cell.quantized_weights && quantized_weight(t) {
            // ONNX Runtime's dynamically quantized LSTM (see the module doc).
        } else if t.dtype != x.dtype {
            return Err(cx.err(format!(
                "input {i} has element type {}, x has {}",
                t.dtype, x.dtype
            )));
        }
        if let Some(rank) = t.rank()
            && rank != want
        {
            return Err(cx.err(format!("input {i} must have rank {want}, got {rank}")));
        }
    }
    let nd = cell.direction.count();
    let per_dir = cell.funcs * nd as usize;
    if !cell.activations.is_empty() && cell.activations.len() != per_dir {
        return Err(cx.err(format!(
            "activations has {} entries, expected {per_dir} ({} per direction)",
            cell.activations.len(),
            cell.funcs
        )));
    }
    for (name, v) in [
        ("activation_alpha", cell.alpha),
        ("activation_beta", cell.beta),
    ] {
        if v.len() != cell.activations.len() {
            return Err(cx.err(format!(
                "{name} has {} values, expected one per activation ({})",
                v.len(),
                cell.activations.len()
            )));
        }
    }
    if let Some(c) = cell.clip
        && (c.is_nan() || c <= 0.0)
    {
        return Err(cx.err(format!("clip must be positive, got {c}")));
    }
    let (seq_ax, batch_ax) = if cell.batch_first { (1, 0) } else { (0, 1) };
    // State tensors: [D, B, H], or [B, D, H] batch-first.
    let (sd, sb) = if cell.batch_first { (1, 0) } else { (0, 1) };
    let state = |i: usize| cx.opt_tensor(i).ok().flatten();

    let mut hidden = Agree::new(cx, "hidden size");
    if let Some(h) = cell.hidden_size {
        if h <= 0 {
            return Err(cx.err(format!("hidden_size must be positive, got {h}")));
        }
        hidden.add(Dim::Known(h as u64), "hidden_size")?;
    }
    hidden.add(dim(r, 2), "r dim 2")?;
    hidden.add(div(cx, "w dim 1", &dim(w, 1), cell.gates)?, "w dim 1")?;
    hidden.add(div(cx, "r dim 1", &dim(r, 1), cell.gates)?, "r dim 1")?;
    if let Some(b) = state(3) {
        hidden.add(div(cx, "b dim 1", &dim(b, 1), 2 * cell.gates)?, "b dim 1")?;
    }
    for i in [5, 6] {
        if let Some(s) = state(i) {
            hidden.add(dim(s, 2), format!("input {i} dim 2"))?;
        }
    }
    if let Some(p) = state(7) {
        hidden.add(div(cx, "p dim 1", &dim(p, 1), 3)?, "p dim 1")?;
    }

    let mut dirs = Agree::new(cx, "number of directions");
    dirs.add(
        Dim::Known(nd),
        format!("direction={}", cell.direction.keyword()),
    )?;
    dirs.add(dim(w, 0), "w dim 0")?;
    dirs.add(dim(r, 0), "r dim 0")?;
    for i in [3, 7] {
        if let Some(t) = state(i) {
            dirs.add(dim(t, 0), format!("input {i} dim 0"))?;
        }
    }
    for i in [5, 6] {
        if let Some(s) = state(i) {
            dirs.add(dim(s, sd), format!("input {i} dim {sd}"))?;
        }
    }

    let mut batch = Agree::new(cx, "batch size");
    batch.add(dim(x, batch_ax), format!("x dim {batch_ax}"))?;
    if let Some(s) = state(4) {
        batch.add(dim(s, 0), "sequence_lens")?;
    }
    for i in [5, 6] {
        if let Some(s) = state(i) {
            batch.add(dim(s, sb), format!("input {i} dim {sb}"))?;
        }
    }

    let mut input = Agree::new(cx, "input size");
    input.add(dim(x, 2), "x dim 2")?;
    input.add(dim(w, 2), "w dim 2")?;

    let (h, b, s, d) = (hidden.dim, batch.dim, dim(x, seq_ax), Dim::Known(nd));
    let (y, yh) = if cell.batch_first {
        (vec![b.clone(), s, d.clone(), h.clone()], vec![b, d, h])
    } else {
        (vec![s, d.clone(), b.clone(), h.clone()], vec![d, b, h])
    };
    let t = |dims: Vec<Dim>| Type::Tensor(TensorType::new(x.dtype, Shape(dims)));
    Ok([t(y), t(yh.clone()), t(yh)]
        .into_iter()
        .take(cx.num_outputs())
        .collect())
}

/// Inference of the three ops from their [`Recurrent`] view.
fn infer_view(r: Recurrent, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
    let lstm = matches!(r.cell, CellKind::Lstm { .. });
    let cell = Cell {
        gates: r.cell.gates() as u64,
        funcs: r.cell.default_activations().len(),
        max_outputs: if lstm { 3 } else { 2 },
        hidden_size: r.hidden_size,
        direction: r.direction,
        activations: r.activations,
        alpha: r.alpha,
        beta: r.beta,
        clip: r.clip,
        batch_first: r.batch_first,
        quantized_weights: lstm,
    };
    infer_recurrent(&cell, cx)
}

impl Infer for Lstm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        infer_view(RnnOp::Lstm(self.clone()).recurrent(), cx)
    }
}

impl Infer for Gru {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        infer_view(RnnOp::Gru(self.clone()).recurrent(), cx)
    }
}

impl Infer for Rnn {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        infer_view(RnnOp::Rnn(self.clone()).recurrent(), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{AttrType, AttrValue};
    use crate::{Graph, Op, ValueId};

    fn k(v: u64) -> Dim {
        Dim::Known(v)
    }

    fn sym(s: &str) -> Dim {
        Dim::Sym(s.into())
    }

    fn input(g: &mut Graph, name: &str, dtype: DType, dims: Vec<Dim>) -> ValueId {
        g.add_input(name, Type::Tensor(TensorType::new(dtype, Shape(dims))))
    }

    fn run(
        g: &mut Graph,
        op: impl Into<Op>,
        inputs: Vec<Option<ValueId>>,
        n: usize,
    ) -> Result<Vec<String>, InferError> {
        let names = (0..n).map(|i| format!("o{i}")).collect();
        let outs = g.add_node("n", op.into(), inputs, names)?;
        Ok(outs.iter().map(|&o| g.ty(o).to_string()).collect())
    }

    /// x[S,B,I], w[D,G·H,I], r[D,G·H,H] for hidden size 5, input size 3.
    fn lstm_inputs(g: &mut Graph, d: u64, gates: u64) -> (ValueId, ValueId, ValueId) {
        let x = input(g, "x", DType::F32, vec![sym("S"), sym("B"), k(3)]);
        let w = input(g, "w", DType::F32, vec![k(d), k(gates * 5), k(3)]);
        let r = input(g, "r", DType::F32, vec![k(d), k(gates * 5), k(5)]);
        (x, w, r)
    }

    #[test]
    fn lstm_outputs_follow_layout_and_keep_symbolic_dims() {
        let mut g = Graph::new("t");
        let (x, w, r) = lstm_inputs(&mut g, 1, 4);
        assert_eq!(
            run(&mut g, Lstm::default(), vec![Some(x), Some(w), Some(r)], 3).unwrap(),
            ["f32[S,1,B,5]", "f32[1,B,5]", "f32[1,B,5]"]
        );
        let op = Lstm {
            batch_first: true,
            ..Lstm::default()
        };
        let xb = input(&mut g, "xb", DType::F32, vec![sym("B"), sym("S"), k(3)]);
        assert_eq!(
            run(&mut g, op, vec![Some(xb), Some(w), Some(r)], 2).unwrap(),
            ["f32[B,S,1,5]", "f32[B,1,5]"]
        );
    }

    #[test]
    fn bidirectional_gru_and_optional_inputs_refine_batch() {
        let mut g = Graph::new("t");
        let (x, w, r) = lstm_inputs(&mut g, 2, 3);
        let b = input(&mut g, "b", DType::F32, vec![k(2), k(30)]);
        let h0 = input(&mut g, "h0", DType::F32, vec![k(2), k(7), k(5)]);
        let op = Gru {
            direction: Direction::Bidirectional,
            linear_before_reset: true,
            ..Gru::default()
        };
        let ins = vec![Some(x), Some(w), Some(r), Some(b), None, Some(h0)];
        assert_eq!(
            run(&mut g, op, ins, 2).unwrap(),
            ["f32[S,2,7,5]", "f32[2,7,5]"]
        );
    }

    #[test]
    fn hidden_size_comes_from_weights_when_r_is_unranked() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![k(4), k(2), k(3)]);
        let w = input(&mut g, "w", DType::F32, vec![k(1), k(8), k(3)]);
        let r = g.add_input("r", Type::Tensor(TensorType::unranked(DType::F32)));
        assert_eq!(
            run(&mut g, Rnn::default(), vec![Some(x), Some(w), Some(r)], 2).unwrap(),
            ["f32[4,1,2,8]", "f32[1,2,8]"]
        );
    }

    #[test]
    fn recurrent_ops_reject_inconsistent_inputs() {
        let mut g = Graph::new("t");
        let (x, w, r) = lstm_inputs(&mut g, 1, 4);
        let ins = vec![Some(x), Some(w), Some(r)];
        // Bidirectional needs weights for two directions.
        let bi = Lstm {
            direction: Direction::Bidirectional,
            ..Lstm::default()
        };
        assert!(run(&mut g, bi, ins.clone(), 1).is_err());
        // hidden_size contradicting r.
        let hs = Lstm {
            hidden_size: Some(6),
            ..Lstm::default()
        };
        assert!(run(&mut g, hs, ins.clone(), 1).is_err());
        // GRU has 3 gates: 20 rows are not a multiple of 3.
        assert!(run(&mut g, Gru::default(), ins.clone(), 1).is_err());
        // Too many outputs.
        assert!(run(&mut g, Rnn::default(), ins.clone(), 3).is_err());
        // Activation list of the wrong length, alphas not matching it.
        let acts = Lstm {
            activations: vec![ActKind::Sigmoid],
            activation_alpha: vec![0.0],
            activation_beta: vec![0.0],
            ..Lstm::default()
        };
        assert!(run(&mut g, acts, ins.clone(), 1).is_err());
        let alphas = Lstm {
            activation_alpha: vec![1.0],
            ..Lstm::default()
        };
        assert!(run(&mut g, alphas, ins.clone(), 1).is_err());
        // sequence_lens must be i32.
        let sl = input(&mut g, "sl", DType::I64, vec![sym("B")]);
        let mut with_sl = ins.clone();
        with_sl.extend([None, Some(sl)]);
        assert!(run(&mut g, Lstm::default(), with_sl, 1).is_err());
        // Mixed float types.
        let wh = input(&mut g, "wh", DType::F16, vec![k(1), k(20), k(3)]);
        assert!(run(&mut g, Lstm::default(), vec![Some(x), Some(wh), Some(r)], 1).is_err());
    }

    #[test]
    fn activation_lists_round_trip_as_attributes() {
        let acts = vec![ActKind::HardSigmoid, ActKind::LeakyRelu];
        let v = acts.to_attr();
        assert_eq!(
            v,
            AttrValue::Strs(vec!["hard_sigmoid".into(), "leaky_relu".into()])
        );
        assert_eq!(Vec::<ActKind>::from_attr(v), Ok(acts));
        assert!(Vec::<ActKind>::from_attr(AttrValue::Strs(vec!["gelu".into()])).is_err());
        assert_eq!(ActKind::from_onnx("LeakyRelu"), Some(ActKind::LeakyRelu));
        assert_eq!(ActKind::from_onnx("Gelu"), None);
    }
}
