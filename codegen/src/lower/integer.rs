//! Integer quantized ops with run-time quantization parameters — what ONNX Runtime's dynamic
//! quantization writes (`DynamicQuantizeLinear` feeding `MatMulInteger` over constant int8 weights):
//! - `matmul_integer(a, b, a_zp?, b_zp?)` with a constant 2-D `b`: `(a − a_zp) @ (b − b_zp)` with i32
//!   accumulation (wrapping, as the reference's int32 accumulation). `b − b_zp` is formed at compile
//!   time into i32 panels of 4 columns, k-major, with its column sums, so each output is
//!   `Σ_k a[r,k]·b'[k,j] − a_zp·colsum[j]`. Rows are the kernel's tiles.
//! - `matmul(a, b)` over quantized types (QLinearMatMul / QGemm with constant parameters, see
//!   `carve_ir::ops::quant::typing`): the same product with the zero points read from the operands'
//!   types (`a`'s a compile-time constant instead of an operand); its requantization is
//!   `lower::elementwise::requant`.
//! - `dynamic_quantize_linear(x)`: ONNX's formula in f32 exactly as the interpreter computes it
//!   (range including 0, NaN left out of the range and quantized to 0, an all-zero input gets scale 1):
//!   one pass for the range, one to quantize; a single tile, so the result is thread-independent.
//!
//! On x86_64 with AVX2 the product runs on int8 machine-code tiles ([`crate::x86::gemm_i8`], chosen
//! by [`I8Isa::for_target`]: AVX-512 VNNI, AVX-VNNI, or exact AVX2 widening): `b − b_zp` packed at
//! compile time in the tile's layout, cache-blocked over M and N (tiles, the thread unit) and K (k
//! blocks, the middle ones in one run-time loop), A read in place (not packed at run time: the
//! AVX-512 VNNI tile reaches ~4× the f32 tile's multiply-add rate at 1024³ without it), and
//! `zp·colsum` subtracted in the tile's registers, where `zp` is `a_zp`, plus 128 for i8 A on the
//! VNNI tiles (they bias A by 128 to make it unsigned). The VNNI tiles multiply B' as s8: where some
//! `b − b_zp` is outside i8 (e.g. u8 weights without a zero point) the node keeps the Cranelift kernel
//! below (the AVX2 tile stores B' as i16 and takes any 8-bit operands).
//!
//! The same product is the kernel of an integer `fused_matmul` ([`crate::lower::int_fused`]): with an
//! [`IntEpi`] the tiles' last k block converts, rescales and applies the bias, residual and clamps in
//! registers (then the steps without a register form over the block just stored, as the f32 tiles
//! do), and the Cranelift kernel applies the same steps to each result before its f32 store.
//!
//! Elsewhere the products run on 4-lane i32 vectors (scalar where the target has no vectors), not
//! on the register-blocked float micro-kernel. Falls back for: a run-time `b`, a run-time or per-row
//! `a` zero point of another shape than one element, a run-time `b` zero point, and 1-D operands.

use carve_ir::ops::fused::EpiStep;
use carve_ir::ops::linalg::LinalgOp;
use carve_ir::ops::quant::QuantOp;
use carve_ir::{DType, Op, QuantAxis};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value, types};

use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::gemm::Post;
use crate::lower::gemm::tile::{finish_steps, split_post};
use crate::lower::gemm::{guarded, parallel_blocks, split};
use crate::lower::reduce::rows::Tiling;
use crate::lower::{Lowering, NodeInfo, Weights};
use crate::x86::gemm::{Rescale, TileEpi};
use crate::x86::gemm_i8::{self, I8Isa, I8Spec, I8Tile};

/// Multiply-adds per tile of an integer product.
const TILE_MACS: usize = 1 << 18;

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    match info.op() {
        Op::Quant(QuantOp::MatMulInteger(_)) => matmul_integer(info, w, None),
        Op::Linalg(LinalgOp::MatMul(_)) => typed_matmul(info, w),
        Op::Quant(QuantOp::DynamicQuantizeLinear(_)) => dynamic_quantize(info),
        Op::Quant(QuantOp::MatMulNBits(_)) => super::nbits::lower(info, w),
        _ => fallback("no native kernel for this op yet"),
    }
}

fn fallback(reason: impl Into<String>) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(reason.into()))
}

fn is_8bit(d: DType) -> bool {
    matches!(d, DType::U8 | DType::I8)
}

/// Sign- or zero-extends an 8-bit integer of type `d` to i32.
fn extend(kb: &mut Kb, d: DType, v: Value) -> Value {
    if d == DType::I8 {
        kb.b.ins().sextend(types::I32, v)
    } else {
        kb.b.ins().uextend(types::I32, v)
    }
}

/// The f32 epilogue an integer product's kernel applies (an integer `fused_matmul`'s `rescale` and
/// the steps right after it). The kernel's node then has the scale as input [`IntEpi::SCALE`], the
/// bias as [`IntEpi::BIAS`] and the residual as [`IntEpi::RESIDUAL`] after `matmul_integer`'s four,
/// and an f32 output.
#[derive(Debug, Clone)]
pub(crate) struct IntEpi {
    /// One scale per column (else one scale).
    pub per_col: bool,
    /// A `[N]` bias is added after the rescale.
    pub bias: bool,
    /// A residual of the output's shape is added after the bias.
    pub residual: bool,
    /// Pointwise steps (activations, clamps) applied last.
    pub post: Post,
}

impl IntEpi {
    /// Input of the scales.
    pub const SCALE: usize = 4;
    /// Input of the bias.
    pub const BIAS: usize = 5;
    /// Input of the residual.
    pub const RESIDUAL: usize = 6;

    /// The tile form: rescale, bias, residual and the leading clamps in registers; the pointwise
    /// steps after those for a pass over the stored block.
    fn tile(&self) -> (TileEpi, Vec<EpiStep>) {
        let (clamps, rest) = split_post(&self.post);
        let epi = TileEpi {
            rescale: Some(if self.per_col {
                Rescale::PerColumn
            } else {
                Rescale::PerTensor
            }),
            alpha: 1.0,
            addend: self.bias.then_some((0, 4, 1.0)),
            residual: self.residual,
            clamps,
        };
        (epi, rest)
    }
}

/// Where the product's `a` zero point comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AZero {
    /// Zero (absent, or a constant 0).
    Zero,
    /// The one-element input 2 (`matmul_integer`'s `a_zero_point`), read at run time.
    Input,
    /// A compile-time constant (from `a`'s quantized type).
    Const(i64),
}

/// The zero points of an integer product: `a`'s, and `b`'s one per column.
struct ZeroPoints {
    a: AZero,
    b: Vec<i64>,
}

/// `matmul_integer`, or the product of an integer `fused_matmul` with epilogue `epi`.
pub(crate) fn matmul_integer(
    info: &NodeInfo,
    wts: &mut Weights,
    epi: Option<IntEpi>,
) -> Result<Lowering, CodegenError> {
    let n = match info.in_shape(1)?[..] {
        [_, n] => n,
        _ => return fallback("only a 2-D b and an a of rank >= 2 are native"),
    };
    let b = if info.has_input(3) {
        match info.const_i64s(3) {
            Some(v) if v.len() == 1 => vec![v[0]; n],
            Some(v) if v.len() == n => v,
            Some(_) => return Err(info.err(format!("b's zero point must have 1 or {n} elements"))),
            None => return fallback("b's zero point is not a constant"),
        }
    } else {
        vec![0; n]
    };
    let a = if info.has_input(2) {
        if info.in_shape(2)?.iter().product::<usize>() != 1
            || info.in_dtype(2)? != info.in_dtype(0)?
        {
            return fallback("a's zero point is not one element of a's type (per-row)");
        }
        AZero::Input
    } else {
        AZero::Zero
    };
    product(info, wts, ZeroPoints { a, b }, epi)
}

/// `matmul(a, b)` over quantized 8-bit operands (scale and zero point in their types, see
/// `carve_ir::ops::quant::typing`): the exact `i32` product `(a − a_zp) @ (b − b_zp)`, the same
/// kernel as `matmul_integer` with the zero points taken from the types (the scales only type the
/// accumulator, which a `quantize_linear` requantizes).
fn typed_matmul(info: &NodeInfo, wts: &mut Weights) -> Result<Lowering, CodegenError> {
    let (Some(qa), Some(qb)) = (info.in_quant(0), info.in_quant(1)) else {
        return fallback("a quantized matmul needs both operands quantized");
    };
    let n = match info.in_shape(1)?[..] {
        [_, n] => n,
        _ => return fallback("only a 2-D b and an a of rank >= 2 are native"),
    };
    let a = match (&qa.axis, &qa.zero_point[..]) {
        (QuantAxis::PerTensor, &[0]) => AZero::Zero,
        (QuantAxis::PerTensor, &[z]) => AZero::Const(z),
        _ => return fallback("a quantized per row: no native kernel yet"),
    };
    let b = match (&qb.axis, &qb.zero_point[..]) {
        (QuantAxis::PerTensor, &[z]) => vec![z; n],
        (QuantAxis::PerAxis { axis: 1 }, z) if z.len() == n => z.to_vec(),
        _ => return Err(info.err(format!("b's quantization {qb} does not fit its shape"))),
    };
    product(info, wts, ZeroPoints { a, b }, None)
}

/// The integer product `(a − zp.a) @ (b − zp.b)` with optional epilogue `epi`.
fn product(
    info: &NodeInfo,
    wts: &mut Weights,
    zp: ZeroPoints,
    epi: Option<IntEpi>,
) -> Result<Lowering, CodegenError> {
    let (a_dt, b_dt) = (info.in_dtype(0)?, info.in_dtype(1)?);
    let out_dt = if epi.is_some() {
        DType::F32
    } else {
        DType::I32
    };
    if !is_8bit(a_dt) || !is_8bit(b_dt) || info.out_dtype(0)? != out_dt {
        return fallback("operands are not 8-bit integers");
    }
    let a_shape = info.in_shape(0)?;
    let b_shape = info.in_shape(1)?;
    let (&[k, n], true) = (&b_shape[..], a_shape.len() >= 2) else {
        return fallback("only a 2-D b and an a of rank >= 2 are native");
    };
    if a_shape[a_shape.len() - 1] != k {
        return Err(info.err(format!(
            "a's last dim {} differs from b's rows {k}",
            a_shape[a_shape.len() - 1]
        )));
    }
    let rows: usize = a_shape[..a_shape.len() - 1].iter().product();
    let Some(bv) = info.const_i64s(1) else {
        return fallback("b is not a constant");
    };
    let ZeroPoints { a: za, b: zb } = zp;
    if let Some(isa) = I8Isa::for_target(info.target) {
        let a_signed = a_dt == DType::I8;
        let ep = epi.as_ref().map(IntEpi::tile);
        if let Some(l) = tiled(info, wts, (&bv, &zb), (rows, k, n), (a_signed, za), isa, ep)? {
            return Ok(l);
        }
    }
    // b − b_zp as i32, k-major in panels of 4 columns (zero-padded), and its column sums.
    let npad = n.next_multiple_of(4);
    let mut packed = vec![0i32; k * npad];
    let mut colsum = vec![0i32; npad];
    for kk in 0..k {
        for j in 0..n {
            let v = (bv[kk * n + j] - zb[j]) as i32;
            packed[(j / 4) * k * 4 + kk * 4 + j % 4] = v;
            colsum[j] = colsum[j].wrapping_add(v);
        }
    }
    let as_bytes = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let wref = wts.add_bytes(&as_bytes(&packed));
    let sref = wts.add_bytes(&as_bytes(&colsum));
    wts.baked(info, 1);
    wts.baked(info, 3);
    let tiling = Tiling::new(rows, n * k, TILE_MACS);
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e| {
            e.kernel(tiling.tiles, |kb| {
                let vec = kb.target.f32_lanes() >= 4;
                let a = kb.input(0)?;
                let out = kb.output(0)?;
                let w = kb.weight(wref);
                let cs = kb.weight(sref);
                let zav = match za {
                    AZero::Input => {
                        let p = kb.input(2)?;
                        let z = kb.load(types::I8, p, 0);
                        extend(kb, a_dt, z)
                    }
                    AZero::Const(z) => kb.b.ins().iconst(types::I32, z),
                    AZero::Zero => kb.b.ins().iconst(types::I32, 0),
                };
                let ptrs = match &epi {
                    Some(e) => Some((
                        kb.input(IntEpi::SCALE)?,
                        if e.bias {
                            Some(kb.input(IntEpi::BIAS)?)
                        } else {
                            None
                        },
                        if e.residual {
                            Some(kb.input(IntEpi::RESIDUAL)?)
                        } else {
                            None
                        },
                    )),
                    None => None,
                };
                tiling.for_items(kb, |kb, r| {
                    let arow = kb.offset(a, r, k as i64);
                    let orow = kb.offset(out, r, n as i64 * 4);
                    let lane = match (&epi, ptrs) {
                        (Some(e), Some((scale, bias, res))) => Some(LaneEpi {
                            e,
                            scale,
                            bias,
                            res_row: res.map(|p| kb.offset(p, r, n as i64 * 4)),
                        }),
                        _ => None,
                    };
                    kb.for_n(0, (npad / 4) as i64, 1, |kb, p| {
                        let panel = kb.offset(w, p, k as i64 * 16);
                        let j0 = kb.b.ins().imul_imm_s(p, 4);
                        panel_dot(
                            kb,
                            vec,
                            (a_dt, arow, k),
                            panel,
                            (cs, j0),
                            zav,
                            (orow, n),
                            lane,
                        )
                    })
                })
            })
        }),
    })
}

/// The epilogue of one output row in the Cranelift kernel: the [`IntEpi`] and its operands (the
/// scales, the bias, the residual's row).
#[derive(Clone, Copy)]
struct LaneEpi<'e> {
    e: &'e IntEpi,
    scale: Value,
    bias: Option<Value>,
    res_row: Option<Value>,
}

impl LaneEpi<'_> {
    /// The f32 result of i32 accumulator `v` of column `col`: `post(f32(v)·scale + bias + residual)`.
    fn apply(&self, kb: &mut Kb, v: Value, col: Value) -> Value {
        let x = kb.b.ins().fcvt_from_sint(types::F32, v);
        let s = if self.e.per_col {
            let p = kb.offset(self.scale, col, 4);
            kb.load(types::F32, p, 0)
        } else {
            kb.load(types::F32, self.scale, 0)
        };
        let mut x = kb.b.ins().fmul(x, s);
        for base in [self.bias, self.res_row].into_iter().flatten() {
            let p = kb.offset(base, col, 4);
            let o = kb.load(types::F32, p, 0);
            x = kb.b.ins().fadd(x, o);
        }
        for step in self.e.post.steps() {
            x = crate::lower::fused::emit_step(kb, x, step);
        }
        x
    }
}

/// Computes the (up to) 4 outputs of one row and one column panel: `Σ_k a[k]·panel[k][0..4] −
/// za·colsum[j0..j0+4]`, stored to columns `j0..min(j0 + 4, n)` of the output row (as f32 through
/// `epi`'s steps when there is one).
#[allow(clippy::too_many_arguments)]
fn panel_dot(
    kb: &mut Kb,
    vec: bool,
    (a_dt, arow, k): (DType, Value, usize),
    panel: Value,
    (cs, j0): (Value, Value),
    za: Value,
    (orow, n): (Value, usize),
    epi: Option<LaneEpi>,
) -> Result<(), CodegenError> {
    let lanes = if vec { 1 } else { 4 };
    let ty = if vec { types::I32X4 } else { types::I32 };
    let zero = kb.b.ins().iconst(types::I32, 0);
    let zero = if vec {
        kb.b.ins().splat(ty, zero)
    } else {
        zero
    };
    // `lanes` scalar accumulators, or one vector.
    let accs: Vec<Value> = vec![zero; lanes];
    let accs = sum_k(kb, vec, ty, (a_dt, arow, k), panel, accs)?;
    let csa = kb.offset(cs, j0, 4);
    let results: Vec<Value> = if vec {
        let c = kb.load_ro(ty, csa, 0);
        let zs = kb.b.ins().splat(ty, za);
        let corr = kb.b.ins().imul(zs, c);
        let v = kb.b.ins().isub(accs[0], corr);
        (0..4u8).map(|l| kb.b.ins().extractlane(v, l)).collect()
    } else {
        accs.iter()
            .enumerate()
            .map(|(l, &acc)| {
                let c = kb.load_ro(types::I32, csa, (l * 4) as i32);
                let corr = kb.b.ins().imul(za, c);
                kb.b.ins().isub(acc, corr)
            })
            .collect()
    };
    // Store the lanes that are real columns (the last panel may be partial).
    let dst = kb.offset(orow, j0, 4);
    let full = n % 4 == 0;
    let finish = |kb: &mut Kb, l: usize, v: Value| match &epi {
        Some(e) => {
            let col = kb.b.ins().iadd_imm_s(j0, l as i64);
            e.apply(kb, v, col)
        }
        None => v,
    };
    for (l, v) in results.into_iter().enumerate() {
        if full {
            let v = finish(kb, l, v);
            kb.store(v, dst, (l * 4) as i32);
            continue;
        }
        let col = kb.b.ins().iadd_imm_s(j0, l as i64);
        let inside = kb.b.ins().icmp_imm_s(
            cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
            col,
            n as i64,
        );
        let yes = kb.b.create_block();
        let join = kb.b.create_block();
        kb.b.ins().brif(inside, yes, &[], join, &[]);
        kb.b.switch_to_block(yes);
        let v = finish(kb, l, v);
        kb.store(v, dst, (l * 4) as i32);
        kb.b.ins().jump(join, &[]);
        kb.b.switch_to_block(join);
    }
    Ok(())
}

/// `accs += a[k]·panel[k]` over `k` (accumulators carried in registers).
fn sum_k(
    kb: &mut Kb,
    vec: bool,
    ty: types::Type,
    (a_dt, arow, k): (DType, Value, usize),
    panel: Value,
    accs: Vec<Value>,
) -> Result<Vec<Value>, CodegenError> {
    kb.for_carried(k as i64, &accs, |kb, kk, cur| {
        let aa = kb.b.ins().iadd(arow, kk);
        let av = kb.load(types::I8, aa, 0);
        let av = extend(kb, a_dt, av);
        let wk = kb.offset(panel, kk, 16);
        if vec {
            let s = kb.b.ins().splat(ty, av);
            let wv = kb.load_ro(ty, wk, 0);
            let p = kb.b.ins().imul(s, wv);
            return Ok(vec![kb.b.ins().iadd(cur[0], p)]);
        }
        let mut next = Vec::with_capacity(cur.len());
        for (l, &acc) in cur.iter().enumerate() {
            let wv = kb.load_ro(types::I32, wk, (l * 4) as i32);
            let p = kb.b.ins().imul(av, wv);
            next.push(kb.b.ins().iadd(acc, p));
        }
        Ok(next)
    })
}

/// Below this many multiply-adds a product is one tile (thread unit).
const SMALL_MACS: usize = 1 << 20;

/// Static blocking of an int8 product on an x86 tile.
#[derive(Debug, Clone)]
struct I8Geo {
    tile: I8Tile,
    m: usize,
    n: usize,
    k: usize,
    /// Tile (thread unit) rows and columns (multiples of MR and NR) and counts along M and N.
    mc: usize,
    nc: usize,
    mbs: usize,
    nbs: usize,
    /// Depth of every k block but the last (a multiple of the group), and the block count.
    kc: usize,
    kbs: usize,
    a_signed: bool,
    /// The epilogue subtracts `zp·colsum`.
    correct: bool,
    /// The f32 epilogue of the last k block, and the steps after it over the stored block.
    epi: Option<(TileEpi, Vec<EpiStep>)>,
}

/// The product on int8 machine-code tile `isa`, or `None` (keep the Cranelift kernel) where `b −
/// b_zp` does not fit the tile's packed B type (s8 for VNNI), a dimension is 0 or a stride is too
/// large for the kernel's displacements.
fn tiled(
    info: &NodeInfo,
    wts: &mut Weights,
    (bv, zb): (&[i64], &[i64]),
    (m, k, n): (usize, usize, usize),
    (a_signed, za): (bool, AZero),
    isa: I8Isa,
    epi: Option<(TileEpi, Vec<EpiStep>)>,
) -> Result<Option<Lowering>, CodegenError> {
    let tile = I8Tile::for_isa(isa);
    if m == 0 || k == 0 || n == 0 {
        return Ok(None);
    }
    let mut bp = vec![0i32; k * n];
    for kk in 0..k {
        for j in 0..n {
            let v = bv[kk * n + j] - zb[j];
            bp[kk * n + j] = i32::try_from(v).map_err(|_| info.err("b − b_zp overflows i32"))?;
        }
    }
    let Some(packed) = gemm_i8::pack_b(tile, &bp, k, n) else {
        return Ok(None);
    };
    let probe = I8Spec {
        tile,
        rows: tile.mr,
        cols: tile.nr(),
        ktail: 0,
        a_signed,
        a_rs: k as i64,
        c_rs: n as i64 * 4,
        accumulate: false,
        correct: true,
        epi: epi.as_ref().map(|e| e.0.clone()),
    };
    if !probe.fits() {
        return Ok(None);
    }
    let panels = n.div_ceil(tile.nr());
    let mut colsum = vec![0i32; panels * tile.nr()];
    for kk in 0..k {
        for j in 0..n {
            colsum[j] = colsum[j].wrapping_add(bp[kk * n + j]);
        }
    }
    let as_bytes = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let bref = wts.add_bytes(&packed);
    let sref = wts.add_bytes(&as_bytes(&colsum));
    wts.baked(info, 1);
    wts.baked(info, 3);
    wts.note_tile(tile);
    let (kc_max, mc_max, nc_max) = tile.blocking();
    let small = m * n * k < SMALL_MACS;
    let (mc_max, nc_max) = if small {
        (mc_max, nc_max)
    } else {
        parallel_blocks(m, n, (mc_max, nc_max), (tile.mr, tile.nr()))
    };
    let (mc, mbs) = if small {
        (m.next_multiple_of(tile.mr), 1)
    } else {
        split(m, mc_max, tile.mr)
    };
    let (nc, nbs) = if small {
        (n.next_multiple_of(tile.nr()), 1)
    } else {
        split(n, nc_max, tile.nr())
    };
    let (kc, kbs) = split(k, kc_max, isa.group());
    let vnni = isa != I8Isa::Avx2;
    let geo = I8Geo {
        tile,
        m,
        n,
        k,
        mc,
        nc,
        mbs,
        nbs,
        kc,
        kbs,
        a_signed,
        correct: za != AZero::Zero || (a_signed && vnni),
        epi,
    };
    // i8 A is biased by 128 in the VNNI kernels: the zero point they correct with is a_zp + 128.
    let bias = if a_signed && vnni { 128 } else { 0 };
    let a_dt = if a_signed { DType::I8 } else { DType::U8 };
    Ok(Some(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e| {
            e.kernel((mbs * nbs) as u64, |kb| {
                let zp = match za {
                    AZero::Input => {
                        let p = kb.input(2)?;
                        let z = kb.load(types::I8, p, 0);
                        let z = extend(kb, a_dt, z);
                        let z = kb.b.ins().iadd_imm_s(z, bias);
                        kb.b.ins().sextend(types::I64, z)
                    }
                    AZero::Const(z) => kb.iconst(z + bias),
                    AZero::Zero => kb.iconst(bias),
                };
                let c = kb.output(0)?;
                let epi = match &geo.epi {
                    Some((e, _)) => {
                        let scale = kb.input(IntEpi::SCALE)?;
                        let bias = if e.addend.is_some() {
                            kb.input(IntEpi::BIAS)?
                        } else {
                            c
                        };
                        let rdelta = if e.residual {
                            let r = kb.input(IntEpi::RESIDUAL)?;
                            kb.b.ins().isub(r, c)
                        } else {
                            kb.iconst(0)
                        };
                        Some(EpiPtrs {
                            scale,
                            bias,
                            rdelta,
                        })
                    }
                    None => None,
                };
                let ops = I8Ops {
                    a: kb.input(0)?,
                    b: kb.weight(bref),
                    c,
                    cs: kb.weight(sref),
                    zp,
                    epi,
                };
                kb.for_tiles(|kb, t| emit_i8_tile(kb, &geo, ops, t))
            })
        }),
    }))
}

/// The operands of an int8 tile kernel.
#[derive(Debug, Clone, Copy)]
struct I8Ops {
    a: Value,
    b: Value,
    c: Value,
    cs: Value,
    /// The zero point the epilogue corrects with (i64).
    zp: Value,
    /// The f32 epilogue's operands.
    epi: Option<EpiPtrs>,
}

/// The operands of an int8 tile's f32 epilogue.
#[derive(Debug, Clone, Copy)]
struct EpiPtrs {
    /// The scales (one, or one per column).
    scale: Value,
    /// The `[N]` bias (C when there is none: never read).
    bias: Value,
    /// The residual's address minus C's (its elements are laid out like C's).
    rdelta: Value,
}

/// `(count for tile idx, tail of the last tile, is-last condition)` of `unit`-blocks when `total` is
/// split into `count` tiles of `per`.
fn blocks_of(
    kb: &mut Kb,
    idx: Value,
    count: usize,
    per: usize,
    total: usize,
    unit: usize,
) -> (Value, usize, Option<Value>) {
    let last = total - (count - 1) * per;
    if count == 1 {
        return (kb.iconst((last / unit) as i64), last % unit, None);
    }
    let is_last = kb.b.ins().icmp_imm_s(IntCC::Equal, idx, (count - 1) as i64);
    let s = kb.iconst((per / unit) as i64);
    let l = kb.iconst((last / unit) as i64);
    (kb.b.ins().select(is_last, l, s), last % unit, Some(is_last))
}

/// Emits tile `t` (an `mc × nc` block of C over all of k).
fn emit_i8_tile(kb: &mut Kb, g: &I8Geo, o: I8Ops, t: Value) -> Result<(), CodegenError> {
    let (mr, nr) = (g.tile.mr, g.tile.nr());
    let nb = kb.b.ins().urem_imm_u(t, g.nbs as i64);
    let mb = kb.b.ins().udiv_imm_u(t, g.nbs as i64);
    let (full_r, rtail, last_mb) = blocks_of(kb, mb, g.mbs, g.mc, g.m, mr);
    let (full_p, ctail, last_nb) = blocks_of(kb, nb, g.nbs, g.nc, g.n, nr);
    let row0 = kb.b.ins().imul_imm_s(mb, g.mc as i64);
    let p0 = kb.b.ins().imul_imm_s(nb, (g.nc / nr) as i64);
    let a0 = kb.offset(o.a, row0, g.k as i64);
    let c_rs = g.n as i64 * 4;
    let c0 = kb.offset(o.c, row0, c_rs);
    let grp = g.tile.isa.group();
    let gb = g.tile.group_bytes() as i64;
    let panel_bytes = (g.k.div_ceil(grp) as i64) * gb;
    // One k block: `k0` (a run-time value, a multiple of the group), depth `kc`.
    let block = |kb: &mut Kb, k0: Value, kc: usize, first: bool, last: bool| {
        let ak = kb.b.ins().iadd(a0, k0);
        let bk = kb.b.ins().imul_imm_s(k0, gb / grp as i64);
        let bk = kb.b.ins().iadd(o.b, bk);
        let groups = kb.iconst((kc / grp) as i64);
        // The kernels of `rows` rows at row block `r` and panel `p` (tile-relative) of `cols` columns.
        let call = |kb: &mut Kb, r: Value, p: Value, rows: usize, cols: usize| {
            let epi = g.epi.as_ref().filter(|_| last);
            let spec = I8Spec {
                tile: g.tile,
                rows,
                cols,
                ktail: if last { kc % grp } else { 0 },
                a_signed: g.a_signed,
                a_rs: g.k as i64,
                c_rs,
                accumulate: !first,
                correct: last && g.correct,
                epi: epi.map(|e| e.0.clone()),
            };
            let pa = kb.b.ins().iadd(p0, p);
            let ar = kb.offset(ak, r, (mr * g.k) as i64);
            let br = kb.offset(bk, pa, panel_bytes);
            let j0 = kb.b.ins().imul_imm_s(pa, nr as i64);
            let cr = kb.offset(c0, r, mr as i64 * c_rs);
            let cr = kb.offset(cr, j0, 4);
            let csr = kb.offset(o.cs, j0, 4);
            let key = format!("{spec:?}");
            let mut args = vec![ar, br, cr, groups, o.zp, csr];
            if let (Some(_), Some(p)) = (epi, o.epi) {
                let per_col = spec.epi.as_ref().and_then(|e| e.rescale) == Some(Rescale::PerColumn);
                args.push(if per_col {
                    kb.offset(p.scale, j0, 4)
                } else {
                    p.scale
                });
                args.push(kb.offset(p.bias, j0, 4));
                args.push(kb.b.ins().iadd(cr, p.rdelta));
            }
            kb.call_raw(&key, &spec.stem(), &args, || gemm_i8::assemble(&spec))?;
            match epi {
                Some((_, rest)) => finish_steps(kb, rest, rows, cols, cr, c_rs),
                None => Ok(()),
            }
        };
        let column = |kb: &mut Kb, p: Value, cols: usize| -> Result<(), CodegenError> {
            let zero = kb.iconst(0);
            kb.for_range(zero, full_r, 1, |kb, r| call(kb, r, p, mr, cols))?;
            if rtail > 0 {
                guarded(kb, last_mb, |kb| call(kb, full_r, p, rtail, cols))?;
            }
            Ok(())
        };
        let zero = kb.iconst(0);
        kb.for_range(zero, full_p, 1, |kb, p| column(kb, p, nr))?;
        if ctail > 0 {
            guarded(kb, last_nb, |kb| column(kb, full_p, ctail))?;
        }
        Ok::<(), CodegenError>(())
    };
    let last_kc = g.k - (g.kbs - 1) * g.kc;
    if g.kbs == 1 {
        let k0 = kb.iconst(0);
        return block(kb, k0, last_kc, true, true);
    }
    let k0 = kb.iconst(0);
    block(kb, k0, g.kc, true, false)?;
    if g.kbs > 2 {
        let lo = kb.iconst(1);
        let hi = kb.iconst((g.kbs - 1) as i64);
        kb.for_range(lo, hi, 1, |kb, bi| {
            let k0 = kb.b.ins().imul_imm_s(bi, g.kc as i64);
            block(kb, k0, g.kc, false, false)
        })?;
    }
    let k0 = kb.iconst(((g.kbs - 1) * g.kc) as i64);
    block(kb, k0, last_kc, false, true)
}

fn dynamic_quantize(info: &NodeInfo) -> Result<Lowering, CodegenError> {
    if info.num_outputs() != 3 {
        return fallback("expected the three outputs y, y_scale, y_zero_point");
    }
    if info.in_dtype(0)? != DType::F32
        || info.out_dtype(0)? != DType::U8
        || info.out_dtype(1)? != DType::F32
        || info.out_dtype(2)? != DType::U8
    {
        return fallback("only f32 → u8 with an f32 scale is native");
    }
    let n: usize = info.in_shape(0)?.iter().product();
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e| {
            e.kernel(1, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                let (scale, zp) = dynamic_params(kb, x, n as i64)?;
                let zp_i = kb.b.ins().fcvt_to_uint_sat(types::I32, zp);
                let zp_b = kb.b.ins().ireduce(types::I8, zp_i);
                kb.for_n(0, n as i64, 1, |kb, i| {
                    let xa = kb.offset(x, i, 4);
                    let v = kb.load(types::F32, xa, 0);
                    let q = quantize_u8(kb, v, (scale, zp));
                    let b = kb.b.ins().ireduce(types::I8, q);
                    let ya = kb.b.ins().iadd(y, i);
                    kb.store(b, ya, 0);
                    Ok(())
                })?;
                let s_out = kb.output(1)?;
                kb.store(scale, s_out, 0);
                let z_out = kb.output(2)?;
                kb.store(zp_b, z_out, 0);
                Ok(())
            })
        }),
    })
}

/// ONNX's dynamic u8 quantization parameters of `n` f32 values at `p` (DynamicQuantizeLinear, and
/// ONNX Runtime's dynamically quantized LSTM): the range including 0 with NaN left out (a NaN
/// compares false), `scale = (max − min) / 255` (1 for an all-zero range), `zero point =
/// round(clamp(−min / scale, 0, 255))` half to even, as an f32.
pub(crate) fn dynamic_params(
    kb: &mut Kb,
    p: Value,
    n: i64,
) -> Result<(Value, Value), CodegenError> {
    let zero = kb.f32const(0.0);
    let r = kb.for_carried(n, &[zero, zero], |kb, i, cur| {
        let (hi, lo) = (cur[0], cur[1]);
        let xa = kb.offset(p, i, 4);
        let v = kb.load(types::F32, xa, 0);
        let gt = kb.b.ins().fcmp(FloatCC::GreaterThan, v, hi);
        let lt = kb.b.ins().fcmp(FloatCC::LessThan, v, lo);
        Ok(vec![
            kb.b.ins().select(gt, v, hi),
            kb.b.ins().select(lt, v, lo),
        ])
    })?;
    let (hi, lo) = (r[0], r[1]);
    let one = kb.f32const(1.0);
    let c255 = kb.f32const(255.0);
    let width = kb.b.ins().fsub(hi, lo);
    let spread = kb.b.ins().fdiv(width, c255);
    let flat = kb.b.ins().fcmp(FloatCC::Equal, hi, lo);
    let scale = kb.b.ins().select(flat, one, spread);
    let q = kb.b.ins().fdiv(lo, scale);
    let q = kb.b.ins().fsub(zero, q);
    let q = kb.b.ins().fmax(q, zero);
    let q = kb.b.ins().fmin(q, c255);
    Ok((scale, kb.b.ins().nearest(q)))
}

/// `clamp(round(v / scale) + zp, 0, 255)` as an i32 (NaN, which fmax/fmin propagate, gives 0).
pub(crate) fn quantize_u8(kb: &mut Kb, v: Value, (scale, zp): (Value, Value)) -> Value {
    let zero = kb.f32const(0.0);
    let c255 = kb.f32const(255.0);
    let r = kb.b.ins().fdiv(v, scale);
    let r = kb.b.ins().nearest(r);
    let r = kb.b.ins().fadd(r, zp);
    let r = kb.b.ins().fmax(r, zero);
    let r = kb.b.ins().fmin(r, c255);
    kb.b.ins().fcvt_to_uint_sat(types::I32, r)
}

#[cfg(test)]
mod tests {
    use carve_ir::ops::quant::{DynamicQuantizeLinear, MatMulInteger};
    use carve_runtime::{Data, Tensor};

    use crate::testing::{Operand, check_node, random_f32};

    use super::*;

    fn bytes(dtype: DType, shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let f = random_f32(n, seed, 0.0, 255.99);
        let data = match dtype {
            DType::U8 => Data::U8(f.iter().map(|&x| x as u8).collect()),
            _ => Data::I8(f.iter().map(|&x| (x - 128.0) as i8).collect()),
        };
        Tensor {
            shape: shape.to_vec(),
            data,
        }
    }

    #[test]
    fn matmul_integer_matches_the_interpreter_exactly() {
        // (a type, b type, a shape, n, a zero point, b zero point per column)
        let cases = [
            (DType::U8, DType::I8, vec![3, 5, 37], 10, true, true),
            (DType::U8, DType::U8, vec![4, 16], 8, true, false),
            (DType::I8, DType::I8, vec![7, 3], 1, false, false),
            // Several tiles, k beyond what f32 would sum exactly.
            (DType::U8, DType::I8, vec![64, 300], 70, true, true),
        ];
        for (at, bt, a_shape, n, za, zb) in cases {
            let k = a_shape[a_shape.len() - 1];
            let a = bytes(at, &a_shape, 1);
            let b = bytes(bt, &[k, n], 2);
            let mut ops = vec![Operand::Input(a), Operand::Const(b)];
            ops.push(if za {
                Operand::Input(bytes(at, &[], 3))
            } else {
                Operand::Absent
            });
            ops.push(if zb {
                Operand::Const(bytes(bt, &[n], 4))
            } else {
                Operand::Absent
            });
            check_node(MatMulInteger {}.into(), &ops, 1, 0.0, 0.0)
                .unwrap_or_else(|e| panic!("{at} x {bt} {a_shape:?} n={n}: {e}"));
        }
    }

    #[test]
    fn dynamic_quantize_matches_the_interpreter_exactly() {
        let mut v = random_f32(3 * 50, 5, -3.0, 7.0);
        v[7] = f32::NAN;
        v[20] = 0.0;
        let cases = [
            v,
            vec![0.0; 12],
            random_f32(40, 6, 0.5, 2.0), // all positive: the range still includes 0
            random_f32(40, 7, -2.0, -0.5), // all negative
        ];
        for x in cases {
            let t = Tensor {
                shape: vec![x.len()],
                data: Data::F32(x.clone()),
            };
            check_node(
                DynamicQuantizeLinear {}.into(),
                &[Operand::Input(t)],
                3,
                0.0,
                0.0,
            )
            .unwrap_or_else(|e| panic!("{:?}: {e}", &x[..4]));
        }
    }
}
