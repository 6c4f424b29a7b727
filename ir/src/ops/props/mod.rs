//! Op properties that passes, codegen and the cost model ask the op for instead of keeping their own
//! lists of names: whether an op draws random numbers ([`Props::random`]: it is impure, never folded,
//! shared or deduplicated), whether its output is a view of input 0's bytes ([`Props::view`]: same
//! bytes under a new shape, so it costs no kernel and codegen may alias it) and whether it is pointwise
//! over its broadcast inputs ([`Props::elementwise`]); per node, given its operand types, how its
//! channels map from inputs to outputs ([`ChannelMap`], for pruning) and its FLOPs and bytes ([`Work`]).
//!
//! Each family answers for its own ops in its module, next to its op table: `props`, `channels` and
//! `work` methods on the family enum. [`crate::Op::props`], [`crate::Op::channels`] and
//! [`crate::Op::work`] dispatch to them. The quantized and fused families answer from [`pending`]
//! until their own modules carry the methods.

mod channels;
mod pending;
mod quant;
mod work;

pub(crate) use channels::norm_axis;
pub use channels::{AxisRef, BlockMap, ChannelMap, Operand};
pub use quant::{QuantSite, WeightRank};
pub use work::{NodeTypes, Sizes, Work};

/// Gives a family the default properties: pure, not elementwise, the default work estimate
/// ([`Work::default_for`]) and an opaque channel map; `$why` says why in the `channels` doc.
macro_rules! default_family_props {
    ($Family:ty, $why:literal) => {
        impl $Family {
            /// Properties (see [`crate::ops::Props`]): pure, not elementwise.
            pub fn props(&self) -> crate::ops::Props {
                crate::ops::Props::NONE
            }

            /// Arithmetic (see [`crate::ops::Work`]): the default estimate.
            pub fn work(&self, t: &crate::ops::NodeTypes) -> Option<crate::ops::Work> {
                crate::ops::Work::default_for(t)
            }

            #[doc = concat!("Channel map (see [`crate::ops::ChannelMap`]): opaque (", $why, ").")]
            pub fn channels(&self, _t: &crate::ops::NodeTypes) -> crate::ops::ChannelMap {
                crate::ops::ChannelMap::Opaque
            }
        }
    };
}
pub(crate) use default_family_props;

/// What an op is, beyond its type rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Props {
    /// The op may draw random numbers: its results are not a function of its inputs' values, so it
    /// must not be constant-folded, shared between equal nodes or evaluated at compile time.
    pub random: bool,
    /// Output 0 is input 0's bytes under a new shape (same element type, same element order).
    pub view: bool,
    /// Output element `i` is a function of the inputs' elements at `i` alone (numpy broadcasting), with
    /// no attribute that names an axis: the op commutes with any transposition or reshaping applied to
    /// all its operands alike, and its channels map `c → c` ([`ChannelMap::pointwise`]).
    pub elementwise: bool,
    /// Every output element of input 0's element type is a copy of an input element (the op permutes,
    /// selects or repeats elements and computes or fills in none), so values keep their meaning: a
    /// per-tensor quantization passes through unchanged. Views rearrange.
    pub rearranges: bool,
}

impl Props {
    /// Nothing special: a pure op that computes a new tensor.
    pub const NONE: Props = Props {
        random: false,
        view: false,
        elementwise: false,
        rearranges: false,
    };
    /// A pure view of input 0.
    pub const VIEW: Props = Props {
        view: true,
        rearranges: true,
        ..Props::NONE
    };
    /// A pure op that permutes, selects or repeats its input's elements (see [`Props::rearranges`]).
    pub const REARRANGE: Props = Props {
        rearranges: true,
        ..Props::NONE
    };
    /// An op that draws random numbers.
    pub const RANDOM: Props = Props {
        random: true,
        ..Props::NONE
    };
    /// A pure pointwise op.
    pub const ELEMENTWISE: Props = Props {
        elementwise: true,
        ..Props::NONE
    };
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod view_random_tests {
    use crate::Op;
    use crate::ops::elementwise::Relu;
    use crate::ops::misc::{Bernoulli, Dropout, RandomNormal, Scaler};
    use crate::ops::movement::{Flatten, Identity, Reshape, Squeeze, Transpose, Unsqueeze};

    #[test]
    fn reshape_like_ops_and_identity_are_views_and_others_are_not() {
        let views: [Op; 5] = [
            Reshape::default().into(),
            Flatten::default().into(),
            Squeeze::default().into(),
            Unsqueeze::default().into(),
            Identity::default().into(),
        ];
        for op in &views {
            assert!(op.is_view(), "{} should be a view", op.name());
            assert!(!op.is_random(), "{} is pure", op.name());
        }
        let copies: [Op; 2] = [Transpose::default().into(), Relu::default().into()];
        for op in &copies {
            assert!(!op.is_view(), "{} moves or computes data", op.name());
        }
    }

    #[test]
    fn random_generators_and_dropout_are_impure_and_the_rest_pure() {
        let random: [Op; 3] = [
            RandomNormal::default().into(),
            Bernoulli::default().into(),
            Dropout::default().into(),
        ];
        for op in &random {
            assert!(op.is_random(), "{} draws random numbers", op.name());
            assert!(!op.is_view());
        }
        let pure: [Op; 3] = [
            Scaler::default().into(),
            Relu::default().into(),
            Reshape::default().into(),
        ];
        for op in &pure {
            assert!(!op.is_random(), "{} is pure", op.name());
        }
    }
}
