//! Inference of the attention ops: `attention` (ONNX Attention, opsets 23–25) and `flex_attention`.

use super::*;

/// The dims attention works with, as far as they are known.
struct AttnDims {
    batch: Dim,
    q_heads: Dim,
    kv_heads: Dim,
    q_seq: Dim,
    kv_seq: Dim,
    head: Dim,
    v_head: Dim,
}

impl Infer for Attention {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let qt = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        let vt = float(cx, 2)?;
        let n_out = cx.num_outputs();
        if !(1..=4).contains(&n_out) {
            return Err(cx.err(format!("has 1 to 4 outputs, got {n_out}")));
        }
        if self.left_window < -1 || self.right_window < -1 {
            return Err(cx.err("window sizes must be ≥ -1"));
        }
        let (q, k, v) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
        let ranks: Vec<usize> = [q, k, v].iter().filter_map(|t| t.rank()).collect();
        if ranks.windows(2).any(|w| w[0] != w[1]) {
            return Err(cx.err(format!(
                "Q, K and V must all be 3-D or all 4-D, got {q}, {k} and {v}"
            )));
        }
        let rank = ranks.first().copied();
        if let Some(r) = rank.filter(|r| !matches!(r, 3 | 4)) {
            return Err(cx.err(format!("Q, K and V must be 3-D or 4-D, got rank {r}")));
        }
        let dims = |t: &TensorType, r: usize| -> Vec<Dim> {
            t.dims().map_or(vec![Dim::Unknown; r], <[Dim]>::to_vec)
        };
        let d = match rank {
            Some(3) => {
                let hq = heads(cx, self.q_num_heads, "q_num_heads")?;
                let hkv = heads(cx, self.kv_num_heads, "kv_num_heads")?;
                let (qd, kd, vd) = (dims(q, 3), dims(k, 3), dims(v, 3));
                let head = div_dim(cx, &qd[2], hq, "Q hidden size / q_num_heads")?;
                let k_head = div_dim(cx, &kd[2], hkv, "K hidden size / kv_num_heads")?;
                Some(AttnDims {
                    batch: qd[0].clone(),
                    q_heads: Dim::Known(hq),
                    kv_heads: Dim::Known(hkv),
                    q_seq: qd[1].clone(),
                    kv_seq: unify(cx, &kd[1], &vd[1], "K and V sequence lengths")?,
                    head: unify(cx, &head, &k_head, "Q and K head sizes")?,
                    v_head: div_dim(cx, &vd[2], hkv, "V hidden size / kv_num_heads")?,
                })
            }
            Some(_) => {
                let (qd, kd, vd) = (dims(q, 4), dims(k, 4), dims(v, 4));
                Some(AttnDims {
                    batch: qd[0].clone(),
                    q_heads: qd[1].clone(),
                    kv_heads: unify(cx, &kd[1], &vd[1], "K and V head counts")?,
                    q_seq: qd[2].clone(),
                    kv_seq: unify(cx, &kd[2], &vd[2], "K and V sequence lengths")?,
                    head: unify(cx, &qd[3], &kd[3], "Q and K head sizes")?,
                    v_head: vd[3].clone(),
                })
            }
            None => None,
        };
        if let Some(d) = &d
            && let (Dim::Known(a), Dim::Known(b)) = (&d.q_heads, &d.kv_heads)
            && (*b == 0 || a % b != 0)
        {
            return Err(cx.err(format!(
                "q heads ({a}) must be a multiple of kv heads ({b})"
            )));
        }
        // Mask and cache inputs.
        if let Some(m) = cx.opt_tensor(3)?
            && (m.dtype == DType::String || m.rank().is_some_and(|r| r > 4))
        {
            return Err(cx.err(format!(
                "attn_mask must be a bool or numeric tensor of rank ≤ 4, got {m}"
            )));
        }
        if cx.has_input(4) != cx.has_input(5) {
            return Err(cx.err("past_key and past_value must be given together"));
        }
        let mut past = Dim::Known(0);
        if let (Some(pk), Some(pv)) = (cx.opt_tensor(4)?, cx.opt_tensor(5)?) {
            same_dtype(cx, 0, 4)?;
            same_dtype(cx, 2, 5)?;
            for t in [pk, pv] {
                if t.rank().is_some_and(|r| r != 4) {
                    return Err(cx.err(format!("past key/value must be 4-D, got {t}")));
                }
            }
            let (pkd, pvd) = (dims(pk, 4), dims(pv, 4));
            past = unify(cx, &pkd[2], &pvd[2], "past key and value lengths")?;
        }
        if let Some(s) = cx.opt_tensor(6)?
            && (!s.dtype.is_int() || s.rank().is_some_and(|r| r != 1))
        {
            return Err(cx.err(format!(
                "nonpad_kv_seqlen must be a 1-D i64 tensor, got {s}"
            )));
        }
        let Some(d) = d else {
            let mut types = vec![out(qt, None)];
            types.extend([
                out(qt, Some(Shape(vec![Dim::Unknown; 4]))),
                out(vt, Some(Shape(vec![Dim::Unknown; 4]))),
                out(qt, Some(Shape(vec![Dim::Unknown; 4]))),
            ]);
            types.truncate(n_out);
            return Ok(types);
        };
        let total = add_dim(&past, &d.kv_seq);
        let y = if rank == Some(3) {
            let hidden = match (&d.q_heads, &d.v_head) {
                (Dim::Known(h), v) => Dim::Known(*h).mul(v),
                _ => Dim::Unknown,
            };
            vec![d.batch.clone(), d.q_seq.clone(), hidden]
        } else {
            vec![
                d.batch.clone(),
                d.q_heads.clone(),
                d.q_seq.clone(),
                d.v_head.clone(),
            ]
        };
        let kv = |last: &Dim| {
            vec![
                d.batch.clone(),
                d.kv_heads.clone(),
                total.clone(),
                last.clone(),
            ]
        };
        let mut types = vec![
            out(qt, Some(Shape(y))),
            out(qt, Some(Shape(kv(&d.head)))),
            out(vt, Some(Shape(kv(&d.v_head)))),
            out(
                qt,
                Some(Shape(vec![
                    d.batch.clone(),
                    d.q_heads.clone(),
                    d.q_seq.clone(),
                    total.clone(),
                ])),
            ),
        ];
        types.truncate(n_out);
        Ok(types)
    }
}

impl FlexAttention {
    /// The element type scores and probabilities are computed in.
    pub fn precision(&self, input: DType) -> DType {
        self.softmax_precision.unwrap_or(if input == DType::F64 {
            DType::F64
        } else {
            DType::F32
        })
    }

    /// The type of the scores and probabilities (`[B, Hq, L, S]`) for query `q` and key `k`: what the
    /// modifier subgraphs take and return.
    pub fn scores_type(&self, q: &TensorType, k: &TensorType) -> TensorType {
        let at = |t: &TensorType, i: usize| {
            t.dims()
                .and_then(|d| d.get(i).cloned())
                .unwrap_or(Dim::Unknown)
        };
        TensorType::new(
            self.precision(q.dtype),
            Shape(vec![at(q, 0), at(q, 1), at(q, 2), at(k, 2)]),
        )
    }
}

impl Infer for FlexAttention {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        same_dtype(cx, 0, 2)?;
        let (q, k, v) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
        for (i, t) in [q, k, v].into_iter().enumerate() {
            if t.rank().is_some_and(|r| r != 4) {
                return Err(cx.err(format!("input {i} must be 4-D, got {t}")));
            }
        }
        let d = |t: &TensorType| t.dims().map_or(vec![Dim::Unknown; 4], <[Dim]>::to_vec);
        let (qd, kd, vd) = (d(q), d(k), d(v));
        unify(cx, &qd[3], &kd[3], "Q and K head sizes")?;
        unify(cx, &kd[2], &vd[2], "K and V sequence lengths")?;
        let kv_heads = unify(cx, &kd[1], &vd[1], "K and V head counts")?;
        if let (Dim::Known(a), Dim::Known(b)) = (&qd[1], &kv_heads)
            && (*b == 0 || a % b != 0)
        {
            return Err(cx.err(format!(
                "q heads ({a}) must be a multiple of kv heads ({b})"
            )));
        }
        let scores = Type::Tensor(self.scores_type(q, k));
        for (name, g) in [("score_mod", &self.score_mod), ("prob_mod", &self.prob_mod)] {
            let Some(g) = g else { continue };
            if g.inputs.len() != 1 || g.outputs.len() != 1 {
                return Err(cx.err(format!(
                    "{name} must take one input and return one output, it has {} and {}",
                    g.inputs.len(),
                    g.outputs.len()
                )));
            }
            let o = g.ty(g.outputs[0]);
            if !compatible(o, &scores) {
                return Err(cx.err(format!("{name} returns {o}, scores are {scores}")));
            }
        }
        Ok(vec![out(
            dtype,
            Some(Shape(vec![
                qd[0].clone(),
                qd[1].clone(),
                qd[2].clone(),
                vd[3].clone(),
            ])),
        )])
    }
}
