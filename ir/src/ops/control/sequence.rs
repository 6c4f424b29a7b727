//! Inference of the sequence ops: construction, insertion, lookup, erasure, length, `split_to_sequence`,
//! `concat_from_sequence` and `sequence_map`.

use super::*;

/// The element type of sequence input `i`.
fn seq_elem<'a>(cx: &InferCtx<'a>, i: usize) -> Result<&'a Type, InferError> {
    match cx.required(i)? {
        Type::Sequence(e) => Ok(e),
        t => Err(cx.err(format!("input {i} must be a sequence, got {}", t.kind()))),
    }
}

impl Infer for SequenceEmpty {
    fn infer(&self, _cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![Type::Sequence(Box::new(Type::Tensor(
            TensorType::unranked(self.dtype),
        )))])
    }
}

impl Infer for SequenceConstruct {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let mut elem: Option<Type> = None;
        for i in 0..cx.num_inputs() {
            let t = Type::Tensor(cx.tensor(i)?.clone());
            elem = Some(match elem {
                None => t,
                Some(e) => merge_types(&e, &t).ok_or_else(|| {
                    cx.err(format!(
                        "all inputs must share one element type, got {e} and {t}"
                    ))
                })?,
            });
        }
        let elem = elem.ok_or_else(|| cx.err("needs at least one input"))?;
        Ok(vec![Type::Sequence(Box::new(elem))])
    }
}

impl Infer for SequenceInsert {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let elem = seq_elem(cx, 0)?;
        let t = Type::Tensor(cx.tensor(1)?.clone());
        check_int_scalar(cx, 2, "the position (input 2)")?;
        let out = if input_is_empty_sequence(cx, 0) {
            match elem {
                Type::Tensor(e) if e.dtype != cx.dtype(1)? => None,
                _ => Some(t.clone()),
            }
        } else {
            merge_types(elem, &t)
        };
        let out = out.ok_or_else(|| {
            cx.err(format!(
                "cannot insert a {t} into a sequence of {elem}: element types differ"
            ))
        })?;
        Ok(vec![Type::Sequence(Box::new(out))])
    }
}

impl Infer for SequenceAt {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let elem = seq_elem(cx, 0)?;
        cx.required(1)?;
        check_int_scalar(cx, 1, "the position (input 1)")?;
        Ok(vec![elem.clone()])
    }
}

impl Infer for SequenceErase {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        seq_elem(cx, 0)?;
        check_int_scalar(cx, 1, "the position (input 1)")?;
        Ok(vec![cx.required(0)?.clone()])
    }
}

impl Infer for SequenceLength {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        seq_elem(cx, 0)?;
        Ok(vec![Type::Tensor(TensorType::scalar(DType::I64))])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let v = skip_identities(cx.graph(), cx.input_id(0)?);
        let node = cx.graph().producer(v)?;
        match &node.op {
            Op::Control(ControlOp::SequenceEmpty(_)) => Some(vec![SymInt::Int(0)]),
            Op::Control(ControlOp::SequenceConstruct(_)) => {
                Some(vec![SymInt::Int(i64::try_from(node.inputs.len()).ok()?)])
            }
            _ => None,
        }
    }
}

impl Infer for SplitToSequence {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let split = cx.opt_tensor(1)?;
        if let Some(s) = split {
            if !matches!(s.dtype, DType::I64 | DType::I32) {
                return Err(cx.err(format!(
                    "split (input 1) must be i32 or i64, got {}",
                    s.dtype
                )));
            }
            if s.rank().is_some_and(|r| r > 1) {
                return Err(cx.err(format!("split (input 1) must be a scalar or 1-D, got {s}")));
            }
        }
        let Some(dims) = t.dims() else {
            return Ok(vec![Type::Sequence(Box::new(Type::Tensor(
                TensorType::unranked(t.dtype),
            )))]);
        };
        let a = normalize_axis(self.axis, dims.len()).map_err(|e| cx.err(e))?;
        if dims.is_empty() {
            return Err(cx.err("input 0 must have rank >= 1"));
        }
        let mut out = dims.to_vec();
        match split {
            None => {
                if self.keepdims {
                    out[a] = Dim::Known(1);
                } else {
                    out.remove(a);
                }
            }
            Some(s) => {
                let values = cx.known_i64s(1);
                out[a] = match (s.rank(), values) {
                    (Some(0), Some(v)) if v.len() == 1 => {
                        let c = v[0];
                        if c <= 0 {
                            return Err(cx.err(format!("split must be positive, got {c}")));
                        }
                        match dims[a].known() {
                            Some(d) if d % c as u64 == 0 => Dim::Known(c as u64),
                            Some(d) if d < c as u64 => Dim::Known(d),
                            _ => Dim::Unknown,
                        }
                    }
                    (_, Some(v)) if s.rank() == Some(1) => {
                        if let Some(bad) = v.iter().find(|&&x| x < 0) {
                            return Err(cx.err(format!("split sizes must be >= 0, got {bad}")));
                        }
                        let total = v.iter().try_fold(0u64, |acc, &x| acc.checked_add(x as u64));
                        if let (Some(d), Some(sum)) = (dims[a].known(), total)
                            && d != sum
                        {
                            return Err(cx.err(format!(
                                "split sizes {v:?} sum to {sum} but axis {a} has size {d}"
                            )));
                        }
                        match v.first() {
                            Some(&f) if v.iter().all(|&x| x == f) => Dim::Known(f as u64),
                            _ => Dim::Unknown,
                        }
                    }
                    _ => Dim::Unknown,
                };
            }
        }
        Ok(vec![Type::Sequence(Box::new(Type::Tensor(
            TensorType::new(t.dtype, Shape(out)),
        )))])
    }
}

impl Infer for ConcatFromSequence {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let elem = match seq_elem(cx, 0)? {
            Type::Tensor(t) => t,
            t => return Err(cx.err(format!("the sequence must hold tensors, got {t}"))),
        };
        let Some(dims) = elem.dims() else {
            return Ok(vec![Type::Tensor(TensorType::unranked(elem.dtype))]);
        };
        let out_rank = dims.len() + usize::from(self.new_axis);
        let a = normalize_axis(self.axis, out_rank).map_err(|e| cx.err(e))?;
        if out_rank == 0 {
            return Err(cx.err("cannot concatenate scalars without new_axis"));
        }
        let mut out = dims.to_vec();
        if self.new_axis {
            out.insert(a, Dim::Unknown);
        } else {
            out[a] = Dim::Unknown;
        }
        Ok(vec![Type::Tensor(TensorType::new(elem.dtype, Shape(out)))])
    }
}

impl Infer for SequenceMap {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        seq_elem(cx, 0)?;
        if self.body.inputs.len() != cx.num_inputs() {
            return Err(cx.err(format!(
                "the body takes {} inputs but the node has {}",
                self.body.inputs.len(),
                cx.num_inputs()
            )));
        }
        for i in 1..cx.num_inputs() {
            if !matches!(cx.required(i)?, Type::Sequence(_) | Type::Tensor(_)) {
                return Err(cx.err(format!("input {i} must be a sequence or a tensor")));
            }
        }
        let outs = subgraph_output_types(cx, &self.body, "the body")?;
        if cx.num_outputs() != outs.len() {
            return Err(cx.err(format!(
                "the node has {} outputs but the body has {} results",
                cx.num_outputs(),
                outs.len()
            )));
        }
        Ok(outs
            .into_iter()
            .map(|t| Type::Sequence(Box::new(t)))
            .collect())
    }
}
