//! [`NodeCtx`]: what a per-op importer sees of one ONNX node — typed attribute readers that check the
//! attribute type, resolved inputs, and `emit` to add IR nodes (type inference runs as each is added).

use carve_ir::{Constant, DType, Graph, Op, TensorType, Type, ValueId};

use super::import::{Importer, Scope};
use crate::error::ImportError;
use crate::proto::{AttributeProto, AttributeType, GraphProto, NodeProto};

/// Importer of one ONNX op: returns the IR values bound to the node's outputs, in order (it may return
/// fewer than the node declares only when the missing trailing outputs are unused).
pub type ImportFn = fn(&mut NodeCtx) -> Result<Vec<ValueId>, ImportError>;

/// The context of one node being imported.
pub struct NodeCtx<'a, 's> {
    pub(crate) imp: &'a Importer<'a>,
    pub(crate) scope: &'a mut Scope<'s>,
    pub(crate) node: &'a NodeProto,
    pub(crate) display_name: String,
    pub(crate) opset: i64,
    pub(crate) inputs: Vec<Option<ValueId>>,
    pub(crate) emitted: usize,
}

impl NodeCtx<'_, '_> {
    /// Node name (or `#index` when the node is unnamed).
    pub fn name(&self) -> &str {
        &self.display_name
    }

    /// ONNX op type.
    pub fn op_type(&self) -> &str {
        &self.node.op_type
    }

    /// Opset version of the node's domain.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// An error about this node.
    pub fn err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Node {
            node: self.display_name.clone(),
            op: self.node.op_type.clone(),
            msg: msg.into(),
        }
    }

    /// An "unsupported operator" error for a form of this op carve deliberately does not import (an old
    /// opset variant, an exotic attribute value), with the reason. Reported like an unknown op.
    pub fn unsupported(&self, reason: impl Into<String>) -> ImportError {
        ImportError::Unsupported(vec![crate::error::UnsupportedOp {
            domain: super::canonical_domain(&self.node.domain).to_string(),
            op_type: self.node.op_type.clone(),
            opset: self.opset,
            nodes: vec![self.display_name.clone()],
            reason: Some(reason.into()),
        }])
    }

    fn attr_err(&self, attr: &str, msg: impl Into<String>) -> ImportError {
        ImportError::Attribute {
            node: self.display_name.clone(),
            op: self.node.op_type.clone(),
            attr: attr.to_string(),
            msg: msg.into(),
        }
    }

    // ---- inputs and outputs ----

    /// Number of input slots the node lists (including empty optional ones).
    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Number of outputs the node lists (including empty optional ones).
    pub fn num_outputs(&self) -> usize {
        self.node.output.len()
    }

    /// True if output `i` is listed with a non-empty name (its value is wanted).
    pub fn output_used(&self, i: usize) -> bool {
        self.node.output.get(i).is_some_and(|s| !s.is_empty())
    }

    /// Input `i`, or `None` if omitted.
    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    /// Required input `i`.
    pub fn req(&self, i: usize) -> Result<ValueId, ImportError> {
        self.input(i)
            .ok_or_else(|| self.err(format!("input {i} is required")))
    }

    /// All input slots.
    pub fn inputs(&self) -> Vec<Option<ValueId>> {
        self.inputs.clone()
    }

    /// The type of a value.
    pub fn ty(&self, v: ValueId) -> &Type {
        self.scope.graph.ty(v)
    }

    /// The tensor type of a value, or an error naming the input index `i` it came from.
    pub fn tensor_ty(&self, i: usize) -> Result<&TensorType, ImportError> {
        let v = self.req(i)?;
        self.scope
            .graph
            .ty(v)
            .as_tensor()
            .ok_or_else(|| self.err(format!("input {i} must be a tensor")))
    }

    /// The constant defining value `v`, if any.
    pub fn const_of(&self, v: ValueId) -> Option<&Constant> {
        self.scope.graph.constant_of(v)
    }

    /// Integer values of input `i` when it is a constant.
    pub fn const_i64s(&self, i: usize) -> Option<Vec<i64>> {
        self.const_of(self.input(i)?)?.to_i64s()
    }

    /// The graph being built (read-only).
    pub fn graph(&self) -> &Graph {
        &self.scope.graph
    }

    // ---- emitting ----

    /// Adds an IR node; returns its `n_outputs` results. Type inference runs now.
    pub fn emit(
        &mut self,
        op: impl Into<Op>,
        inputs: Vec<Option<ValueId>>,
        n_outputs: usize,
    ) -> Result<Vec<ValueId>, ImportError> {
        let k = self.emitted;
        self.emitted += 1;
        let base = if k == 0 {
            self.display_name.clone()
        } else {
            format!("{}/{k}", self.display_name)
        };
        let names = (0..n_outputs)
            .map(|i| {
                if i == 0 {
                    base.clone()
                } else {
                    format!("{base}:{i}")
                }
            })
            .collect();
        Ok(self.scope.graph.add_node(base, op.into(), inputs, names)?)
    }

    /// Adds a one-output IR node.
    pub fn emit1(
        &mut self,
        op: impl Into<Op>,
        inputs: Vec<Option<ValueId>>,
    ) -> Result<ValueId, ImportError> {
        Ok(self.emit(op, inputs, 1)?[0])
    }

    /// Emits `op` over the node's inputs with as many outputs as the node lists: the common 1:1 mapping.
    pub fn simple(&mut self, op: impl Into<Op>) -> Result<Vec<ValueId>, ImportError> {
        let inputs = self.inputs.clone();
        let n = self.num_outputs().max(1);
        self.emit(op, inputs, n)
    }

    /// Adds a constant node.
    pub fn constant(&mut self, c: Constant) -> ValueId {
        let k = self.emitted;
        self.emitted += 1;
        let name = format!("{}/const{k}", self.display_name);
        self.scope.graph.add_const(name, c)
    }

    /// Adds an i64 constant of shape `dims`.
    pub fn const_i64(&mut self, dims: &[u64], values: &[i64]) -> ValueId {
        self.constant(Constant::from_i64s(dims, values))
    }

    /// Adds an f32 constant of shape `dims`.
    pub fn const_f32(&mut self, dims: &[u64], values: &[f32]) -> ValueId {
        self.constant(Constant::from_f32s(dims, values))
    }

    // ---- attributes ----

    /// The raw attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    /// True if attribute `name` is present.
    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    fn typed(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&AttributeProto>, ImportError> {
        let Some(a) = self.attr(name) else {
            return Ok(None);
        };
        let ty = AttributeType::try_from(a.r#type).unwrap_or(AttributeType::Undefined);
        if ty == want || ty == AttributeType::Undefined {
            Ok(Some(a))
        } else {
            Err(self.attr_err(name, format!("expected {want:?}, got {ty:?}")))
        }
    }

    /// Integer attribute.
    pub fn get_i(&self, name: &str) -> Result<Option<i64>, ImportError> {
        Ok(self.typed(name, AttributeType::Int)?.map(|a| a.i))
    }

    /// Integer attribute with a default.
    pub fn i(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self.get_i(name)?.unwrap_or(default))
    }

    /// Boolean (0/1 integer) attribute with a default.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ImportError> {
        Ok(self.get_i(name)?.map_or(default, |v| v != 0))
    }

    /// Float attribute.
    pub fn get_f(&self, name: &str) -> Result<Option<f32>, ImportError> {
        Ok(self.typed(name, AttributeType::Float)?.map(|a| a.f))
    }

    /// Float attribute with a default.
    pub fn f(&self, name: &str, default: f32) -> Result<f32, ImportError> {
        Ok(self.get_f(name)?.unwrap_or(default))
    }

    /// String attribute (must be UTF-8).
    pub fn get_s(&self, name: &str) -> Result<Option<String>, ImportError> {
        match self.typed(name, AttributeType::String)? {
            Some(a) => String::from_utf8(a.s.clone())
                .map(Some)
                .map_err(|_| self.attr_err(name, "not UTF-8")),
            None => Ok(None),
        }
    }

    /// String attribute with a default.
    pub fn s(&self, name: &str, default: &str) -> Result<String, ImportError> {
        Ok(self.get_s(name)?.unwrap_or_else(|| default.to_string()))
    }

    /// Integer list attribute.
    pub fn get_ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    /// Integer list attribute, empty when absent.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, ImportError> {
        Ok(self.get_ints(name)?.unwrap_or_default())
    }

    /// Float list attribute.
    pub fn get_floats(&self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        Ok(self
            .typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    /// String list attribute (each UTF-8).
    pub fn get_strings(&self, name: &str) -> Result<Option<Vec<String>>, ImportError> {
        match self.typed(name, AttributeType::Strings)? {
            Some(a) => a
                .strings
                .iter()
                .map(|s| String::from_utf8(s.clone()).map_err(|_| self.attr_err(name, "not UTF-8")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            None => Ok(None),
        }
    }

    /// Element type attribute (a `TensorProto.DataType` code).
    pub fn get_dtype(&self, name: &str) -> Result<Option<DType>, ImportError> {
        match self.get_i(name)? {
            Some(code) => DType::from_onnx_code(code as i32)
                .map(Some)
                .ok_or_else(|| self.attr_err(name, format!("unknown element type code {code}"))),
            None => Ok(None),
        }
    }

    /// Tensor attribute as a constant.
    pub fn get_tensor(&self, name: &str) -> Result<Option<Constant>, ImportError> {
        match self.typed(name, AttributeType::Tensor)? {
            Some(a) => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| self.attr_err(name, "tensor attribute without a tensor"))?;
                self.imp.tensors.constant(t).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Sparse tensor attribute as a dense constant.
    pub fn get_sparse_tensor(&self, name: &str) -> Result<Option<Constant>, ImportError> {
        match self.typed(name, AttributeType::SparseTensor)? {
            Some(a) => {
                let t = a
                    .sparse_tensor
                    .as_ref()
                    .ok_or_else(|| self.attr_err(name, "missing sparse tensor"))?;
                self.imp.tensors.sparse_constant(t).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Graph attribute proto.
    pub fn get_graph_proto(&self, name: &str) -> Result<Option<&GraphProto>, ImportError> {
        Ok(self
            .typed(name, AttributeType::Graph)?
            .and_then(|a| a.g.as_ref()))
    }

    /// Imports graph attribute `name` as a subgraph capturing values of the current graph.
    /// `input_types[i]`, when given, is the type of the subgraph's formal input `i` (refining or replacing
    /// what the proto declares; required where the proto omits it).
    pub fn subgraph(
        &mut self,
        name: &str,
        input_types: &[Option<Type>],
    ) -> Result<Graph, ImportError> {
        self.get_graph_proto(name)?; // checks the attribute type
        let node: &NodeProto = self.node;
        let g = node
            .attribute
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.g.as_ref())
            .ok_or_else(|| self.attr_err(name, "required graph attribute is missing"))?;
        let imp = self.imp;
        imp.import_graph(g, Some(&mut *self.scope), input_types)
    }
}
