//! Importers for ONNX LSTM, GRU and RNN (see `carve_ir::ops::rnn`): attributes become typed fields,
//! activation lists are resolved per direction with explicit alpha/beta (ONNX hands the alpha/beta
//! values to the functions that take them, in order), and a list equal to the defaults is dropped.
//!
//! ONNX Runtime's `com.microsoft` DynamicQuantizeLSTM is `lstm` over 8-bit quantized weights (see
//! [`carve_ir::ops::rnn`]): its constant `W [D, I, 4H]` and `R [D, H, 4H]` are transposed to ONNX
//! LSTM's `[D, 4H, I]` / `[D, 4H, H]` layout and carry their scales and zero points in their types.

use carve_ir::ops::rnn::{
    ActKind, Direction, GRU_ACTIVATIONS, Gru, LSTM_ACTIVATIONS, Lstm, RNN_ACTIVATIONS, Rnn,
};

use carve_ir::{
    Buffer, ConstData, ConstFormat, Constant, DType, Quant, QuantAxis, TensorType, ValueId,
};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    OpImporter {
        domain: "ai.onnx",
        op_type: "LSTM",
        import: lstm,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "GRU",
        import: gru,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "RNN",
        import: rnn,
    },
    OpImporter {
        domain: "com.microsoft",
        op_type: "DynamicQuantizeLSTM",
        import: dynamic_quantize_lstm,
    },
];

/// The attributes all three share.
struct Common {
    hidden_size: Option<i64>,
    direction: Direction,
    activations: Vec<ActKind>,
    alpha: Vec<f32>,
    beta: Vec<f32>,
    clip: Option<f32>,
    batch_first: bool,
}

fn common(cx: &NodeCtx, defaults: &[ActKind]) -> Result<Common, ImportError> {
    let direction = match cx.s("direction", "forward")?.as_str() {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" => Direction::Bidirectional,
        other => {
            return Err(cx.err(format!(
                "unknown direction '{other}' (expected forward, reverse or bidirectional)"
            )));
        }
    };
    let nd = direction.count() as usize;
    let (activations, alpha, beta) = activations(cx, defaults, nd)?;
    let batch_first = match cx.i("layout", 0)? {
        0 => false,
        1 => true,
        v => return Err(cx.err(format!("layout must be 0 or 1, got {v}"))),
    };
    Ok(Common {
        hidden_size: cx.get_i("hidden_size")?,
        direction,
        activations,
        alpha,
        beta,
        clip: cx.get_f("clip")?,
        batch_first,
    })
}

type Acts = (Vec<ActKind>, Vec<f32>, Vec<f32>);

/// Resolves `activations`, `activation_alpha` and `activation_beta` into one entry per function per
/// direction; returns empty lists when the result equals the defaults.
fn activations(cx: &NodeCtx, defaults: &[ActKind], nd: usize) -> Result<Acts, ImportError> {
    let per_dir = defaults.len();
    let kinds: Vec<ActKind> = match cx.get_strings("activations")? {
        None => defaults
            .iter()
            .copied()
            .cycle()
            .take(per_dir * nd)
            .collect(),
        Some(names) => {
            let mut kinds = names
                .iter()
                .map(|n| {
                    ActKind::from_onnx(n)
                        .ok_or_else(|| cx.err(format!("unsupported activation function '{n}'")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // A bidirectional node listing one direction's functions uses them for both.
            if nd == 2 && kinds.len() == per_dir {
                kinds.extend_from_within(..);
            }
            if kinds.len() != per_dir * nd {
                return Err(cx.err(format!(
                    "activations lists {} functions, expected {} ({per_dir} per direction)",
                    names.len(),
                    per_dir * nd
                )));
            }
            kinds
        }
    };
    let mut alphas = cx
        .get_floats("activation_alpha")?
        .unwrap_or_default()
        .into_iter();
    let mut betas = cx
        .get_floats("activation_beta")?
        .unwrap_or_default()
        .into_iter();
    let mut alpha = Vec::with_capacity(kinds.len());
    let mut beta = Vec::with_capacity(kinds.len());
    for k in &kinds {
        let (da, db) = k.default_params();
        alpha.push(if k.uses_alpha() {
            alphas.next().unwrap_or(da)
        } else {
            da
        });
        beta.push(if k.uses_beta() {
            betas.next().unwrap_or(db)
        } else {
            db
        });
    }
    let is_default = kinds
        .iter()
        .zip(defaults.iter().cycle())
        .zip(alpha.iter().zip(&beta))
        .all(|((k, d), (a, b))| k == d && (*a, *b) == d.default_params());
    if is_default {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    Ok((kinds, alpha, beta))
}

fn lstm_op(cx: &NodeCtx) -> Result<Lstm, ImportError> {
    let c = common(cx, &LSTM_ACTIVATIONS)?;
    Ok(Lstm {
        hidden_size: c.hidden_size,
        direction: c.direction,
        activations: c.activations,
        activation_alpha: c.alpha,
        activation_beta: c.beta,
        clip: c.clip,
        batch_first: c.batch_first,
        input_forget: cx.bool("input_forget", false)?,
    })
}

fn lstm(cx: &mut NodeCtx) -> Res {
    let op = lstm_op(cx)?;
    cx.simple(op)
}

/// DynamicQuantizeLSTM: inputs `X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?, W_scale,
/// W_zero_point, R_scale, R_zero_point`; `lstm` with the weights retyped ([`quantized_weight`]).
fn dynamic_quantize_lstm(cx: &mut NodeCtx) -> Res {
    let op = lstm_op(cx)?;
    let w = quantized_weight(cx, 1, 8, 9, "W")?;
    let r = quantized_weight(cx, 2, 10, 11, "R")?;
    let mut inputs = vec![cx.input(0), Some(w), Some(r)];
    inputs.extend((3..8).map(|i| cx.input(i)));
    while inputs.last() == Some(&None) {
        inputs.pop();
    }
    let n = cx.num_outputs();
    cx.emit(op, inputs, n)
}

/// Weight input `i` (an 8-bit constant `[D, K, 4H]`) as a constant `[D, 4H, K]` whose type carries the
/// scales (input `s`) and zero points (input `z`): per tensor, or — with one direction — one per gate row.
fn quantized_weight(
    cx: &mut NodeCtx,
    i: usize,
    s: usize,
    z: usize,
    name: &str,
) -> Result<ValueId, ImportError> {
    let v = cx
        .input(i)
        .ok_or_else(|| cx.err(format!("{name} (input {i}) is required")))?;
    let c = cx.const_of(v).ok_or_else(|| {
        cx.err(format!(
            "{name} (input {i}) must be a constant (computed quantized weights are not supported)"
        ))
    })?;
    let dtype = c.ty.dtype;
    let dims = c.ty.shape.as_ref().and_then(|s| s.as_known());
    let (Some([d, k, n]), true) = (
        dims.as_deref().and_then(|d| <[u64; 3]>::try_from(d).ok()),
        matches!(dtype, DType::I8 | DType::U8),
    ) else {
        return Err(cx.err(format!(
            "{name} (input {i}) must be an 8-bit [directions, inputs, 4*hidden] tensor, got {}",
            c.ty
        )));
    };
    let (ConstFormat::Dense, ConstData::Bytes(bytes)) = (&c.format, &c.data) else {
        return Err(cx.err(format!("{name} (input {i}) has no dense data")));
    };
    let (d, k, n) = (d as usize, k as usize, n as usize);
    let src = bytes.as_bytes();
    let mut t = vec![0u8; src.len()];
    for di in 0..d {
        let (from, to) = (&src[di * k * n..][..k * n], &mut t[di * k * n..][..k * n]);
        for a in 0..k {
            for b in 0..n {
                to[b * k + a] = from[a * n + b];
            }
        }
    }
    let param = |j: usize, what: &str| -> Result<Vec<f64>, ImportError> {
        cx.input(j)
            .and_then(|v| cx.const_of(v))
            .and_then(Constant::to_f64s)
            .ok_or_else(|| cx.err(format!("{name}'s {what} (input {j}) must be a constant")))
    };
    let scale: Vec<f32> = param(s, "scale")?.into_iter().map(|v| v as f32).collect();
    let zp: Vec<i64> = param(z, "zero point")?
        .into_iter()
        .map(|v| v as i64)
        .collect();
    let axis = match (scale.len(), zp.len()) {
        (1, 1) => QuantAxis::PerTensor,
        (m, _) if d == 1 && m == n && (zp.len() == 1 || zp.len() == n) => {
            QuantAxis::PerAxis { axis: 1 }
        }
        _ => {
            return Err(cx.err(format!(
                "{name}: {} scales and {} zero points for {d} direction(s) of {n} gate rows \
                 (supported: one of each, or one per gate row with one direction)",
                scale.len(),
                zp.len()
            )));
        }
    };
    let zero_point = if axis != QuantAxis::PerTensor && zp.len() == 1 {
        vec![zp[0]; n]
    } else {
        zp
    };
    let mut ty = TensorType::known(dtype, &[d as u64, n as u64, k as u64]);
    ty.quant = Some(Box::new(Quant {
        axis,
        scale,
        zero_point,
    }));
    let c = Constant::dense(ty, Buffer::from_vec(t)).map_err(|e| cx.err(e))?;
    Ok(cx.constant(c))
}

fn gru(cx: &mut NodeCtx) -> Res {
    let c = common(cx, &GRU_ACTIVATIONS)?;
    let op = Gru {
        hidden_size: c.hidden_size,
        direction: c.direction,
        activations: c.activations,
        activation_alpha: c.alpha,
        activation_beta: c.beta,
        clip: c.clip,
        batch_first: c.batch_first,
        linear_before_reset: cx.bool("linear_before_reset", false)?,
    };
    cx.simple(op)
}

fn rnn(cx: &mut NodeCtx) -> Res {
    let c = common(cx, &RNN_ACTIVATIONS)?;
    let op = Rnn {
        hidden_size: c.hidden_size,
        direction: c.direction,
        activations: c.activations,
        activation_alpha: c.alpha,
        activation_beta: c.beta,
        clip: c.clip,
        batch_first: c.batch_first,
    };
    cx.simple(op)
}

#[cfg(test)]
mod tests {
    use carve_ir::Op;
    use carve_ir::ops::rnn::{ActKind, Direction, RnnOp};

    use super::super::conv::testutil::*;

    const F32: i32 = 1;

    /// x[S,B,3], w/r for hidden size 2 with `dirs` directions and `gates` gates.
    fn inputs(dirs: i64, gates: i64) -> Vec<(String, i32, Vec<i64>)> {
        vec![
            ("x".into(), F32, vec![-1, -1, 3]),
            ("w".into(), F32, vec![dirs, gates * 2, 3]),
            ("r".into(), F32, vec![dirs, gates * 2, 2]),
        ]
    }

    fn run(
        op: &str,
        attrs: Vec<crate::proto::AttributeProto>,
        dirs: i64,
        gates: i64,
        outputs: &[&str],
    ) -> Result<carve_ir::Graph, String> {
        let ins = inputs(dirs, gates);
        let ins: Vec<Input> = ins
            .iter()
            .map(|(n, e, d)| (n.as_str(), *e, d.as_slice()))
            .collect();
        import(14, op, attrs, &ins, &["x", "w", "r"], outputs)
    }

    #[test]
    fn default_activations_are_left_implicit() {
        let attrs = vec![strings("activations", &["Sigmoid", "Tanh", "Tanh"])];
        let g = run("LSTM", attrs, 1, 4, &["y", "yh", "yc"]).unwrap();
        assert!(matches!(first_op(&g), Op::Rnn(RnnOp::Lstm(l)) if l.activations.is_empty()));
        assert_eq!(
            output_types(&g),
            ["f32[d0,1,d1,2]", "f32[1,d1,2]", "f32[1,d1,2]"]
        );
    }

    #[test]
    fn alphas_and_betas_go_to_the_functions_that_take_them() {
        let attrs = vec![
            strings("activations", &["LeakyRelu", "Tanh", "HardSigmoid", "Tanh"]),
            string("direction", "bidirectional"),
            floats("activation_alpha", &[0.1, 0.3]),
            floats("activation_beta", &[0.6]),
        ];
        let g = run("GRU", attrs, 2, 3, &["", "yh"]).unwrap();
        let Op::Rnn(RnnOp::Gru(op)) = first_op(&g) else {
            panic!("expected a gru");
        };
        assert_eq!(op.direction, Direction::Bidirectional);
        assert_eq!(
            op.activations,
            [
                ActKind::LeakyRelu,
                ActKind::Tanh,
                ActKind::HardSigmoid,
                ActKind::Tanh
            ]
        );
        assert_eq!(op.activation_alpha, [0.1, 0.0, 0.3, 0.0]);
        assert_eq!(op.activation_beta, [0.0, 0.0, 0.6, 0.0]);
        assert_eq!(output_types(&g), ["f32[2,d1,2]"]);
    }

    #[test]
    fn one_direction_of_activations_serves_both() {
        let attrs = vec![
            strings("activations", &["Relu"]),
            string("direction", "bidirectional"),
        ];
        let g = run("RNN", attrs, 2, 1, &["y"]).unwrap();
        assert!(matches!(first_op(&g), Op::Rnn(RnnOp::Rnn(r))
            if r.activations == [ActKind::Relu, ActKind::Relu]));
    }

    #[test]
    fn bad_attributes_are_reported() {
        let e = run("RNN", vec![strings("activations", &["Gelu"])], 1, 1, &["y"]).unwrap_err();
        assert!(e.contains("Gelu"), "{e}");
        let e = run("RNN", vec![string("direction", "both")], 1, 1, &["y"]).unwrap_err();
        assert!(e.contains("direction"), "{e}");
        let e = run("LSTM", vec![int("layout", 2)], 1, 4, &["y"]).unwrap_err();
        assert!(e.contains("layout"), "{e}");
    }
}
