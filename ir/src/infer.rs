//! Type and shape inference: the context an op's inference sees, the error type, shared helpers
//! (broadcasting, axis normalization) and symbolic evaluation of small integer tensors (shape arithmetic
//! such as `Shape → Gather → Concat → Reshape`), so that shapes stay symbolic rather than unknown.

use std::fmt;

use crate::{Constant, DType, Dim, Graph, Op, Shape, TensorType, Type, ValueId};

/// Integer tensors with at most this many elements are evaluated symbolically.
pub const SYM_MAX_ELEMENTS: u64 = 64;
const SYM_MAX_DEPTH: u32 = 48;

/// A type inference failure, naming the node and op.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("node '{node}' ({op}): {msg}")]
pub struct InferError {
    /// Node name.
    pub node: String,
    /// Op name.
    pub op: String,
    /// What is wrong.
    pub msg: String,
}

impl InferError {
    /// A new error.
    pub fn new(node: &str, op: &str, msg: impl Into<String>) -> InferError {
        InferError {
            node: node.to_string(),
            op: op.to_string(),
            msg: msg.into(),
        }
    }
}

/// One element of a symbolically evaluated integer tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymInt {
    /// A known integer.
    Int(i64),
    /// A symbolic dimension size.
    Sym(String),
    /// Not known.
    Unknown,
}

impl SymInt {
    /// As a dimension (negative integers become unknown).
    pub fn to_dim(&self) -> Dim {
        match self {
            SymInt::Int(n) if *n >= 0 => Dim::Known(*n as u64),
            SymInt::Sym(s) => Dim::Sym(s.clone()),
            _ => Dim::Unknown,
        }
    }

    /// From a dimension.
    pub fn from_dim(d: &Dim) -> SymInt {
        match d {
            Dim::Known(n) => i64::try_from(*n).map_or(SymInt::Unknown, SymInt::Int),
            Dim::Sym(s) => SymInt::Sym(s.clone()),
            Dim::Unknown => SymInt::Unknown,
        }
    }

    /// The integer, if known.
    pub fn int(&self) -> Option<i64> {
        match self {
            SymInt::Int(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for SymInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymInt::Int(n) => write!(f, "{n}"),
            SymInt::Sym(s) => f.write_str(s),
            SymInt::Unknown => f.write_str("?"),
        }
    }
}

/// Type inference of one op. Implemented by every op struct.
pub trait Infer {
    /// The output types, one per output of the node (`cx.num_outputs()`).
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError>;

    /// For an op whose first output is a small integer tensor (rank ≤ 1, at most [`SYM_MAX_ELEMENTS`]
    /// elements), its elements as far as they are known from input shapes and constant/symbolic inputs.
    /// Shape-computing ops (`shape`, `gather`, `concat`, `unsqueeze`, arithmetic, ...) implement this.
    fn sym_value(&self, _cx: &InferCtx) -> Option<Vec<SymInt>> {
        None
    }
}

/// What an op's inference sees of its node: input types, constant and symbolic input values.
pub struct InferCtx<'a> {
    graph: &'a Graph,
    node: &'a str,
    op: &'static str,
    inputs: &'a [Option<ValueId>],
    n_outputs: usize,
    depth: u32,
}

impl<'a> InferCtx<'a> {
    /// A context for node `node` running `op` on `inputs` in `graph`.
    pub fn new(
        graph: &'a Graph,
        node: &'a str,
        op: &Op,
        inputs: &'a [Option<ValueId>],
        n_outputs: usize,
    ) -> InferCtx<'a> {
        InferCtx {
            graph,
            node,
            op: op.name(),
            inputs,
            n_outputs,
            depth: 0,
        }
    }

    /// An error for this node.
    pub fn err(&self, msg: impl Into<String>) -> InferError {
        InferError::new(self.node, self.op, msg)
    }

    /// Node name.
    pub fn node_name(&self) -> &str {
        self.node
    }

    /// Number of input slots (including omitted optional ones).
    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Number of outputs the node has.
    pub fn num_outputs(&self) -> usize {
        self.n_outputs
    }

    /// True if input `i` is present.
    pub fn has_input(&self, i: usize) -> bool {
        matches!(self.inputs.get(i), Some(Some(_)))
    }

    /// The value id of input `i`, if present.
    pub fn input_id(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    /// The graph being built.
    pub fn graph(&self) -> &Graph {
        self.graph
    }

    /// The type of input `i`, if present.
    pub fn input(&self, i: usize) -> Option<&'a Type> {
        let v = self.input_id(i)?;
        self.graph.values.get(v.index()).map(|v| &v.ty)
    }

    /// The type of a required input `i`.
    pub fn required(&self, i: usize) -> Result<&'a Type, InferError> {
        self.input(i)
            .ok_or_else(|| self.err(format!("input {i} is required")))
    }

    /// The tensor type of a required input `i`.
    pub fn tensor(&self, i: usize) -> Result<&'a TensorType, InferError> {
        match self.required(i)? {
            Type::Tensor(t) => Ok(t),
            t => Err(self.err(format!("input {i} must be a tensor, got {}", t.kind()))),
        }
    }

    /// The tensor type of optional input `i` (`None` if omitted).
    pub fn opt_tensor(&self, i: usize) -> Result<Option<&'a TensorType>, InferError> {
        if self.has_input(i) {
            self.tensor(i).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Element type of required tensor input `i`.
    pub fn dtype(&self, i: usize) -> Result<DType, InferError> {
        Ok(self.tensor(i)?.dtype)
    }

    /// Rank of required tensor input `i`, if known.
    pub fn rank(&self, i: usize) -> Result<Option<usize>, InferError> {
        Ok(self.tensor(i)?.rank())
    }

    /// The constant feeding input `i`, if it is produced by a constant node.
    pub fn const_value(&self, i: usize) -> Option<&'a Constant> {
        self.graph.constant_of(self.input_id(i)?)
    }

    /// Values of constant integer input `i`.
    pub fn const_i64s(&self, i: usize) -> Option<Vec<i64>> {
        self.const_value(i)?.to_i64s()
    }

    /// Values of constant numeric input `i` as f64.
    pub fn const_f64s(&self, i: usize) -> Option<Vec<f64>> {
        self.const_value(i)?.to_f64s()
    }

    /// Symbolic values of small integer input `i` (constants, or shape arithmetic of known shapes).
    pub fn sym_value(&self, i: usize) -> Option<Vec<SymInt>> {
        let v = self.input_id(i)?;
        sym_value_of(self.graph, v, self.depth + 1)
    }

    /// Integer values of input `i` when all are known (constant or computed from static shapes).
    pub fn known_i64s(&self, i: usize) -> Option<Vec<i64>> {
        if let Some(v) = self.const_i64s(i) {
            return Some(v);
        }
        self.sym_value(i)?.iter().map(SymInt::int).collect()
    }
}

/// Symbolic value of value `v` of `graph`, computed from its producer.
pub fn sym_value_of(graph: &Graph, v: ValueId, depth: u32) -> Option<Vec<SymInt>> {
    if depth > SYM_MAX_DEPTH {
        return None;
    }
    let (nid, k) = graph.values.get(v.index())?.producer?;
    if k != 0 {
        return None;
    }
    let node = graph.nodes.get(nid.index())?;
    let t = graph.values.get(v.index())?.ty.as_tensor()?;
    if !(t.dtype.is_int() || t.dtype == DType::Bool) || t.rank()? > 1 {
        return None;
    }
    if t.shape
        .as_ref()?
        .num_elements()
        .is_some_and(|n| n > SYM_MAX_ELEMENTS)
    {
        return None;
    }
    let mut cx = InferCtx::new(
        graph,
        &node.name,
        &node.op,
        &node.inputs,
        node.outputs.len(),
    );
    cx.depth = depth;
    node.op.sym_value(&cx)
}

/// Multidirectional (numpy) broadcasting of shapes.
pub fn broadcast_shapes(shapes: &[&Shape]) -> Result<Shape, String> {
    let rank = shapes.iter().map(|s| s.rank()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let mut d = Dim::Known(1);
        for s in shapes {
            let off = rank - s.rank();
            if i < off {
                continue;
            }
            let e = &s.0[i - off];
            d = match (&d, e) {
                (Dim::Known(1), x) | (x, Dim::Known(1)) => x.clone(),
                (Dim::Known(a), Dim::Known(b)) if a == b => Dim::Known(*a),
                (Dim::Known(a), Dim::Known(b)) => {
                    return Err(format!(
                        "shapes {} cannot be broadcast: dim {i} is {a} and {b}",
                        shapes
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ));
                }
                (Dim::Sym(a), Dim::Sym(b)) if a == b => d.clone(),
                // A symbol broadcast against a concrete size >1 must equal it.
                (Dim::Known(a), _) | (_, Dim::Known(a)) => Dim::Known(*a),
                _ => Dim::Unknown,
            };
        }
        out.push(d);
    }
    Ok(Shape(out))
}

/// Broadcast shape of tensor types; `None` if any rank is unknown.
pub fn broadcast_types(types: &[&TensorType]) -> Result<Option<Shape>, String> {
    let shapes: Option<Vec<&Shape>> = types.iter().map(|t| t.shape.as_ref()).collect();
    match shapes {
        Some(s) => broadcast_shapes(&s).map(Some),
        None => Ok(None),
    }
}

/// Output = input 0's type (without quantization): unary elementwise ops.
pub fn same_as_input(cx: &InferCtx) -> Result<Vec<Type>, InferError> {
    let t = cx.tensor(0)?;
    Ok(vec![Type::Tensor(TensorType {
        dtype: t.dtype,
        shape: t.shape.clone(),
        quant: None,
    })])
}

/// Broadcast of all present inputs; output dtype `out` or input 0's dtype. Checks that inputs agree on dtype
/// when `same_dtype`.
pub fn broadcast(
    cx: &InferCtx,
    out: Option<DType>,
    same_dtype: bool,
) -> Result<Vec<Type>, InferError> {
    let mut ts = Vec::new();
    for i in 0..cx.num_inputs() {
        if let Some(t) = cx.opt_tensor(i)? {
            ts.push(t);
        }
    }
    let first = ts
        .first()
        .ok_or_else(|| cx.err("needs at least one input"))?;
    if same_dtype && let Some(bad) = ts.iter().find(|t| t.dtype != first.dtype) {
        return Err(cx.err(format!(
            "inputs must share one element type, got {} and {}",
            first.dtype, bad.dtype
        )));
    }
    let shape = broadcast_types(&ts).map_err(|m| cx.err(m))?;
    Ok(vec![Type::Tensor(TensorType {
        dtype: out.unwrap_or(first.dtype),
        shape,
        quant: None,
    })])
}

/// Normalizes a possibly negative axis against `rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) && !(r == 0 && a == 0) {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// True when `a` and `b` may describe the same values: same kind and dtype, equal known ranks and no
/// conflicting concrete dims. Quantization parameters must match exactly when both carry them.
pub fn compatible(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Tensor(x), Type::Tensor(y)) => {
            if x.dtype != y.dtype {
                return false;
            }
            if let (Some(qx), Some(qy)) = (&x.quant, &y.quant)
                && qx != qy
            {
                return false;
            }
            match (&x.shape, &y.shape) {
                (Some(sx), Some(sy)) => {
                    sx.rank() == sy.rank() && sx.0.iter().zip(&sy.0).all(|(p, q)| !p.conflicts(q))
                }
                _ => true,
            }
        }
        (Type::Sequence(x), Type::Sequence(y)) | (Type::Optional(x), Type::Optional(y)) => {
            compatible(x, y)
        }
        (Type::Map(kx, x), Type::Map(ky, y)) => kx == ky && compatible(x, y),
        _ => false,
    }
}

/// The more precise of two compatible types (dims refined one by one).
pub fn refine(a: &Type, b: &Type) -> Type {
    match (a, b) {
        (Type::Tensor(x), Type::Tensor(y)) => {
            let shape = match (&x.shape, &y.shape) {
                (Some(sx), Some(sy)) if sx.rank() == sy.rank() => Some(Shape(
                    sx.0.iter().zip(&sy.0).map(|(p, q)| p.refine(q)).collect(),
                )),
                (Some(s), _) | (None, Some(s)) => Some(s.clone()),
                (None, None) => None,
            };
            Type::Tensor(TensorType {
                dtype: x.dtype,
                shape,
                quant: x.quant.clone().or_else(|| y.quant.clone()),
            })
        }
        (Type::Sequence(x), Type::Sequence(y)) => Type::Sequence(Box::new(refine(x, y))),
        (Type::Optional(x), Type::Optional(y)) => Type::Optional(Box::new(refine(x, y))),
        _ => a.clone(),
    }
}

/// Shape of a numpy-style matrix product `a @ b`: 1-D operands are promoted (a row for `a`, a column for
/// `b`) and the added dim removed from the result; leading (batch) dims broadcast.
pub fn matmul_shape(a: &[Dim], b: &[Dim]) -> Result<Shape, String> {
    if a.is_empty() || b.is_empty() {
        return Err("matrix product operands must have rank >= 1, got a scalar".into());
    }
    let a2: Vec<Dim> = if a.len() == 1 {
        vec![Dim::Known(1), a[0].clone()]
    } else {
        a.to_vec()
    };
    let b2: Vec<Dim> = if b.len() == 1 {
        vec![b[0].clone(), Dim::Known(1)]
    } else {
        b.to_vec()
    };
    let (ra, rb) = (a2.len(), b2.len());
    let k_a = &a2[ra - 1];
    let k_b = &b2[rb - 2];
    if k_a.conflicts(k_b) {
        return Err(format!(
            "inner dims differ: {} (last of {}) and {} (second to last of {})",
            k_a,
            Shape(a.to_vec()),
            k_b,
            Shape(b.to_vec())
        ));
    }
    let batch = broadcast_shapes(&[&Shape(a2[..ra - 2].to_vec()), &Shape(b2[..rb - 2].to_vec())])?;
    let mut out = batch.0;
    if a.len() > 1 {
        out.push(a2[ra - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[rb - 1].clone());
    }
    Ok(Shape(out))
}

/// [`matmul_shape`] of two tensor types; `Ok(None)` when either rank is unknown.
pub fn matmul_types(a: &TensorType, b: &TensorType) -> Result<Option<Shape>, String> {
    match (a.dims(), b.dims()) {
        (Some(x), Some(y)) => matmul_shape(x, y).map(Some),
        _ => Ok(None),
    }
}

pub use crate::ops::conv::AutoPad;

/// The window attributes of a convolution-like op, as ONNX gives them: empty lists mean the defaults
/// (kernel from the weight's shape, strides and dilations of 1, zero pads).
#[derive(Debug, Clone, Copy)]
pub struct ConvWindow<'a> {
    /// Spatial kernel dims (empty: the weight's trailing dims).
    pub kernel_shape: &'a [i64],
    /// Strides per spatial dim (empty: all 1).
    pub strides: &'a [i64],
    /// Dilations per spatial dim (empty: all 1).
    pub dilations: &'a [i64],
    /// Begin pads of every spatial dim, then end pads (empty: all 0). Ignored unless `auto_pad` is `NotSet`.
    pub pads: &'a [i64],
    /// Automatic padding mode.
    pub auto_pad: AutoPad,
    /// Number of channel groups.
    pub group: i64,
}

fn positive_list(name: &str, v: &[i64], n: usize, default: u64) -> Result<Vec<u64>, String> {
    if v.is_empty() {
        return Ok(vec![default; n]);
    }
    if v.len() != n {
        return Err(format!(
            "{name} has {} values, expected {n} (one per spatial dim)",
            v.len()
        ));
    }
    v.iter()
        .map(|&x| {
            u64::try_from(x)
                .ok()
                .filter(|&x| x >= 1)
                .ok_or_else(|| format!("{name} must be positive, got {x}"))
        })
        .collect()
}

/// Size of one spatial output dim of a convolution window over input dim `input`.
pub fn conv_out_dim(
    input: &Dim,
    kernel: u64,
    stride: u64,
    dilation: u64,
    pads: (u64, u64),
    auto_pad: AutoPad,
) -> Result<Dim, String> {
    let span = kernel
        .checked_sub(1)
        .and_then(|k| k.checked_mul(dilation))
        .and_then(|k| k.checked_add(1))
        .ok_or_else(|| format!("kernel {kernel} with dilation {dilation} is out of range"))?;
    let (pb, pe) = match auto_pad {
        AutoPad::NotSet => pads,
        AutoPad::Valid => (0, 0),
        AutoPad::SameUpper | AutoPad::SameLower => {
            return Ok(match input {
                Dim::Known(n) => Dim::Known(n.div_ceil(stride)),
                d if stride == 1 => d.clone(),
                _ => Dim::Unknown,
            });
        }
    };
    match input {
        Dim::Known(n) => {
            let total = n
                .checked_add(pb)
                .and_then(|t| t.checked_add(pe))
                .ok_or("padded input size overflows")?;
            if total < span {
                return Err(format!(
                    "window of {span} (kernel {kernel}, dilation {dilation}) is larger than the padded input {total}"
                ));
            }
            Ok(Dim::Known((total - span) / stride + 1))
        }
        d if span == 1 && stride == 1 && pb == 0 && pe == 0 => Ok(d.clone()),
        _ => Ok(Dim::Unknown),
    }
}

/// Output shape `[N, M, spatial...]` of a convolution of `x` `[N, C, D...]` with weight `w`
/// `[M, C/group, K...]`, checking ranks, channel counts and window attributes. `Ok(None)` when no rank
/// is known.
pub fn conv_output_shape(
    x: &TensorType,
    w: &TensorType,
    win: &ConvWindow,
) -> Result<Option<Shape>, String> {
    let rank = match (x.rank(), w.rank()) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "input {} and weight {} must have the same rank",
                x, w
            ));
        }
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) if !win.kernel_shape.is_empty() => win.kernel_shape.len() + 2,
        (None, None) => return Ok(None),
    };
    if rank < 3 {
        return Err(format!(
            "input must have rank >= 3 ([N, C, spatial...]), got rank {rank}"
        ));
    }
    let n = rank - 2;
    if win.group < 1 {
        return Err(format!("group must be >= 1, got {}", win.group));
    }
    let group = win.group as u64;
    let unknown = vec![Dim::Unknown; rank];
    let xd = x.dims().unwrap_or(&unknown);
    let wd = w.dims().unwrap_or(&unknown);
    let kernel: Vec<Dim> = if win.kernel_shape.is_empty() {
        wd[2..].to_vec()
    } else {
        let k = positive_list("kernel_shape", win.kernel_shape, n, 1)?;
        for (i, (a, b)) in k.iter().zip(&wd[2..]).enumerate() {
            if Dim::Known(*a).conflicts(b) {
                return Err(format!(
                    "kernel_shape[{i}] is {a} but the weight's spatial dim is {b}"
                ));
            }
        }
        k.into_iter().map(Dim::Known).collect()
    };
    let strides = positive_list("strides", win.strides, n, 1)?;
    let dilations = positive_list("dilations", win.dilations, n, 1)?;
    let pads: Vec<u64> = if win.pads.is_empty() || win.auto_pad != AutoPad::NotSet {
        vec![0; 2 * n]
    } else if win.pads.len() != 2 * n {
        return Err(format!(
            "pads has {} values, expected {} (begin and end per spatial dim)",
            win.pads.len(),
            2 * n
        ));
    } else {
        win.pads
            .iter()
            .map(|&p| u64::try_from(p).map_err(|_| format!("pads must be >= 0, got {p}")))
            .collect::<Result<_, _>>()?
    };
    if let (Dim::Known(c), Dim::Known(cg)) = (&xd[1], &wd[1])
        && cg.checked_mul(group) != Some(*c)
    {
        return Err(format!(
            "input has {c} channels but the weight expects {cg} per group x {group} groups"
        ));
    }
    if let Dim::Known(m) = &wd[0]
        && m % group != 0
    {
        return Err(format!(
            "{m} output channels do not divide into {group} groups"
        ));
    }
    let mut out = vec![xd[0].clone(), wd[0].clone()];
    for i in 0..n {
        let d = match kernel[i] {
            Dim::Known(k) => conv_out_dim(
                &xd[2 + i],
                k,
                strides[i],
                dilations[i],
                (pads[i], pads[n + i]),
                win.auto_pad,
            )?,
            _ if matches!(win.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) => {
                conv_out_dim(&xd[2 + i], 1, strides[i], 1, (0, 0), win.auto_pad)?
            }
            _ => Dim::Unknown,
        };
        out.push(d);
    }
    Ok(Some(Shape(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy_rules() {
        let a = Shape::known(&[2, 1, 3]);
        let b = Shape::known(&[4, 1]);
        assert_eq!(
            broadcast_shapes(&[&a, &b]).unwrap(),
            Shape::known(&[2, 4, 3])
        );
        let n = Shape(vec![Dim::Sym("N".into()), Dim::Known(3)]);
        let one = Shape::known(&[1, 3]);
        assert_eq!(broadcast_shapes(&[&n, &one]).unwrap(), n);
        assert!(broadcast_shapes(&[&Shape::known(&[2]), &Shape::known(&[3])]).is_err());
    }

    #[test]
    fn negative_axes_normalize() {
        assert_eq!(normalize_axis(-1, 4), Ok(3));
        assert_eq!(normalize_axis(0, 0), Ok(0));
        assert!(normalize_axis(4, 4).is_err());
        assert!(normalize_axis(-5, 4).is_err());
    }

    #[test]
    fn matmul_shapes_promote_vectors_and_broadcast_batches() {
        let n = Dim::Sym("N".into());
        let a = [n.clone(), Dim::Known(1), Dim::Known(3), Dim::Known(4)];
        let b = [Dim::Known(5), Dim::Known(4), Dim::Known(6)];
        assert_eq!(
            matmul_shape(&a, &b).unwrap(),
            Shape(vec![n, Dim::Known(5), Dim::Known(3), Dim::Known(6)])
        );
        assert_eq!(
            matmul_shape(&[Dim::Known(4)], &[Dim::Known(4), Dim::Known(2)]).unwrap(),
            Shape::known(&[2])
        );
        assert_eq!(
            matmul_shape(&[Dim::Known(4)], &[Dim::Known(4)]).unwrap(),
            Shape::scalar()
        );
        assert!(
            matmul_shape(
                &[Dim::Known(2), Dim::Known(3)],
                &[Dim::Known(4), Dim::Known(2)]
            )
            .is_err()
        );
        assert!(matmul_shape(&[], &[Dim::Known(2)]).is_err());
    }

    #[test]
    fn conv_output_dims_follow_onnx_formulas() {
        let x = TensorType::new(
            DType::F32,
            Shape(vec![
                Dim::Sym("N".into()),
                Dim::Known(4),
                Dim::Known(7),
                Dim::Known(7),
            ]),
        );
        let w = TensorType::known(DType::F32, &[8, 2, 3, 3]);
        let win = ConvWindow {
            kernel_shape: &[],
            strides: &[2, 2],
            dilations: &[],
            pads: &[1, 1, 1, 1],
            auto_pad: AutoPad::NotSet,
            group: 2,
        };
        let s = conv_output_shape(&x, &w, &win).unwrap().unwrap();
        assert_eq!(s.to_string(), "[N,8,4,4]");
        let same = ConvWindow {
            auto_pad: AutoPad::SameUpper,
            ..win
        };
        assert_eq!(
            conv_output_shape(&x, &w, &same)
                .unwrap()
                .unwrap()
                .to_string(),
            "[N,8,4,4]"
        );
        let bad_group = ConvWindow { group: 1, ..win };
        assert!(conv_output_shape(&x, &w, &bad_group).is_err());
        let neg = ConvWindow {
            strides: &[0, 1],
            ..win
        };
        assert!(conv_output_shape(&x, &w, &neg).is_err());
        let big = ConvWindow {
            dilations: &[i64::MAX, 1],
            ..win
        };
        assert!(conv_output_shape(&x, &w, &big).is_err());
    }
}
