//! FLOPs and bytes of one node from its operand types ([`Work`]), the one estimate behind `carve
//! inspect`'s compute figure and the e-graph cost model (which adds target parameters on top).
//!
//! Each family computes its ops' arithmetic in a `work` method next to its op table; [`crate::Op::work`]
//! adds the bytes (every present tensor input read once, every tensor output written once), gives
//! views and constants no work, and gives ops a family does not describe the default of
//! [`Work::default_for`]. Dims are sized by a [`Sizes`] policy: exact (a symbolic dim makes the estimate
//! unknown) or with a guess for symbolic dims.

use crate::{Dim, TensorType, Type};

/// How dims that are not concrete are sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    /// Size of a symbolic or unknown dim; `None`: the estimate is unknown.
    pub symbolic: Option<f64>,
}

impl Sizes {
    /// Only concrete dims: any symbolic dim makes the estimate unknown.
    pub const EXACT: Sizes = Sizes { symbolic: None };

    /// Symbolic dims count as `n` (an unranked tensor as a `[n, n]` one).
    pub const fn guess(n: f64) -> Sizes {
        Sizes { symbolic: Some(n) }
    }

    /// The size of `d`.
    pub fn dim(&self, d: &Dim) -> Option<f64> {
        match d {
            Dim::Known(n) => Some(*n as f64),
            _ => self.symbolic,
        }
    }

    /// Elements of `t`.
    pub fn elems(&self, t: &TensorType) -> Option<f64> {
        match t.dims() {
            Some(d) => d.iter().map(|d| self.dim(d)).product(),
            None => self.symbolic.map(|s| s * s),
        }
    }

    /// Bytes of `t` (elements × element bits / 8).
    pub fn bytes(&self, t: &TensorType) -> Option<f64> {
        Some(self.elems(t)? * f64::from(t.dtype.bits().max(1)) / 8.0)
    }
}

/// What a node's work estimate sees: its operand types and the sizing policy.
#[derive(Debug, Clone, Copy)]
pub struct NodeTypes<'a> {
    /// Input types (`None` for absent optional inputs).
    pub inputs: &'a [Option<&'a Type>],
    /// Output types.
    pub outputs: &'a [Type],
    /// How symbolic dims are sized.
    pub sizes: Sizes,
}

impl<'a> NodeTypes<'a> {
    /// Input `i` as a tensor type.
    pub fn input(&self, i: usize) -> Option<&'a TensorType> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .and_then(Type::as_tensor)
    }

    /// Output `i` as a tensor type.
    pub fn output(&self, i: usize) -> Option<&'a TensorType> {
        self.outputs.get(i).and_then(Type::as_tensor)
    }

    /// Elements of output 0 (1 when it is not a tensor).
    pub fn out_elems(&self) -> Option<f64> {
        self.output(0).map_or(Some(1.0), |t| self.sizes.elems(t))
    }

    /// Elements of input `i`, or of output 0 when input `i` is absent or not a tensor.
    pub fn in_elems(&self, i: usize) -> Option<f64> {
        match self.input(i) {
            Some(t) => self.sizes.elems(t),
            None => self.out_elems(),
        }
    }

    /// Dim `axis` of input `i` (negative: from the end); a missing dim counts as a symbolic one.
    pub fn in_dim(&self, i: usize, axis: isize) -> Option<f64> {
        let d = self.input(i).and_then(|t| t.dims()).and_then(|d| {
            let a = if axis < 0 {
                d.len().checked_sub(axis.unsigned_abs())?
            } else {
                axis.unsigned_abs()
            };
            d.get(a)
        });
        match d {
            Some(d) => self.sizes.dim(d),
            None => self.sizes.symbolic,
        }
    }

    /// Product of input `i`'s dims from `from` on (a missing shape counts as one symbolic dim).
    pub fn in_dims_from(&self, i: usize, from: usize) -> Option<f64> {
        match self.input(i).and_then(|t| t.dims()) {
            Some(d) => d.iter().skip(from).map(|d| self.sizes.dim(d)).product(),
            None => self.sizes.symbolic,
        }
    }

    /// Bytes of every present tensor input.
    pub fn bytes_read(&self) -> Option<f64> {
        self.inputs
            .iter()
            .filter_map(|t| t.and_then(Type::as_tensor))
            .map(|t| self.sizes.bytes(t))
            .sum()
    }

    /// Bytes of every tensor output.
    pub fn bytes_written(&self) -> Option<f64> {
        self.outputs
            .iter()
            .filter_map(Type::as_tensor)
            .map(|t| self.sizes.bytes(t))
            .sum()
    }
}

/// The work of one node: arithmetic and memory traffic. Counts are f64 (they are integers far below
/// 2⁵³, so sums are exact in any order).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// Multiply-accumulates (matrix products, convolutions, recurrent layers): 2 FLOPs each.
    pub macs: f64,
    /// Other arithmetic operations; a transcendental function (exp, tanh, erf, sqrt, division, ...)
    /// counts as one here and is also counted in [`Work::transcendental`].
    pub flops: f64,
    /// How many of [`Work::flops`] are transcendental functions (a cost model may weight them).
    pub transcendental: f64,
    /// Bytes read: every present tensor input once (weights included).
    pub bytes_read: f64,
    /// Bytes written: every tensor output once.
    pub bytes_written: f64,
}

impl Work {
    /// `flops` plain arithmetic operations.
    pub fn arith(flops: f64) -> Work {
        Work {
            flops,
            ..Work::default()
        }
    }

    /// `n` elements each computing `per` operations of which `transcendental` are transcendental.
    pub fn per_element(n: f64, per: f64, transcendental: f64) -> Work {
        Work {
            flops: n * per,
            transcendental: n * transcendental,
            ..Work::default()
        }
    }

    /// `macs` multiply-accumulates plus `flops` other operations.
    pub fn mac(macs: f64, flops: f64) -> Work {
        Work {
            macs,
            flops,
            ..Work::default()
        }
    }

    /// The estimate for an op no family describes: one operation per element of the larger of input 0
    /// and output 0.
    pub fn default_for(t: &NodeTypes) -> Option<Work> {
        Some(Work::arith(t.in_elems(0)?.max(t.out_elems()?)))
    }

    /// All FLOPs: 2 per multiply-accumulate plus the other operations.
    pub fn total_flops(&self) -> f64 {
        2.0 * self.macs + self.flops
    }

    /// Bytes read and written.
    pub fn bytes(&self) -> f64 {
        self.bytes_read + self.bytes_written
    }

    /// Adds `n` elements of an epilogue activation of kind `act` (its own FLOP count).
    pub fn with_activation(mut self, n: f64, act: crate::ops::activation::ActKind) -> Work {
        let base = act.flops(0.0);
        let transcendental = act.flops(1.0) - base;
        self.flops += n * (base + transcendental);
        self.transcendental += n * transcendental;
        self
    }

    /// Adds `n` plain arithmetic operations (an epilogue's scale, residual add or clamp).
    pub fn with_flops(mut self, n: f64) -> Work {
        self.flops += n;
        self
    }
}
