//! Inference of `tfidf_vectorizer`.

use super::*;

impl Infer for TfIdfVectorizer {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        match t.dtype {
            DType::String if self.pool_int64s.is_empty() => {}
            DType::I32 | DType::I64 if self.pool_strings.is_empty() => {}
            d => {
                return Err(cx.err(format!(
                    "input element type {d} does not match the pool (pool_strings for string input, \
                     pool_int64s for integer input)"
                )));
            }
        }
        if self.min_gram_length < 1 || self.max_gram_length < self.min_gram_length {
            return Err(cx.err(format!(
                "need 1 <= min_gram_length <= max_gram_length, got {} and {}",
                self.min_gram_length, self.max_gram_length
            )));
        }
        if self.max_skip_count < 0 {
            return Err(cx.err("max_skip_count must be >= 0"));
        }
        if self.ngram_indexes.iter().any(|&i| i < 0) {
            return Err(cx.err("ngram_indexes must be >= 0"));
        }
        let width = self
            .ngram_indexes
            .iter()
            .max()
            .map_or(Some(0), |&m| (m as u64).checked_add(1))
            .ok_or_else(|| cx.err("ngram_indexes overflow"))?;
        let shape = match t.dims() {
            None => None,
            Some([_]) => Some(Shape(vec![Dim::Known(width)])),
            Some([n, _]) => Some(Shape(vec![n.clone(), Dim::Known(width)])),
            Some(d) => {
                return Err(cx.err(format!("input must be [C] or [N, C], got rank {}", d.len())));
            }
        };
        Ok(vec![tensor_out(DType::F32, shape)])
    }
}
