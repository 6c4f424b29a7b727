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

use super::util::broadcast_index;
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

/// How one input of a broadcast maps output element indices to its own.
pub(crate) enum Bcast {
    /// Same shape as the output.
    Same,
    /// One element, repeated.
    Scalar,
    /// General numpy broadcast: the input index of each output element.
    Map(Vec<usize>),
}

impl Bcast {
    /// The mapping from output `out` to an input of shape `input` (which must broadcast to `out`).
    pub(crate) fn new(out: &[usize], input: &[usize]) -> Bcast {
        if input == out {
            Bcast::Same
        } else if input.iter().product::<usize>() == 1 {
            Bcast::Scalar
        } else {
            Bcast::Map(broadcast_index(out, input))
        }
    }

    /// The input index of output element `i`.
    #[inline]
    pub(crate) fn at(&self, i: usize) -> usize {
        match self {
            Bcast::Same => i,
            Bcast::Scalar => 0,
            Bcast::Map(v) => v[i],
        }
    }
}

/// `f` over `n` output elements of two broadcast inputs.
#[inline]
pub(crate) fn zip2<A, B, C>(
    a: &[A],
    ia: &Bcast,
    b: &[B],
    ib: &Bcast,
    n: usize,
    mut f: impl FnMut(&A, &B) -> C,
) -> Vec<C> {
    match (ia, ib) {
        (Bcast::Same, Bcast::Same) => a.iter().zip(b).map(|(x, y)| f(x, y)).collect(),
        (Bcast::Same, Bcast::Scalar) => a.iter().map(|x| f(x, &b[0])).collect(),
        (Bcast::Scalar, Bcast::Same) => b.iter().map(|y| f(&a[0], y)).collect(),
        _ => (0..n).map(|i| f(&a[ia.at(i)], &b[ib.at(i)])).collect(),
    }
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
