//! `quantize_linear` over a quantized integer — the requantize form that follows a `conv` / `matmul`
//! over quantized types (`carve_ir::ops::quant::typing`): each element `v` of channel `c` becomes
//! `saturate(round_half_even(f64(v − zp[c]) · m[c]) + y_zp)` with `m[c] = round_f32(scale[c] /
//! y_scale)`, computed exactly as the interpreter computes it (`carve_runtime::interp::quant`): the
//! multipliers are formed at compile time, the product and rounding are f64 at run time.
//!
//! The input's channel zero points and the multipliers are compile-time tables (per tensor: one
//! entry); `y_scale` and `y_zero_point` must be one-element constants. Rows of one channel's inner
//! elements are the kernel's work items.

use carve_ir::QuantAxis;
use cranelift_codegen::ir::condcodes::FloatCC;

use super::*;
use crate::lower::reduce::rows::{MIN_TILE_WORK, Tiling};

/// Select phase for a requantizing `quantize_linear` (input 0 carries a quantization).
pub(crate) fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    let Some(q) = info.in_quant(0) else {
        return Ok(Lowering::Fallback("not a requantization".into()));
    };
    let x_dtype = info.in_dtype(0)?;
    let out_dtype = info.out_dtype(0)?;
    if !matches!(x_dtype, DType::I32 | DType::U8 | DType::I8)
        || !matches!(out_dtype, DType::U8 | DType::I8)
    {
        return Ok(Lowering::Fallback(format!(
            "requantizing {x_dtype} to {out_dtype}: native for i32/u8/i8 to u8/i8"
        )));
    }
    let sy = match info.const_f32s(1).as_deref() {
        Some(&[sy]) => sy,
        _ => {
            return Ok(Lowering::Fallback(
                "the output scale is not a one-element f32 constant".into(),
            ));
        }
    };
    let zy = info.const_i64s(2);
    let zy = match zy.as_deref() {
        None if !info.has_input(2) => 0,
        Some(&[z]) => z,
        _ => {
            return Ok(Lowering::Fallback(
                "the output zero point is not a one-element constant".into(),
            ));
        }
    };
    let shape = info.in_shape(0)?;
    let (inner, len) = match q.axis {
        QuantAxis::PerTensor => (shape.iter().product::<usize>(), 1),
        QuantAxis::PerAxis { axis } if axis < shape.len() && shape[axis] == q.scale.len() => {
            (shape[axis + 1..].iter().product(), q.scale.len())
        }
        _ => return Err(info.err(format!("input 0 of shape {shape:?} is quantized as {q}"))),
    };
    let total: usize = shape.iter().product();
    // Quantized along the last axis: a row is one index of every channel (its element `i` is channel
    // `i`); otherwise a row is `inner` elements of one channel (row `r` is channel `r % len`).
    let along_row = len > 1 && inner == 1;
    let row_len = if along_row { len } else { inner };
    let rows = total.checked_div(row_len).unwrap_or(0);
    // m[c] = round_f32(scale[c] / y_scale) (division in f64), and the input's zero points.
    let mult: Vec<u8> = q
        .scale
        .iter()
        .flat_map(|&s| f64::from((f64::from(s) / f64::from(sy)) as f32).to_le_bytes())
        .collect();
    let zps: Vec<u8> = q.zero_point.iter().flat_map(|z| z.to_le_bytes()).collect();
    let (mref, zref) = (w.add_bytes(&mult), w.add_bytes(&zps));
    w.baked(info, 1);
    w.baked(info, 2);
    let (lo, hi) = match out_dtype {
        DType::U8 => (0.0, 255.0),
        _ => (-128.0, 127.0),
    };
    let x_bytes = i64::from(x_dtype.bits() / 8);
    let tiling = Tiling::new(rows, row_len, MIN_TILE_WORK);
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e: &mut Emitter| {
            e.kernel(tiling.tiles, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                let mt = kb.weight(mref);
                let zt = kb.weight(zref);
                let consts = Consts {
                    zy: kb.b.ins().f64const(zy as f64),
                    lo: kb.b.ins().f64const(lo),
                    hi: kb.b.ins().f64const(hi),
                };
                tiling.for_items(kb, |kb, r| {
                    let xrow = kb.offset(x, r, row_len as i64 * x_bytes);
                    let yrow = kb.offset(y, r, row_len as i64);
                    let row_channel = if along_row {
                        None
                    } else if len == 1 {
                        Some(kb.iconst(0))
                    } else {
                        let l = kb.iconst(len as i64);
                        Some(kb.b.ins().urem(r, l))
                    };
                    let row_params = row_channel.map(|c| channel(kb, (mt, zt), c));
                    kb.for_n(0, row_len as i64, 1, |kb, i| {
                        let (m, z) = match row_params {
                            Some(p) => p,
                            None => channel(kb, (mt, zt), i),
                        };
                        let xp = kb.offset(xrow, i, x_bytes);
                        let v = load_wide(kb, x_dtype, xp);
                        let q = requantize_one(kb, v, (m, z), consts);
                        let yp = kb.offset(yrow, i, 1);
                        kb.store(q, yp, 0);
                        Ok(())
                    })
                })
            })
        }),
    })
}

/// The output zero point and the saturation bounds, as f64 values.
#[derive(Clone, Copy)]
struct Consts {
    zy: Value,
    lo: Value,
    hi: Value,
}

/// Channel `c`'s multiplier (f64) and input zero point (i64) from the tables at `mt` and `zt`.
fn channel(kb: &mut Kb, (mt, zt): (Value, Value), c: Value) -> (Value, Value) {
    let mp = kb.offset(mt, c, 8);
    let m = kb.load_ro(types::F64, mp, 0);
    let zp = kb.offset(zt, c, 8);
    let z = kb.load_ro(types::I64, zp, 0);
    (m, z)
}

/// The element of type `d` at `p`, widened to i64.
fn load_wide(kb: &mut Kb, d: DType, p: Value) -> Value {
    match d {
        DType::I32 => {
            let v = kb.load(types::I32, p, 0);
            kb.b.ins().sextend(types::I64, v)
        }
        DType::I8 => {
            let v = kb.load(types::I8, p, 0);
            kb.b.ins().sextend(types::I64, v)
        }
        _ => {
            let v = kb.load(types::I8, p, 0);
            kb.b.ins().uextend(types::I64, v)
        }
    }
}

/// `saturate(round_half_even(f64(v − z) · m) + zy)` as an 8-bit integer (NaN, from `0 · ∞`, gives the
/// type's minimum, as the interpreter's does).
fn requantize_one(kb: &mut Kb, v: Value, (m, z): (Value, Value), c: Consts) -> Value {
    let centered = kb.b.ins().isub(v, z);
    let f = kb.b.ins().fcvt_from_sint(types::F64, centered);
    let p = kb.b.ins().fmul(f, m);
    let r = kb.b.ins().nearest(p);
    let s = kb.b.ins().fadd(r, c.zy);
    let nan = kb.b.ins().fcmp(FloatCC::Unordered, s, s);
    let s = kb.b.ins().select(nan, c.lo, s);
    let s = kb.b.ins().fmax(s, c.lo);
    let s = kb.b.ins().fmin(s, c.hi);
    let q = kb.b.ins().fcvt_to_sint_sat(types::I32, s);
    kb.b.ins().ireduce(types::I8, q)
}
