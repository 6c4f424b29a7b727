//! Inference of the string ops (`string_normalizer`, `string_concat`, `string_split`,
//! `regex_full_match`) and `image_decoder`.

use super::*;

fn check_string<'a>(cx: &InferCtx<'a>, i: usize) -> Result<&'a TensorType, InferError> {
    let t = cx.tensor(i)?;
    if t.dtype != DType::String {
        return Err(cx.err(format!(
            "input {i} must be a string tensor, got {}",
            t.dtype
        )));
    }
    Ok(t)
}

impl Infer for StringNormalizer {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_string(cx, 0)?;
        let shape = match t.dims() {
            None => None,
            Some(d) => {
                let ok = d.len() == 1 || (d.len() == 2 && !d[0].conflicts(&Dim::Known(1)));
                if !ok {
                    return Err(cx.err(format!("input must be [C] or [1, C], got {t}")));
                }
                if self.stopwords.is_empty() {
                    Some(Shape(d.to_vec()))
                } else {
                    let mut d = d.to_vec();
                    let last = d.len() - 1;
                    d[last] = Dim::Unknown;
                    Some(Shape(d))
                }
            }
        };
        Ok(vec![tensor_out(DType::String, shape)])
    }
}

impl Infer for StringConcat {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let a = check_string(cx, 0)?;
        let b = check_string(cx, 1)?;
        let shape = broadcast_types(&[a, b]).map_err(|m| cx.err(m))?;
        Ok(vec![tensor_out(DType::String, shape)])
    }
}

impl Infer for StringSplit {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_string(cx, 0)?;
        if let Some(m) = self.maxsplit
            && m < 0
        {
            return Err(cx.err(format!("maxsplit must be >= 0, got {m}")));
        }
        check_outputs(cx, 2)?;
        let y = t.shape.as_ref().map(|s| {
            let mut d = s.0.clone();
            d.push(Dim::Unknown);
            Shape(d)
        });
        let mut out = vec![tensor_out(DType::String, y)];
        if cx.num_outputs() == 2 {
            out.push(tensor_out(DType::I64, t.shape.clone()));
        }
        Ok(out)
    }
}

impl Infer for RegexFullMatch {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_string(cx, 0)?;
        Ok(vec![tensor_out(DType::Bool, t.shape.clone())])
    }
}

impl Infer for ImageDecoder {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if t.dtype != DType::U8 {
            return Err(cx.err(format!("the encoded stream must be u8, got {}", t.dtype)));
        }
        check_rank(cx, 0, 1, "the encoded stream (input 0)")?;
        let c = match self.pixel_format {
            PixelFormat::Grayscale => 1,
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
        };
        Ok(vec![tensor_out(
            DType::U8,
            Some(Shape(vec![Dim::Unknown, Dim::Unknown, Dim::Known(c)])),
        )])
    }
}
