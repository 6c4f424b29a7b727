//! Interpreter kernels for the elementwise op family (`carve_ir::ops::elementwise`): unary math and
//! activations ([`unary`]), broadcasting binary and variadic arithmetic, comparisons, logic, bitwise ops
//! and `where` ([`binary`]), `cast`/`bitcast` ([`cast`]), and the narrow-float encoders they share
//! ([`floats`]).
//!
//! Semantics follow ONNX's reference implementation (numpy): results keep the input's element type;
//! floats (f16, bf16, f32, f64 and the 8-/4-bit floats) are computed in f64 and rounded once into the
//! result type; integers are computed natively in i64/u64 and wrap to their width like numpy (so `i32`
//! overflow wraps, integer `div` truncates toward zero, `mod` without `fmod` takes the divisor's sign,
//! integer division or remainder by zero gives 0 as numpy does).

pub mod binary;
pub mod cast;
pub mod floats;
pub mod unary;

use carve_ir::ops::elementwise::ElementwiseOp as E;
use carve_ir::ops::elementwise::ShiftDirection;

use super::{EvalCtx, RunError, Value};
use crate::tensor::Tensor;

/// A kernel's result before it is attached to a node: a message on failure.
pub(crate) type Res<T> = Result<T, String>;

/// Evaluates one elementwise op.
pub fn eval(op: &E, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = |i: usize| cx.tensor(i);
    let out: Res<Tensor> = match op {
        E::Abs(_)
        | E::Acos(_)
        | E::Acosh(_)
        | E::Asin(_)
        | E::Asinh(_)
        | E::Atan(_)
        | E::Atanh(_)
        | E::Ceil(_)
        | E::Cos(_)
        | E::Cosh(_)
        | E::Erf(_)
        | E::Exp(_)
        | E::Floor(_)
        | E::Log(_)
        | E::Neg(_)
        | E::Not(_)
        | E::Reciprocal(_)
        | E::Round(_)
        | E::Sigmoid(_)
        | E::Sign(_)
        | E::Sin(_)
        | E::Sinh(_)
        | E::Sqrt(_)
        | E::Tan(_)
        | E::Tanh(_)
        | E::IsNan(_)
        | E::IsInf(_)
        | E::BitwiseNot(_)
        | E::Relu(_)
        | E::LeakyRelu(_)
        | E::Elu(_)
        | E::Selu(_)
        | E::Celu(_)
        | E::ThresholdedRelu(_)
        | E::HardSigmoid(_)
        | E::HardSwish(_)
        | E::Mish(_)
        | E::Gelu(_)
        | E::Swish(_)
        | E::Softsign(_)
        | E::Softplus(_)
        | E::Shrink(_) => unary::eval(op, t(0)?),
        E::Clip(_) => unary::clip(t(0)?, cx.opt_tensor(1)?, cx.opt_tensor(2)?),
        E::PRelu(_) => binary::prelu(t(0)?, t(1)?),
        E::Add(_) => binary::arith(t(0)?, t(1)?, &binary::Add),
        E::Sub(_) => binary::arith(t(0)?, t(1)?, &binary::Sub),
        E::Mul(_) => binary::arith(t(0)?, t(1)?, &binary::Mul),
        E::Div(_) => binary::arith(t(0)?, t(1)?, &binary::Div),
        E::Mod(m) => binary::arith(t(0)?, t(1)?, &binary::Mod { fmod: m.fmod }),
        E::Pow(_) => binary::pow(t(0)?, t(1)?),
        E::BitShift(s) => binary::arith(
            t(0)?,
            t(1)?,
            &binary::Shift {
                left: s.direction == ShiftDirection::Left,
            },
        ),
        E::BitwiseAnd(_) => binary::bitwise(t(0)?, t(1)?, |a, b| a & b),
        E::BitwiseOr(_) => binary::bitwise(t(0)?, t(1)?, |a, b| a | b),
        E::BitwiseXor(_) => binary::bitwise(t(0)?, t(1)?, |a, b| a ^ b),
        E::And(_) => binary::logic(t(0)?, t(1)?, |a, b| a && b),
        E::Or(_) => binary::logic(t(0)?, t(1)?, |a, b| a || b),
        E::Xor(_) => binary::logic(t(0)?, t(1)?, |a, b| a != b),
        E::Equal(_) => binary::compare(t(0)?, t(1)?, binary::Cmp::Eq),
        E::Greater(_) => binary::compare(t(0)?, t(1)?, binary::Cmp::Gt),
        E::GreaterOrEqual(_) => binary::compare(t(0)?, t(1)?, binary::Cmp::Ge),
        E::Less(_) => binary::compare(t(0)?, t(1)?, binary::Cmp::Lt),
        E::LessOrEqual(_) => binary::compare(t(0)?, t(1)?, binary::Cmp::Le),
        E::Max(_) | E::Min(_) | E::Sum(_) | E::Mean(_) => {
            let xs = (0..cx.num_inputs()).map(t).collect::<Result<Vec<_>, _>>()?;
            binary::variadic(op, &xs)
        }
        E::Where(_) => binary::where_(t(0)?, t(1)?, t(2)?),
        E::Cast(c) => cast::cast(t(0)?, c.to, c.saturate, c.round_mode),
        E::Bitcast(b) => cast::bitcast(t(0)?, b.to),
    };
    out.map(|t| vec![Value::Tensor(t)]).map_err(|m| cx.err(m))
}

/// Walks the numpy broadcast of `K` inputs of shapes `ins` to the output shape `out` as runs of output
/// elements: `f(offsets, strides, len)` is called, in output order, for runs of `len` consecutive output
/// elements whose inputs start at `offsets` and step by `strides` (0 where an input is broadcast).
/// Size-1 axes are dropped and adjacent axes merged where every input is contiguous across them, so
/// the inner runs are as long as the layout allows and no per-element index table is built.
pub(crate) fn runs<const K: usize>(
    out: &[usize],
    ins: [&[usize]; K],
    mut f: impl FnMut([usize; K], [usize; K], usize),
) {
    if out.contains(&0) {
        return;
    }
    let r = out.len();
    let mut axes: Vec<(usize, [usize; K])> = Vec::with_capacity(r);
    for (i, &d) in out.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let mut st = [0usize; K];
        for (k, sh) in ins.iter().enumerate() {
            if let Some(j) = (i + sh.len()).checked_sub(r)
                && sh[j] != 1
            {
                st[k] = sh[j + 1..].iter().product();
            }
        }
        if let Some((pd, ps)) = axes.last_mut()
            && (0..K).all(|k| ps[k] == st[k] * d)
        {
            *pd *= d;
            *ps = st;
            continue;
        }
        axes.push((d, st));
    }
    let Some((len, inner)) = axes.pop() else {
        f([0; K], [0; K], 1);
        return;
    };
    let mut idx = vec![0usize; axes.len()];
    let mut off = [0usize; K];
    loop {
        f(off, inner, len);
        let mut ax = axes.len();
        loop {
            if ax == 0 {
                return;
            }
            ax -= 1;
            let (d, st) = axes[ax];
            idx[ax] += 1;
            if idx[ax] < d {
                for k in 0..K {
                    off[k] += st[k];
                }
                break;
            }
            for k in 0..K {
                off[k] -= st[k] * (d - 1);
            }
            idx[ax] = 0;
        }
    }
}

/// `f` over the `n` elements of the broadcast of `a` (shape `sa`) and `b` (shape `sb`) to `out`.
pub(crate) fn zip2<A, B, C>(
    a: &[A],
    sa: &[usize],
    b: &[B],
    sb: &[usize],
    out: &[usize],
    n: usize,
    mut f: impl FnMut(&A, &B) -> C,
) -> Vec<C> {
    // Broadcasting only repeats elements, so an input with as many elements as the output (e.g. `[3]`
    // into `[1, 3]`) maps one to one.
    match (a.len() == n, b.len() == n) {
        (true, true) => return a.iter().zip(b).map(|(x, y)| f(x, y)).collect(),
        (true, false) if b.len() == 1 => return a.iter().map(|x| f(x, &b[0])).collect(),
        (false, true) if a.len() == 1 => return b.iter().map(|y| f(&a[0], y)).collect(),
        _ => {}
    }
    let mut v = Vec::with_capacity(n);
    runs(out, [sa, sb], |o, s, len| {
        for j in 0..len {
            v.push(f(&a[o[0] + j * s[0]], &b[o[1] + j * s[1]]));
        }
    });
    v
}

/// Sign-extends (signed) or masks (unsigned) `v` to a `bits`-wide integer stored in a byte.
pub(crate) fn wrap_small(bits: u32, signed: bool, v: i64) -> u8 {
    let sh = 64 - bits;
    if signed {
        ((v << sh) >> sh) as i8 as u8
    } else {
        (((v as u64) << sh) >> sh) as u8
    }
}

#[cfg(test)]
mod tests;
