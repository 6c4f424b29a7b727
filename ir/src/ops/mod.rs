//! The IR op set: one family module per group of related ops, each declaring its ops (typed attributes
//! with defaults) in a `define_ops!` table and implementing their type inference next to them.
//!
//! The op set follows the newest ONNX opset's semantics; the frontend upgrades older opset variants
//! (attributes that became inputs, changed defaults) into this form. Operands that ONNX passes as inputs
//! (shapes, axes, pads, scales) stay inputs here; shape inference reads their values when constant.

pub mod activation;
mod attr;
pub mod control;
pub mod conv;
pub mod elementwise;
pub mod fused;
pub mod linalg;
pub mod misc;
pub mod movement;
pub mod norm;
mod props;
pub mod quant;
pub mod reduce;
pub mod rnn;
pub mod signal;
#[cfg(test)]
mod testutil;

pub use attr::{AttrError, AttrMap, AttrType, AttrValue};
pub use props::{
    AxisRef, BlockMap, ChannelMap, NodeTypes, Operand, Props, QuantSite, Sizes, WeightRank, Work,
};

use crate::infer::{InferCtx, InferError};
use crate::{Constant, Graph, Type};

/// Declares a family of ops: one struct per op with typed attribute fields and their defaults, plus the
/// family enum with its name, attribute and inference dispatch.
///
/// Each op struct must implement [`crate::infer::Infer`]. Attributes equal to their default are not
/// printed (except a field named `kind`, the discriminant of a collapsed op family, which always is);
/// absent attributes parse to their default.
#[macro_export]
macro_rules! define_ops {
    (
        $(#[$fmeta:meta])*
        pub enum $Family:ident {
            $(
                $(#[$meta:meta])*
                $Name:ident = $text:literal {
                    $( $(#[$fdoc:meta])* $field:ident : $fty:ty = $default:expr ),* $(,)?
                }
            ),* $(,)?
        }
    ) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $Name { $( $(#[$fdoc])* pub $field: $fty, )* }

            impl Default for $Name {
                fn default() -> Self {
                    Self { $( $field: $default, )* }
                }
            }

            impl From<$Name> for $crate::ops::Op {
                fn from(op: $Name) -> $crate::ops::Op {
                    $crate::ops::Op::from($Family::$Name(op))
                }
            }
        )*

        $(#[$fmeta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $Family { $( #[allow(missing_docs)] $Name($Name), )* }

        impl $Family {
            /// Text-format names of every op in this family.
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            /// The op's text-format name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$Name(_) => $text, )* }
            }

            /// Attributes that differ from their defaults, sorted by name.
            #[allow(unused_variables, unused_mut)]
            pub fn attrs(&self) -> Vec<(&'static str, $crate::ops::AttrValue)> {
                let mut out: Vec<(&'static str, $crate::ops::AttrValue)> = Vec::new();
                match self {
                    $( Self::$Name(op) => {
                        let d = $Name::default();
                        $(
                            // A `kind` attribute names the variant of a collapsed op family
                            // (`reduce {kind=max}`), so it is printed even when it is the default.
                            if op.$field != d.$field || stringify!($field) == "kind" {
                                out.push((stringify!($field), $crate::ops::AttrType::to_attr(&op.$field)));
                            }
                        )*
                    } )*
                }
                out.sort_by(|a, b| a.0.cmp(b.0));
                out
            }

            /// Builds the op named `name` from generic attributes (taking the ones it knows);
            /// `None` if no op of this family has that name.
            #[allow(unused_variables, unused_mut, clippy::redundant_closure_call)]
            pub fn from_attrs(
                name: &str,
                attrs: &mut $crate::ops::AttrMap,
            ) -> Option<Result<Self, $crate::ops::AttrError>> {
                match name {
                    $( $text => Some((|| {
                        let mut op = $Name::default();
                        $(
                            if let Some(v) = attrs.take(stringify!($field)) {
                                op.$field = $crate::ops::AttrType::from_attr(v).map_err(|msg| {
                                    $crate::ops::AttrError { name: stringify!($field).to_string(), msg }
                                })?;
                            }
                        )*
                        Ok(Self::$Name(op))
                    })()), )*
                    _ => None,
                }
            }

            /// Output types for the node's inputs.
            pub fn infer(&self, cx: &$crate::infer::InferCtx) -> Result<Vec<$crate::Type>, $crate::infer::InferError> {
                match self { $( Self::$Name(op) => $crate::infer::Infer::infer(op, cx), )* }
            }

            /// Values of a small integer result known symbolically (see [`crate::infer::Infer::sym_value`]).
            pub fn sym_value(&self, cx: &$crate::infer::InferCtx) -> Option<Vec<$crate::infer::SymInt>> {
                match self { $( Self::$Name(op) => $crate::infer::Infer::sym_value(op, cx), )* }
            }

            /// Subgraphs held in attributes.
            #[allow(unused_variables, unused_mut)]
            pub fn subgraphs(&self) -> Vec<&$crate::Graph> {
                let mut out = Vec::new();
                match self { $( Self::$Name(op) => { $( $crate::ops::AttrType::collect_graphs(&op.$field, &mut out); )* } )* }
                out
            }

            /// Subgraphs held in attributes, mutably.
            #[allow(unused_variables, unused_mut)]
            pub fn subgraphs_mut(&mut self) -> Vec<&mut $crate::Graph> {
                let mut out = Vec::new();
                match self { $( Self::$Name(op) => { $( $crate::ops::AttrType::collect_graphs_mut(&mut op.$field, &mut out); )* } )* }
                out
            }
        }
    };
}

macro_rules! define_families {
    ($( $(#[$meta:meta])* $Variant:ident($Family:ty) ),* $(,)?) => {
        /// An IR operation with its typed attributes.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Op {
            /// A constant tensor.
            Constant(Constant),
            $( $(#[$meta])* $Variant($Family), )*
        }

        $(
            impl From<$Family> for Op {
                fn from(f: $Family) -> Op {
                    Op::$Variant(f)
                }
            }
        )*

        impl Op {
            /// The text-format name (`const` for constants).
            pub fn name(&self) -> &'static str {
                match self {
                    Op::Constant(_) => "const",
                    $( Op::$Variant(f) => f.name(), )*
                }
            }

            /// Non-default attributes, sorted by name (constants have none: their value is printed apart).
            pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
                match self {
                    Op::Constant(_) => Vec::new(),
                    $( Op::$Variant(f) => f.attrs(), )*
                }
            }

            /// Builds an op from its text-format name and generic attributes. Unknown names give `None`;
            /// attributes no op field takes are an error.
            pub fn from_attrs(name: &str, mut attrs: AttrMap) -> Option<Result<Op, AttrError>> {
                $(
                    if let Some(r) = <$Family>::from_attrs(name, &mut attrs) {
                        return Some(r.and_then(|f| {
                            match attrs.leftover().first() {
                                Some(extra) => Err(AttrError {
                                    name: extra.clone(),
                                    msg: format!("'{name}' has no such attribute"),
                                }),
                                None => Ok(Op::$Variant(f)),
                            }
                        }));
                    }
                )*
                None
            }

            /// Output types for the node's inputs.
            pub fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
                let out = match self {
                    Op::Constant(c) => Ok(vec![Type::Tensor(c.ty.clone())]),
                    $( Op::$Variant(f) => f.infer(cx), )*
                }?;
                match self {
                    // Rearranged quantized integers keep their quantization.
                    Op::Movement(m) => Ok(crate::ops::quant::typing::movement_output(m, cx, out)),
                    _ => Ok(out),
                }
            }

            /// Values of a small integer result known symbolically (see [`crate::infer::Infer::sym_value`]).
            pub fn sym_value(&self, cx: &InferCtx) -> Option<Vec<crate::infer::SymInt>> {
                match self {
                    Op::Constant(c) => {
                        if c.num_elements() > crate::infer::SYM_MAX_ELEMENTS || c.ty.dtype.is_float() {
                            return None;
                        }
                        c.to_i64s().map(|v| v.into_iter().map(crate::infer::SymInt::Int).collect())
                    }
                    $( Op::$Variant(f) => f.sym_value(cx), )*
                }
            }

            /// Subgraphs held in attributes (If branches, Loop/Scan bodies, ...).
            pub fn subgraphs(&self) -> Vec<&Graph> {
                match self {
                    Op::Constant(_) => Vec::new(),
                    $( Op::$Variant(f) => f.subgraphs(), )*
                }
            }

            /// Subgraphs held in attributes, mutably.
            pub fn subgraphs_mut(&mut self) -> Vec<&mut Graph> {
                match self {
                    Op::Constant(_) => Vec::new(),
                    $( Op::$Variant(f) => f.subgraphs_mut(), )*
                }
            }

            /// The op's properties (see [`Props`]): asked by passes, codegen and the cost model.
            pub fn props(&self) -> Props {
                match self {
                    Op::Constant(_) => Props::NONE,
                    $( Op::$Variant(f) => f.props(), )*
                }
            }

            /// True when output 0 is input 0's bytes under a new shape (see [`Props::view`]).
            pub fn is_view(&self) -> bool {
                self.props().view
            }

            /// True when the op draws random numbers (see [`Props::random`]).
            pub fn is_random(&self) -> bool {
                self.props().random
            }

            /// True when the op is pointwise over its broadcast inputs (see [`Props::elementwise`]).
            pub fn is_elementwise(&self) -> bool {
                self.props().elementwise
            }

            /// FLOPs and bytes of a node running this op on operands of types `t` (see [`Work`]);
            /// `None` when a size it needs is not known under `t.sizes`. Views and constants do no work.
            pub fn work(&self, t: &NodeTypes) -> Option<Work> {
                let compute = match self {
                    Op::Constant(_) => return Some(Work::default()),
                    _ if self.is_view() => return Some(Work::default()),
                    $( Op::$Variant(f) => f.work(t)?, )*
                };
                Some(Work {
                    bytes_read: t.bytes_read()?,
                    bytes_written: t.bytes_written()?,
                    ..compute
                })
            }

            /// How channels map from the node's inputs to its outputs for operands of types `t` (see
            /// [`ChannelMap`]).
            pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
                match self {
                    Op::Constant(_) => ChannelMap::Opaque,
                    $( Op::$Variant(f) => f.channels(t), )*
                }
            }

            /// Every op name of the IR, for documentation and parser diagnostics.
            pub fn all_names() -> Vec<&'static str> {
                let mut v = vec!["const"];
                $( v.extend_from_slice(<$Family>::NAMES); )*
                v
            }
        }
    };
}

define_families! {
    /// Elementwise math, activations, comparisons, logic, casts.
    Elementwise(elementwise::ElementwiseOp),
    /// Reductions, arg-reductions, softmax family, cumulative ops, top-k.
    Reduce(reduce::ReduceOp),
    /// Normalizations.
    Norm(norm::NormOp),
    /// Matrix products and attention.
    Linalg(linalg::LinalgOp),
    /// Convolution and pooling.
    Conv(conv::ConvOp),
    /// Shape manipulation, indexing and data movement.
    Movement(movement::MovementOp),
    /// Quantize/dequantize and integer arithmetic.
    Quant(quant::QuantOp),
    /// Recurrent layers.
    Rnn(rnn::RnnOp),
    /// Control flow, sequences and optionals.
    Control(control::ControlOp),
    /// Signal processing.
    Signal(signal::SignalOp),
    /// Random numbers, strings, losses, training and classical ML ops.
    Misc(misc::MiscOp),
    /// Fused kernels produced by the optimizer (conv/matmul with bias and activation epilogues).
    Fused(fused::FusedOp),
}
