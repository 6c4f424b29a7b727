//! The recurrent kernel: tiles over (direction, batch row), the per-row sequence loop, and the packed
//! matrix-vector products of the projections ([`super::Proj`]).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, Type, Value, types};

use super::{ROWS, Spec, Src, cell};
use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::Lowering;
use crate::lower::integer::{dynamic_params, quantize_u8};
use crate::lower::math::Fx;
use crate::lower::movement::strided::{copy_run, zero_run};

/// The native lowering of `spec`: one kernel with `tiles` tiles and a `stack`-byte state slot.
pub(super) fn lowering(spec: Spec, tiles: usize, stack: usize) -> Lowering {
    Lowering::Native {
        in_place: None,
        emit: Box::new(move |e| {
            e.kernel(tiles as u64, |kb| {
                let slot = kb.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    stack as u32,
                    4,
                ));
                let st = kb.b.ins().stack_addr(types::I64, slot, 0);
                if tiles > 1 {
                    kb.for_tiles(|kb, t| {
                        for d in 0..spec.nd {
                            // Tile t is (direction t / B, batch row t % B).
                            let lo = (d * spec.b) as i64;
                            let c1 =
                                kb.b.ins()
                                    .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, t, lo);
                            let c2 =
                                kb.b.ins()
                                    .icmp_imm_s(IntCC::SignedLessThan, t, lo + spec.b as i64);
                            let c = kb.b.ins().band(c1, c2);
                            let yes = kb.b.create_block();
                            let join = kb.b.create_block();
                            kb.b.ins().brif(c, yes, &[], join, &[]);
                            kb.b.switch_to_block(yes);
                            let bi = kb.b.ins().iadd_imm_s(t, -lo);
                            sequence(kb, &spec, d, bi, st)?;
                            kb.b.ins().jump(join, &[]);
                            kb.b.switch_to_block(join);
                        }
                        Ok(())
                    })
                } else {
                    for d in 0..spec.nd {
                        kb.for_n(0, spec.b as i64, 1, |kb, bi| sequence(kb, &spec, d, bi, st))?;
                    }
                    Ok(())
                }
            })
        }),
    }
}

/// Vector shape used by the emitted code: `F32X4` where the target has it, else scalar `F32`.
#[derive(Clone, Copy)]
pub(super) struct Vt {
    pub ty: Type,
    pub lanes: usize,
    pub fma: bool,
}

impl Vt {
    pub fn splat(self, kb: &mut Kb, s: Value) -> Value {
        if self.lanes == 1 {
            s
        } else {
            kb.b.ins().splat(self.ty, s)
        }
    }

    pub fn cst(self, kb: &mut Kb, c: f32) -> Value {
        let s = kb.f32const(c);
        self.splat(kb, s)
    }

    /// The shared math sequences for this vector shape.
    fn fx(self) -> Fx {
        Fx {
            ty: self.ty,
            fma: self.fma,
        }
    }

    /// `a·b + c`.
    pub fn mul_add(self, kb: &mut Kb, a: Value, b: Value, c: Value) -> Value {
        self.fx().madd(kb.b, a, b, c)
    }

    /// `tanh(x)` ([`Fx::tanh_rational`], the fast form recurrent cells use).
    pub fn tanh(self, kb: &mut Kb, x: Value) -> Value {
        self.fx().tanh_rational(kb.b, x)
    }

    /// `σ(x)` ([`Fx::sigmoid_rational`]).
    pub fn sigmoid(self, kb: &mut Kb, x: Value) -> Value {
        self.fx().sigmoid_rational(kb.b, x)
    }

    pub fn clip(self, kb: &mut Kb, x: Value, c: Option<f32>) -> Value {
        match c {
            None => x,
            Some(c) => {
                let hi = self.cst(kb, c);
                let lo = self.cst(kb, -c);
                let x = kb.b.ins().fmin(x, hi);
                kb.b.ins().fmax(x, lo)
            }
        }
    }
}

/// Addresses of the stack state of one sequence.
#[derive(Clone, Copy)]
pub(super) struct State {
    /// `h[H']` (`H'` = H rounded up to 4).
    pub h: Value,
    /// `c[H']` (LSTM).
    pub c: Value,
    /// `r ⊙ h` (GRU without `linear_before_reset`).
    pub rh: Value,
    /// The gate scratch.
    pub gates: Value,
    /// Quantized weights: `x_t` and `h` as centered i32 (after the gates).
    pub qx: Value,
    pub qh: Value,
}

/// One direction `d` of batch row `bi` over the whole sequence; `st` is the stack slot.
fn sequence(kb: &mut Kb, sp: &Spec, d: usize, bi: Value, st: Value) -> Result<(), CodegenError> {
    let (s, b, i, h, nd) = (
        sp.s as i64,
        sp.b as i64,
        sp.i as i64,
        sp.h as i64,
        sp.nd as i64,
    );
    let hp = (sp.h.next_multiple_of(4)) as i64;
    let state = State {
        h: st,
        c: kb.b.ins().iadd_imm_s(st, hp * 4),
        rh: kb.b.ins().iadd_imm_s(st, 2 * hp * 4),
        gates: kb.b.ins().iadd_imm_s(st, 3 * hp * 4),
        qx: kb
            .b
            .ins()
            .iadd_imm_s(st, (3 * hp + sp.gates_len as i64) * 4),
        qh: kb.b.ins().iadd_imm_s(
            st,
            (3 * hp + sp.gates_len as i64 + sp.i.next_multiple_of(4) as i64) * 4,
        ),
    };
    let d64 = d as i64;
    // Offset (elements) of this (d, b)'s state in [D, B, H] or [B, D, H].
    let so = if sp.batch_first {
        let v = kb.b.ins().imul_imm_s(bi, nd * h);
        kb.b.ins().iadd_imm_s(v, d64 * h)
    } else {
        let v = kb.b.ins().imul_imm_s(bi, h);
        kb.b.ins().iadd_imm_s(v, d64 * b * h)
    };
    // Initial state.
    let is_lstm = matches!(sp.cell, super::CellKind::Lstm { .. });
    let mut init = vec![(5usize, sp.has_h0, state.h)];
    if is_lstm {
        init.push((6, sp.has_c0, state.c));
    }
    for (k, present, dst) in init {
        if present {
            let base = kb.input(k)?;
            let src = kb.offset(base, so, 4);
            copy_run(kb, dst, src, h * 4)?;
        } else {
            let z = kb.f32const(0.0);
            kb.for_n(0, h, 1, |kb, j| {
                let a = kb.offset(dst, j, 4);
                kb.store(z, a, 0);
                Ok(())
            })?;
        }
    }
    let vt = Vt {
        ty: if kb.target.f32_lanes() >= 4 {
            types::F32X4
        } else {
            types::F32
        },
        lanes: kb.target.f32_lanes().min(4) as usize,
        fma: kb.target.has_fma(),
    };
    let reverse = sp.reverse || d == 1;
    let xbase = kb.input(0)?;
    let mut projs = Vec::with_capacity(sp.projs.len());
    let mut row_scales = Vec::with_capacity(sp.projs.len());
    for p in &sp.projs {
        projs.push((kb.weight(p.w[d]), kb.weight(p.bias[d])));
        row_scales.push(p.row_scales.as_ref().map(|r| kb.weight(r[d])));
    }
    let peep = sp.peep[d].map(|p| kb.weight(p));
    let y = if sp.n_out >= 1 {
        Some(kb.output(0)?)
    } else {
        None
    };
    // This row's length, clamped to [0, S] (the interpreter rejects other values).
    let len = match sp.lens {
        None => kb.iconst(s),
        Some(ty) => {
            let base = kb.input(4)?;
            let a = kb.offset(base, bi, ty.bytes() as i64);
            let v = kb.load(ty, a, 0);
            let v = if ty == types::I64 {
                v
            } else {
                kb.b.ins().sextend(types::I64, v)
            };
            let zero = kb.iconst(0);
            let v = kb.b.ins().smax(v, zero);
            let sv = kb.iconst(s);
            kb.b.ins().smin(v, sv)
        }
    };
    let y_row = |kb: &mut Kb, t: Value| {
        // Y: [S, D, B, H] or [B, S, D, H].
        if sp.batch_first {
            let r = kb.b.ins().imul_imm_s(bi, s);
            let r = kb.b.ins().iadd(r, t);
            let r = kb.b.ins().imul_imm_s(r, nd);
            kb.b.ins().iadd_imm_s(r, d64)
        } else {
            let r = kb.b.ins().imul_imm_s(t, nd);
            let r = kb.b.ins().iadd_imm_s(r, d64);
            let r = kb.b.ins().imul_imm_s(r, b);
            kb.b.ins().iadd(r, bi)
        }
    };
    let acts = &sp.acts[d];
    // Quantized weights: the whole input sequence is quantized with one scale (ONNX Runtime's
    // DynamicQuantizeLSTM; the kernel only runs one batch row).
    let x_params = if sp.quantized {
        Some(dynamic_params(kb, xbase, s * i)?)
    } else {
        None
    };
    let zero = kb.iconst(0);
    kb.for_range(zero, len, 1, |kb, step| {
        let t = if reverse {
            let n = kb.b.ins().isub(len, step);
            kb.b.ins().iadd_imm_s(n, -1)
        } else {
            step
        };
        // x_t row: [S, B, I] or [B, S, I].
        let xrow = if sp.batch_first {
            let r = kb.b.ins().imul_imm_s(bi, s);
            kb.b.ins().iadd(r, t)
        } else {
            let r = kb.b.ins().imul_imm_s(t, b);
            kb.b.ins().iadd(r, bi)
        };
        let xt = kb.offset(xbase, xrow, i * 4);
        // Quantized weights: x_t with the sequence's parameters, h with its own, each step.
        let mut q_scales = None;
        if let Some((sx, zx)) = x_params {
            quantize_centered(kb, xt, i, (sx, zx), state.qx)?;
            let (sh, zh) = dynamic_params(kb, state.h, h)?;
            quantize_centered(kb, state.h, h, (sh, zh), state.qh)?;
            q_scales = Some((sx, sh));
        }
        // Projections that read r ⊙ h wait for the cell's first phase.
        let late = |p: &super::Proj| p.segs.contains(&Src::ResetH);
        for ((p, &(w, bias)), rs) in sp.projs.iter().zip(&projs).zip(&row_scales) {
            if late(p) {
                continue;
            }
            match (rs, q_scales) {
                (Some(rs), Some((sx, sh))) => {
                    let (q, n, sa) = match p.segs[..] {
                        [Src::X] => (state.qx, i, sx),
                        _ => (state.qh, h, sh),
                    };
                    matvec_q(kb, vt, p, (w, bias, *rs), (q, n, sa), state)?;
                }
                _ => matvec(kb, sp, vt, p, (w, bias), xt, state)?,
            }
        }
        if sp.projs.iter().any(late) {
            cell::reset_hidden(kb, sp, vt, acts, state)?;
            for (p, &(w, bias)) in sp.projs.iter().zip(&projs) {
                if late(p) {
                    matvec(kb, sp, vt, p, (w, bias), xt, state)?;
                }
            }
        }
        cell::update(kb, sp, vt, acts, state, peep)?;
        if let Some(y) = y {
            let row = y_row(kb, t);
            let dst = kb.offset(y, row, h * 4);
            copy_run(kb, dst, state.h, h * 4)?;
        }
        Ok(())
    })?;
    // Steps past this row's length are zeros in Y.
    if let (Some(y), Some(_)) = (y, sp.lens) {
        let sv = kb.iconst(s);
        kb.for_range(len, sv, 1, |kb, t| {
            let row = y_row(kb, t);
            let dst = kb.offset(y, row, h * 4);
            zero_run(kb, dst, h * 4)
        })?;
    }
    let mut finals = vec![(1usize, state.h)];
    if is_lstm {
        finals.push((2, state.c));
    }
    for (k, src) in finals {
        if sp.n_out > k {
            let base = kb.output(k)?;
            let dst = kb.offset(base, so, 4);
            copy_run(kb, dst, src, h * 4)?;
        }
    }
    Ok(())
}

/// `gates[p.dest..] = bias + P·[sources]` over the projection's (padded) gate rows.
fn matvec(
    kb: &mut Kb,
    sp: &Spec,
    vt: Vt,
    p: &super::Proj,
    (w, bias): (Value, Value),
    xt: Value,
    st: State,
) -> Result<(), CodegenError> {
    let seg_len = |s: Src| if s == Src::X { sp.i } else { sp.h } as i64;
    let k_all: i64 = p.segs.iter().map(|&s| seg_len(s)).sum();
    let nvec = ROWS / vt.lanes; // accumulators per block
    let vbytes = (vt.lanes * 4) as i64;
    let nblk = (p.rows_pad / ROWS) as i64;
    let gdest = kb.b.ins().iadd_imm_s(st.gates, p.dest as i64 * 4);
    kb.for_n(0, nblk, 1, |kb, blk| {
        let boff = kb.b.ins().imul_imm_s(blk, ROWS as i64 * 4);
        let bb = kb.b.ins().iadd(bias, boff);
        let gb = kb.b.ins().iadd(gdest, boff);
        let wblk = kb.offset(w, blk, k_all * ROWS as i64 * 4);
        let mut acc: Vec<Value> = (0..nvec)
            .map(|a| kb.load_ro(vt.ty, bb, (a as i64 * vbytes) as i32))
            .collect();
        let mut lo = 0i64;
        for &src in &p.segs {
            let n = seg_len(src);
            if n == 0 {
                continue;
            }
            let z = match src {
                Src::X => xt,
                Src::H => st.h,
                Src::ResetH => st.rh,
            };
            let wseg = kb.b.ins().iadd_imm_s(wblk, lo * ROWS as i64 * 4);
            acc = loop_k(kb, vt, z, wseg, n, acc)?;
            lo += n;
        }
        for (a, v) in acc.into_iter().enumerate() {
            kb.store(v, gb, (a as i64 * vbytes) as i32);
        }
        Ok(())
    })
}

/// `acc[a] += z[k] · w[k][a·lanes..]` for `k` in `0..n` (accumulators carried in registers).
fn loop_k(
    kb: &mut Kb,
    vt: Vt,
    z: Value,
    w: Value,
    n: i64,
    acc: Vec<Value>,
) -> Result<Vec<Value>, CodegenError> {
    let vbytes = (vt.lanes * 4) as i64;
    kb.for_carried(n, &acc, |kb, k, cur| {
        let za = kb.offset(z, k, 4);
        let zs = kb.load(types::F32, za, 0);
        let zv = vt.splat(kb, zs);
        let wk = kb.offset(w, k, ROWS as i64 * 4);
        let mut next = Vec::with_capacity(cur.len());
        for (a, &c) in cur.iter().enumerate() {
            let wv = kb.load_ro(vt.ty, wk, (a as i64 * vbytes) as i32);
            next.push(vt.mul_add(kb, zv, wv, c));
        }
        Ok(next)
    })
}

/// `dst[k] = quantize_u8(src[k]) − zp` as i32, for `k < n` (the centered u8 values ORT multiplies).
fn quantize_centered(
    kb: &mut Kb,
    src: Value,
    n: i64,
    params: (Value, Value),
    dst: Value,
) -> Result<(), CodegenError> {
    let zi = kb.b.ins().fcvt_to_sint_sat(types::I32, params.1);
    kb.for_n(0, n, 1, |kb, k| {
        let a = kb.offset(src, k, 4);
        let v = kb.load(types::F32, a, 0);
        let q = quantize_u8(kb, v, params);
        let q = kb.b.ins().isub(q, zi);
        let o = kb.offset(dst, k, 4);
        kb.store(q, o, 0);
        Ok(())
    })
}

/// A quantized projection: `gates[p.dest..] = prev + f32(Σ_k q[k]·w[k]) · (sa · row_scale)`, with
/// `prev` the bias (or, accumulating, the gates already there) — ONNX Runtime's order of operations.
fn matvec_q(
    kb: &mut Kb,
    vt: Vt,
    p: &super::Proj,
    (w, bias, rs): (Value, Value, Value),
    (q, n, sa): (Value, i64, Value),
    st: State,
) -> Result<(), CodegenError> {
    let ity = if vt.lanes == 1 {
        types::I32
    } else {
        types::I32X4
    };
    let nvec = ROWS / vt.lanes;
    let vbytes = (vt.lanes * 4) as i64;
    let nblk = (p.rows_pad / ROWS) as i64;
    let gdest = kb.b.ins().iadd_imm_s(st.gates, p.dest as i64 * 4);
    let accumulate = p.accumulate;
    kb.for_n(0, nblk, 1, |kb, blk| {
        let boff = kb.b.ins().imul_imm_s(blk, ROWS as i64 * 4);
        let gb = kb.b.ins().iadd(gdest, boff);
        let bb = kb.b.ins().iadd(bias, boff);
        let rb = kb.b.ins().iadd(rs, boff);
        // i16 weights, sign-extended to i32 lanes as they load.
        let wblk = kb.offset(w, blk, n * ROWS as i64 * 2);
        // Σ_k q[k]·w[k][lanes], accumulators carried in registers.
        let z = kb.b.ins().iconst(types::I32, 0);
        let z = if vt.lanes == 1 {
            z
        } else {
            kb.b.ins().splat(ity, z)
        };
        let acc = kb.for_carried(n, &vec![z; nvec], |kb, k, cur| {
            let qa = kb.offset(q, k, 4);
            let qk = kb.load(types::I32, qa, 0);
            let qv = if vt.lanes == 1 {
                qk
            } else {
                kb.b.ins().splat(ity, qk)
            };
            let wk = kb.offset(wblk, k, ROWS as i64 * 2);
            let mut next = Vec::with_capacity(cur.len());
            for (a, &c) in cur.iter().enumerate() {
                let off = (a * vt.lanes * 2) as i32;
                let flags = crate::emit::data_flags().with_readonly();
                let wv = if vt.lanes == 1 {
                    let h = kb.b.ins().load(types::I16, flags, wk, off);
                    kb.b.ins().sextend(types::I32, h)
                } else {
                    kb.b.ins().sload16x4(flags, wk, off)
                };
                let m = kb.b.ins().imul(qv, wv);
                next.push(kb.b.ins().iadd(c, m));
            }
            Ok(next)
        })?;
        let sav = vt.splat(kb, sa);
        for (a, v) in acc.into_iter().enumerate() {
            let off = (a as i64 * vbytes) as i32;
            let f = kb.b.ins().fcvt_from_sint(vt.ty, v);
            let r = kb.load_ro(vt.ty, rb, off);
            let scale = kb.b.ins().fmul(sav, r);
            let term = kb.b.ins().fmul(f, scale);
            let prev = if accumulate {
                kb.load(vt.ty, gb, off)
            } else {
                kb.load_ro(vt.ty, bb, off)
            };
            let out = kb.b.ins().fadd(prev, term);
            kb.store(out, gb, off);
        }
        Ok(())
    })
}
