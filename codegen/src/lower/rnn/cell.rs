//! The cell updates of LSTM, GRU and RNN over `H`, from the gate pre-activations the projections
//! wrote, with ONNX's equations (as the interpreter's `rnn` module computes them): `clip` bounds every
//! activation's input except LSTM's output function's.

use cranelift_codegen::ir::{InstBuilder, Value, types};

use carve_ir::ops::activation::{ActKind, Activation};

use super::kernel::{State, Vt};
use super::{CellKind, Spec};
use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::fused::emit_act;

/// `act(x)`: sigmoid and tanh in their rational forms, every other function as the fused epilogue
/// emits it.
fn apply(kb: &mut Kb, vt: Vt, act: &Activation, x: Value) -> Value {
    match act.kind {
        ActKind::Sigmoid => vt.sigmoid(kb, x),
        ActKind::Tanh => vt.tanh(kb, x),
        _ => emit_act(kb, x, act),
    }
}

/// `act(clip(x))`.
fn gate(kb: &mut Kb, vt: Vt, sp: &Spec, act: &Activation, x: Value) -> Value {
    let x = vt.clip(kb, x, sp.clip);
    apply(kb, vt, act, x)
}

/// The vector shape for loops over `H`: whole vectors only when `H` is a multiple of the lanes.
fn over_h(sp: &Spec, vt: Vt) -> Vt {
    if sp.h.is_multiple_of(vt.lanes) {
        vt
    } else {
        Vt {
            ty: types::F32,
            lanes: 1,
            fma: vt.fma,
        }
    }
}

/// Runs `f(kb, vt, byte offset)` over `H` in steps of the vector shape.
fn for_h(
    kb: &mut Kb,
    sp: &Spec,
    vt: Vt,
    mut f: impl FnMut(&mut Kb, Vt, Value) -> Result<(), CodegenError>,
) -> Result<(), CodegenError> {
    let vt = over_h(sp, vt);
    kb.for_n(0, sp.h as i64, vt.lanes as i64, |kb, j| {
        let off = kb.b.ins().imul_imm_s(j, 4);
        f(kb, vt, off)
    })
}

/// GRU without `linear_before_reset`, first phase: `rh = σ(clip(g_r)) ⊙ h`.
pub(super) fn reset_hidden(
    kb: &mut Kb,
    sp: &Spec,
    vt: Vt,
    acts: &[Activation],
    st: State,
) -> Result<(), CodegenError> {
    let r_off = (sp.gate_off[1] * 4) as i32;
    for_h(kb, sp, vt, |kb, vt, off| {
        let g = kb.b.ins().iadd(st.gates, off);
        let ha = kb.b.ins().iadd(st.h, off);
        let ra = kb.b.ins().iadd(st.rh, off);
        let gr = kb.load(vt.ty, g, r_off);
        let r = gate(kb, vt, sp, &acts[0], gr);
        let hv = kb.load(vt.ty, ha, 0);
        let v = kb.b.ins().fmul(r, hv);
        kb.store(v, ra, 0);
        Ok(())
    })
}

/// The cell update: new `h` (and LSTM's `c`) in place.
pub(super) fn update(
    kb: &mut Kb,
    sp: &Spec,
    vt: Vt,
    acts: &[Activation],
    st: State,
    peep: Option<Value>,
) -> Result<(), CodegenError> {
    match sp.cell {
        CellKind::Lstm { input_forget } => lstm(kb, sp, vt, acts, st, peep, input_forget),
        CellKind::Gru {
            linear_before_reset,
        } => gru(kb, sp, vt, acts, st, linear_before_reset),
        CellKind::Rnn => for_h(kb, sp, vt, |kb, vt, off| {
            let g = kb.b.ins().iadd(st.gates, off);
            let ha = kb.b.ins().iadd(st.h, off);
            let x = kb.load(vt.ty, g, 0);
            let h_new = gate(kb, vt, sp, &acts[0], x);
            kb.store(h_new, ha, 0);
            Ok(())
        }),
    }
}

/// `z = f(g_z)`, `r = f(g_r)`, `n = g(g_hx + r ⊙ g_hh)` (`linear_before_reset`) or `g(g_hx + g_hh)`
/// (where `g_hh` already multiplied `r ⊙ h`); `h = (1 − z) ⊙ n + z ⊙ h`.
fn gru(
    kb: &mut Kb,
    sp: &Spec,
    vt: Vt,
    acts: &[Activation],
    st: State,
    linear_before_reset: bool,
) -> Result<(), CodegenError> {
    let [z_off, r_off, hx_off, hh_off] = [0, 1, 2, 3].map(|k| (sp.gate_off[k] * 4) as i32);
    for_h(kb, sp, vt, |kb, vt, off| {
        let g = kb.b.ins().iadd(st.gates, off);
        let ha = kb.b.ins().iadd(st.h, off);
        let gz = kb.load(vt.ty, g, z_off);
        let ghx = kb.load(vt.ty, g, hx_off);
        let ghh = kb.load(vt.ty, g, hh_off);
        let z = gate(kb, vt, sp, &acts[0], gz);
        let pre = if linear_before_reset {
            let gr = kb.load(vt.ty, g, r_off);
            let r = gate(kb, vt, sp, &acts[0], gr);
            let rh = kb.b.ins().fmul(r, ghh);
            kb.b.ins().fadd(ghx, rh)
        } else {
            kb.b.ins().fadd(ghx, ghh)
        };
        let n = gate(kb, vt, sp, &acts[1], pre);
        let h_old = kb.load(vt.ty, ha, 0);
        let one = vt.cst(kb, 1.0);
        let keep = kb.b.ins().fsub(one, z);
        let a = kb.b.ins().fmul(keep, n);
        let b = kb.b.ins().fmul(z, h_old);
        let h_new = kb.b.ins().fadd(a, b);
        kb.store(h_new, ha, 0);
        Ok(())
    })
}

/// The LSTM cell (gates `i, o, f, c`), with optional peepholes and coupled input/forget gates.
fn lstm(
    kb: &mut Kb,
    sp: &Spec,
    vt: Vt,
    acts: &[Activation],
    st: State,
    peep: Option<Value>,
    input_forget: bool,
) -> Result<(), CodegenError> {
    let h = sp.h as i32;
    for_h(kb, sp, vt, |kb, vt, off| {
        let g = kb.b.ins().iadd(st.gates, off);
        let ca = kb.b.ins().iadd(st.c, off);
        let ha = kb.b.ins().iadd(st.h, off);
        let gi = kb.load(vt.ty, g, 0);
        let go = kb.load(vt.ty, g, h * 4);
        let gf = kb.load(vt.ty, g, 2 * h * 4);
        let gc = kb.load(vt.ty, g, 3 * h * 4);
        let c_old = kb.load(vt.ty, ca, 0);
        let pa = peep.map(|p| kb.b.ins().iadd(p, off));
        let with_peep = |kb: &mut Kb, x: Value, k: i32, c: Value| match pa {
            Some(p) => {
                let pv = kb.load_ro(vt.ty, p, k * h * 4);
                vt.mul_add(kb, pv, c, x)
            }
            None => x,
        };
        let xi = with_peep(kb, gi, 0, c_old);
        let ig = gate(kb, vt, sp, &acts[0], xi);
        let fg = if input_forget {
            let one = vt.cst(kb, 1.0);
            kb.b.ins().fsub(one, ig)
        } else {
            let xf = with_peep(kb, gf, 2, c_old);
            gate(kb, vt, sp, &acts[0], xf)
        };
        let ct = gate(kb, vt, sp, &acts[1], gc);
        let fc = kb.b.ins().fmul(fg, c_old);
        let c_new = vt.mul_add(kb, ig, ct, fc);
        let xo = with_peep(kb, go, 1, c_new);
        let og = gate(kb, vt, sp, &acts[0], xo);
        let th = apply(kb, vt, &acts[2], c_new);
        let h_new = kb.b.ins().fmul(og, th);
        kb.store(c_new, ca, 0);
        kb.store(h_new, ha, 0);
        Ok(())
    })
}
