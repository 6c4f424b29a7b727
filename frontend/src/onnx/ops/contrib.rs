//! ONNX Runtime's `com.microsoft` fusion and transformer ops (the ones its transformer optimizer and
//! graph optimizations write into saved models), imported as compositions of ordinary IR ops with
//! the semantics of ORT's ContribOperators documentation:
//!
//! - `FastGelu(x, bias?)` = `gelu{approximate=tanh}(x + bias)`; `BiasGelu(a, b)` = `gelu(a + b)`;
//!   `BiasAdd(x, bias, skip)` = `x + bias + skip`;
//! - `SkipLayerNormalization(x, skip, gamma, beta?, bias?)` = `layer_norm(x + skip + bias)` over the
//!   last axis (outputs: the result, then — when listed — mean and 1/σ, then the sum
//!   `x + skip + bias`); `SkipSimplifiedLayerNormalization` the same with `rms_norm` (outputs: the
//!   result and the sum; the statistics outputs are refused); `SimplifiedLayerNormalization` =
//!   `rms_norm` (registered in both domains, as ORT does); `LayerNormalization` in this domain =
//!   ONNX's;
//! - `BiasAdd(x, bias, skip)` has no CPU kernel in ORT; its test reference is numpy's, per ORT's docs;
//! - `FusedMatMul(a, b)` = `alpha · op(a) @ op(b)` with `transA`/`transB` swapping the last two dims;
//! - `FusedGemm` = `gemm` followed by its activation; `FusedConv(x, w, b?, z?)` = `fused_conv` with the
//!   epilogue `[bias, residual z, activation]`;
//! - `Gelu` = ONNX's `gelu` (erf); `QuickGelu(x)` = `x · σ(alpha·x)` (alpha 1.702);
//! - `MatMulIntegerToFloat(a, b, a_scale, b_scale, a_zp?, b_zp?, bias?)` = `f32(matmul_integer(a, b,
//!   a_zp, b_zp)) · (a_scale · b_scale) + bias`; `DynamicQuantizeMatMul(a, b, b_scale, b_zp?, bias?)`
//!   first quantizes `a` with `dynamic_quantize_linear` (u8, scale and zero point from its range);
//! - `QGemm` = the exact i32 product of the (transposed) operands — `matmul` over quantized types
//!   when the scales and zero points are constants, else `matmul_integer` — plus the i32 `C`, times
//!   the f32 scale `alpha · a_scale · b_scale (/ y_scale)`, quantized when `y_zero_point` is given;
//! - `QLinearSigmoid` / `QLinearLeakyRelu(x, x_scale, x_zp?, y_scale, y_zp?)` = quantize(f(dequantize
//!   x)) with the output's scale and zero point; likewise `QLinearGlobalAveragePool`,
//!   `QLinearAveragePool` (channels first) and `QLinearConcat(y_scale, y_zp, (x, scale, zp)...)`.

use carve_ir::ops::activation::ActKind;
use carve_ir::ops::conv::{GlobalPool, PoolKind};
use carve_ir::ops::elementwise::{
    Add, Cast, Clip, Div, Gelu, GeluApprox, HardSigmoid, LeakyRelu, Mul, Relu, RoundMode, Sigmoid,
    Tanh,
};
use carve_ir::ops::fused::{Activation, EpiStep, Epilogue, FusedConv};
use carve_ir::ops::linalg::{Gemm, MatMul};
use carve_ir::ops::movement::{Concat, Transpose};
use carve_ir::ops::norm::{LayerNorm, RmsNorm};
use carve_ir::ops::quant::{
    DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, QuantizeLinear,
};
use carve_ir::{Constant, DType, Op, ValueId};

use super::OpImporter;
use super::conv::pool_attrs;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

const fn row(op_type: &'static str, import: crate::onnx::ctx::ImportFn) -> OpImporter {
    OpImporter {
        domain: "com.microsoft",
        op_type,
        import,
    }
}

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    row("FastGelu", |cx| {
        let x = add_optional(cx, cx.req(0)?, cx.input(1))?;
        let y = cx.emit1(
            Gelu {
                approximate: GeluApprox::Tanh,
            },
            vec![Some(x)],
        )?;
        Ok(vec![y])
    }),
    row("BiasGelu", |cx| {
        let x = add_optional(cx, cx.req(0)?, Some(cx.req(1)?))?;
        Ok(vec![cx.emit1(Gelu::default(), vec![Some(x)])?])
    }),
    row("BiasAdd", |cx| {
        let x = add_optional(cx, cx.req(0)?, Some(cx.req(1)?))?;
        Ok(vec![add_optional(cx, x, Some(cx.req(2)?))?])
    }),
    row("SkipLayerNormalization", |cx| skip_norm(cx, false)),
    row("SkipSimplifiedLayerNormalization", |cx| skip_norm(cx, true)),
    row("SimplifiedLayerNormalization", simplified_layer_norm),
    // ONNX Runtime registers it in the ONNX domain (since its opset 1).
    OpImporter {
        domain: "ai.onnx",
        op_type: "SimplifiedLayerNormalization",
        import: simplified_layer_norm,
    },
    row("LayerNormalization", |cx| {
        let op = LayerNorm {
            axis: cx.i("axis", -1)?,
            epsilon: cx.f("epsilon", 1e-5)?,
            stash_type: DType::F32,
        };
        let n = cx.num_outputs().max(1);
        let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?), cx.input(2)];
        cx.emit(op, inputs, n)
    }),
    row("Gelu", |cx| {
        Ok(vec![cx.emit1(Gelu::default(), vec![Some(cx.req(0)?)])?])
    }),
    row("QuickGelu", |cx| {
        let x = cx.req(0)?;
        let alpha = cx.f("alpha", 1.702)?;
        let a = cx.const_f32(&[], &[alpha]);
        let ax = cx.emit1(Mul {}, vec![Some(x), Some(a)])?;
        let s = cx.emit1(Sigmoid {}, vec![Some(ax)])?;
        Ok(vec![cx.emit1(Mul {}, vec![Some(x), Some(s)])?])
    }),
    row("MatMulIntegerToFloat", |cx| {
        let (a, b) = (cx.req(0)?, cx.req(1)?);
        let (sa, sb) = (cx.req(2)?, cx.req(3)?);
        let (za, zb, bias) = (cx.input(4), cx.input(5), cx.input(6));
        Ok(vec![integer_to_float(cx, [a, b, sa, sb], [za, zb, bias])?])
    }),
    row("DynamicQuantizeMatMul", |cx| {
        let (a, b, sb) = (cx.req(0)?, cx.req(1)?, cx.req(2)?);
        let (zb, bias) = (cx.input(3), cx.input(4));
        let q = cx.emit(DynamicQuantizeLinear {}, vec![Some(a)], 3)?;
        let [aq, sa, za] = q[..] else {
            return Err(cx.err("dynamic_quantize_linear gives three outputs"));
        };
        Ok(vec![integer_to_float(
            cx,
            [aq, b, sa, sb],
            [Some(za), zb, bias],
        )?])
    }),
    row("QLinearSigmoid", |cx| qlinear_unary(cx, Sigmoid {}.into())),
    row("QLinearLeakyRelu", |cx| {
        let alpha = cx.f("alpha", 0.01)?;
        qlinear_unary(cx, LeakyRelu { alpha }.into())
    }),
    row("QLinearConcat", qlinear_concat),
    row("QGemm", qgemm),
    row("QLinearGlobalAveragePool", |cx| {
        channels_first(cx)?;
        let x = dequantized(cx, 0)?;
        let op = GlobalPool {
            kind: PoolKind::Avg,
            p: 2,
        };
        let y = cx.emit1(op, vec![Some(x)])?;
        Ok(vec![requantized(cx, y, 3, cx.req(0)?)?])
    }),
    row("QLinearAveragePool", |cx| {
        channels_first(cx)?;
        let op = pool_attrs(cx, PoolKind::Avg)?;
        let x = dequantized(cx, 0)?;
        let y = cx.emit1(op, vec![Some(x)])?;
        Ok(vec![requantized(cx, y, 3, cx.req(0)?)?])
    }),
    row("FusedMatMul", fused_matmul),
    row("FusedGemm", fused_gemm),
    row("FusedConv", fused_conv),
];

/// `f32(matmul_integer(a, b, a_zp, b_zp)) · (a_scale · b_scale) + bias`.
fn integer_to_float(
    cx: &mut NodeCtx,
    [a, b, sa, sb]: [ValueId; 4],
    [za, zb, bias]: [Option<ValueId>; 3],
) -> Result<ValueId, ImportError> {
    let acc = cx.emit1(MatMulInteger {}, vec![Some(a), Some(b), za, zb])?;
    let f = to_f32(cx, acc)?;
    let scale = cx.emit1(Mul {}, vec![Some(sa), Some(sb)])?;
    let y = cx.emit1(Mul {}, vec![Some(f), Some(scale)])?;
    add_optional(cx, y, bias)
}

/// An i32 accumulator as f32 (ONNX Cast: to nearest, ties to even).
fn to_f32(cx: &mut NodeCtx, acc: ValueId) -> Result<ValueId, ImportError> {
    let cast = Cast {
        to: DType::F32,
        saturate: true,
        round_mode: RoundMode::Up,
    };
    cx.emit1(cast, vec![Some(acc)])
}

/// `quantize_linear(f(dequantize_linear(x, x_scale, x_zp)), y_scale, y_zp)` for inputs `x, x_scale,
/// x_zp?, y_scale, y_zp?` (per-tensor parameters).
fn qlinear_unary(cx: &mut NodeCtx, f: Op) -> Res {
    let x = dequantized(cx, 0)?;
    let y = cx.emit1(f, vec![Some(x)])?;
    Ok(vec![requantized(cx, y, 3, cx.req(0)?)?])
}

/// QGemm `(a, a_scale, a_zp, b, b_scale, b_zp, c?, y_scale?, y_zp?)` with `alpha`, `transA`,
/// `transB`, as ONNX Runtime computes it: the exact `i32` product `matmul_integer(op(a), op(b), a_zp,
/// b_zp)` plus `c` (i32, scale `a_scale · b_scale / alpha`), times the f32 output scale `alpha ·
/// a_scale · b_scale[n]` (`/ y_scale` when given, in that order); with `y_zp` the result is
/// quantized to `y_zp`'s type (`quantize_linear(·, 1, y_zp)`: round half to even, saturate), else it
/// is the f32 output. `a`'s scale and zero point are scalars; `b`'s scalars or one per column.
fn qgemm(cx: &mut NodeCtx) -> Res {
    for i in [1, 2] {
        scalar_param(cx, i)?;
    }
    let alpha = cx.f("alpha", 1.0)?;
    for i in [0, 3] {
        let t = cx.tensor_ty(i)?;
        if t.rank() != Some(2) {
            return Err(cx.err(format!("input {i} must be a matrix, got {t}")));
        }
    }
    let (trans_a, trans_b) = (cx.i("transA", 0)? != 0, cx.i("transB", 0)? != 0);
    // With constant scales and zero points the product is the ordinary `matmul` over quantized
    // types (the same exact i32 accumulator); otherwise `matmul_integer` with the zero points.
    let typed = super::quant::typed::qgemm_operands(cx, trans_b)?;
    let (a, b) = match typed {
        Some(ab) => ab,
        None => (cx.req(0)?, cx.req(3)?),
    };
    let mut operands = Vec::with_capacity(2);
    for (v, trans) in [(a, trans_a), (b, trans_b)] {
        operands.push(match trans {
            false => v,
            true => cx.emit1(swap_last(2), vec![Some(v)])?,
        });
    }
    let acc = match typed {
        Some(_) => cx.emit1(MatMul {}, vec![Some(operands[0]), Some(operands[1])])?,
        None => {
            let (za, zb) = (cx.input(2), cx.input(5));
            cx.emit1(
                MatMulInteger {},
                vec![Some(operands[0]), Some(operands[1]), za, zb],
            )?
        }
    };
    let acc = add_optional(cx, acc, cx.input(6))?;
    let f = to_f32(cx, acc)?;
    let mut scale = cx.req(1)?;
    if alpha != 1.0 {
        let a = cx.const_f32(&[], &[alpha]);
        scale = cx.emit1(Mul {}, vec![Some(a), Some(scale)])?;
    }
    scale = cx.emit1(Mul {}, vec![Some(scale), Some(cx.req(4)?)])?;
    let (ys, yz) = (cx.input(7), cx.input(8));
    if let Some(ys) = ys {
        scalar_param(cx, 7)?;
        scale = cx.emit1(Div {}, vec![Some(scale), Some(ys)])?;
    }
    let y = cx.emit1(Mul {}, vec![Some(f), Some(scale)])?;
    let Some(yz) = yz else {
        return Ok(vec![y]);
    };
    if ys.is_none() {
        return Err(cx.err("y_zero_point is given without y_scale"));
    }
    scalar_param(cx, 8)?;
    let one = cx.const_f32(&[], &[1.0]);
    let q = QuantizeLinear {
        axis: 1,
        block_size: 0,
        saturate: true,
        output_dtype: None,
        precision: None,
    };
    Ok(vec![cx.emit1(q, vec![Some(y), Some(one), Some(yz)])?])
}

/// Checks that scale or zero-point input `i`, when present, holds one element (a scalar or a
/// 1-element vector), as ONNX Runtime requires of it.
fn scalar_param(cx: &NodeCtx, i: usize) -> Result<(), ImportError> {
    if cx.input(i).is_none() {
        return Ok(());
    }
    let t = cx.tensor_ty(i)?;
    match t.shape.as_ref().and_then(|s| s.num_elements()) {
        Some(1) => Ok(()),
        _ => Err(cx.err(format!(
            "input {i} (a scale or zero point) must be a scalar or a 1-element vector, got {t}"
        ))),
    }
}

/// `dequantize_linear` of input `i` with the scale and zero point that follow it (inputs `i + 1`,
/// `i + 2`).
fn dequantized(cx: &mut NodeCtx, i: usize) -> Result<ValueId, ImportError> {
    let dq = DequantizeLinear {
        axis: 1,
        block_size: 0,
        output_dtype: None,
    };
    let inputs = vec![Some(cx.req(i)?), Some(cx.req(i + 1)?), cx.input(i + 2)];
    cx.emit1(dq, inputs)
}

/// `quantize_linear(y, input s, input s + 1)`; without a zero point the result has the type of
/// `like` (u8 or i8), not QuantizeLinear's default u8.
fn requantized(
    cx: &mut NodeCtx,
    y: ValueId,
    s: usize,
    like: ValueId,
) -> Result<ValueId, ImportError> {
    let (ys, yz) = (cx.req(s)?, cx.input(s + 1));
    let output_dtype = match yz {
        Some(_) => None,
        None => cx.ty(like).as_tensor().map(|t| t.dtype),
    };
    let q = QuantizeLinear {
        axis: 1,
        block_size: 0,
        saturate: true,
        output_dtype,
        precision: None,
    };
    cx.emit1(q, vec![Some(y), Some(ys), yz])
}

/// ORT's channels-first quantized pooling ops (`channels_last = 1` is refused with a clear error).
fn channels_first(cx: &NodeCtx) -> Result<(), ImportError> {
    match cx.i("channels_last", 0)? {
        0 => Ok(()),
        _ => Err(cx.err("channels_last = 1 is not supported (NHWC quantized pooling)")),
    }
}

/// QLinearConcat(y_scale, y_zp, (x, x_scale, x_zp)...): each input dequantized, concatenated along
/// `axis`, quantized with the output's parameters.
fn qlinear_concat(cx: &mut NodeCtx) -> Res {
    let n = cx.num_inputs();
    if n < 5 || !(n - 2).is_multiple_of(3) {
        return Err(cx.err(format!(
            "expected y_scale, y_zero_point and triples (x, scale, zero point), got {n} inputs"
        )));
    }
    let mut parts = Vec::new();
    for i in (2..n).step_by(3) {
        parts.push(Some(dequantized(cx, i)?));
    }
    let y = cx.emit1(
        Concat {
            axis: cx.i("axis", 0)?,
        },
        parts,
    )?;
    // The output's scale and zero point are inputs 0 and 1.
    Ok(vec![requantized(cx, y, 0, cx.req(2)?)?])
}

/// SimplifiedLayerNormalization(x, scale): `rms_norm` over axes `axis..`.
fn simplified_layer_norm(cx: &mut NodeCtx) -> Res {
    let op = RmsNorm {
        axis: cx.i("axis", -1)?,
        epsilon: cx.f("epsilon", 1e-5)?,
        stash_type: DType::F32,
    };
    if cx.output_used(1) {
        return Err(cx.err("the inv_std_var output is not supported"));
    }
    let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?)];
    cx.emit(op, inputs, 1)
}

/// `x + y` (just `x` when `y` is absent).
fn add_optional(cx: &mut NodeCtx, x: ValueId, y: Option<ValueId>) -> Result<ValueId, ImportError> {
    match y {
        Some(y) => cx.emit1(Add {}, vec![Some(x), Some(y)]),
        None => Ok(x),
    }
}

/// SkipLayerNormalization / SkipSimplifiedLayerNormalization: inputs `x, skip, gamma, beta?, bias?`
/// (the simplified form has no beta: `x, skip, gamma, bias?`).
fn skip_norm(cx: &mut NodeCtx, simplified: bool) -> Res {
    let epsilon = cx.f("epsilon", 1e-5)?;
    let bias_input = if simplified { 3 } else { 4 };
    let sum = add_optional(cx, cx.req(0)?, Some(cx.req(1)?))?;
    let sum = add_optional(cx, sum, cx.input(bias_input))?;
    let n = cx.num_outputs().max(1);
    // Outputs: 0 the result; LayerNorm: 1 mean, 2 inv_std_var, 3 the sum; simplified: 1 mean (not
    // produced by ORT's CPU kernel either), 2 inv_std_var, 3 the sum.
    let wants_stats = (1..n.min(3)).any(|k| cx.output_used(k));
    let y = if simplified {
        if wants_stats {
            return Err(cx.err("the mean / inv_std_var outputs are not supported"));
        }
        let op = RmsNorm {
            axis: -1,
            epsilon,
            stash_type: DType::F32,
        };
        vec![cx.emit1(op, vec![Some(sum), Some(cx.req(2)?)])?]
    } else {
        let op = LayerNorm {
            axis: -1,
            epsilon,
            stash_type: DType::F32,
        };
        let outs = if wants_stats { 3 } else { 1 };
        cx.emit(op, vec![Some(sum), Some(cx.req(2)?), cx.input(3)], outs)?
    };
    let mut out = y;
    if n > 3 {
        // Placeholders for unlisted statistics are never read; reuse the result's id.
        while out.len() < 3 {
            out.push(out[0]);
        }
        out.push(sum);
    }
    out.truncate(n);
    Ok(out)
}

/// The last two axes swapped for a tensor of rank `rank` (≥ 2).
fn swap_last(rank: usize) -> Transpose {
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(rank - 2, rank - 1);
    Transpose { perm: Some(perm) }
}

/// FusedMatMul: `alpha · op(a) @ op(b)`.
fn fused_matmul(cx: &mut NodeCtx) -> Res {
    if cx.i("transBatchA", 0)? != 0 || cx.i("transBatchB", 0)? != 0 {
        return Err(cx.err("transBatchA / transBatchB are not supported"));
    }
    let alpha = cx.f("alpha", 1.0)?;
    let mut operands = Vec::with_capacity(2);
    for (i, attr) in [(0, "transA"), (1, "transB")] {
        let v = cx.req(i)?;
        if cx.i(attr, 0)? == 0 {
            operands.push(v);
            continue;
        }
        let rank = cx
            .tensor_ty(i)?
            .rank()
            .ok_or_else(|| cx.err(format!("{attr} needs input {i}'s rank to be known")))?;
        if rank < 2 {
            return Err(cx.err(format!("{attr} needs input {i} of rank >= 2, got {rank}")));
        }
        operands.push(cx.emit1(swap_last(rank), vec![Some(v)])?);
    }
    let y = cx.emit1(MatMul {}, vec![Some(operands[0]), Some(operands[1])])?;
    if alpha == 1.0 {
        return Ok(vec![y]);
    }
    let a = cx.constant(Constant::from_f32s(&[], &[alpha]));
    Ok(vec![cx.emit1(Mul {}, vec![Some(y), Some(a)])?])
}

/// The activation a fused op names (`activation`), with its parameters, as an epilogue step; `None`
/// when there is none.
fn activation(cx: &NodeCtx, params: &[f32]) -> Result<Option<EpiStep>, ImportError> {
    let Some(name) = cx.get_s("activation")? else {
        return Ok(None);
    };
    let p = |i: usize, default: f32| params.get(i).copied().unwrap_or(default);
    let step = match name.as_str() {
        "Relu" => EpiStep::Act(Activation::plain(ActKind::Relu)),
        "Tanh" => EpiStep::Act(Activation::plain(ActKind::Tanh)),
        "Sigmoid" => EpiStep::Act(Activation::plain(ActKind::Sigmoid)),
        "LeakyRelu" => EpiStep::Act(Activation::new(ActKind::LeakyRelu, p(0, 0.01), 0.0)),
        "HardSigmoid" => EpiStep::Act(Activation::new(ActKind::HardSigmoid, p(0, 0.2), p(1, 0.5))),
        "Clip" => EpiStep::Clamp {
            lo: p(0, f32::MIN),
            hi: p(1, f32::MAX),
        },
        other => {
            return Err(cx.err(format!(
                "unsupported activation '{other}' (supported: Relu, Tanh, Sigmoid, LeakyRelu, \
                 HardSigmoid, Clip)"
            )));
        }
    };
    Ok(Some(step))
}

/// `step` applied to `x` as an ordinary elementwise node.
fn apply_step(cx: &mut NodeCtx, x: ValueId, step: EpiStep) -> Result<ValueId, ImportError> {
    use ActKind as K;
    let op: Op = match step {
        EpiStep::Clamp { lo, hi } => {
            let lo = cx.constant(Constant::from_f32s(&[], &[lo]));
            let hi = cx.constant(Constant::from_f32s(&[], &[hi]));
            return cx.emit1(Clip {}, vec![Some(x), Some(lo), Some(hi)]);
        }
        EpiStep::Act(a) => match a.kind {
            K::Relu => Relu {}.into(),
            K::Tanh => Tanh {}.into(),
            K::Sigmoid => Sigmoid {}.into(),
            K::LeakyRelu => LeakyRelu { alpha: a.alpha }.into(),
            K::HardSigmoid => HardSigmoid {
                alpha: a.alpha,
                beta: a.beta,
            }
            .into(),
            other => return Err(cx.err(format!("no elementwise op for activation {other:?}"))),
        },
        other => return Err(cx.err(format!("{other} is not an activation"))),
    };
    cx.emit1(op, vec![Some(x)])
}

/// FusedGemm: `gemm` (ONNX attributes) then the activation (`activation_alpha`, `activation_beta`).
fn fused_gemm(cx: &mut NodeCtx) -> Res {
    let gemm = Gemm {
        alpha: cx.f("alpha", 1.0)?,
        beta: cx.f("beta", 1.0)?,
        trans_a: cx.i("transA", 0)? != 0,
        trans_b: cx.i("transB", 0)? != 0,
    };
    let params = [
        cx.f("activation_alpha", 0.01)?,
        cx.f("activation_beta", 0.5)?,
    ];
    // HardSigmoid's defaults differ from LeakyRelu's alpha.
    let params = match cx.get_s("activation")?.as_deref() {
        Some("HardSigmoid") => [cx.f("activation_alpha", 0.2)?, params[1]],
        _ => params,
    };
    let step = activation(cx, &params)?;
    let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?), cx.input(2)];
    let y = cx.emit1(gemm, inputs)?;
    Ok(vec![match step {
        Some(s) => apply_step(cx, y, s)?,
        None => y,
    }])
}

/// FusedConv: `fused_conv` with the epilogue `[bias?, residual z?, activation?]`.
fn fused_conv(cx: &mut NodeCtx) -> Res {
    let conv = super::conv::conv_attrs(cx)?;
    let params = cx.get_floats("activation_params")?.unwrap_or_default();
    let step = activation(cx, &params)?;
    let mut steps = Vec::new();
    let mut inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?)];
    if let Some(b) = cx.input(2) {
        steps.push(EpiStep::Bias);
        inputs.push(Some(b));
    }
    if let Some(z) = cx.input(3) {
        steps.push(EpiStep::Residual);
        inputs.push(Some(z));
    }
    steps.extend(step);
    Ok(vec![
        cx.emit1(FusedConv::new(&conv, Epilogue(steps)), inputs)?,
    ])
}
