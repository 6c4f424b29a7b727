//! Inference of the transformer-layer pieces: `rotary_embedding`, `swiglu` and `linear_attention`.

use super::*;

impl Infer for RotaryEmbedding {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        same_dtype(cx, 0, 2)?;
        let x = cx.tensor(0)?;
        let head = match x.dims() {
            Some([_, _, hidden]) => {
                let h = heads(cx, self.num_heads, "num_heads")?;
                div_dim(cx, hidden, h, "hidden size / num_heads")?
            }
            Some([_, _, _, head]) => head.clone(),
            Some(_) => return Err(cx.err(format!("input must be 3-D or 4-D, got {x}"))),
            None => Dim::Unknown,
        };
        let rot = self.rotary_embedding_dim;
        if rot < 0 || rot % 2 != 0 {
            return Err(cx.err(format!(
                "rotary_embedding_dim must be even and ≥ 0, got {rot}"
            )));
        }
        if let Dim::Known(h) = head
            && (h % 2 != 0 || rot as u64 > h)
        {
            return Err(cx.err(format!(
                "head size {h} must be even and ≥ rotary_embedding_dim {rot}"
            )));
        }
        let want = if cx.has_input(3) { 2 } else { 3 };
        for i in 1..3 {
            let t = cx.tensor(i)?;
            if t.rank().is_some_and(|r| r != want) {
                return Err(cx.err(format!(
                    "input {i} must be {want}-D {}, got {t}",
                    if want == 2 {
                        "with position_ids"
                    } else {
                        "without position_ids"
                    }
                )));
            }
        }
        if let Some(p) = cx.opt_tensor(3)?
            && (!p.dtype.is_int() || p.rank().is_some_and(|r| r != 2))
        {
            return Err(cx.err(format!("position_ids must be a 2-D i64 tensor, got {p}")));
        }
        Ok(vec![out(dtype, x.shape.clone())])
    }
}

impl Infer for SwiGlu {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        let (a, b) = (
            Type::Tensor(cx.tensor(0)?.clone()),
            Type::Tensor(cx.tensor(1)?.clone()),
        );
        if !compatible(&a, &b) {
            return Err(cx.err(format!("A and B must have the same shape, got {a} and {b}")));
        }
        let Type::Tensor(t) = crate::infer::refine(&a, &b) else {
            return Err(cx.err("inputs must be tensors"));
        };
        Ok(vec![out(dtype, t.shape)])
    }
}

impl Infer for LinearAttention {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        same_dtype(cx, 0, 2)?;
        let hq = heads(cx, Some(self.q_num_heads), "q_num_heads")?;
        let hkv = heads(cx, Some(self.kv_num_heads), "kv_num_heads")?;
        if hq % hkv != 0 {
            return Err(cx.err(format!(
                "q_num_heads ({hq}) must be a multiple of kv_num_heads ({hkv})"
            )));
        }
        let n_out = cx.num_outputs();
        if !(1..=2).contains(&n_out) {
            return Err(cx.err(format!("has 1 or 2 outputs, got {n_out}")));
        }
        let needs_decay = matches!(self.update_rule, UpdateRule::Gated | UpdateRule::GatedDelta);
        let needs_beta = matches!(self.update_rule, UpdateRule::Delta | UpdateRule::GatedDelta);
        if needs_decay && !cx.has_input(4) {
            return Err(cx.err(format!(
                "update_rule {} needs the decay input (4)",
                self.update_rule.keyword()
            )));
        }
        if needs_beta && !cx.has_input(5) {
            return Err(cx.err(format!(
                "update_rule {} needs the beta input (5)",
                self.update_rule.keyword()
            )));
        }
        let mut d3 = Vec::new();
        for i in [0, 1, 2, 4, 5] {
            let Some(t) = cx.opt_tensor(i)? else {
                d3.push(vec![Dim::Unknown; 3]);
                continue;
            };
            if i >= 4 {
                same_dtype(cx, 0, i)?;
            }
            match t.dims() {
                Some(d) if d.len() == 3 => d3.push(d.to_vec()),
                Some(_) => return Err(cx.err(format!("input {i} must be 3-D, got {t}"))),
                None => d3.push(vec![Dim::Unknown; 3]),
            }
        }
        let (q, k, v) = (&d3[0], &d3[1], &d3[2]);
        let batch = unify(cx, &q[0], &k[0], "Q and K batch sizes")?;
        let batch = unify(cx, &batch, &v[0], "Q and V batch sizes")?;
        let seq = unify(cx, &q[1], &k[1], "Q and K lengths")?;
        let seq = unify(cx, &seq, &v[1], "Q and V lengths")?;
        let dk = div_dim(cx, &q[2], hq, "query hidden size / q_num_heads")?;
        let dk2 = div_dim(cx, &k[2], hkv, "key hidden size / kv_num_heads")?;
        let dk = unify(cx, &dk, &dk2, "query and key head sizes")?;
        let dv = div_dim(cx, &v[2], hkv, "value hidden size / kv_num_heads")?;
        let mut state_dtype = dtype;
        let mut state = vec![batch.clone(), Dim::Known(hkv), dk, dv.clone()];
        if let Some(p) = cx.opt_tensor(3)? {
            state_dtype = float(cx, 3)?;
            match p.dims() {
                Some(pd) if pd.len() == 4 => {
                    for (s, p) in state.iter_mut().zip(pd) {
                        *s = unify(cx, s, p, "past_state dims")?;
                    }
                }
                Some(_) => return Err(cx.err(format!("past_state must be 4-D, got {p}"))),
                None => {}
            }
        }
        let mut types = vec![
            out(
                dtype,
                Some(Shape(vec![batch, seq, Dim::Known(hq).mul(&dv)])),
            ),
            out(state_dtype, Some(Shape(state))),
        ];
        types.truncate(n_out);
        Ok(types)
    }
}
