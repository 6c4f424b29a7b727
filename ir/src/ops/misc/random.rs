//! Inference of dropout and the random generators: `dropout`, `random_normal`, `random_uniform`,
//! `bernoulli` and `multinomial`.

use super::*;

impl Infer for Dropout {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        check_scalar(cx, 1, "ratio (input 1)", DType::is_float)?;
        check_scalar(cx, 2, "training_mode (input 2)", |d| d == DType::Bool)?;
        check_outputs(cx, 2)?;
        let mut out = vec![tensor_out(t.dtype, t.shape.clone())];
        if cx.num_outputs() == 2 {
            out.push(tensor_out(DType::Bool, t.shape.clone()));
        }
        Ok(out)
    }
}

/// Output type of the random generators: input 0's shape (and dtype unless set) when present, else the
/// `shape` attribute and `dtype` (default f32).
fn random_type(
    cx: &InferCtx,
    dtype: Option<DType>,
    shape: &[i64],
) -> Result<Vec<Type>, InferError> {
    let (dtype, shape) = match cx.opt_tensor(0)? {
        Some(t) => (dtype.unwrap_or(t.dtype), t.shape.clone()),
        None => (
            dtype.unwrap_or(DType::F32),
            Some(dims_from_attr(cx, shape)?),
        ),
    };
    if !dtype.is_float() {
        return Err(cx.err(format!(
            "random values must be a float type, got {dtype} (set dtype)"
        )));
    }
    Ok(vec![tensor_out(dtype, shape)])
}

impl Infer for RandomNormal {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        random_type(cx, self.dtype, &self.shape)
    }
}

impl Infer for RandomUniform {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        random_type(cx, self.dtype, &self.shape)
    }
}

impl Infer for Bernoulli {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let d = check_float(cx, 0, "input 0")?;
        let t = cx.tensor(0)?;
        Ok(vec![tensor_out(self.dtype.unwrap_or(d), t.shape.clone())])
    }
}

impl Infer for Multinomial {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_float(cx, 0, "input 0")?;
        if !matches!(self.dtype, DType::I32 | DType::I64) {
            return Err(cx.err(format!("dtype must be i32 or i64, got {}", self.dtype)));
        }
        let n = u64::try_from(self.sample_size).map_err(|_| {
            cx.err(format!(
                "sample_size must be >= 0, got {}",
                self.sample_size
            ))
        })?;
        let t = cx.tensor(0)?;
        let batch = match t.dims() {
            Some([b, _]) => b.clone(),
            Some(d) => {
                return Err(cx.err(format!(
                    "input 0 must be [batch, classes], got rank {}",
                    d.len()
                )));
            }
            None => Dim::Unknown,
        };
        Ok(vec![tensor_out(
            self.dtype,
            Some(Shape(vec![batch, Dim::Known(n)])),
        )])
    }
}
