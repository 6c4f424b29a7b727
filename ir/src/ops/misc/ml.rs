//! Inference of the classical-ML (`ai.onnx.ml`) ops.

use super::*;

impl Infer for ArrayFeatureExtractor {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let y = cx.tensor(1)?;
        if y.dtype != DType::I64 {
            return Err(cx.err(format!("indices (input 1) must be i64, got {}", y.dtype)));
        }
        // The indices' element count.
        let k = match y.dims() {
            Some(d) => d.iter().fold(Dim::Known(1), |acc, x| acc.mul(x)),
            None => Dim::Unknown,
        };
        let shape = match x.dims() {
            None => None,
            Some([]) => return Err(cx.err("input 0 must have rank >= 1")),
            Some([_]) => Some(Shape(vec![Dim::Known(1), k])),
            Some(d) => {
                let mut d = d.to_vec();
                let last = d.len() - 1;
                d[last] = k;
                Some(Shape(d))
            }
        };
        Ok(vec![tensor_out(x.dtype, shape)])
    }
}

impl Infer for Binarizer {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        same_as_input(cx)
    }
}

impl Infer for LabelEncoder {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if t.dtype != self.keys.ty.dtype {
            return Err(cx.err(format!(
                "input element type {} differs from the keys' {}",
                t.dtype, self.keys.ty.dtype
            )));
        }
        if self.keys.num_elements() != self.values.num_elements() {
            return Err(cx.err(format!(
                "{} keys but {} values",
                self.keys.num_elements(),
                self.values.num_elements()
            )));
        }
        if self.default.ty.dtype != self.values.ty.dtype || self.default.num_elements() != 1 {
            return Err(cx.err(format!(
                "the default must be one {} value, got {}",
                self.values.ty.dtype, self.default.ty
            )));
        }
        Ok(vec![tensor_out(self.values.ty.dtype, t.shape.clone())])
    }
}

impl Infer for TreeEnsemble {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let d = check_float(cx, 0, "input 0")?;
        let x = cx.tensor(0)?;
        let n_targets = u64::try_from(self.n_targets)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| cx.err(format!("n_targets must be >= 1, got {}", self.n_targets)))?;
        let n_nodes = self.nodes_featureids.len();
        let node_lens = [
            ("nodes_modes", self.nodes_modes.num_elements() as usize),
            ("nodes_splits", self.nodes_splits.num_elements() as usize),
            ("nodes_truenodeids", self.nodes_truenodeids.len()),
            ("nodes_trueleafs", self.nodes_trueleafs.len()),
            ("nodes_falsenodeids", self.nodes_falsenodeids.len()),
            ("nodes_falseleafs", self.nodes_falseleafs.len()),
        ];
        if let Some((name, len)) = node_lens.iter().find(|(_, l)| *l != n_nodes) {
            return Err(cx.err(format!(
                "{name} has {len} entries but nodes_featureids has {n_nodes}"
            )));
        }
        if self.leaf_targetids.len() as u64 != self.leaf_weights.num_elements() {
            return Err(cx.err(format!(
                "leaf_targetids has {} entries but leaf_weights has {}",
                self.leaf_targetids.len(),
                self.leaf_weights.num_elements()
            )));
        }
        if let Some(bad) = self
            .leaf_targetids
            .iter()
            .find(|&&t| t < 0 || t as u64 >= n_targets)
        {
            return Err(cx.err(format!(
                "leaf target id {bad} is out of range 0..{n_targets}"
            )));
        }
        let batch = match x.dims() {
            Some([n, _]) => n.clone(),
            Some([_]) => Dim::Known(1),
            Some(dims) => {
                return Err(cx.err(format!("input must be [N, F], got rank {}", dims.len())));
            }
            None => Dim::Unknown,
        };
        Ok(vec![tensor_out(
            d,
            Some(Shape(vec![batch, Dim::Known(n_targets)])),
        )])
    }
}

/// Class labels of a classifier: the key type and count, exactly one of the two lists being set.
fn class_labels(
    cx: &InferCtx,
    ints: &[i64],
    strings: &[String],
) -> Result<(DType, usize), InferError> {
    match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Ok((DType::I64, ints.len())),
        (true, false) => Ok((DType::String, strings.len())),
        _ => Err(cx.err("exactly one of the integer and string class label lists must be set")),
    }
}

impl Infer for ZipMap {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        if x.dtype != DType::F32 {
            return Err(cx.err(format!("input must be f32, got {}", x.dtype)));
        }
        let (key, n) = class_labels(cx, &self.classlabels_int64s, &self.classlabels_strings)?;
        if let Some(d) = x.dims()
            && let Some(c) = d.last()
            && c.conflicts(&Dim::Known(n as u64))
        {
            return Err(cx.err(format!("input has {c} columns but there are {n} labels")));
        }
        let value = Type::Tensor(TensorType::scalar(DType::F32));
        Ok(vec![Type::Sequence(Box::new(Type::Map(
            key,
            Box::new(value),
        )))])
    }
}

fn check_ml_numeric<'a>(cx: &InferCtx<'a>) -> Result<&'a TensorType, InferError> {
    let t = cx.tensor(0)?;
    if !matches!(t.dtype, DType::F32 | DType::F64 | DType::I64 | DType::I32) {
        return Err(cx.err(format!(
            "input must be f32, f64, i64 or i32, got {}",
            t.dtype
        )));
    }
    Ok(t)
}

impl Infer for Normalizer {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_ml_numeric(cx)?;
        Ok(vec![tensor_out(DType::F32, t.shape.clone())])
    }
}

impl Infer for Scaler {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_ml_numeric(cx)?;
        Ok(vec![tensor_out(DType::F32, t.shape.clone())])
    }
}

impl Infer for LinearClassifier {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = check_ml_numeric(cx)?;
        let (label, n_labels) =
            class_labels(cx, &self.classlabels_ints, &self.classlabels_strings)?;
        check_outputs(cx, 2)?;
        let (batch, features) = match x.dims() {
            Some([n, c]) => (n.clone(), c.known()),
            Some([c]) => (Dim::Known(1), c.known()),
            Some(d) => {
                return Err(cx.err(format!("input must be [N, C], got rank {}", d.len())));
            }
            None => (Dim::Unknown, None),
        };
        let classes = if !self.intercepts.is_empty() {
            Some(self.intercepts.len() as u64)
        } else {
            features
                .filter(|&c| c > 0)
                .map(|c| self.coefficients.len() as u64 / c)
        };
        if let (Some(k), Some(c)) = (classes, features)
            && k.checked_mul(c) != Some(self.coefficients.len() as u64)
        {
            return Err(cx.err(format!(
                "{} coefficients do not make {k} classes of {c} features",
                self.coefficients.len()
            )));
        }
        // A single score column with two labels is a binary classifier reporting both classes.
        let e = match classes {
            Some(1) if n_labels == 2 => Dim::Known(2),
            Some(k) => Dim::Known(k),
            None => Dim::Unknown,
        };
        let mut out = vec![tensor_out(label, Some(Shape(vec![batch.clone()])))];
        if cx.num_outputs() == 2 {
            out.push(tensor_out(DType::F32, Some(Shape(vec![batch, e]))));
        }
        Ok(out)
    }
}
