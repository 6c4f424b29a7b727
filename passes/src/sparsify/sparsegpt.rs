//! SparseGPT (Frantar & Alistarh 2023) on rows that share one input Gram matrix `H = XᵀX`.
//!
//! With `H` dampened and `U` the upper factor of its inverse (`H⁻¹ = UᵀU`, the factorization GPTQ
//! uses, [`crate::quantize::gptq`]), each row is processed independently, column by column. At the
//! start of every block of [`MASK_BLOCK`] columns the row's mask for that block is chosen from its
//! weights *as updated so far* by the OBS saliency `w_c² / U_cc²` (smallest first; input channels that
//! never fired go first, they cost nothing); the block's share of zeros is cumulative
//! (`round(ratio · end) − round(ratio · start)`), so every row ends with exactly
//! `round(ratio · cols)` pruned weights ([`super::zeros_per_row`]). Pruning `w_c` leaves the error
//! `e = w_c / U_cc`, compensated on the later columns `j > c` by `w_j −= e · U_cj` (the optimal OBS
//! update restricted to the columns not yet visited).

use crate::quantize::gptq::{GptqError, Gram, dampened, inverse_factor};

use super::zeros_per_row;

/// Columns per mask-selection block (SparseGPT's adaptive mask blocks).
pub const MASK_BLOCK: usize = 128;

/// Prunes every row of `m` (`rows × cols`, row-major) to `round(ratio · cols)` zeros with SparseGPT
/// on the rows' input statistics `gram` (`gram.k == cols`).
pub fn sparsegpt(m: &mut [f64], cols: usize, ratio: f64, gram: &Gram) -> Result<(), GptqError> {
    if gram.k != cols {
        return Err(GptqError::Channels {
            k: cols,
            got: gram.k,
        });
    }
    if gram.rows == 0 {
        return Err(GptqError::Empty);
    }
    if cols == 0 {
        return Ok(());
    }
    let (h, dead) = dampened(gram);
    let u = inverse_factor(&h, cols)?;
    let diag: Vec<f64> = (0..cols).map(|c| u[c * cols + c]).collect();
    let mut pruned = vec![false; cols];
    let mut order: Vec<usize> = Vec::with_capacity(MASK_BLOCK);
    let mut score = vec![0f64; cols];
    for row in m.chunks_exact_mut(cols) {
        pruned.fill(false);
        for lo in (0..cols).step_by(MASK_BLOCK) {
            let hi = (lo + MASK_BLOCK).min(cols);
            let z = zeros_per_row(ratio, hi) - zeros_per_row(ratio, lo);
            for c in lo..hi {
                score[c] = if dead[c] {
                    -1.0
                } else {
                    (row[c] / diag[c]).powi(2)
                };
            }
            order.clear();
            order.extend(lo..hi);
            order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
            for &c in &order[..z] {
                pruned[c] = true;
            }
            for c in lo..hi {
                if !pruned[c] {
                    continue;
                }
                let e = if dead[c] { 0.0 } else { row[c] / diag[c] };
                row[c] = 0.0;
                if e == 0.0 {
                    continue;
                }
                let urow = &u[c * cols..(c + 1) * cols];
                for (w, &f) in row[c + 1..].iter_mut().zip(&urow[c + 1..]) {
                    *w -= e * f;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Method, RowMatrix, magnitude, relative_output_error};
    use super::*;

    /// A deterministic pseudo-random sequence in [-1, 1).
    fn noise(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `‖X·(W − Ŵ)‖²` with `W: [K, N]` (row-major) and `X: rows × K`.
    fn output_error(x: &[f32], w: &[f32], s: &[f32], k: usize, n: usize) -> f64 {
        x.chunks_exact(k)
            .map(|r| {
                (0..n)
                    .map(|j| {
                        let y: f64 = r
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| f64::from(v) * f64::from(w[i * n + j] - s[i * n + j]))
                            .sum();
                        y * y
                    })
                    .sum::<f64>()
            })
            .sum()
    }

    #[test]
    fn sparsegpt_has_less_output_error_than_magnitude_at_the_same_sparsity() {
        // A MatMul weight [K, N] on correlated inputs (a few shared directions plus noise); K spans
        // two mask blocks.
        let (k, n, rows) = (160, 24, 512);
        let w = noise(7, k * n);
        let base = noise(3, 4 * k);
        let coef = noise(5, rows * 4);
        let jitter = noise(11, rows * k);
        let x: Vec<f32> = (0..rows * k)
            .map(|e| {
                let (r, c) = (e / k, e % k);
                (0..4)
                    .map(|d| coef[r * 4 + d] * base[d * k + c])
                    .sum::<f32>()
                    + 0.1 * jitter[e]
            })
            .collect();
        let mut g = Gram::new(k);
        g.add(&x);
        let before = RowMatrix::new(&w, &[k as u64, n as u64], 1).unwrap();
        for ratio in [0.5, 0.75] {
            let mut mag = before.clone();
            magnitude(&mut mag, ratio);
            let mut gpt = before.clone();
            sparsegpt(&mut gpt.m, k, ratio, &g).unwrap();
            let want = super::super::zeros_per_row(ratio, k);
            for r in 0..n {
                for (what, m) in [(Method::Magnitude, &mag), (Method::SparseGpt, &gpt)] {
                    let zeros = m.row(r).iter().filter(|&&v| v == 0.0).count();
                    assert_eq!(zeros, want, "{what} row {r} at {ratio}");
                }
            }
            let e_mag = output_error(&x, &w, &mag.to_weight(), k, n);
            let e_gpt = output_error(&x, &w, &gpt.to_weight(), k, n);
            assert!(
                e_gpt < 0.7 * e_mag,
                "ratio {ratio}: sparsegpt {e_gpt} vs magnitude {e_mag}"
            );
            // The Gram-based relative error orders them the same way.
            let (r_mag, r_gpt) = (
                relative_output_error(&before, &mag, std::slice::from_ref(&g)).unwrap(),
                relative_output_error(&before, &gpt, std::slice::from_ref(&g)).unwrap(),
            );
            assert!(r_gpt < r_mag, "{r_gpt} vs {r_mag}");
        }
    }

    #[test]
    fn mismatched_or_empty_statistics_are_errors() {
        let mut m = vec![1.0; 8];
        assert_eq!(
            sparsegpt(&mut m, 4, 0.5, &Gram::new(3)),
            Err(GptqError::Channels { k: 4, got: 3 })
        );
        assert_eq!(
            sparsegpt(&mut m, 4, 0.5, &Gram::new(4)),
            Err(GptqError::Empty)
        );
    }
}
