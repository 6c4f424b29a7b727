//! Inference of `non_max_suppression`.

use super::*;

impl Infer for NonMaxSuppression {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_float(cx, 0, "boxes (input 0)")?;
        check_float(cx, 1, "scores (input 1)")?;
        check_rank(cx, 0, 3, "boxes (input 0)")?;
        check_rank(cx, 1, 3, "scores (input 1)")?;
        if let Some(d) = cx.tensor(0)?.dims()
            && d[2].conflicts(&Dim::Known(4))
        {
            return Err(cx.err(format!("boxes must be [B, S, 4], last dim is {}", d[2])));
        }
        if let (Some(b), Some(s)) = (cx.tensor(0)?.dims(), cx.tensor(1)?.dims())
            && (b[0].conflicts(&s[0]) || b[1].conflicts(&s[2]))
        {
            return Err(cx.err(format!(
                "boxes [B, S, 4] and scores [B, C, S] disagree: {} and {}",
                cx.tensor(0)?,
                cx.tensor(1)?
            )));
        }
        check_scalar(cx, 2, "max_output_boxes_per_class (input 2)", |d| {
            d == DType::I64
        })?;
        check_scalar(cx, 3, "iou_threshold (input 3)", DType::is_float)?;
        check_scalar(cx, 4, "score_threshold (input 4)", DType::is_float)?;
        Ok(vec![tensor_out(
            DType::I64,
            Some(Shape(vec![Dim::Unknown, Dim::Known(3)])),
        )])
    }
}
