//! `einsum`: numpy's Einstein summation. The equation is parsed into axes (one per label, plus one per
//! broadcast ellipsis dim); each operand is reduced to distinct axes (repeated labels take the
//! diagonal) and its private summed axes are summed out; the operands are then contracted left to right,
//! two at a time. A pair contraction is a batched GEMM (`[batch, M, K] · [batch, K, N]`, on
//! `sgemm`/`dgemm`) after permuting the operands, unless an operand broadcasts a size-1 dim; that case and
//! single-operand reductions use a direct loop over all axes.

use std::borrow::Cow;

use carve_ir::DType;
use carve_ir::ops::linalg::{Einsum, Sub, parse_equation};

use super::num::{Elem, Real};
use super::out_dtype;

use crate::interp::util::{self, checked_numel};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Tensor, strides};

/// The input terms and the explicit output term, if any.
type Terms = (Vec<Vec<Sub>>, Option<Vec<Sub>>);

/// The equation, parsed (and validated) by the same code as type inference.
fn parse(eq: &str) -> Result<Terms, String> {
    let e = parse_equation(eq)?;
    Ok((e.inputs, e.output))
}

/// The axes of a contraction: every axis id indexes `sizes`.
struct Axes {
    sizes: Vec<usize>,
    /// Per input, the axis of each of its dims (repeats allowed).
    inputs: Vec<Vec<usize>>,
    /// The result's axes, in order.
    output: Vec<usize>,
}

fn plan(equation: &str, shapes: &[&[usize]]) -> Result<Axes, String> {
    let (terms, output) = parse(equation)?;
    if terms.len() != shapes.len() {
        return Err(format!(
            "equation has {} input terms, the node has {} inputs",
            terms.len(),
            shapes.len()
        ));
    }
    // Ellipsis dims per input, and the broadcast ellipsis rank.
    let mut n_ell = Vec::with_capacity(terms.len());
    for (i, (t, s)) in terms.iter().zip(shapes).enumerate() {
        let labels = t.iter().filter(|x| **x != Sub::Ellipsis).count();
        let e = if t.contains(&Sub::Ellipsis) {
            s.len().checked_sub(labels)
        } else {
            (s.len() == labels).then_some(0)
        };
        n_ell.push(e.ok_or_else(|| {
            format!(
                "input {i} has rank {}, its term has {labels} labels",
                s.len()
            )
        })?);
    }
    let ell = n_ell.iter().copied().max().unwrap_or(0);
    let mut labels: Vec<u8> = Vec::new();
    let mut sizes: Vec<Option<usize>> = vec![None; ell];
    let mut inputs = Vec::with_capacity(terms.len());
    for (i, (t, s)) in terms.iter().zip(shapes).enumerate() {
        let mut axes = Vec::with_capacity(s.len());
        for sub in t {
            match sub {
                Sub::Ellipsis => axes.extend(ell - n_ell[i]..ell),
                Sub::Label(l) => axes.push(match labels.iter().position(|x| x == l) {
                    Some(p) => ell + p,
                    None => {
                        labels.push(*l);
                        sizes.push(None);
                        ell + labels.len() - 1
                    }
                }),
            }
        }
        for (&ax, &d) in axes.iter().zip(s.iter()) {
            sizes[ax] = Some(match sizes[ax] {
                None | Some(1) => d,
                Some(cur) if d == 1 || d == cur => cur,
                Some(cur) => {
                    let what = if ax < ell {
                        "ellipsis dims".to_string()
                    } else {
                        format!("label '{}'", char::from(labels[ax - ell]))
                    };
                    return Err(format!("{what} have sizes {cur} and {d}"));
                }
            });
        }
        inputs.push(axes);
    }
    let label_axis = |l: u8| labels.iter().position(|&x| x == l).map(|p| ell + p);
    let output = match output {
        Some(o) => {
            let mut axes = Vec::new();
            if ell > 0 && !o.contains(&Sub::Ellipsis) {
                return Err("the inputs have ellipsis dims, the output has no ellipsis".to_string());
            }
            for sub in &o {
                match sub {
                    Sub::Ellipsis => axes.extend(0..ell),
                    Sub::Label(l) => {
                        let ax = label_axis(*l).ok_or_else(|| {
                            format!("output label '{}' is in no input", char::from(*l))
                        })?;
                        if axes.contains(&ax) {
                            return Err(format!("output label '{}' appears twice", char::from(*l)));
                        }
                        axes.push(ax);
                    }
                }
            }
            axes
        }
        None => {
            // Ellipsis dims, then the labels used exactly once, in byte order.
            let mut once: Vec<u8> = labels
                .iter()
                .copied()
                .filter(|l| {
                    terms
                        .iter()
                        .flatten()
                        .filter(|s| **s == Sub::Label(*l))
                        .count()
                        == 1
                })
                .collect();
            once.sort_unstable();
            let mut axes: Vec<usize> = (0..ell).collect();
            axes.extend(once.into_iter().filter_map(label_axis));
            axes
        }
    };
    Ok(Axes {
        sizes: sizes.into_iter().map(|s| s.unwrap_or(1)).collect(),
        inputs,
        output,
    })
}

/// An operand with distinct axes; `dims[i]` is its extent along `axes[i]` (1 where it broadcasts).
#[derive(Debug, Clone)]
struct Operand<'a, T: Clone> {
    data: Cow<'a, [T]>,
    axes: Vec<usize>,
    dims: Vec<usize>,
}

/// Advances a row-major counter over `sizes`, keeping each operand's offset in step.
fn advance(counter: &mut [usize], sizes: &[usize], offs: &mut [usize], strides: &[Vec<usize>]) {
    for ax in (0..counter.len()).rev() {
        counter[ax] += 1;
        for (o, s) in offs.iter_mut().zip(strides) {
            *o += s[ax];
        }
        if counter[ax] < sizes[ax] {
            return;
        }
        for (o, s) in offs.iter_mut().zip(strides) {
            *o -= s[ax] * sizes[ax];
        }
        counter[ax] = 0;
    }
}

/// The operand's stride along each of `axes` (0 where it lacks the axis or broadcasts it).
fn strides_along<T: Clone>(op: &Operand<T>, axes: &[usize]) -> Vec<usize> {
    let st = strides(&op.dims);
    axes.iter()
        .map(|a| match op.axes.iter().position(|x| x == a) {
            Some(p) if op.dims[p] != 1 => st[p],
            _ => 0,
        })
        .collect()
}

/// The general contraction: for each element of the `out` axes, the sum over every other axis of the
/// operands' product (broadcasting size-1 dims).
fn contract_loop<'a, T: Elem>(
    ops: &[&Operand<T>],
    out: &[usize],
    sizes: &[usize],
) -> Operand<'a, T> {
    let mut summed: Vec<usize> = Vec::new();
    for op in ops {
        for &a in &op.axes {
            if !out.contains(&a) && !summed.contains(&a) {
                summed.push(a);
            }
        }
    }
    let out_sizes: Vec<usize> = out.iter().map(|&a| sizes[a]).collect();
    let sum_sizes: Vec<usize> = summed.iter().map(|&a| sizes[a]).collect();
    let out_strides: Vec<Vec<usize>> = ops.iter().map(|o| strides_along(o, out)).collect();
    let sum_strides: Vec<Vec<usize>> = ops.iter().map(|o| strides_along(o, &summed)).collect();
    let n_out: usize = out_sizes.iter().product();
    let n_sum: usize = sum_sizes.iter().product();
    let mut res = Vec::with_capacity(n_out);
    let mut base = vec![0usize; ops.len()];
    let mut oc = vec![0usize; out.len()];
    let mut offs = vec![0usize; ops.len()];
    let mut sc = vec![0usize; summed.len()];
    for _ in 0..n_out {
        offs.copy_from_slice(&base);
        let mut acc = T::ZERO;
        for _ in 0..n_sum {
            let mut p = T::ONE;
            for (op, &o) in ops.iter().zip(&offs) {
                p = p.times(op.data[o]);
            }
            acc = acc.plus(p);
            advance(&mut sc, &sum_sizes, &mut offs, &sum_strides);
        }
        res.push(acc);
        advance(&mut oc, &out_sizes, &mut base, &out_strides);
    }
    Operand {
        data: Cow::Owned(res),
        axes: out.to_vec(),
        dims: out_sizes,
    }
}

/// `op`'s elements with its axes reordered to `order` (a permutation of them).
fn permuted<'b, T: Elem>(op: &'b Operand<T>, order: &[usize]) -> Cow<'b, [T]> {
    if op.axes == order {
        return Cow::Borrowed(&op.data[..]);
    }
    let sizes: Vec<usize> = order
        .iter()
        .map(|a| {
            op.axes
                .iter()
                .position(|x| x == a)
                .map_or(1, |p| op.dims[p])
        })
        .collect();
    let st = vec![strides_along(op, order)];
    let n: usize = sizes.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut c = vec![0usize; order.len()];
    let mut off = [0usize];
    for _ in 0..n {
        out.push(op.data[off[0]]);
        advance(&mut c, &sizes, &mut off, &st);
    }
    Cow::Owned(out)
}

/// Contracts two operands to the `out` axes: a batched GEMM when neither broadcasts a dim and every
/// axis is a batch, row, column or contracted axis; the general loop otherwise.
fn contract2<'a, T: Elem>(
    a: &Operand<T>,
    b: &Operand<T>,
    out: &[usize],
    sizes: &[usize],
) -> Operand<'a, T> {
    let full = |o: &Operand<T>| o.axes.iter().zip(&o.dims).all(|(&x, &d)| d == sizes[x]);
    let in_a = |x: &usize| a.axes.contains(x);
    let in_b = |x: &usize| b.axes.contains(x);
    let private_summed = a.axes.iter().any(|x| !in_b(x) && !out.contains(x))
        || b.axes.iter().any(|x| !in_a(x) && !out.contains(x));
    if !full(a) || !full(b) || private_summed {
        return contract_loop(&[a, b], out, sizes);
    }
    let batch: Vec<usize> = out.iter().copied().filter(|x| in_a(x) && in_b(x)).collect();
    let rows: Vec<usize> = out
        .iter()
        .copied()
        .filter(|x| in_a(x) && !in_b(x))
        .collect();
    let cols: Vec<usize> = out
        .iter()
        .copied()
        .filter(|x| in_b(x) && !in_a(x))
        .collect();
    let inner: Vec<usize> = a
        .axes
        .iter()
        .copied()
        .filter(|x| in_b(x) && !out.contains(x))
        .collect();
    let prod = |v: &[usize]| v.iter().map(|&x| sizes[x]).product::<usize>();
    let (nb, m, n, k) = (prod(&batch), prod(&rows), prod(&cols), prod(&inner));
    let order_a: Vec<usize> = [&batch[..], &rows, &inner].concat();
    let order_b: Vec<usize> = [&batch[..], &inner, &cols].concat();
    let (pa, pb) = (permuted(a, &order_a), permuted(b, &order_b));
    let mut c = vec![T::ZERO; nb * m * n];
    if m * n > 0 {
        for i in 0..nb {
            T::gemm(
                m,
                k,
                n,
                &pa[i * m * k..],
                k,
                &pb[i * k * n..],
                n,
                &mut c[i * m * n..],
                n,
                false,
            );
        }
    }
    let axes: Vec<usize> = [&batch[..], &rows, &cols].concat();
    let res = Operand {
        data: Cow::Owned(c),
        dims: axes.iter().map(|&x| sizes[x]).collect(),
        axes,
    };
    if res.axes == out {
        return res;
    }
    let data = permuted(&res, out).into_owned();
    Operand {
        data: Cow::Owned(data),
        axes: out.to_vec(),
        dims: out.iter().map(|&x| sizes[x]).collect(),
    }
}

/// Takes the diagonal over repeated axes of an input.
fn distinct<'a, T: Elem>(
    data: Cow<'a, [T]>,
    shape: &[usize],
    axes: &[usize],
) -> Result<Operand<'a, T>, String> {
    let st = strides(shape);
    let mut uniq: Vec<usize> = Vec::new();
    let mut dims: Vec<usize> = Vec::new();
    let mut ust: Vec<usize> = Vec::new();
    for (i, &a) in axes.iter().enumerate() {
        match uniq.iter().position(|&x| x == a) {
            Some(p) => {
                if dims[p] != shape[i] {
                    return Err(format!(
                        "a repeated label has sizes {} and {} in one input",
                        dims[p], shape[i]
                    ));
                }
                ust[p] += st[i];
            }
            None => {
                uniq.push(a);
                dims.push(shape[i]);
                ust.push(st[i]);
            }
        }
    }
    if uniq.len() == axes.len() {
        return Ok(Operand {
            data,
            axes: uniq,
            dims,
        });
    }
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut c = vec![0usize; uniq.len()];
    let mut off = [0usize];
    let sts = vec![ust];
    for _ in 0..n {
        out.push(data[off[0]]);
        advance(&mut c, &dims, &mut off, &sts);
    }
    Ok(Operand {
        data: Cow::Owned(out),
        axes: uniq,
        dims,
    })
}

/// Runs the planned contraction on the inputs' elements.
fn run<T: Elem>(ax: &Axes, data: Vec<Cow<[T]>>, shapes: &[&[usize]]) -> Result<Vec<T>, String> {
    let mut ops = Vec::with_capacity(data.len());
    for ((d, s), a) in data.into_iter().zip(shapes).zip(&ax.inputs) {
        ops.push(distinct(d, s, a)?);
    }
    // Sum out the axes only one operand has and the result lacks.
    for i in 0..ops.len() {
        let keep: Vec<usize> = ops[i]
            .axes
            .iter()
            .copied()
            .filter(|x| {
                ax.output.contains(x)
                    || ops
                        .iter()
                        .enumerate()
                        .any(|(j, o)| j != i && o.axes.contains(x))
            })
            .collect();
        if keep.len() < ops[i].axes.len() || ops.len() == 1 {
            let target = if ops.len() == 1 { &ax.output } else { &keep };
            ops[i] = contract_loop(&[&ops[i]], target, &ax.sizes);
        }
    }
    let mut ops = ops.into_iter();
    let Some(mut acc) = ops.next() else {
        return Err("einsum needs at least one input".to_string());
    };
    let rest: Vec<Operand<T>> = ops.collect();
    for (i, b) in rest.iter().enumerate() {
        let target: Vec<usize> = if i + 1 == rest.len() {
            ax.output.clone()
        } else {
            let needed = |x: &usize| {
                ax.output.contains(x) || rest[i + 1..].iter().any(|o| o.axes.contains(x))
            };
            let mut t: Vec<usize> = acc.axes.iter().copied().filter(needed).collect();
            for &x in &b.axes {
                if needed(&x) && !t.contains(&x) {
                    t.push(x);
                }
            }
            t
        };
        let dims: Vec<usize> = target.iter().map(|&x| ax.sizes[x]).collect();
        checked_numel(&dims).map_err(|e| format!("intermediate result: {}", e.0))?;
        acc = contract2(&acc, b, &target, &ax.sizes);
    }
    Ok(acc.data.into_owned())
}

/// `einsum`.
pub(super) fn einsum(op: &Einsum, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let n = cx.num_inputs();
    let mut ts: Vec<&Tensor> = Vec::with_capacity(n);
    for i in 0..n {
        ts.push(cx.tensor(i)?);
    }
    let Some(first) = ts.first() else {
        return Err(cx.err("einsum needs at least one input"));
    };
    let dt = first.dtype();
    if let Some(t) = ts.iter().find(|t| t.dtype() != dt) {
        return Err(cx.err(format!(
            "inputs must share one element type, got {dt} and {}",
            t.dtype()
        )));
    }
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape.as_slice()).collect();
    let ax = plan(&op.equation, &shapes)
        .map_err(|m| cx.err(format!("equation '{}': {m}", op.equation)))?;
    let out_shape: Vec<usize> = ax.output.iter().map(|&a| ax.sizes[a]).collect();
    checked_numel(&out_shape).map_err(|e| cx.err(e.0))?;
    let dtype = out_dtype(cx, 0, dt);
    let fail = |m: String| cx.err(m);
    let t = match dt {
        DType::F32 | DType::F16 | DType::BF16 => {
            let data = ts
                .iter()
                .map(|t| f32::load(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            f32::store(dtype, out_shape, run(&ax, data, &shapes).map_err(fail)?)
        }
        DType::F64 => {
            let data = ts
                .iter()
                .map(|t| f64::load(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            f64::store(dtype, out_shape, run(&ax, data, &shapes).map_err(fail)?)
        }
        d if d.is_int() => {
            let data = ts
                .iter()
                .map(|t| util::to_i64(t).map(Cow::Owned).map_err(|e| e.0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let v = run(&ax, data, &shapes).map_err(fail)?;
            util::from_i64(dtype, out_shape, &v).map_err(|e| e.0)
        }
        d => return Err(cx.err(format!("element type {d} is not supported"))),
    };
    Ok(vec![t.map_err(fail)?.into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ein(eq: &str, inputs: &[(&[usize], Vec<f64>)]) -> Result<(Vec<usize>, Vec<f64>), String> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|(s, _)| *s).collect();
        let ax = plan(eq, &shapes)?;
        let data = inputs.iter().map(|(_, d)| Cow::Borrowed(&d[..])).collect();
        let out = run(&ax, data, &shapes)?;
        Ok((ax.output.iter().map(|&a| ax.sizes[a]).collect(), out))
    }

    fn seq(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64 + 1.0).collect()
    }

    #[test]
    fn matmul_transpose_and_sums() {
        let a = seq(6); // [2,3]
        let b = seq(12); // [3,4]
        let (s, v) = ein("ij,jk->ik", &[(&[2, 3], a.clone()), (&[3, 4], b.clone())]).unwrap();
        assert_eq!(s, vec![2, 4]);
        assert_eq!(v[0], 1.0 * 1.0 + 2.0 * 5.0 + 3.0 * 9.0);
        // Output transposed: the GEMM result is permuted.
        let (s, vt) = ein("ij,jk->ki", &[(&[2, 3], a.clone()), (&[3, 4], b)]).unwrap();
        assert_eq!(s, vec![4, 2]);
        assert_eq!(vt[1], v[4]);
        let (s, v) = ein("ij->ji", &[(&[2, 3], a.clone())]).unwrap();
        assert_eq!((s, v), (vec![3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
        let (s, v) = ein("ij->", &[(&[2, 3], a.clone())]).unwrap();
        assert_eq!((s, v), (vec![], vec![21.0]));
        // Implicit output: labels once, sorted (uppercase first).
        let (s, _) = ein("bA", &[(&[2, 3], a)]).unwrap();
        assert_eq!(s, vec![3, 2]);
    }

    #[test]
    fn diagonals_ellipsis_and_broadcast() {
        let x = seq(18); // [2,3,3]
        let (s, v) = ein("...ii->...i", &[(&[2, 3, 3], x.clone())]).unwrap();
        assert_eq!(s, vec![2, 3]);
        assert_eq!(v, vec![1.0, 5.0, 9.0, 10.0, 14.0, 18.0]);
        let (s, v) = ein("bii->b", &[(&[2, 3, 3], x)]).unwrap();
        assert_eq!((s, v), (vec![2], vec![15.0, 42.0]));
        // Ellipsis broadcasting: [2,1,3] with [4,3] -> [2,4].
        let (s, v) = ein(
            "...j,...j->...",
            &[(&[2, 1, 3], seq(6)), (&[4, 3], vec![1.0; 12])],
        )
        .unwrap();
        assert_eq!(s, vec![2, 4]);
        assert_eq!(v, vec![6.0, 6.0, 6.0, 6.0, 15.0, 15.0, 15.0, 15.0]);
        // Three operands and an operand-private summed axis.
        let (s, v) = ein(
            "ab,bc,cd->ad",
            &[
                (&[1, 2], vec![1.0, 2.0]),
                (&[2, 2], vec![1.0, 0.0, 0.0, 1.0]),
                (&[2, 1], vec![3.0, 4.0]),
            ],
        )
        .unwrap();
        assert_eq!((s, v), (vec![1, 1], vec![11.0]));
        let (s, v) = ein("ij,k->i", &[(&[2, 2], seq(4)), (&[3], seq(3))]).unwrap();
        assert_eq!((s, v), (vec![2], vec![18.0, 42.0]));
        assert!(ein("ii->i", &[(&[2, 3], seq(6))]).is_err());
        assert!(ein("...i->i", &[(&[2, 3], seq(6))]).is_err());
        assert!(ein("ij->iz", &[(&[2, 3], seq(6))]).is_err());
    }

    #[test]
    fn integer_contraction_is_exact() {
        let big = 1i64 << 60;
        let shapes: [&[usize]; 2] = [&[2], &[2]];
        let ax = plan("i,i", &shapes).unwrap();
        let out = run(
            &ax,
            vec![Cow::Owned(vec![big, 1]), Cow::Owned(vec![3, 5])],
            &shapes,
        )
        .unwrap();
        assert_eq!(out, vec![big.wrapping_mul(3) + 5]);
    }
}
