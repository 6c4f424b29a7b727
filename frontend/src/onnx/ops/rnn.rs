//! Importers for ONNX LSTM, GRU and RNN (see `carve_ir::ops::rnn`): attributes become typed fields,
//! activation lists are resolved per direction with explicit alpha/beta (ONNX hands the alpha/beta
//! values to the functions that take them, in order), and a list equal to the defaults is dropped.

use carve_ir::ValueId;
use carve_ir::ops::rnn::{
    Activation, Direction, GRU_ACTIVATIONS, Gru, LSTM_ACTIVATIONS, Lstm, RNN_ACTIVATIONS, Rnn,
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
];

/// The attributes all three share.
struct Common {
    hidden_size: Option<i64>,
    direction: Direction,
    activations: Vec<Activation>,
    alpha: Vec<f32>,
    beta: Vec<f32>,
    clip: Option<f32>,
    batch_first: bool,
}

fn common(cx: &NodeCtx, defaults: &[Activation]) -> Result<Common, ImportError> {
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

type Acts = (Vec<Activation>, Vec<f32>, Vec<f32>);

/// Resolves `activations`, `activation_alpha` and `activation_beta` into one entry per function per
/// direction; returns empty lists when the result equals the defaults.
fn activations(cx: &NodeCtx, defaults: &[Activation], nd: usize) -> Result<Acts, ImportError> {
    let per_dir = defaults.len();
    let kinds: Vec<Activation> = match cx.get_strings("activations")? {
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
                    Activation::from_onnx(n)
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

fn lstm(cx: &mut NodeCtx) -> Res {
    let c = common(cx, &LSTM_ACTIVATIONS)?;
    let op = Lstm {
        hidden_size: c.hidden_size,
        direction: c.direction,
        activations: c.activations,
        activation_alpha: c.alpha,
        activation_beta: c.beta,
        clip: c.clip,
        batch_first: c.batch_first,
        input_forget: cx.bool("input_forget", false)?,
    };
    cx.simple(op)
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
