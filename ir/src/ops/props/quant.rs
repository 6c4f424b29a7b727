//! Where an op can take quantized operands ([`QuantSite`]): the multiply-accumulate ops whose weight
//! operand a compression policy may store as per-output-channel int8 (or lower-bit) values and whose data
//! input it may quantize per tensor. The policy asks the op (`Op::quant_site`) instead of keeping a
//! list of op names; each family answers for its ops next to its op table.

/// The operands of a multiply-accumulate op, as a quantization policy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantSite {
    /// The data input (an activation, quantized per tensor).
    pub data: usize,
    /// The weight input (normally a constant, quantized per output channel).
    pub weight: usize,
    /// The axis of the weight that indexes output channels (for a weight of the op's usual rank:
    /// `[K, N]` matmul → 1, transposed gemm → 0, conv `[M, C/g, k..]` → 0).
    pub weight_axis: usize,
    /// The bias input (added per output channel), if the op has one.
    pub bias: Option<usize>,
    /// The weight's rank the site applies to (a matmul weight must be a 2-D matrix; a conv weight any
    /// rank ≥ 3).
    pub weight_rank: WeightRank,
}

/// The ranks of weight a [`QuantSite`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightRank {
    /// Exactly this rank.
    Exactly(usize),
    /// This rank or more.
    AtLeast(usize),
}

impl WeightRank {
    /// True when a weight of rank `r` is covered.
    pub fn admits(self, r: usize) -> bool {
        match self {
            WeightRank::Exactly(n) => r == n,
            WeightRank::AtLeast(n) => r >= n,
        }
    }
}

impl crate::Op {
    /// The op's quantizable operands, if it is a multiply-accumulate op a quantization policy may
    /// quantize (see [`QuantSite`]).
    pub fn quant_site(&self) -> Option<QuantSite> {
        match self {
            crate::Op::Linalg(l) => l.quant_site(),
            crate::Op::Conv(c) => c.quant_site(),
            _ => None,
        }
    }
}
