//! Recurrent ops: LSTM as one kernel per node (forward, reverse, bidirectional; both layouts; optional
//! bias, peepholes, initial states, clip, `input_forget`; default activations).
//!
//! Each (direction, batch row) runs its whole sequence independently — these are the kernel's tiles
//! when there is enough work, so results do not depend on the thread count. Per step the gate
//! pre-activations are one matrix-vector product of the packed `[W | R]` (`4H × (I + H)`, packed at
//! compile time in blocks of 16 gate rows, k-major, so every step reads the weights as one stream)
//! with `[x_t; h_{t-1}]`, started from the folded bias `Wb + Rb`; then the cell update runs vectorized
//! over `H`. The state (`h`, `c`, gates) lives in a stack slot of the kernel.
//!
//! `sequence_lens` (constant or runtime, i32 or i64) is read per batch row: steps past a row's length
//! are zeros in `Y` and its `Y_h`/`Y_c` are the state after its length. Lengths outside `[0, S]`
//! (which the interpreter rejects) are clamped.
//!
//! Falls back for: GRU/RNN, non-f32 types, non-default activations, non-constant weights, bias or
//! peepholes.
//!
//! The vector `tanh` here is a rational minimax approximation (|error| < 1e-7 on f32), and `sigmoid(x)
//! = 0.5 + 0.5·tanh(x/2)`. Private to this module for now (lower/math.rs will own such helpers).

use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, Type, Value, types};

use carve_ir::ops::rnn::{Direction, LSTM_ACTIVATIONS, Lstm, RnnOp};
use carve_ir::{DType, Op};

use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::math::Fx;
use crate::lower::{Lowering, NodeInfo, WeightRef, Weights};

/// Gate rows per packed weight block (4 vectors of 4 lanes).
const ROWS: usize = 16;
/// Most bytes of state a kernel keeps on its stack.
const MAX_STACK: usize = 64 * 1024;
/// Multiply-adds per (direction, batch) sequence above which those become parallel tiles.
const TILE_MACS: usize = 200_000;

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    match info.op() {
        Op::Rnn(RnnOp::Lstm(o)) => lstm(info, o, w),
        Op::Rnn(_) => Ok(Lowering::Fallback("only LSTM has a native kernel".into())),
        _ => Ok(Lowering::Fallback("not a recurrent op".into())),
    }
}

/// Everything the LSTM kernel needs, fixed at compile time.
#[derive(Debug, Clone)]
struct Spec {
    s: usize,
    b: usize,
    i: usize,
    h: usize,
    nd: usize,
    /// Direction 1 of 1 runs in reverse.
    reverse: bool,
    batch_first: bool,
    clip: Option<f32>,
    input_forget: bool,
    /// Per direction: packed `[W | R]` blocks, folded bias (padded), peepholes (i, o, f) or none.
    wr: Vec<WeightRef>,
    bias: Vec<WeightRef>,
    peep: Vec<Option<WeightRef>>,
    /// Gate rows padded to a multiple of [`ROWS`].
    gpad: usize,
    has_h0: bool,
    has_c0: bool,
    /// Element type of a `sequence_lens` input the kernel reads (None: every length is S).
    lens: Option<Type>,
    n_out: usize,
}

fn lstm(info: &NodeInfo, o: &Lstm, wts: &mut Weights) -> Result<Lowering, CodegenError> {
    if info.in_dtype(0)? != DType::F32 {
        return Ok(Lowering::Fallback("only f32 LSTMs are native".into()));
    }
    if info.in_dtype(1)? != DType::F32 || info.in_dtype(2)? != DType::F32 {
        return Ok(Lowering::Fallback(
            "quantized weights (dynamic int8 LSTM) run in the interpreter".into(),
        ));
    }
    let nd = o.direction.count() as usize;
    if !o.activations.is_empty() {
        let defaults = o.activations.len() == 3 * nd
            && o.activations
                .iter()
                .enumerate()
                .all(|(k, &a)| a == LSTM_ACTIVATIONS[k % 3]);
        if !defaults {
            return Ok(Lowering::Fallback("non-default activations".into()));
        }
    }
    let x = info.in_shape(0)?;
    let [xa, xb, i] = x[..] else {
        return Err(info.err("x must have rank 3"));
    };
    let (s, b) = if o.batch_first { (xb, xa) } else { (xa, xb) };
    let r_shape = info.in_shape(2)?;
    let [_, _, h] = r_shape[..] else {
        return Err(info.err("r must have rank 3"));
    };
    let g = 4 * h;
    if info.in_shape(1)? != [nd, g, i] || r_shape != [nd, g, h] {
        return Err(info.err("w/r shapes disagree with x and the hidden size"));
    }
    let (Some(wv), Some(rv)) = (info.const_f32s(1), info.const_f32s(2)) else {
        return Ok(Lowering::Fallback("w or r is not a constant".into()));
    };
    let bv = if info.has_input(3) {
        match info.const_f32s(3) {
            Some(v) if v.len() == nd * 2 * g => Some(v),
            Some(_) => return Err(info.err("b has the wrong size")),
            None => return Ok(Lowering::Fallback("b is not a constant".into())),
        }
    } else {
        None
    };
    // sequence_lens: absent or all equal to S needs no code; otherwise each row reads its length.
    let lens = if info.has_input(4) {
        let full = info
            .const_i64s(4)
            .is_some_and(|v| v.len() == b && v.iter().all(|&l| l == s as i64));
        match info.in_dtype(4)? {
            _ if full => None,
            DType::I32 if info.in_shape(4)? == [b] => Some(types::I32),
            DType::I64 if info.in_shape(4)? == [b] => Some(types::I64),
            _ => return Err(info.err(format!("sequence_lens must be i32[{b}]"))),
        }
    } else {
        None
    };
    let state = if o.batch_first {
        vec![b, nd, h]
    } else {
        vec![nd, b, h]
    };
    for k in [5, 6] {
        if info.has_input(k) && (info.in_shape(k)? != state || info.in_dtype(k)? != DType::F32) {
            return Err(info.err(format!("input {k} must be f32{state:?}")));
        }
    }
    let pv = if info.has_input(7) {
        match info.const_f32s(7) {
            Some(v) if v.len() == nd * 3 * h => Some(v),
            Some(_) => return Err(info.err("p has the wrong size")),
            None => return Ok(Lowering::Fallback("p is not a constant".into())),
        }
    } else {
        None
    };
    if (0..info.num_outputs()).any(|k| info.out_dtype(k).ok() != Some(DType::F32)) {
        return Ok(Lowering::Fallback("outputs are not f32".into()));
    }
    let gpad = g.next_multiple_of(ROWS);
    let stack = (2 * h.next_multiple_of(4) + gpad) * 4;
    if stack > MAX_STACK {
        return Ok(Lowering::Fallback(format!(
            "state of {stack} bytes exceeds the kernel's stack budget"
        )));
    }
    let k_all = i + h;
    let (mut wr, mut bias, mut peep) = (vec![], vec![], vec![]);
    for d in 0..nd {
        // Blocks of ROWS gate rows; within a block k-major: packed[blk][k][row].
        let mut p = vec![0f32; gpad * k_all];
        for row in 0..g {
            let (blk, lane) = (row / ROWS, row % ROWS);
            for k in 0..k_all {
                let v = if k < i {
                    wv[(d * g + row) * i + k]
                } else {
                    rv[(d * g + row) * h + (k - i)]
                };
                p[(blk * k_all + k) * ROWS + lane] = v;
            }
        }
        wr.push(wts.add_f32(&p));
        let mut bb = vec![0f32; gpad];
        if let Some(bv) = &bv {
            for (row, v) in bb.iter_mut().enumerate().take(g) {
                *v = bv[d * 2 * g + row] + bv[d * 2 * g + g + row];
            }
        }
        bias.push(wts.add_f32(&bb));
        peep.push(
            pv.as_ref()
                .map(|pv| wts.add_f32(&pv[d * 3 * h..(d + 1) * 3 * h])),
        );
    }
    // W, R, B and P live in the packed blob only.
    for k in [1, 2, 3, 7] {
        wts.baked(info, k);
    }
    let spec = Spec {
        s,
        b,
        i,
        h,
        nd,
        reverse: o.direction == Direction::Reverse,
        batch_first: o.batch_first,
        clip: o.clip,
        input_forget: o.input_forget,
        wr,
        bias,
        peep,
        gpad,
        lens,
        has_h0: info.has_input(5),
        has_c0: info.has_input(6),
        n_out: info.num_outputs(),
    };
    let seqs = nd * b;
    let tiles = if seqs >= 2 && s * g * k_all >= TILE_MACS {
        seqs
    } else {
        1
    };
    Ok(Lowering::Native {
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
                            let c1 = kb.b.ins().icmp_imm_s(
                                cranelift_codegen::ir::condcodes::IntCC::SignedGreaterThanOrEqual,
                                t,
                                lo,
                            );
                            let c2 = kb.b.ins().icmp_imm_s(
                                cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
                                t,
                                lo + spec.b as i64,
                            );
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
    })
}

/// Vector shape used by the emitted code: `F32X4` where the target has it, else scalar `F32`.
#[derive(Clone, Copy)]
struct Vt {
    ty: Type,
    lanes: usize,
    fma: bool,
}

impl Vt {
    fn splat(self, kb: &mut Kb, s: Value) -> Value {
        if self.lanes == 1 {
            s
        } else {
            kb.b.ins().splat(self.ty, s)
        }
    }

    fn cst(self, kb: &mut Kb, c: f32) -> Value {
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
    fn mul_add(self, kb: &mut Kb, a: Value, b: Value, c: Value) -> Value {
        self.fx().madd(kb.b, a, b, c)
    }

    /// `tanh(x)` ([`Fx::tanh_rational`], the fast form recurrent cells use).
    fn tanh(self, kb: &mut Kb, x: Value) -> Value {
        self.fx().tanh_rational(kb.b, x)
    }

    /// `σ(x)` ([`Fx::sigmoid_rational`]).
    fn sigmoid(self, kb: &mut Kb, x: Value) -> Value {
        self.fx().sigmoid_rational(kb.b, x)
    }

    fn clip(self, kb: &mut Kb, x: Value, c: Option<f32>) -> Value {
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

/// One direction `d` of batch row `bi` over the whole sequence; `st` is the stack state
/// (`h[H']`, `c[H']`, gates `[gpad]` with `H'` = H rounded up to 4).
fn sequence(kb: &mut Kb, sp: &Spec, d: usize, bi: Value, st: Value) -> Result<(), CodegenError> {
    let (s, b, i, h, nd) = (
        sp.s as i64,
        sp.b as i64,
        sp.i as i64,
        sp.h as i64,
        sp.nd as i64,
    );
    let hp = (sp.h.next_multiple_of(4)) as i64;
    let hs = st;
    let cs = kb.b.ins().iadd_imm_s(st, hp * 4);
    let gs = kb.b.ins().iadd_imm_s(st, 2 * hp * 4);
    let d64 = d as i64;
    // Offset (elements) of this (d, b)'s state in [D, B, H] or [B, D, H].
    let state_off = |kb: &mut Kb| {
        if sp.batch_first {
            let v = kb.b.ins().imul_imm_s(bi, nd * h);
            kb.b.ins().iadd_imm_s(v, d64 * h)
        } else {
            let v = kb.b.ins().imul_imm_s(bi, h);
            kb.b.ins().iadd_imm_s(v, d64 * b * h)
        }
    };
    let so = state_off(kb);
    // Initial state.
    for (k, present, dst) in [(5usize, sp.has_h0, hs), (6, sp.has_c0, cs)] {
        if present {
            let base = kb.input(k)?;
            let src = kb.offset(base, so, 4);
            crate::lower::movement::strided::copy_run(kb, dst, src, h * 4)?;
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
    let wr = kb.weight(sp.wr[d]);
    let bias = kb.weight(sp.bias[d]);
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
        matvec(kb, sp, vt, (wr, bias), (xt, hs), gs)?;
        cell(kb, sp, vt, (hs, cs, gs), peep)?;
        if let Some(y) = y {
            let row = y_row(kb, t);
            let dst = kb.offset(y, row, h * 4);
            crate::lower::movement::strided::copy_run(kb, dst, hs, h * 4)?;
        }
        Ok(())
    })?;
    // Steps past this row's length are zeros in Y.
    if let (Some(y), Some(_)) = (y, sp.lens) {
        let sv = kb.iconst(s);
        kb.for_range(len, sv, 1, |kb, t| {
            let row = y_row(kb, t);
            let dst = kb.offset(y, row, h * 4);
            crate::lower::movement::strided::zero_run(kb, dst, h * 4)
        })?;
    }
    for (k, src) in [(1usize, hs), (2, cs)] {
        if sp.n_out > k {
            let base = kb.output(k)?;
            let dst = kb.offset(base, so, 4);
            crate::lower::movement::strided::copy_run(kb, dst, src, h * 4)?;
        }
    }
    Ok(())
}

/// `gates = bias + [W | R]·[x; h]` over all (padded) gate rows.
fn matvec(
    kb: &mut Kb,
    sp: &Spec,
    vt: Vt,
    (wr, bias): (Value, Value),
    (xt, hs): (Value, Value),
    gs: Value,
) -> Result<(), CodegenError> {
    let k_all = (sp.i + sp.h) as i64;
    let nvec = ROWS / vt.lanes; // accumulators per block
    let vbytes = (vt.lanes * 4) as i64;
    let nblk = (sp.gpad / ROWS) as i64;
    kb.for_n(0, nblk, 1, |kb, blk| {
        let boff = kb.b.ins().imul_imm_s(blk, ROWS as i64 * 4);
        let bb = kb.b.ins().iadd(bias, boff);
        let gb = kb.b.ins().iadd(gs, boff);
        let wblk = kb.offset(wr, blk, k_all * ROWS as i64 * 4);
        let mut acc: Vec<Value> = (0..nvec)
            .map(|a| kb.load_ro(vt.ty, bb, (a as i64 * vbytes) as i32))
            .collect();
        // Two segments of k: the input x_t (k < I), then the state h (k ≥ I).
        for (src, lo, n) in [(xt, 0i64, sp.i as i64), (hs, sp.i as i64, sp.h as i64)] {
            if n == 0 {
                continue;
            }
            let wseg = kb.b.ins().iadd_imm_s(wblk, lo * ROWS as i64 * 4);
            acc = loop_k(kb, vt, src, wseg, n, acc)?;
        }
        for (a, v) in acc.into_iter().enumerate() {
            kb.store(v, gb, (a as i64 * vbytes) as i32);
        }
        Ok(())
    })
}

/// `acc[a] += z[k] · w[k][a·lanes..]` for `k` in `0..n`, with the accumulators as loop-carried block
/// parameters.
fn loop_k(
    kb: &mut Kb,
    vt: Vt,
    z: Value,
    w: Value,
    n: i64,
    acc: Vec<Value>,
) -> Result<Vec<Value>, CodegenError> {
    use cranelift_codegen::ir::BlockArg;
    use cranelift_codegen::ir::condcodes::IntCC;
    let vbytes = (vt.lanes * 4) as i64;
    let header = kb.b.create_block();
    let body = kb.b.create_block();
    let exit = kb.b.create_block();
    kb.b.append_block_param(header, types::I64);
    for _ in &acc {
        kb.b.append_block_param(header, vt.ty);
        kb.b.append_block_param(exit, vt.ty);
    }
    let zero = kb.iconst(0);
    let mut args = vec![BlockArg::Value(zero)];
    args.extend(acc.iter().map(|&v| BlockArg::Value(v)));
    kb.b.ins().jump(header, &args);
    kb.b.switch_to_block(header);
    let params = kb.b.block_params(header).to_vec();
    let k = params[0];
    let cur: Vec<Value> = params[1..].to_vec();
    let c = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, k, n);
    let exit_args: Vec<BlockArg> = cur.iter().map(|&v| BlockArg::Value(v)).collect();
    kb.b.ins().brif(c, body, &[], exit, &exit_args);
    kb.b.switch_to_block(body);
    let za = kb.offset(z, k, 4);
    let zs = kb.load(types::F32, za, 0);
    let zv = vt.splat(kb, zs);
    let wk = kb.offset(w, k, ROWS as i64 * 4);
    let mut next = vec![BlockArg::Value(kb.b.ins().iadd_imm_s(k, 1))];
    for (a, &c) in cur.iter().enumerate() {
        let wv = kb.load_ro(vt.ty, wk, (a as i64 * vbytes) as i32);
        let v = vt.mul_add(kb, zv, wv, c);
        next.push(BlockArg::Value(v));
    }
    kb.b.ins().jump(header, &next);
    kb.b.switch_to_block(exit);
    Ok(kb.b.block_params(exit).to_vec())
}

/// The LSTM cell over `H` (gates `i, o, f, c` at `gs`), updating `h` and `c` in place.
fn cell(
    kb: &mut Kb,
    sp: &Spec,
    vt: Vt,
    (hs, cs, gs): (Value, Value, Value),
    peep: Option<Value>,
) -> Result<(), CodegenError> {
    let h = sp.h as i64;
    // Vector width for the cell: whole vectors only when H is a multiple of the lanes.
    let vt = if h % vt.lanes as i64 == 0 {
        vt
    } else {
        Vt {
            ty: types::F32,
            lanes: 1,
            fma: vt.fma,
        }
    };
    let step = vt.lanes as i64;
    kb.for_n(0, h, step, |kb, j| {
        let off = kb.b.ins().imul_imm_s(j, 4);
        let g = kb.b.ins().iadd(gs, off);
        let ca = kb.b.ins().iadd(cs, off);
        let ha = kb.b.ins().iadd(hs, off);
        let gi = kb.load(vt.ty, g, 0);
        let go = kb.load(vt.ty, g, (h * 4) as i32);
        let gf = kb.load(vt.ty, g, (2 * h * 4) as i32);
        let gc = kb.load(vt.ty, g, (3 * h * 4) as i32);
        let c_old = kb.load(vt.ty, ca, 0);
        let pa = peep.map(|p| kb.b.ins().iadd(p, off));
        let with_peep = |kb: &mut Kb, x: Value, k: i32, c: Value| match pa {
            Some(p) => {
                let pv = kb.load_ro(vt.ty, p, k * (h as i32) * 4);
                vt.mul_add(kb, pv, c, x)
            }
            None => x,
        };
        let xi = with_peep(kb, gi, 0, c_old);
        let xi = vt.clip(kb, xi, sp.clip);
        let ig = vt.sigmoid(kb, xi);
        let fg = if sp.input_forget {
            let one = vt.cst(kb, 1.0);
            kb.b.ins().fsub(one, ig)
        } else {
            let xf = with_peep(kb, gf, 2, c_old);
            let xf = vt.clip(kb, xf, sp.clip);
            vt.sigmoid(kb, xf)
        };
        let xc = vt.clip(kb, gc, sp.clip);
        let ct = vt.tanh(kb, xc);
        let fc = kb.b.ins().fmul(fg, c_old);
        let c_new = vt.mul_add(kb, ig, ct, fc);
        let xo = with_peep(kb, go, 1, c_new);
        let xo = vt.clip(kb, xo, sp.clip);
        let og = vt.sigmoid(kb, xo);
        let th = vt.tanh(kb, c_new);
        let h_new = kb.b.ins().fmul(og, th);
        kb.store(c_new, ca, 0);
        kb.store(h_new, ha, 0);
        Ok(())
    })
}
