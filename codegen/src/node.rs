//! [`NodeInfo`]: what kernel selection may know about one node — static shapes, dtypes, constant
//! inputs and the target. Shared by planning (`schedule`), the lowerings and the emitters.

use carve_ir::{Constant, DType, Graph, Node, Op, Quant, Type};
use carve_runtime::Tensor;

use crate::CodegenError;
use crate::target::Target;

/// What a lowering may know about the node it lowers: static shapes, dtypes, constant inputs, target.
pub struct NodeInfo<'a> {
    /// The (prepared) graph.
    pub graph: &'a Graph,
    /// The node.
    pub node: &'a Node,
    /// The target.
    pub target: &'a Target,
}

impl<'a> NodeInfo<'a> {
    /// The node's op.
    pub fn op(&self) -> &'a Op {
        &self.node.op
    }

    /// An error about this node.
    pub fn err(&self, msg: impl Into<String>) -> CodegenError {
        CodegenError::Node {
            node: self.node.name.clone(),
            op: self.node.op.name().to_string(),
            msg: msg.into(),
        }
    }

    /// Number of input slots.
    pub fn num_inputs(&self) -> usize {
        self.node.inputs.len()
    }

    /// True if input `i` is present.
    pub fn has_input(&self, i: usize) -> bool {
        matches!(self.node.inputs.get(i), Some(Some(_)))
    }

    fn tensor_of(
        &self,
        v: Option<carve_ir::ValueId>,
        what: &str,
    ) -> Result<(DType, Vec<usize>), CodegenError> {
        let v = v.ok_or_else(|| self.err(format!("{what} is absent")))?;
        match self.graph.ty(v) {
            Type::Tensor(t) => {
                let dims = crate::prepare::concrete_shape(self.graph, v)
                    .ok_or_else(|| self.err(format!("{what} has no static shape")))?;
                Ok((t.dtype, dims))
            }
            other => Err(self.err(format!("{what} is a {}", other.kind()))),
        }
    }

    /// Element type of input `i`.
    pub fn in_dtype(&self, i: usize) -> Result<DType, CodegenError> {
        Ok(self
            .tensor_of(
                self.node.inputs.get(i).copied().flatten(),
                &format!("input {i}"),
            )?
            .0)
    }

    /// Static shape of input `i`.
    pub fn in_shape(&self, i: usize) -> Result<Vec<usize>, CodegenError> {
        Ok(self
            .tensor_of(
                self.node.inputs.get(i).copied().flatten(),
                &format!("input {i}"),
            )?
            .1)
    }

    /// The quantization in input `i`'s type (scale and zero point, see
    /// `carve_ir::ops::quant::typing`), if it has one.
    pub fn in_quant(&self, i: usize) -> Option<&'a Quant> {
        let v = self.node.inputs.get(i).copied().flatten()?;
        self.graph.ty(v).as_tensor()?.quant.as_deref()
    }

    /// Number of outputs.
    pub fn num_outputs(&self) -> usize {
        self.node.outputs.len()
    }

    /// Element type of output `k`.
    pub fn out_dtype(&self, k: usize) -> Result<DType, CodegenError> {
        Ok(self
            .tensor_of(self.node.outputs.get(k).copied(), &format!("output {k}"))?
            .0)
    }

    /// Static shape of output `k`.
    pub fn out_shape(&self, k: usize) -> Result<Vec<usize>, CodegenError> {
        Ok(self
            .tensor_of(self.node.outputs.get(k).copied(), &format!("output {k}"))?
            .1)
    }

    /// The constant value of input `i`, if it is a compile-time constant.
    pub fn constant(&self, i: usize) -> Option<&'a Constant> {
        let v = self.node.inputs.get(i).copied().flatten()?;
        self.graph.constant_of(v)
    }

    /// Input `i` as a dense tensor, if it is a compile-time constant.
    pub fn const_tensor(&self, i: usize) -> Option<Tensor> {
        Tensor::from_constant(self.constant(i)?).ok()
    }

    /// Input `i`'s f32 values, if it is an f32 compile-time constant.
    pub fn const_f32s(&self, i: usize) -> Option<Vec<f32>> {
        match self.const_tensor(i)?.data {
            carve_runtime::Data::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Input `i`'s integer values, if it is an integer compile-time constant.
    pub fn const_i64s(&self, i: usize) -> Option<Vec<i64>> {
        self.constant(i)?.to_i64s()
    }
}
