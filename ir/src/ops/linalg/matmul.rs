//! Inference of the matrix products: `matmul` (numpy semantics), `gemm` and `det`.

use super::*;

impl Infer for MatMul {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        // Quantized operands (u8 and i8 may mix): the i32 product type (see `ops::quant::typing`).
        let quant = crate::ops::quant::typing::matmul_accumulator(cx)?;
        let dtype = if quant.is_some() {
            DType::I32
        } else {
            let d = numeric(cx, 0)?;
            same_dtype(cx, 0, 1)?;
            d
        };
        let out = |dtype, shape| {
            Type::Tensor(TensorType {
                dtype,
                shape,
                quant: quant.clone(),
            })
        };
        let (a, b) = (cx.tensor(0)?, cx.tensor(1)?);
        let (Some(ad), Some(bd)) = (a.dims(), b.dims()) else {
            return Ok(vec![out(dtype, None)]);
        };
        if ad.is_empty() || bd.is_empty() {
            return Err(cx.err(format!("operands must have rank ≥ 1, got {a} and {b}")));
        }
        let a2: Vec<Dim> = if ad.len() == 1 {
            vec![Dim::Known(1), ad[0].clone()]
        } else {
            ad.to_vec()
        };
        let b2: Vec<Dim> = if bd.len() == 1 {
            vec![bd[0].clone(), Dim::Known(1)]
        } else {
            bd.to_vec()
        };
        let (ra, rb) = (a2.len(), b2.len());
        unify(cx, &a2[ra - 1], &b2[rb - 2], "contracted dims (K)")?;
        let batch =
            broadcast_shapes(&[&Shape(a2[..ra - 2].to_vec()), &Shape(b2[..rb - 2].to_vec())])
                .map_err(|m| cx.err(format!("batch dims: {m}")))?;
        let mut dims = batch.0;
        if ad.len() > 1 {
            dims.push(a2[ra - 2].clone());
        }
        if bd.len() > 1 {
            dims.push(b2[rb - 1].clone());
        }
        Ok(vec![out(dtype, Some(Shape(dims)))])
    }
}

impl Infer for Gemm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = numeric(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        let (a, b) = (cx.tensor(0)?, cx.tensor(1)?);
        for (i, t) in [(0, a), (1, b)] {
            if t.rank().is_some_and(|r| r != 2) {
                return Err(cx.err(format!("input {i} must be 2-D, got {t}")));
            }
        }
        let pick = |t: &TensorType, trans: bool, outer: bool| -> Dim {
            t.dims()
                .map_or(Dim::Unknown, |d| d[usize::from(trans == outer)].clone())
        };
        let m = pick(a, self.trans_a, true);
        let n = pick(b, self.trans_b, false);
        // K: A's inner dim and B's outer dim.
        let ka = pick(a, self.trans_a, false);
        let kb = pick(b, self.trans_b, true);
        unify(cx, &ka, &kb, "contracted dims (K)")?;
        let y = [m, n];
        if let Some(c) = cx.opt_tensor(2)? {
            same_dtype(cx, 0, 2)?;
            if let Some(cd) = c.dims() {
                let fits = cd.len() <= 2
                    && cd
                        .iter()
                        .rev()
                        .zip(y.iter().rev())
                        .all(|(c, y)| *c == Dim::Known(1) || !c.conflicts(y));
                if !fits {
                    return Err(cx.err(format!(
                        "C ({c}) does not broadcast to the result [{}, {}]",
                        y[0], y[1]
                    )));
                }
            }
        }
        Ok(vec![out(dtype, Some(Shape(y.to_vec())))])
    }
}

impl Infer for Det {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        let x = cx.tensor(0)?;
        let shape = match x.dims() {
            Some(d) if d.len() < 2 => {
                return Err(cx.err(format!("input must have rank ≥ 2, got {x}")));
            }
            Some(d) => {
                let r = d.len();
                unify(cx, &d[r - 2], &d[r - 1], "matrix dims (must be square)")?;
                Some(Shape(d[..r - 2].to_vec()))
            }
            None => None,
        };
        Ok(vec![out(dtype, shape)])
    }
}
