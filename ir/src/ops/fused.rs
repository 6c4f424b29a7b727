//! Fused ops: `fused_conv` and `fused_matmul`, the kernels the e-graph optimizer fuses epilogues
//! into (no ONNX importer produces them), and their **epilogue**: a short list of steps in one small
//! vocabulary ([`EpiStep`]: integer rescale, bias, per-channel scale, activation, residual add, clamp,
//! requantize to i8/u8) applied in order to every element of the product before it is stored.
//!
//! Contract (what codegen lowers and the interpreter defines):
//! - `fused_conv(x, w, e…)` is `conv(x, w)` with the same attributes; `fused_matmul(a, b, e…)` is ONNX
//!   MatMul (batched, broadcasting, 1-D operands promoted as usual). `Gemm` with `alpha = beta = 1`,
//!   no transposition of A and a 1-D bias maps to `fused_matmul` with a `bias` step.
//! - Then the epilogue steps run in order. Steps that read a tensor (`rescale`, `bias`, `scale`,
//!   `residual`) take the op's next inputs in list order, from input 2 on (so `[bias, relu, residual]`
//!   reads the bias from input 2 and the residual from input 3).
//! - **Integer products**: `fused_matmul(a, b, scale, a_zp, b_zp, e…)` with 8-bit (`u8`/`i8`) `a` and
//!   `b` is `matmul_integer(a, b, a_zp, b_zp)` — `(a − a_zp) @ (b − b_zp)` summed in i32 (wrapping) —
//!   and its epilogue must start with `rescale`, which reads three inputs: the f32 `scale` (one
//!   element, or one per output column: a `[N]` vector), then the zero points exactly as
//!   `matmul_integer` takes them (`a_zp` one element of `a`'s type, `b_zp` one or `N` of `b`'s; either
//!   may be absent, meaning 0). `rescale` gives `f64(acc) · scale[c]`; the later steps (bias,
//!   activation, residual, clamp, requant) then run as for a float product and the output is f32
//!   (or the requant type). So `[rescale, bias, gelu_erf]` is `gelu(dequantize_linear(
//!   matmul_integer(a, b, za, zb), scale) + bias)` in one kernel. `rescale` appears only there: first,
//!   and only on integer operands.
//! - The **channel axis** of a per-channel operand is axis 1 for `fused_conv` (NCHW) and the last axis
//!   for `fused_matmul`; a per-channel operand is a 1-D vector of that dim's length.
//! - `residual` adds a tensor of exactly the output's shape.
//! - `requant(u8, scale, zero_point)` (or `i8`) must be the last step: `saturate(round_half_even(y /
//!   scale) + zero_point)`; the output then has that element type with per-tensor quantization
//!   `(scale, zero_point)` in its type.
//!
//! Text form: the attribute `epilogue` is a list of step strings, e.g.
//! `{epilogue=["bias", "relu", "residual"]}`; an activation step is written as in
//! [`crate::ops::activation`] (`leaky_relu(0.1)`), `clamp(0.0, 6.0)`, `requant(u8, 0.5, 128)`.
//!
//! The semantics are the interpreter's (`carve_runtime::interp::fused`): the product, then every step
//! in f64, rounded once to the output element type.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, matmul_types};
pub use crate::ops::activation::{ActKind, Activation};
use crate::ops::activation::{parse_floats, split_call};
use crate::ops::conv::{AutoPad, Conv};
use crate::ops::{AttrType, AttrValue};
use crate::types::{Quant, QuantAxis};
use crate::{DType, TensorType, Type};

define_ops! {
    /// Fused ops produced by the e-graph optimizer.
    pub enum FusedOp {
        /// `epilogue(conv(x, w))` with conv's attributes.
        FusedConv = "fused_conv" {
            /// Number of channel groups.
            group: i64 = 1,
            /// Kernel spatial dims (empty: from `w`).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Strides per spatial axis (empty: all 1).
            strides: Vec<i64> = Vec::new(),
            /// Dilations per spatial axis (empty: all 1).
            dilations: Vec<i64> = Vec::new(),
            /// Explicit pads as for `conv`.
            pads: Vec<i64> = Vec::new(),
            /// Automatic padding.
            auto_pad: AutoPad = AutoPad::NotSet,
            /// The steps applied to the product.
            epilogue: Epilogue = Epilogue::default(),
        },
        /// `epilogue(matmul(a, b))`.
        FusedMatMul = "fused_matmul" {
            /// The steps applied to the product.
            epilogue: Epilogue = Epilogue::default(),
        },
    }
}

impl FusedConv {
    /// The fused op for `conv` with epilogue `epilogue`.
    pub fn new(conv: &Conv, epilogue: Epilogue) -> FusedConv {
        FusedConv {
            group: conv.group,
            kernel_shape: conv.kernel_shape.clone(),
            strides: conv.strides.clone(),
            dilations: conv.dilations.clone(),
            pads: conv.pads.clone(),
            auto_pad: conv.auto_pad,
            epilogue,
        }
    }

    /// The convolution part.
    pub fn conv(&self) -> Conv {
        Conv {
            group: self.group,
            kernel_shape: self.kernel_shape.clone(),
            strides: self.strides.clone(),
            dilations: self.dilations.clone(),
            pads: self.pads.clone(),
            auto_pad: self.auto_pad,
        }
    }

    /// The same op with another epilogue.
    pub fn with_epilogue(&self, epilogue: Epilogue) -> FusedConv {
        FusedConv::new(&self.conv(), epilogue)
    }
}

impl FusedMatMul {
    /// The fused op with epilogue `epilogue`.
    pub fn new(epilogue: Epilogue) -> FusedMatMul {
        FusedMatMul { epilogue }
    }
}

impl FusedOp {
    /// The epilogue of either fused op.
    pub fn epilogue(&self) -> &Epilogue {
        match self {
            FusedOp::FusedConv(o) => &o.epilogue,
            FusedOp::FusedMatMul(o) => &o.epilogue,
        }
    }

    /// Number of inputs of the product itself (the epilogue's operands follow them).
    pub const PRODUCT_INPUTS: usize = 2;
}

/// One step of an [`Epilogue`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EpiStep {
    /// `f64(acc) · scale[c]` of an integer product's i32 accumulator: reads three operands (the
    /// per-tensor or per-column f32 scale, `a`'s zero point, `b`'s zero point; the zero points may be
    /// absent). First step of an integer `fused_matmul` only.
    Rescale,
    /// `y + v[c]`: a per-channel vector (the next operand).
    Bias,
    /// `y · v[c]`: a per-channel vector (the next operand).
    Scale,
    /// An activation function.
    Act(Activation),
    /// `y + r`: a tensor of the output's shape (the next operand).
    Residual,
    /// `min(max(y, lo), hi)` (NaN stays NaN).
    Clamp {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `saturate(round_half_even(y / scale) + zero_point)` into `dtype` (`i8` or `u8`); last step only.
    Requant {
        /// `i8` or `u8`.
        dtype: DType,
        /// Quantization scale.
        scale: f32,
        /// Zero point.
        zero_point: i32,
    },
}

impl EpiStep {
    /// True if the step reads an operand (the op's next input).
    pub fn reads_operand(&self) -> bool {
        self.operands() > 0
    }

    /// Number of inputs the step reads (`rescale`: scale, `a`'s and `b`'s zero points).
    pub fn operands(&self) -> usize {
        match self {
            EpiStep::Rescale => 3,
            EpiStep::Bias | EpiStep::Scale | EpiStep::Residual => 1,
            _ => 0,
        }
    }

    /// Parses one step's text form (see the module doc).
    pub fn parse(s: &str) -> Result<EpiStep, String> {
        match s.trim() {
            "rescale" => return Ok(EpiStep::Rescale),
            "bias" => return Ok(EpiStep::Bias),
            "scale" => return Ok(EpiStep::Scale),
            "residual" => return Ok(EpiStep::Residual),
            _ => {}
        }
        if let Some(a) = Activation::parse(s) {
            return a.map(EpiStep::Act);
        }
        let (name, args) = split_call(s);
        let args = args?;
        match name {
            "clamp" => match parse_floats(args)?[..] {
                [lo, hi] => Ok(EpiStep::Clamp { lo, hi }),
                _ => Err(format!("'{s}': clamp takes two bounds")),
            },
            "requant" => {
                let parts: Vec<&str> = args.split(',').map(str::trim).collect();
                let [d, sc, zp] = parts[..] else {
                    return Err(format!("'{s}': requant takes (dtype, scale, zero_point)"));
                };
                let dtype = match d {
                    "i8" => DType::I8,
                    "u8" => DType::U8,
                    _ => return Err(format!("'{s}': requant to i8 or u8 only, got '{d}'")),
                };
                let scale = sc
                    .parse::<f32>()
                    .map_err(|e| format!("'{sc}' is not a float: {e}"))?;
                let zero_point = zp
                    .parse::<i32>()
                    .map_err(|e| format!("'{zp}' is not an integer: {e}"))?;
                Ok(EpiStep::Requant {
                    dtype,
                    scale,
                    zero_point,
                })
            }
            _ => Err(format!(
                "unknown epilogue step '{s}' (expected rescale, bias, scale, residual, clamp(lo, hi), \
                 requant(u8|i8, scale, zero_point) or an activation)"
            )),
        }
    }
}

/// `bias`, `relu`, `clamp(0.0, 6.0)`, `requant(u8, 0.5, 128)`.
impl std::fmt::Display for EpiStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EpiStep::Rescale => f.write_str("rescale"),
            EpiStep::Bias => f.write_str("bias"),
            EpiStep::Scale => f.write_str("scale"),
            EpiStep::Residual => f.write_str("residual"),
            EpiStep::Act(a) => write!(f, "{a}"),
            EpiStep::Clamp { lo, hi } => write!(f, "clamp({lo:?}, {hi:?})"),
            EpiStep::Requant {
                dtype,
                scale,
                zero_point,
            } => write!(f, "requant({dtype}, {scale:?}, {zero_point})"),
        }
    }
}

/// The steps a fused op applies to its product, in order (empty: none).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Epilogue(pub Vec<EpiStep>);

impl Epilogue {
    /// No steps.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The steps.
    pub fn steps(&self) -> &[EpiStep] {
        &self.0
    }

    /// The list with `step` appended.
    pub fn then(&self, step: EpiStep) -> Epilogue {
        let mut v = self.0.clone();
        v.push(step);
        Epilogue(v)
    }

    /// Number of operands the steps read.
    pub fn num_operands(&self) -> usize {
        self.0.iter().map(EpiStep::operands).sum()
    }

    /// The steps with the (first) input index each operand step reads (`None` for steps without
    /// one; `rescale` reads that input and the two after it).
    pub fn with_inputs(&self) -> Vec<(EpiStep, Option<usize>)> {
        let mut next = FusedOp::PRODUCT_INPUTS;
        self.0
            .iter()
            .map(|s| {
                if s.reads_operand() {
                    next += s.operands();
                    (*s, Some(next - s.operands()))
                } else {
                    (*s, None)
                }
            })
            .collect()
    }

    /// True if the list starts with `rescale` (an integer product's epilogue).
    pub fn is_integer(&self) -> bool {
        self.0.first() == Some(&EpiStep::Rescale)
    }

    /// The requantize step's target, if the list ends with one.
    pub fn requant(&self) -> Option<(DType, f32, i32)> {
        match self.0.last() {
            Some(EpiStep::Requant {
                dtype,
                scale,
                zero_point,
            }) => Some((*dtype, *scale, *zero_point)),
            _ => None,
        }
    }

    /// True if no step reads an operand and none is a requantize (a function of each element alone;
    /// `rescale` reads operands, so an integer epilogue is never pointwise).
    pub fn is_pointwise(&self) -> bool {
        self.0
            .iter()
            .all(|s| matches!(s, EpiStep::Act(_) | EpiStep::Clamp { .. }))
    }

    /// Checks the list against the op's operand count (`num_inputs`, product operands included).
    pub fn check(&self, num_inputs: usize) -> Result<(), String> {
        for (i, s) in self.0.iter().enumerate() {
            if *s == EpiStep::Rescale && i != 0 {
                return Err("rescale must be the first epilogue step".into());
            }
            if let EpiStep::Requant { dtype, .. } = s {
                if i + 1 != self.0.len() {
                    return Err("requant must be the last epilogue step".into());
                }
                if !matches!(dtype, DType::I8 | DType::U8) {
                    return Err(format!("requant to i8 or u8 only, got {dtype}"));
                }
            }
        }
        let want = FusedOp::PRODUCT_INPUTS + self.num_operands();
        // The zero points of a rescale that reads the last operands are optional trailing inputs.
        let last_reader = self.0.iter().rev().find(|s| s.reads_operand());
        let least = if last_reader == Some(&EpiStep::Rescale) {
            want - 2
        } else {
            want
        };
        if num_inputs < least || num_inputs > want {
            return Err(format!(
                "the epilogue [{self}] needs {want} inputs, the op has {num_inputs}"
            ));
        }
        Ok(())
    }
}

/// `bias, relu` (the steps joined by `, `).
impl std::fmt::Display for Epilogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// An epilogue is printed as a list of step strings.
impl AttrType for Epilogue {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Strs(self.0.iter().map(ToString::to_string).collect())
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Strs(s) => s
                .iter()
                .map(|t| EpiStep::parse(t))
                .collect::<Result<_, _>>()
                .map(Epilogue),
            AttrValue::Ints(i) if i.is_empty() => Ok(Epilogue::default()),
            o => Err(format!("expected a list of epilogue steps, got {o:?}")),
        }
    }
}

/// Checks the epilogue's operands (per-channel vectors, a residual of the output's shape) and gives
/// the output type.
fn infer_epilogue(
    cx: &InferCtx,
    epi: &Epilogue,
    dtype: DType,
    shape: Option<crate::Shape>,
    channel_axis: ChannelAxis,
) -> Result<Vec<Type>, InferError> {
    epi.check(cx.num_inputs()).map_err(|e| cx.err(e))?;
    let chan = shape.as_ref().and_then(|s| match channel_axis {
        ChannelAxis::One => s.0.get(1),
        ChannelAxis::Last => s.0.last(),
    });
    for (step, input) in epi.with_inputs() {
        let Some(k) = input else { continue };
        if step == EpiStep::Rescale {
            // Checked by the integer product's inference (`infer_rescale`).
            continue;
        }
        let t = cx.tensor(k)?;
        if t.dtype != dtype {
            return Err(cx.err(format!(
                "epilogue operand {k} ({step}) must have element type {dtype}, got {}",
                t.dtype
            )));
        }
        match step {
            EpiStep::Residual => {
                if let (Some(a), Some(b)) = (t.shape.as_ref(), shape.as_ref())
                    && (a.0.len() != b.0.len() || a.0.iter().zip(&b.0).any(|(p, q)| p.conflicts(q)))
                {
                    return Err(cx.err(format!(
                        "residual operand {k} must have the output's shape, got {t}"
                    )));
                }
            }
            _ => match (t.dims(), chan) {
                (Some([d]), Some(n)) if d.conflicts(n) => {
                    return Err(cx.err(format!(
                        "{step} operand {k} has {d} elements, the channel dim is {n}"
                    )));
                }
                (Some([_]), _) | (None, _) => {}
                (Some(_), _) => {
                    return Err(cx.err(format!(
                        "{step} operand {k} must be a 1-D per-channel vector, got {t}"
                    )));
                }
            },
        }
    }
    let (dtype, quant) = match epi.requant() {
        Some((d, scale, zp)) => (
            d,
            Some(Box::new(Quant {
                axis: QuantAxis::PerTensor,
                scale: vec![scale],
                zero_point: vec![i64::from(zp)],
            })),
        ),
        None => (dtype, None),
    };
    Ok(vec![Type::Tensor(TensorType {
        dtype,
        shape,
        quant,
    })])
}

/// Where a fused op's channels are.
#[derive(Clone, Copy)]
enum ChannelAxis {
    /// Axis 1 (NCHW convolution).
    One,
    /// The last axis (matmul).
    Last,
}

impl Infer for FusedConv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        if !x.dtype.is_float() {
            return Err(cx.err(format!("input 0 must be a float tensor, got {}", x.dtype)));
        }
        if self.epilogue.steps().contains(&EpiStep::Rescale) {
            return Err(cx.err("rescale is an integer fused_matmul's step only"));
        }
        // The convolution part sees only (x, w): input 2 on is the epilogue's.
        let inputs: Vec<_> = (0..FusedOp::PRODUCT_INPUTS)
            .map(|i| cx.input_id(i))
            .collect();
        let op = crate::Op::Conv(crate::ops::conv::ConvOp::Conv(self.conv()));
        let sub = InferCtx::new(cx.graph(), cx.node_name(), &op, &inputs, 1);
        let out = match self.conv().infer(&sub)?.into_iter().next() {
            Some(Type::Tensor(t)) => t.shape,
            _ => None,
        };
        infer_epilogue(cx, &self.epilogue, x.dtype, out, ChannelAxis::One)
    }
}

impl Infer for FusedMatMul {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let a = cx.tensor(0)?;
        let b = cx.tensor(1)?;
        if is_8bit(a.dtype) && is_8bit(b.dtype) {
            let shape = matmul_types(a, b).map_err(|e| cx.err(e))?;
            infer_rescale(cx, &self.epilogue, a.dtype, b.dtype, shape.as_ref())?;
            return infer_epilogue(cx, &self.epilogue, DType::F32, shape, ChannelAxis::Last);
        }
        if self.epilogue.steps().contains(&EpiStep::Rescale) {
            return Err(cx.err(format!(
                "rescale needs 8-bit integer operands, got {} and {}",
                a.dtype, b.dtype
            )));
        }
        if !a.dtype.is_float() || a.dtype != b.dtype {
            return Err(cx.err(format!(
                "inputs 0 and 1 must be float tensors of one element type, got {} and {}",
                a.dtype, b.dtype
            )));
        }
        let shape = matmul_types(a, b).map_err(|e| cx.err(e))?;
        infer_epilogue(cx, &self.epilogue, a.dtype, shape, ChannelAxis::Last)
    }
}

fn is_8bit(d: DType) -> bool {
    matches!(d, DType::U8 | DType::I8)
}

/// Checks an integer `fused_matmul`'s `rescale` operands (inputs 2–4): the f32 scale with one element
/// or one per column, `a`'s zero point (one element of `a`'s type) and `b`'s (one or one per column of
/// `b`'s type), the zero points optional.
fn infer_rescale(
    cx: &InferCtx,
    epi: &Epilogue,
    a: DType,
    b: DType,
    shape: Option<&crate::Shape>,
) -> Result<(), InferError> {
    if !epi.is_integer() {
        return Err(cx.err(format!(
            "an integer fused_matmul's epilogue must start with rescale, got [{epi}]"
        )));
    }
    let n = shape.and_then(|s| s.0.last()).and_then(|d| d.known());
    let k = FusedOp::PRODUCT_INPUTS;
    let elems = |t: &TensorType| {
        t.dims()
            .map(|d| d.iter().map(|x| x.known()).product::<Option<u64>>())
    };
    let check = |i: usize, what: &str, dtype: DType, per_col: bool| -> Result<(), InferError> {
        let Some(t) = cx.opt_tensor(i)? else {
            return Ok(());
        };
        if t.dtype != dtype {
            return Err(cx.err(format!(
                "rescale's {what} (input {i}) must have element type {dtype}, got {}",
                t.dtype
            )));
        }
        match elems(t).flatten() {
            Some(1) | None => Ok(()),
            Some(e) if per_col && t.rank() == Some(1) && n.is_none_or(|n| n == e) => Ok(()),
            Some(_) => Err(cx.err(format!(
                "rescale's {what} (input {i}) must have one element{}, got {t}",
                if per_col { " or one per column" } else { "" }
            ))),
        }
    };
    if cx.opt_tensor(k)?.is_none() {
        return Err(cx.err(format!("rescale's scale (input {k}) is missing")));
    }
    check(k, "scale", DType::F32, true)?;
    check(k + 1, "a zero point", a, false)?;
    check(k + 2, "b zero point", b, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::activation::ActKind;

    #[test]
    fn epilogue_text_round_trips() {
        let e = Epilogue(vec![
            EpiStep::Bias,
            EpiStep::Scale,
            EpiStep::Act(Activation::new(ActKind::LeakyRelu, 0.1, 0.0)),
            EpiStep::Residual,
            EpiStep::Clamp { lo: 0.0, hi: 6.0 },
            EpiStep::Requant {
                dtype: DType::U8,
                scale: 0.5,
                zero_point: 128,
            },
        ]);
        assert_eq!(
            e.to_string(),
            "bias, scale, leaky_relu(0.1), residual, clamp(0.0, 6.0), requant(u8, 0.5, 128)"
        );
        assert_eq!(Epilogue::from_attr(e.to_attr()), Ok(e.clone()));
        assert_eq!(
            e.with_inputs()
                .iter()
                .filter_map(|p| p.1)
                .collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(e.check(5).is_ok());
        assert!(e.check(4).is_err());
    }

    #[test]
    fn rescale_reads_three_inputs_and_must_come_first() {
        let e = Epilogue(vec![
            EpiStep::Rescale,
            EpiStep::Bias,
            EpiStep::Act(Activation::plain(ActKind::GeluErf)),
            EpiStep::Residual,
        ]);
        assert_eq!(e.to_string(), "rescale, bias, gelu_erf, residual");
        assert_eq!(Epilogue::from_attr(e.to_attr()), Ok(e.clone()));
        assert!(e.is_integer());
        assert_eq!(
            e.with_inputs()
                .iter()
                .filter_map(|p| p.1)
                .collect::<Vec<_>>(),
            [2, 5, 6]
        );
        assert!(e.check(7).is_ok());
        assert!(e.check(6).is_err());
        let late = Epilogue(vec![EpiStep::Bias, EpiStep::Rescale]);
        assert!(late.check(6).unwrap_err().contains("first"));
    }

    #[test]
    fn requant_must_end_the_list_and_unknown_steps_are_refused() {
        let e = Epilogue(vec![
            EpiStep::Requant {
                dtype: DType::I8,
                scale: 1.0,
                zero_point: 0,
            },
            EpiStep::Bias,
        ]);
        assert!(e.check(3).unwrap_err().contains("last"));
        assert!(EpiStep::parse("requant(f32, 1.0, 0)").is_err());
        assert!(EpiStep::parse("frobnicate").is_err());
        assert!(EpiStep::parse("clamp(1.0)").is_err());
    }
}
