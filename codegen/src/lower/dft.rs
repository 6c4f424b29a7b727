//! `dft` compiled as a matrix product: a DFT of static length along the signal axis just before the
//! real/imaginary dim is `reshape → matmul(twiddles) → reshape`, with the twiddle matrix (cos/sin of
//! `2πkn/L`, computed in f64, zero rows for truncated samples) a compile-time constant. Expanded at
//! preparation time like control flow ([`super::control`]), so the matmul gets the GEMM kernels.
//!
//! Covered: forward transforms (full or one-sided) and full inverse transforms (scaled by `1/L`), real or
//! complex input, f32, the transformed axis being the second-to-last dim (ONNX's default `-2`), a
//! constant or absent `dft_length`. Other forms (one-sided inverse, other axes) keep their node.
//! Semantics are the interpreter's (`runtime/src/interp/signal`).

use carve_ir::ops::linalg::MatMul;
use carve_ir::ops::movement::Reshape;
use carve_ir::ops::signal::{Dft, SignalOp};
use carve_ir::{Constant, DType, Graph, Node, Op, TensorType, Type, ValueId};

use crate::prepare::concrete_shape;

/// Largest twiddle matrix built, in bytes.
pub const MAX_TWIDDLE_BYTES: usize = 16 << 20;

/// Rewrites every `dft` node of `g` that fits (see the module documentation); returns how many.
pub fn expand_all(g: &mut Graph) -> usize {
    let mut count = 0;
    let mut nodes = Vec::with_capacity(g.nodes.len());
    for n in g.nodes.clone() {
        match &n.op {
            Op::Signal(SignalOp::Dft(op)) => match expand(g, &n, op) {
                Some(new) => {
                    count += 1;
                    nodes.extend(new);
                }
                None => nodes.push(n),
            },
            _ => nodes.push(n),
        }
    }
    g.nodes = nodes;
    g.rebuild_producers();
    count
}

fn scalar(g: &Graph, v: Option<ValueId>) -> Option<Option<i64>> {
    match v {
        None => Some(None),
        Some(v) => match g.constant_of(v)?.to_i64s()?.as_slice() {
            [x] => Some(Some(*x)),
            _ => None,
        },
    }
}

fn expand(g: &mut Graph, n: &Node, op: &Dft) -> Option<Vec<Node>> {
    if op.inverse && op.onesided {
        return None;
    }
    let x = n.inputs.first().copied().flatten()?;
    let out = *n.outputs.first()?;
    if g.ty(x).as_tensor()?.dtype != DType::F32 || g.ty(out).as_tensor()?.dtype != DType::F32 {
        return None;
    }
    let shape = concrete_shape(g, x)?;
    let out_shape = concrete_shape(g, out)?;
    let r = shape.len();
    if r < 2 {
        return None;
    }
    let c = shape[r - 1];
    let axis = scalar(g, n.inputs.get(2).copied().flatten())?.unwrap_or(-2);
    if axis != -2 && axis != r as i64 - 2 {
        return None;
    }
    let len = shape[r - 2];
    let l = match scalar(g, n.inputs.get(1).copied().flatten())? {
        Some(l) => usize::try_from(l).ok().filter(|&l| l > 0)?,
        None => len,
    };
    let k = if op.onesided { l / 2 + 1 } else { l };
    if !matches!(c, 1 | 2) || out_shape[..r - 2] != shape[..r - 2] || out_shape[r - 2..] != [k, 2] {
        return None;
    }
    let rows = len * c;
    let cols = 2 * k;
    if rows.checked_mul(cols)?.checked_mul(4)? > MAX_TWIDDLE_BYTES {
        return None;
    }
    // y[k] = Σ_t x[t] · e^{∓2πi·kt/L}, scaled by 1/L for the inverse.
    let sign = if op.inverse { 1.0 } else { -1.0 };
    let scale = if op.inverse { 1.0 / l as f64 } else { 1.0 };
    let mut w = vec![0.0f32; rows * cols];
    for t in 0..len.min(l) {
        for j in 0..k {
            let theta = 2.0 * std::f64::consts::PI * ((t * j) % l) as f64 / l as f64;
            let (s, co) = (sign * theta.sin(), theta.cos());
            // Real part of the input: (xr)(cos + i·s).
            w[(t * c) * cols + 2 * j] = (co * scale) as f32;
            w[(t * c) * cols + 2 * j + 1] = (s * scale) as f32;
            if c == 2 {
                // Imaginary part: (i·xi)(cos + i·s) = -xi·s + i·xi·cos.
                w[(t * c + 1) * cols + 2 * j] = (-s * scale) as f32;
                w[(t * c + 1) * cols + 2 * j + 1] = (co * scale) as f32;
            }
        }
    }
    let outer: usize = shape[..r - 2].iter().product();
    let name = |what: &str| format!("{}/{what}", n.name);
    let mut nodes = Vec::new();
    let mut constant = |g: &mut Graph, what: &str, c: Constant| {
        let v = g.add_value(name(what), Type::Tensor(c.ty.clone()));
        nodes.push(Node {
            name: name(what),
            op: Op::Constant(c),
            inputs: Vec::new(),
            outputs: vec![v],
        });
        v
    };
    let flat = constant(
        g,
        "rows",
        Constant::from_i64s(&[2], &[outer as i64, rows as i64]),
    );
    let twiddles = constant(
        g,
        "twiddles",
        Constant::from_f32s(&[rows as u64, cols as u64], &w),
    );
    let back: Vec<i64> = out_shape.iter().map(|&d| d as i64).collect();
    let back = constant(g, "shape", Constant::from_i64s(&[r as u64], &back));
    let tensor = |dims: &[usize]| {
        Type::Tensor(TensorType::known(
            DType::F32,
            &dims.iter().map(|&d| d as u64).collect::<Vec<_>>(),
        ))
    };
    let x2 = g.add_value(name("signal"), tensor(&[outer, rows]));
    let y2 = g.add_value(name("spectrum"), tensor(&[outer, cols]));
    nodes.push(Node {
        name: name("signal"),
        op: Reshape { allowzero: false }.into(),
        inputs: vec![Some(x), Some(flat)],
        outputs: vec![x2],
    });
    nodes.push(Node {
        name: name("spectrum"),
        op: MatMul {}.into(),
        inputs: vec![Some(x2), Some(twiddles)],
        outputs: vec![y2],
    });
    nodes.push(Node {
        name: n.name.clone(),
        op: Reshape { allowzero: false }.into(),
        inputs: vec![Some(y2), Some(back)],
        outputs: vec![out],
    });
    Some(nodes)
}
