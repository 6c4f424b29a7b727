//! Inference of the region-of-interest ops: `max_roi_pool` and `roi_align`.

use super::*;

impl Infer for MaxRoiPool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let rois = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        float_like(cx, 1, x.dtype)?;
        exact_rank(cx, 0, 4)?;
        exact_rank(cx, 1, 2)?;
        unify(
            cx,
            "rois dim 1 and 5 (batch index, x1, y1, x2, y2)",
            &dim(rois, 1),
            &Dim::Known(5),
        )?;
        let [ph, pw] = self.pooled_shape[..] else {
            return Err(cx.err(format!(
                "pooled_shape must have 2 values, got {}",
                self.pooled_shape.len()
            )));
        };
        let ph = positive_attr(cx, "pooled_shape[0]", ph)?;
        let pw = positive_attr(cx, "pooled_shape[1]", pw)?;
        Ok(vec![tensor(
            x.dtype,
            vec![dim(rois, 0), dim(x, 1), Dim::Known(ph), Dim::Known(pw)],
        )])
    }
}

impl Infer for RoiAlign {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let rois = cx.tensor(1)?;
        let bi = cx.tensor(2)?;
        require_float(cx, x.dtype)?;
        float_like(cx, 1, x.dtype)?;
        if !bi.dtype.is_int() {
            return Err(cx.err(format!("batch_indices must be integers, got {}", bi.dtype)));
        }
        exact_rank(cx, 0, 4)?;
        exact_rank(cx, 1, 2)?;
        exact_rank(cx, 2, 1)?;
        unify(
            cx,
            "rois dim 1 and 4 (x1, y1, x2, y2)",
            &dim(rois, 1),
            &Dim::Known(4),
        )?;
        let r = unify(
            cx,
            "the ROI counts of rois and batch_indices",
            &dim(rois, 0),
            &dim(bi, 0),
        )?;
        let oh = positive_attr(cx, "output_height", self.output_height)?;
        let ow = positive_attr(cx, "output_width", self.output_width)?;
        if self.sampling_ratio < 0 {
            return Err(cx.err(format!(
                "sampling_ratio must not be negative, got {}",
                self.sampling_ratio
            )));
        }
        Ok(vec![tensor(
            x.dtype,
            vec![r, dim(x, 1), Dim::Known(oh), Dim::Known(ow)],
        )])
    }
}
