//! Integer and quantized matrix products: `matmul_integer`, `qlinear_matmul` and com.microsoft
//! `matmul_nbits`. Integer products run exactly in f64 GEMMs (8-bit operands minus zero points are at
//! most 2^16 in magnitude, so sums stay below 2^53 for any inner size that fits in memory).

use carve_ir::DType;
use carve_ir::ops::quant::MatMulNBits;
use carve_ir::ops::quant::blockwise::read_bits;

use super::super::util::{
    broadcast_index, broadcast_shape, checked_numel, dgemm, from_i64, sgemm, to_f64, to_i64,
};
use super::super::{EvalCtx, RunError, Value, tensor_err};
use super::{float_tensor, int_range, out_dtype, requantize, round_to};
use crate::tensor::{Data, Tensor};

/// A numpy `matmul` of shapes `a` and `b`: batch broadcasting, 1-D operands promoted and their unit
/// dim dropped from the result.
pub(super) struct Plan {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    /// Per output batch, the matrix offsets (in matrices) into `a` and `b`.
    pub(super) a_batch: Vec<usize>,
    pub(super) b_batch: Vec<usize>,
    pub(super) out_shape: Vec<usize>,
}

pub(super) fn plan(a: &[usize], b: &[usize]) -> Result<Plan, String> {
    if a.is_empty() || b.is_empty() {
        return Err("matmul operands must have rank >= 1".into());
    }
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != kb {
        return Err(format!(
            "inner dims differ: a has shape {a:?}, b has shape {b:?}"
        ));
    }
    let ab = &a2[..a2.len() - 2];
    let bb = &b2[..b2.len() - 2];
    let batch = broadcast_shape(ab, bb).map_err(|e| e.0)?;
    let mut out_shape = batch.clone();
    if a.len() > 1 {
        out_shape.push(m);
    }
    if b.len() > 1 {
        out_shape.push(n);
    }
    checked_numel(&out_shape).map_err(|e| e.0)?;
    Ok(Plan {
        m,
        k,
        n,
        a_batch: broadcast_index(&batch, ab),
        b_batch: broadcast_index(&batch, bb),
        out_shape,
    })
}

/// `x − zero point` as f64, the zero point broadcast over `x`: a 1-D zero point of an operand of rank
/// two or more applies per row when `per_row` (dim −2, for `a`) and per column otherwise (dim −1, for
/// `b`); others broadcast numpy-style.
pub(super) fn centered(
    cx: &EvalCtx,
    x: &Tensor,
    zp: Option<&Tensor>,
    per_row: bool,
) -> Result<Vec<f64>, RunError> {
    let xs = to_i64(x).map_err(|e| tensor_err(cx, e))?;
    let Some(z) = zp else {
        return Ok(xs.iter().map(|&v| v as f64).collect());
    };
    let zs = to_i64(z).map_err(|e| tensor_err(cx, e))?;
    let zshape: Vec<usize> = if zs.len() == 1 {
        Vec::new()
    } else if z.shape.len() == 1 && x.shape.len() >= 2 && per_row {
        vec![z.shape[0], 1]
    } else {
        z.shape.clone()
    };
    let fits = broadcast_shape(&x.shape, &zshape).is_ok_and(|s| s == x.shape);
    if !fits {
        return Err(cx.err(format!(
            "a zero point of shape {:?} does not fit an operand of shape {:?} (scalar, or one per {})",
            z.shape,
            x.shape,
            if per_row { "row" } else { "column" }
        )));
    }
    let idx = broadcast_index(&x.shape, &zshape);
    Ok(xs
        .iter()
        .zip(&idx)
        .map(|(&v, &i)| (v - zs[i]) as f64)
        .collect())
}

/// The exact integer product of centered operands, as f64, row-major in the plan's output shape.
pub(super) fn integer_product(p: &Plan, a: &[f64], b: &[f64]) -> Vec<f64> {
    let (m, k, n) = (p.m, p.k, p.n);
    let mut c = vec![0.0f64; p.a_batch.len() * m * n];
    for (i, (&ia, &ib)) in p.a_batch.iter().zip(&p.b_batch).enumerate() {
        dgemm(
            m,
            k,
            n,
            &a[ia * m * k..],
            k,
            &b[ib * k * n..],
            n,
            &mut c[i * m * n..],
            n,
            false,
        );
    }
    c
}

/// ONNX MatMulInteger: `(a − a_zero_point) @ (b − b_zero_point)` in i32.
pub(super) fn matmul_integer(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let a = cx.tensor(0)?;
    let b = cx.tensor(1)?;
    let p = plan(&a.shape, &b.shape).map_err(|m| cx.err(m))?;
    let av = centered(cx, a, cx.opt_tensor(2)?, true)?;
    let bv = centered(cx, b, cx.opt_tensor(3)?, false)?;
    let c = integer_product(&p, &av, &bv);
    // (i32 arithmetic wraps, as the reference's int32 accumulation does)
    let v: Vec<i32> = c.iter().map(|&x| x as i64 as i32).collect();
    let t = Tensor::new(p.out_shape, Data::I32(v)).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

/// Scale values of input `i`: one (per tensor) or `len` (per row / column).
fn scales(cx: &EvalCtx, i: usize, len: usize, what: &str) -> Result<Vec<f64>, RunError> {
    let t = cx.tensor(i)?;
    let v = to_f64(t).map_err(|e| tensor_err(cx, e))?;
    if v.len() == 1 || v.len() == len {
        Ok(v)
    } else {
        Err(cx.err(format!(
            "{what} (input {i}) must have 1 or {len} elements, got shape {:?}",
            t.shape
        )))
    }
}

/// ONNX QLinearMatMul: `y = saturate(round((a − za) @ (b − zb) · sa·sb/sy) + zy)`; `a`'s scale may be
/// per row, `b`'s per column. The multiplier is formed in the scales' precision, as the reference does.
pub(super) fn qlinear_matmul(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let a = cx.tensor(0)?;
    let b = cx.tensor(3)?;
    let p = plan(&a.shape, &b.shape).map_err(|m| cx.err(m))?;
    let av = centered(cx, a, cx.opt_tensor(2)?, true)?;
    let bv = centered(cx, b, cx.opt_tensor(5)?, false)?;
    let sa = scales(cx, 1, p.m, "a scale")?;
    let sb = scales(cx, 4, p.n, "b scale")?;
    let sy = scales(cx, 6, 1, "y scale")?[0];
    let sdt = cx.tensor(1)?.dtype();
    let zy = match cx.opt_tensor(7)? {
        Some(z) => match to_i64(z).map_err(|e| tensor_err(cx, e))?[..] {
            [v] => v,
            _ => return Err(cx.err("y zero point (input 7) must have one element")),
        },
        None => 0,
    };
    let out = out_dtype(cx, 0)?;
    let range = int_range(out);
    let c = integer_product(&p, &av, &bv);
    let (m, n) = (p.m, p.n);
    let mult: Vec<f64> = (0..m * n)
        .map(|ij| {
            let s = sa[if sa.len() == 1 { 0 } else { ij / n }]
                * sb[if sb.len() == 1 { 0 } else { ij % n }];
            round_to(sdt, round_to(sdt, s) / sy)
        })
        .collect();
    let v: Vec<i64> = c
        .iter()
        .enumerate()
        .map(|(i, &x)| requantize(x * mult[i % (m * n)], zy, range))
        .collect();
    let t = from_i64(out, p.out_shape, &v).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

/// com.microsoft MatMulNBits: `y = a @ dequant(b)ᵀ (+ bias)`, `b` holding `n × k` weights of `bits`
/// bits, LSB-first, in blocks of `block_size` along `k`, each block with a scale and a zero point
/// (packed like the weights, or floats; default `2^(bits−1)`); `g_idx` maps each `k` to its block.
/// Computed in f32.
pub(super) fn matmul_nbits(op: &MatMulNBits, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let a = cx.tensor(0)?;
    let b = cx.tensor(1)?;
    let s = cx.tensor(2)?;
    let bad = |m: String| cx.err(m);
    let (k, n, bits, bs) = (
        usize::try_from(op.k).map_err(|_| bad(format!("k must be positive, got {}", op.k)))?,
        usize::try_from(op.n).map_err(|_| bad(format!("n must be positive, got {}", op.n)))?,
        usize::try_from(op.bits)
            .ok()
            .filter(|b| (1..=8).contains(b))
            .ok_or_else(|| bad(format!("bits must be 1 to 8, got {}", op.bits)))?,
        usize::try_from(op.block_size)
            .ok()
            .filter(|&b| b > 0)
            .ok_or_else(|| {
                bad(format!(
                    "block_size must be positive, got {}",
                    op.block_size
                ))
            })?,
    );
    let blocks = k.div_ceil(bs);
    let too_big = || cx.err(format!("k={k}, n={n}, block_size={bs} are too large"));
    let blob = bs.checked_mul(bits).ok_or_else(too_big)?.div_ceil(8);
    let b_bytes = n
        .checked_mul(blocks)
        .and_then(|x| x.checked_mul(blob))
        .ok_or_else(too_big)?;
    let bw = b.data.to_le_bytes().unwrap_or_default();
    if b.dtype() != DType::U8 || bw.len() != b_bytes {
        return Err(cx.err(format!(
            "b must be u8 with {n}·{blocks}·{blob} bytes, got {} of shape {:?}",
            b.dtype(),
            b.shape
        )));
    }
    if a.shape.last() != Some(&k) {
        return Err(cx.err(format!(
            "a's last dim must be k={k}, got shape {:?}",
            a.shape
        )));
    }
    let sv = to_f64(s).map_err(|e| tensor_err(cx, e))?;
    if sv.len() != n * blocks {
        return Err(cx.err(format!(
            "scales must have {n}·{blocks} elements, got shape {:?}",
            s.shape
        )));
    }
    // Zero point per (row, block), as f32.
    let default_zp = (1u32 << (bits - 1)) as f32;
    let zps: Vec<f32> = match cx.opt_tensor(3)? {
        None => vec![default_zp; n * blocks],
        Some(z) if z.dtype() == DType::U8 => {
            let zb = z.data.to_le_bytes().unwrap_or_default();
            let row = (blocks * bits).div_ceil(8);
            if zb.len() != n * row {
                return Err(cx.err(format!(
                    "packed zero points must have {n}·{row} bytes, got shape {:?}",
                    z.shape
                )));
            }
            let mut v = Vec::with_capacity(n * blocks);
            for r in 0..n {
                for blk in 0..blocks {
                    let q = read_bits(&zb[r * row..(r + 1) * row], blk * bits, bits)
                        .ok_or_else(|| cx.err("zero points are too short"))?;
                    v.push(q as f32);
                }
            }
            v
        }
        Some(z) => {
            let v = to_f64(z).map_err(|e| tensor_err(cx, e))?;
            if v.len() != n * blocks {
                return Err(cx.err(format!(
                    "zero points must have {n}·{blocks} elements, got shape {:?}",
                    z.shape
                )));
            }
            v.iter().map(|&x| x as f32).collect()
        }
    };
    let g_idx: Option<Vec<usize>> = match cx.opt_tensor(4)? {
        None => None,
        Some(g) => {
            let v = to_i64(g).map_err(|e| tensor_err(cx, e))?;
            if v.len() != k || v.iter().any(|&x| x < 0 || x as usize >= blocks) {
                return Err(cx.err(format!("g_idx must hold {k} block indices below {blocks}")));
            }
            Some(v.iter().map(|&x| x as usize).collect())
        }
    };
    // Dequantized weights, transposed to [k, n] for the GEMM.
    checked_numel(&[k, n]).map_err(|e| tensor_err(cx, e))?;
    let mut wt = vec![0f32; k * n];
    for r in 0..n {
        let row = &bw[r * blocks * blob..(r + 1) * blocks * blob];
        for kk in 0..k {
            let (blk, j) = (kk / bs, kk % bs);
            let q = read_bits(&row[blk * blob..(blk + 1) * blob], j * bits, bits)
                .ok_or_else(|| cx.err("b is too short"))?;
            let gb = g_idx.as_ref().map_or(blk, |g| g[kk]);
            let p = r * blocks + gb;
            wt[kk * n + r] = (q as f32 - zps[p]) * sv[p] as f32;
        }
    }
    let av: Vec<f32> = to_f64(a)
        .map_err(|e| tensor_err(cx, e))?
        .iter()
        .map(|&x| x as f32)
        .collect();
    let rows = av.len().checked_div(k).unwrap_or(0);
    let mut out_shape = a.shape.clone();
    let last = out_shape.len() - 1;
    out_shape[last] = n;
    let total = checked_numel(&out_shape).map_err(|e| tensor_err(cx, e))?;
    let mut y = vec![0f32; total];
    sgemm(rows, k, n, &av, k, &wt, n, &mut y, n, false);
    if let Some(bias) = cx.opt_tensor(5)? {
        let bv = to_f64(bias).map_err(|e| tensor_err(cx, e))?;
        if bv.len() != n {
            return Err(cx.err(format!(
                "bias must have n={n} elements, got shape {:?}",
                bias.shape
            )));
        }
        for (i, v) in y.iter_mut().enumerate() {
            *v += bv[i % n] as f32;
        }
    }
    let yv: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    let t = float_tensor(out_dtype(cx, 0)?, out_shape, &yv).map_err(|m| cx.err(m))?;
    Ok(vec![t.into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_plans_follow_numpy() {
        let p = plan(&[2, 1, 3, 4], &[5, 4, 6]).unwrap();
        assert_eq!(p.out_shape, vec![2, 5, 3, 6]);
        assert_eq!(p.a_batch, vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(p.b_batch, vec![0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
        assert_eq!(plan(&[4], &[4, 6]).unwrap().out_shape, vec![6]);
        assert_eq!(plan(&[3, 4], &[4]).unwrap().out_shape, vec![3]);
        assert!(plan(&[3, 4], &[5, 6]).is_err());
    }
}
