//! The weight format of `matmul_nbits` (com.microsoft MatMulNBits): `n × k` weights of `bits` bits,
//! packed per output column in blocks of `block_size` along `k`, each block with a scale and a zero
//! point — its geometry ([`NBitsLayout`]), how codes are read ([`read_bits`], [`NBitsLayout::code`]),
//! and the writer the compressor uses ([`quantize`], round-to-nearest as ONNX Runtime's MLAS
//! blockwise quantizer) with its exact inverse ([`dequantize`]).
//!
//! Layout (ONNX Runtime's): `b: u8[n, blocks, blob]` with `blocks = ⌈k / block_size⌉` and `blob =
//! block_size · bits / 8`; the codes of column `j`, block `q` sit LSB-first (for 4 bits: two per byte,
//! low nibble first), `k` index `q · block_size + i` at bit `i · bits` of the block; the last block is
//! padded. `scales: [n · blocks]` (column-major over blocks: `scales[j · blocks + q]`); packed zero
//! points `u8[n · ⌈blocks · bits / 8⌉]`, each column's row LSB-first; absent zero points mean
//! `2^(bits − 1)`. A weight is `w[k, j] = (code − zero_point) · scale`, rounded once in f32.

use thiserror::Error;

use super::MatMulNBits;

/// Why a block-quantized weight cannot be laid out, packed or unpacked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NBitsError {
    /// The attributes do not describe a valid layout.
    #[error("invalid MatMulNBits layout: {0}")]
    Layout(String),
    /// A buffer has the wrong length.
    #[error("{what} must have {expected} elements, got {got}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Elements the layout needs.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// A weight to quantize is NaN or infinite.
    #[error("weight element {index} (row-major [k, n]) is not finite")]
    NotFinite {
        /// Row-major index into the `[k, n]` weight.
        index: usize,
    },
}

/// Geometry of `n × k` weights of `bits` bits in blocks of `block_size` along `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NBitsLayout {
    /// Inner (reduction) size.
    pub k: usize,
    /// Output columns.
    pub n: usize,
    /// Bits per weight (1 to 8).
    pub bits: usize,
    /// Weights per block along `k` (`block_size · bits` a whole number of bytes).
    pub block_size: usize,
}

impl NBitsLayout {
    /// A checked layout: `k, n ≥ 1`, `bits` in 1..=8, `block_size ≥ 1` with `block_size · bits` a
    /// multiple of 8, and every buffer size representable.
    pub fn new(k: usize, n: usize, bits: usize, block_size: usize) -> Result<Self, NBitsError> {
        let bad = |m: String| Err(NBitsError::Layout(m));
        if k == 0 || n == 0 {
            return bad(format!("k and n must be positive, got k={k} n={n}"));
        }
        if !(1..=8).contains(&bits) {
            return bad(format!("bits must be 1 to 8, got {bits}"));
        }
        if block_size == 0 || block_size.checked_mul(bits).is_none_or(|b| b % 8 != 0) {
            return bad(format!(
                "block_size must be positive with block_size·bits a whole number of bytes, got \
                 {block_size} for {bits} bits"
            ));
        }
        let l = NBitsLayout {
            k,
            n,
            bits,
            block_size,
        };
        if n.checked_mul(l.blocks())
            .and_then(|x| x.checked_mul(l.blob()))
            .is_none()
            || k.checked_mul(n).is_none()
        {
            return bad(format!("k={k}, n={n} are too large"));
        }
        Ok(l)
    }

    /// The layout of `op`'s weight (attributes checked as in [`NBitsLayout::new`]).
    pub fn of(op: &MatMulNBits) -> Result<Self, NBitsError> {
        let u = |v: i64, what: &str| {
            usize::try_from(v).map_err(|_| NBitsError::Layout(format!("{what} is negative: {v}")))
        };
        Self::new(
            u(op.k, "k")?,
            u(op.n, "n")?,
            u(op.bits, "bits")?,
            u(op.block_size, "block_size")?,
        )
    }

    /// Blocks per column: `⌈k / block_size⌉`.
    pub fn blocks(&self) -> usize {
        self.k.div_ceil(self.block_size)
    }

    /// Bytes per block: `block_size · bits / 8`.
    pub fn blob(&self) -> usize {
        self.block_size * self.bits / 8
    }

    /// Bytes of the packed weight `b`: `n · blocks · blob`.
    pub fn b_len(&self) -> usize {
        self.n * self.blocks() * self.blob()
    }

    /// Elements of `scales` (and of unpacked zero points): `n · blocks`.
    pub fn scales_len(&self) -> usize {
        self.n * self.blocks()
    }

    /// Bytes of one column's packed zero points: `⌈blocks · bits / 8⌉`.
    pub fn zp_row_bytes(&self) -> usize {
        (self.blocks() * self.bits).div_ceil(8)
    }

    /// Bytes of packed zero points: `n · ⌈blocks · bits / 8⌉`.
    pub fn zp_len(&self) -> usize {
        self.n * self.zp_row_bytes()
    }

    /// The zero point when none is given: `2^(bits − 1)` (8 for 4 bits).
    pub fn default_zero_point(&self) -> u32 {
        1 << (self.bits - 1)
    }

    /// Largest code: `2^bits − 1`.
    pub fn max_code(&self) -> u32 {
        (1u32 << self.bits) - 1
    }

    /// The code of the weight of output column `j` at reduction index `kk` in packed `b`; `None` when
    /// `b` is too short or an index is out of range.
    pub fn code(&self, b: &[u8], j: usize, kk: usize) -> Option<u32> {
        if j >= self.n || kk >= self.k {
            return None;
        }
        let (q, i) = (kk / self.block_size, kk % self.block_size);
        let start = (j * self.blocks() + q) * self.blob();
        read_bits(b.get(start..start + self.blob())?, i * self.bits, self.bits)
    }

    /// The packed zero point of column `j`, block `q`; `None` when `zp` is too short.
    pub fn packed_zero_point(&self, zp: &[u8], j: usize, q: usize) -> Option<u32> {
        let row = self.zp_row_bytes();
        read_bits(zp.get(j * row..(j + 1) * row)?, q * self.bits, self.bits)
    }
}

/// Reads `bits` bits at bit offset `off` of `bytes`, least significant bits first; `None` past the
/// end.
pub fn read_bits(bytes: &[u8], off: usize, bits: usize) -> Option<u32> {
    let mut v = 0u32;
    for i in 0..bits {
        let bit = off + i;
        let byte = *bytes.get(bit / 8)?;
        v |= u32::from((byte >> (bit % 8)) & 1) << i;
    }
    Some(v)
}

/// Writes the low `bits` bits of `v` at bit offset `off` of `bytes` (which must be long enough),
/// least significant bits first.
fn write_bits(bytes: &mut [u8], off: usize, bits: usize, v: u32) {
    for i in 0..bits {
        let bit = off + i;
        let mask = 1u8 << (bit % 8);
        if (v >> i) & 1 == 1 {
            bytes[bit / 8] |= mask;
        } else {
            bytes[bit / 8] &= !mask;
        }
    }
}

/// A weight matrix in MatMulNBits form: the three (or two) initializers a MatMulNBits node takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    /// The geometry.
    pub layout: NBitsLayout,
    /// Packed codes, `u8[n, blocks, blob]` flattened.
    pub b: Vec<u8>,
    /// Scales, `f32[n · blocks]`.
    pub scales: Vec<f32>,
    /// Packed zero points `u8[n · ⌈blocks · bits / 8⌉]`; `None` for the symmetric form (zero point
    /// `2^(bits − 1)`).
    pub zero_points: Option<Vec<u8>>,
}

impl Packed {
    /// The zero point of column `j`, block `q` as a number.
    pub fn zero_point(&self, j: usize, q: usize) -> u32 {
        self.zero_points
            .as_deref()
            .and_then(|z| self.layout.packed_zero_point(z, j, q))
            .unwrap_or_else(|| self.layout.default_zero_point())
    }
}

/// Quantizes a float weight `w: [k, n]` (row-major, as ONNX MatMul's `B`) block-wise along `k`,
/// round-to-nearest, the way ONNX Runtime's MLAS blockwise quantizer does:
/// - asymmetric (`symmetric = false`): per block the range `[min(lo, 0), max(hi, 0)]`, `scale =
///   (max − min) / (2^bits − 1)`, `zero_point = round(−min / scale)` clamped to the codes;
/// - symmetric: `scale = m / −2^(bits−1)` where `m` is the block's value of largest magnitude (so `m`
///   itself is code 0 exactly; the scale may be negative), zero point `2^(bits−1)` (not stored).
///
/// Codes are `clamp(round(w · (1/scale) + zero_point), 0, 2^bits − 1)` (half away from zero; a zero
/// scale gives the zero point). A code is within `|scale| / 2` of the weight, except in the symmetric
/// form a weight of the other sign than `m` beyond `(2^(bits−1) − ½)·|scale|`, which is clamped to the
/// top code (within `|scale|`). As in ONNX Runtime's packer, the padding of a partial last block is
/// zero bits and unused zero-point slots hold the default zero point — the output is byte-identical
/// to `onnxruntime.capi._pybind_state.quantize_matmul_{2,4,8}bits` (checked against committed data).
pub fn quantize(w: &[f32], layout: NBitsLayout, symmetric: bool) -> Result<Packed, NBitsError> {
    let NBitsLayout {
        k,
        n,
        block_size: bs,
        ..
    } = layout;
    if w.len() != k * n {
        return Err(NBitsError::Length {
            what: "the weight [k, n]",
            expected: k * n,
            got: w.len(),
        });
    }
    if let Some(index) = w.iter().position(|v| !v.is_finite()) {
        return Err(NBitsError::NotFinite { index });
    }
    let mut p = Packed::zeroed(layout, symmetric);
    for j in 0..n {
        for q in 0..layout.blocks() {
            let ks = q * bs..((q + 1) * bs).min(k);
            let (scale, zp) = block_params(ks.clone().map(|kk| w[kk * n + j]), &layout, symmetric);
            p.set_block(j, q, scale, zp);
            for kk in ks {
                p.set_code(j, kk, encode(w[kk * n + j], scale, zp, layout.max_code()));
            }
        }
    }
    Ok(p)
}

/// A block's scale and zero point from its weights `vals`, as [`quantize`] chooses them (MLAS's
/// rule: symmetric `m / −2^(bits−1)` with zero point `2^(bits−1)`, asymmetric over `[min(lo, 0),
/// max(hi, 0)]`).
pub fn block_params(
    vals: impl Iterator<Item = f32>,
    layout: &NBitsLayout,
    symmetric: bool,
) -> (f32, u32) {
    if symmetric {
        let m = vals.fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
        (
            m / -((1u32 << (layout.bits - 1)) as f32),
            layout.default_zero_point(),
        )
    } else {
        let (lo, hi) = vals.fold((0f32, 0f32), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let max_code = layout.max_code() as f32;
        let scale = (hi - lo) / max_code;
        let zp = if scale == 0.0 {
            0.0
        } else {
            (-lo / scale).round().clamp(0.0, max_code)
        };
        (scale, zp as u32)
    }
}

/// The code of weight `w` in a block of `scale` and zero point `zp`: `clamp(round(w · (1/scale) +
/// zp), 0, max_code)` (half away from zero; a zero scale gives `zp`).
pub fn encode(w: f32, scale: f32, zp: u32, max_code: u32) -> u32 {
    let inv = if scale == 0.0 { 0.0 } else { 1.0 / scale };
    (w * inv + zp as f32).round().clamp(0.0, max_code as f32) as u32
}

impl Packed {
    /// All codes 0, all scales 0, zero points (unless `symmetric`) at the default in every slot —
    /// the padding ONNX Runtime's packer writes.
    pub fn zeroed(layout: NBitsLayout, symmetric: bool) -> Packed {
        let zero_points = (!symmetric).then(|| {
            let mut z = vec![0u8; layout.zp_len()];
            let row = layout.zp_row_bytes();
            for r in z.chunks_mut(row) {
                for slot in 0..row * 8 / layout.bits {
                    write_bits(
                        r,
                        slot * layout.bits,
                        layout.bits,
                        layout.default_zero_point(),
                    );
                }
            }
            z
        });
        Packed {
            layout,
            b: vec![0u8; layout.b_len()],
            scales: vec![0f32; layout.scales_len()],
            zero_points,
        }
    }

    /// Sets the scale (and, when stored, the zero point) of column `j`'s block `q`.
    pub fn set_block(&mut self, j: usize, q: usize, scale: f32, zp: u32) {
        let l = self.layout;
        self.scales[j * l.blocks() + q] = scale;
        if let Some(z) = self.zero_points.as_mut() {
            let row = l.zp_row_bytes();
            write_bits(&mut z[j * row..(j + 1) * row], q * l.bits, l.bits, zp);
        }
    }

    /// Sets the code of weight `[kk, j]`.
    pub fn set_code(&mut self, j: usize, kk: usize, code: u32) {
        let l = self.layout;
        let (q, i) = (kk / l.block_size, kk % l.block_size);
        let blob = &mut self.b[(j * l.blocks() + q) * l.blob()..][..l.blob()];
        write_bits(blob, i * l.bits, l.bits, code);
    }
}

/// The float weight `[k, n]` (row-major) that `p` stands for: `(code − zero_point) · scale` per
/// element, in f32 — what `matmul_nbits` multiplies by.
pub fn dequantize(p: &Packed) -> Result<Vec<f32>, NBitsError> {
    let l = p.layout;
    let check = |what, expected, got| {
        if expected == got {
            Ok(())
        } else {
            Err(NBitsError::Length {
                what,
                expected,
                got,
            })
        }
    };
    check("b", l.b_len(), p.b.len())?;
    check("scales", l.scales_len(), p.scales.len())?;
    if let Some(z) = &p.zero_points {
        check("zero_points", l.zp_len(), z.len())?;
    }
    let blocks = l.blocks();
    let mut w = vec![0f32; l.k * l.n];
    for j in 0..l.n {
        for kk in 0..l.k {
            let q = kk / l.block_size;
            let code = l.code(&p.b, j, kk).unwrap_or(0);
            let zp = p.zero_point(j, q) as f32;
            w[kk * l.n + j] = (code as f32 - zp) * p.scales[j * blocks + q];
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) with some spread between columns.
    fn weights(k: usize, n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..k * n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 40) as f32 / (1u64 << 24) as f32;
                (2.0 * u - 1.0) * (1.0 + (i % n) as f32 * 0.25)
            })
            .collect()
    }

    #[test]
    fn bits_are_read_lsb_first() {
        // 4-bit weights 1, 2, 3, 4 packed two per byte, low nibble first.
        let b = [0x21, 0x43];
        let v: Vec<u32> = (0..4).map(|i| read_bits(&b, i * 4, 4).unwrap()).collect();
        assert_eq!(v, [1, 2, 3, 4]);
        // 3-bit values crossing a byte: 5, 6, 7 → bits 101 110 111 → 0b11_110_101, 0b1.
        let b = [0b1111_0101, 0b1];
        let v: Vec<u32> = (0..3).map(|i| read_bits(&b, i * 3, 3).unwrap()).collect();
        assert_eq!(v, [5, 6, 7]);
        assert_eq!(read_bits(&b, 15, 3), None);
        let mut w = [0u8; 2];
        for (i, c) in [5, 6, 7].into_iter().enumerate() {
            write_bits(&mut w, i * 3, 3, c);
        }
        assert_eq!(w, b);
    }

    #[test]
    fn layout_sizes_follow_onnx_runtime() {
        let l = NBitsLayout::new(100, 3, 4, 32).unwrap();
        assert_eq!((l.blocks(), l.blob(), l.b_len()), (4, 16, 3 * 4 * 16));
        assert_eq!((l.scales_len(), l.zp_row_bytes(), l.zp_len()), (12, 2, 6));
        assert_eq!(NBitsLayout::new(5, 1, 4, 32).unwrap().zp_row_bytes(), 1);
        assert!(NBitsLayout::new(64, 8, 4, 3).is_err());
        assert!(NBitsLayout::new(64, 8, 9, 32).is_err());
        assert!(NBitsLayout::new(0, 8, 4, 32).is_err());
    }

    #[test]
    fn quantize_then_dequantize_is_within_half_a_step() {
        for (k, n, bs, bits) in [
            (64, 5, 32, 4),
            (100, 7, 16, 4),
            (33, 3, 128, 4),
            (70, 4, 32, 2),
            (50, 3, 16, 8),
        ] {
            for symmetric in [false, true] {
                let l = NBitsLayout::new(k, n, bits, bs).unwrap();
                let w = weights(k, n, (k * n + bs) as u64);
                let p = quantize(&w, l, symmetric).unwrap();
                assert_eq!(p.zero_points.is_none(), symmetric);
                let d = dequantize(&p).unwrap();
                for kk in 0..k {
                    for j in 0..n {
                        let q = kk / bs;
                        let s = p.scales[j * l.blocks() + q].abs();
                        let err = (d[kk * n + j] - w[kk * n + j]).abs();
                        let clamped = l.code(&p.b, j, kk) == Some(l.max_code());
                        let bound = if symmetric && clamped { s } else { s / 2.0 };
                        assert!(
                            err <= bound * (1.0 + 1e-5) + 1e-7,
                            "k={k} n={n} bs={bs} bits={bits} sym={symmetric} at [{kk},{j}]: \
                             {} vs {} (scale {s})",
                            d[kk * n + j],
                            w[kk * n + j]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn symmetric_extreme_is_exact_and_padding_is_as_onnx_runtime_writes_it() {
        // One column, k = 20 in blocks of 16: the second block is partial (4 weights + 12 padding).
        let mut w = vec![0.5f32; 20];
        w[3] = -2.0;
        let l = NBitsLayout::new(20, 1, 4, 16).unwrap();
        let p = quantize(&w, l, true).unwrap();
        assert_eq!(p.scales[0], 0.25);
        assert_eq!(l.code(&p.b, 0, 3), Some(0));
        assert_eq!(dequantize(&p).unwrap()[3], -2.0);
        // Padding codes (k 20..32 of block 1, bytes 10..16) are zero bits.
        assert_eq!(p.b.len(), 16);
        assert!(p.b[10..].iter().all(|&x| x == 0), "{:?}", &p.b[8..]);
        // Three blocks: the fourth zero-point nibble of the column's two bytes is the default 8.
        let l3 = NBitsLayout::new(40, 1, 4, 16).unwrap();
        let pa = quantize(&[0.5; 40], l3, false).unwrap();
        assert_eq!(pa.zero_points.as_ref().map(|z| z[1] >> 4), Some(8));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let l = NBitsLayout::new(4, 2, 4, 16).unwrap();
        assert!(matches!(
            quantize(&[0.0; 7], l, true),
            Err(NBitsError::Length { got: 7, .. })
        ));
        let mut w = vec![0.0; 8];
        w[5] = f32::NAN;
        assert_eq!(
            quantize(&w, l, false),
            Err(NBitsError::NotFinite { index: 5 })
        );
        let mut p = quantize(&[1.0; 8], l, false).unwrap();
        p.scales.pop();
        assert!(dequantize(&p).is_err());
    }
}
