//! One-shot unstructured sparsity (DESIGN.md "Compression"): which weights of each quantizable layer
//! (the MatMul/Gemm/Conv layers of [`crate::quantize::find_layers`]) become zero, at a target fraction
//! per output channel.
//!
//! A layer's weight is seen as a matrix of **rows** (output channels) × **columns** (the inputs one
//! output sums over: `K` of a MatMul/Gemm, `C/group · ∏kernel` of a Conv) by [`RowMatrix`]. Every row
//! loses the same number of weights, `round(ratio · columns)` ([`zeros_per_row`]), chosen by
//! - [`Method::Magnitude`]: the smallest `|w|` of the row;
//! - [`Method::SparseGpt`] ([`sparsegpt`], Frantar & Alistarh 2023, "SparseGPT: Massive Language
//!   Models Can Be Accurately Pruned in One-Shot"): an OBS-style pruner on the calibration Gram matrix
//!   `H = XᵀX` of the layer's inputs (the statistics GPTQ uses, [`crate::quantize::gptq::Gram`]): the
//!   mask is chosen block by block of columns by the saliency `w² / [U]ᵢᵢ²` (`H⁻¹ = UᵀU`), and each
//!   pruned weight's error is pushed onto the row's columns not yet visited, so the layer's output
//!   `X·W` changes as little as possible.
//!
//! Policies never run a model: the driver collects the Gram matrices, measures accuracy and asks for
//! the decision of each layer ([`sparsify_layer`]). The zeros stay in dense weights (portable ONNX);
//! sparse constant formats and kernels are not part of this module.

pub mod sparsegpt;

use carve_ir::Graph;

use crate::quantize::gptq::{GptqError, Gram};
use crate::quantize::{Layer, const_f32s};

pub use sparsegpt::sparsegpt;

/// How the weights to zero are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// The smallest `|w|` of each output channel.
    Magnitude,
    /// SparseGPT: OBS saliency on the calibration Gram matrix with error compensation.
    SparseGpt,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "magnitude" => Ok(Method::Magnitude),
            "sparsegpt" => Ok(Method::SparseGpt),
            _ => Err(format!(
                "unknown sparsity method '{s}' (expected magnitude or sparsegpt)"
            )),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Magnitude => "magnitude",
            Method::SparseGpt => "sparsegpt",
        })
    }
}

/// Why a layer could not be sparsified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SparsifyError {
    /// The ratio is outside `[0, 1)`.
    #[error("the sparsity ratio must be in [0, 1), got {0}")]
    Ratio(f64),
    /// The weight is not a readable float constant.
    #[error("weight '{0}' is not a dense float constant")]
    Weight(String),
    /// The weight has a layout the row view does not cover.
    #[error("a weight of dims {dims:?} with output channels on axis {axis} has no row view")]
    Layout {
        /// The weight's dims.
        dims: Vec<u64>,
        /// Its output-channel axis.
        axis: usize,
    },
    /// A weight is NaN or infinite.
    #[error("weight element {0} is not finite")]
    NotFinite(usize),
    /// The Gram matrices do not match the weight.
    #[error("{groups} input statistics of {k} channels do not fit {rows} rows of {cols} columns")]
    Statistics {
        /// Gram matrices given.
        groups: usize,
        /// Their channels.
        k: usize,
        /// Rows of the weight.
        rows: usize,
        /// Columns of the weight.
        cols: usize,
    },
    /// SparseGPT's factorization failed.
    #[error("SparseGPT: {0}")]
    Gptq(#[from] GptqError),
}

/// Zeros per row of `cols` columns at `ratio`: `round(ratio · cols)`.
pub fn zeros_per_row(ratio: f64, cols: usize) -> usize {
    ((ratio * cols as f64).round() as usize).min(cols)
}

/// A weight as rows (output channels) × columns, row-major in f64, and how to put it back.
#[derive(Debug, Clone, PartialEq)]
pub struct RowMatrix {
    /// Output channels.
    pub rows: usize,
    /// Inputs per output channel.
    pub cols: usize,
    /// `rows × cols`, row-major.
    pub m: Vec<f64>,
    /// The weight stores rows as columns (`[K, N]` MatMul/Gemm weights).
    transposed: bool,
}

impl RowMatrix {
    /// The row view of `w` (dims `dims`, output channels on `axis`): axis 0 (Conv `[M, C/g, k..]`,
    /// a transposed Gemm `[N, K]`) as stored, axis 1 of a 2-D weight (`[K, N]`) transposed.
    pub fn new(w: &[f32], dims: &[u64], axis: usize) -> Result<RowMatrix, SparsifyError> {
        let layout = || SparsifyError::Layout {
            dims: dims.to_vec(),
            axis,
        };
        let total: u64 = dims.iter().product();
        if total as usize != w.len() || dims.is_empty() {
            return Err(layout());
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(SparsifyError::NotFinite(i));
        }
        match (axis, dims.len()) {
            (0, _) => {
                let rows = dims[0] as usize;
                Ok(RowMatrix {
                    rows,
                    cols: w.len() / rows.max(1),
                    m: w.iter().map(|&v| f64::from(v)).collect(),
                    transposed: false,
                })
            }
            (1, 2) => {
                let (k, n) = (dims[0] as usize, dims[1] as usize);
                let mut m = vec![0f64; k * n];
                for (i, &v) in w.iter().enumerate() {
                    m[(i % n) * k + i / n] = f64::from(v);
                }
                Ok(RowMatrix {
                    rows: n,
                    cols: k,
                    m,
                    transposed: true,
                })
            }
            _ => Err(layout()),
        }
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.m[r * self.cols..(r + 1) * self.cols]
    }

    /// The weight in its stored layout.
    pub fn to_weight(&self) -> Vec<f32> {
        if !self.transposed {
            return self.m.iter().map(|&v| v as f32).collect();
        }
        let (n, k) = (self.rows, self.cols);
        let mut w = vec![0f32; k * n];
        for (i, dst) in w.iter_mut().enumerate() {
            *dst = self.m[(i % n) * k + i / n] as f32;
        }
        w
    }
}

/// Zeros the `round(ratio · cols)` smallest `|w|` of every row of `m` (ties: the lower column).
pub fn magnitude(m: &mut RowMatrix, ratio: f64) {
    let (rows, cols) = (m.rows, m.cols);
    let z = zeros_per_row(ratio, cols);
    let mut order: Vec<usize> = Vec::with_capacity(cols);
    for r in 0..rows {
        let row = &mut m.m[r * cols..(r + 1) * cols];
        order.clear();
        order.extend(0..cols);
        order.sort_by(|&a, &b| row[a].abs().total_cmp(&row[b].abs()).then(a.cmp(&b)));
        for &c in &order[..z] {
            row[c] = 0.0;
        }
    }
}

/// `Σ_rows δᵀHδ / Σ_rows wᵀHw` of the change `after − before` under the undampened Gram matrices
/// `grams` (one per equal share of the rows): the layer's relative squared output error on the
/// calibration inputs. `None` when the statistics do not fit or the output has no energy.
pub fn relative_output_error(before: &RowMatrix, after: &RowMatrix, grams: &[Gram]) -> Option<f64> {
    let (rows, cols) = (before.rows, before.cols);
    if grams.is_empty() || rows % grams.len() != 0 || grams.iter().any(|g| g.k != cols) {
        return None;
    }
    let per = rows / grams.len();
    let (mut num, mut den) = (0f64, 0f64);
    for (gi, g) in grams.iter().enumerate() {
        let h = g.symmetric();
        let quad = |v: &[f64]| -> f64 {
            let mut s = 0.0;
            for (i, &vi) in v.iter().enumerate() {
                if vi == 0.0 {
                    continue;
                }
                let hr = &h[i * cols..(i + 1) * cols];
                s += vi * hr.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
            }
            s
        };
        for r in gi * per..(gi + 1) * per {
            let (w, s) = (before.row(r), after.row(r));
            let d: Vec<f64> = w.iter().zip(s).map(|(a, b)| a - b).collect();
            num += quad(&d);
            den += quad(w);
        }
    }
    (den > 0.0).then(|| num / den)
}

/// The sparsity decision for one layer: its new (dense, partly zero) weight.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseLayer {
    /// The layer.
    pub layer: Layer,
    /// How its zeros were chosen.
    pub method: Method,
    /// The weight in its stored layout, with the zeros.
    pub weight: Vec<f32>,
    /// Weights in the layer.
    pub weights: u64,
    /// Zero weights before.
    pub zeros_before: u64,
    /// Zero weights after.
    pub zeros: u64,
    /// Relative squared output error of the layer on the calibration inputs
    /// ([`relative_output_error`]), when statistics were given.
    pub layer_error: Option<f64>,
}

impl SparseLayer {
    /// Fraction of zero weights after.
    pub fn sparsity(&self) -> f64 {
        self.zeros as f64 / self.weights.max(1) as f64
    }
}

/// Sparsifies `layer`'s weight (a constant of `g`) at `ratio` with `method`. `grams`: the Gram
/// matrices of the layer's input columns, one per channel group (Conv `group`; one for MatMul and
/// Gemm), needed by [`Method::SparseGpt`] and used for [`SparseLayer::layer_error`] when given.
pub fn sparsify_layer(
    g: &Graph,
    layer: &Layer,
    ratio: f64,
    method: Method,
    grams: Option<&[Gram]>,
) -> Result<SparseLayer, SparsifyError> {
    if !(0.0..1.0).contains(&ratio) {
        return Err(SparsifyError::Ratio(ratio));
    }
    let w =
        const_f32s(g, &layer.weight).ok_or_else(|| SparsifyError::Weight(layer.weight.clone()))?;
    let before = RowMatrix::new(&w, &layer.weight_dims, layer.weight_axis)?;
    let mut m = before.clone();
    if let Some(gr) = grams
        && (gr.is_empty() || m.rows % gr.len() != 0 || gr.iter().any(|x| x.k != m.cols))
    {
        return Err(SparsifyError::Statistics {
            groups: gr.len(),
            k: gr.first().map_or(0, |x| x.k),
            rows: m.rows,
            cols: m.cols,
        });
    }
    match (method, grams) {
        (Method::Magnitude, _) => magnitude(&mut m, ratio),
        (Method::SparseGpt, Some(gr)) => {
            let per = m.rows / gr.len();
            let cols = m.cols;
            for (gi, gram) in gr.iter().enumerate() {
                sparsegpt(
                    &mut m.m[gi * per * cols..(gi + 1) * per * cols],
                    cols,
                    ratio,
                    gram,
                )?;
            }
        }
        (Method::SparseGpt, None) => {
            return Err(SparsifyError::Statistics {
                groups: 0,
                k: 0,
                rows: m.rows,
                cols: m.cols,
            });
        }
    }
    let weight = m.to_weight();
    let layer_error = grams.and_then(|gr| relative_output_error(&before, &m, gr));
    Ok(SparseLayer {
        layer: layer.clone(),
        method,
        weights: w.len() as u64,
        zeros_before: w.iter().filter(|&&v| v == 0.0).count() as u64,
        zeros: weight.iter().filter(|&&v| v == 0.0).count() as u64,
        weight,
        layer_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_view_round_trips_both_layouts() {
        let w: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let t = RowMatrix::new(&w, &[4, 3], 1).unwrap();
        assert_eq!((t.rows, t.cols), (3, 4));
        assert_eq!(t.row(1), &[1.0, 4.0, 7.0, 10.0]);
        assert_eq!(t.to_weight(), w);
        let c = RowMatrix::new(&w, &[2, 3, 2], 0).unwrap();
        assert_eq!((c.rows, c.cols), (2, 6));
        assert_eq!(c.to_weight(), w);
        assert!(RowMatrix::new(&w, &[2, 3, 2], 1).is_err());
    }

    #[test]
    fn magnitude_zeros_the_smallest_of_every_row() {
        let w = [3.0, -1.0, 0.5, 2.0, -4.0, 0.1, 0.2, 5.0];
        let mut m = RowMatrix::new(&w, &[2, 4], 0).unwrap();
        magnitude(&mut m, 0.5);
        assert_eq!(m.to_weight(), vec![3.0, 0.0, 0.0, 2.0, -4.0, 0.0, 0.0, 5.0]);
        assert_eq!(zeros_per_row(0.5, 9), 5);
        assert_eq!(zeros_per_row(0.0, 9), 0);
    }
}
