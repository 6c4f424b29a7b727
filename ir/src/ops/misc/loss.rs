//! Inference of the losses: `nll_loss` and `softmax_cross_entropy_loss`.

use super::*;

/// Shared checks and output 0 of the two losses: input `[N, C, d...]`, target `[N, d...]`, weight `[C]`.
fn loss_type(cx: &InferCtx, reduction: Reduction) -> Result<Type, InferError> {
    let d = check_float(cx, 0, "input 0")?;
    let x = cx.tensor(0)?;
    let target = cx.tensor(1)?;
    if !matches!(target.dtype, DType::I32 | DType::I64) {
        return Err(cx.err(format!(
            "target (input 1) must be i32 or i64, got {}",
            target.dtype
        )));
    }
    if let Some(w) = cx.opt_tensor(2)? {
        if w.dtype != d {
            return Err(cx.err(format!("weight must be {d}, got {}", w.dtype)));
        }
        check_rank(cx, 2, 1, "weight (input 2)")?;
        if let (Some(wd), Some(xd)) = (w.dims(), x.dims())
            && xd.len() >= 2
            && wd[0].conflicts(&xd[1])
        {
            return Err(cx.err(format!("weight {w} does not match the {} classes", xd[1])));
        }
    }
    let out_dims: Option<Vec<Dim>> = match (x.dims(), target.dims()) {
        (Some(xd), _) if xd.len() < 2 => {
            return Err(cx.err(format!("input must be [N, C, d...], got {x}")));
        }
        (Some(xd), Some(td)) => {
            if td.len() + 1 != xd.len() {
                return Err(cx.err(format!(
                    "target must have rank {} for input {x}, got {target}",
                    xd.len() - 1
                )));
            }
            let expect = std::iter::once(&xd[0]).chain(&xd[2..]);
            let mut out = Vec::with_capacity(td.len());
            for (a, b) in expect.zip(td) {
                if a.conflicts(b) {
                    return Err(cx.err(format!("target {target} does not match input {x}")));
                }
                out.push(a.refine(b));
            }
            Some(out)
        }
        (Some(xd), None) => Some(std::iter::once(&xd[0]).chain(&xd[2..]).cloned().collect()),
        (None, Some(td)) => Some(td.to_vec()),
        (None, None) => None,
    };
    Ok(match reduction {
        Reduction::None => tensor_out(d, out_dims.map(Shape)),
        Reduction::Sum | Reduction::Mean => tensor_out(d, Some(Shape::scalar())),
    })
}

impl Infer for NllLoss {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_outputs(cx, 1)?;
        Ok(vec![loss_type(cx, self.reduction)?])
    }
}

impl Infer for SoftmaxCrossEntropyLoss {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_outputs(cx, 2)?;
        let mut out = vec![loss_type(cx, self.reduction)?];
        if cx.num_outputs() == 2 {
            out.extend(same_as_input(cx)?);
        }
        Ok(out)
    }
}
