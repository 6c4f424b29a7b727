//! `global_pool`: max / avg / lp (p = 1, 2) over all spatial positions of each `(n, c)` plane, f32.
//! Planes are the work units; each plane is reduced with four f32x4 accumulators in a fixed order.

use carve_ir::DType;
use carve_ir::ops::conv::{GlobalPool, PoolKind};
use cranelift_codegen::ir::{InstBuilder, Value, types};

use super::{Ty, fallback, fconst, fmadd, hsum, is_f32_in, max_finish, max_step, tiles_for};
use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::{Lowering, NodeInfo};

/// The reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
    Lp1,
    Lp2,
}

/// Select phase for `global_pool`.
pub(super) fn lower(info: &NodeInfo, p: &GlobalPool) -> Result<Lowering, CodegenError> {
    if !is_f32_in(info, 0)? || info.out_dtype(0)? != DType::F32 {
        return fallback("global_pool: only f32 is native");
    }
    let kind = match p.kind {
        PoolKind::Max => Kind::Max,
        PoolKind::Avg => Kind::Avg,
        PoolKind::Lp if p.p == 1 => Kind::Lp1,
        PoolKind::Lp if p.p == 2 => Kind::Lp2,
        PoolKind::Lp => {
            return fallback(format!(
                "global lp pool: p = {} is not native (only 1, 2)",
                p.p
            ));
        }
    };
    let x = info.in_shape(0)?;
    if x.len() < 2 {
        return Err(info.err("input must have rank ≥ 2"));
    }
    let planes = x[0] * x[1];
    let len: usize = x[2..].iter().product();
    if planes == 0 {
        return fallback("global_pool: empty output");
    }
    if len == 0 || planes.saturating_mul(len) >= 1 << 28 {
        return fallback("global_pool: empty or ≥ 2 GiB planes are not native");
    }
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e: &mut Emitter| emit(e, kind, planes, len)),
    })
}

fn step(kb: &mut Kb, kind: Kind, ty: Ty, acc: Value, v: Value) -> Value {
    match kind {
        Kind::Max => max_step(kb, ty, acc, v),
        Kind::Avg => kb.b.ins().fadd(acc, v),
        Kind::Lp1 => {
            let a = kb.b.ins().fabs(v);
            kb.b.ins().fadd(acc, a)
        }
        Kind::Lp2 => fmadd(kb, v, v, acc),
    }
}

/// Combines two partial results (sums add, maxima take the NaN-ignoring maximum).
fn combine(kb: &mut Kb, kind: Kind, ty: Ty, a: Value, b: Value) -> Value {
    match kind {
        Kind::Max => max_step(kb, ty, a, b),
        _ => kb.b.ins().fadd(a, b),
    }
}

fn emit(e: &mut Emitter, kind: Kind, planes: usize, len: usize) -> Result<(), CodegenError> {
    let n_tiles = tiles_for(planes, len);
    let vec = e.target().f32_lanes() >= 4;
    e.kernel(n_tiles, move |kb| {
        let x = kb.input(0)?;
        let y = kb.output(0)?;
        let (lo, hi) = if n_tiles == 1 {
            (kb.iconst(0), kb.iconst(planes as i64))
        } else {
            (kb.begin, kb.end)
        };
        let init = if kind == Kind::Max { f32::NAN } else { 0.0 };
        kb.for_range(lo, hi, 1, |kb, p| {
            let xp = kb.offset(x, p, (len * 4) as i64);
            let mut done = 0usize;
            let mut acc = fconst(kb, Ty::S, init);
            if vec && len >= 4 {
                let z = fconst(kb, Ty::V, init);
                let mut accs = vec![z; 4];
                let n16 = len / 16 * 16;
                if n16 > 0 {
                    // Loop-carried accumulators via block params.
                    let header = kb.b.create_block();
                    let body = kb.b.create_block();
                    let exit = kb.b.create_block();
                    kb.b.append_block_param(header, types::I64);
                    for _ in 0..4 {
                        kb.b.append_block_param(header, types::F32X4);
                    }
                    for _ in 0..4 {
                        kb.b.append_block_param(exit, types::F32X4);
                    }
                    let zero = kb.iconst(0);
                    let args: Vec<_> = std::iter::once(zero)
                        .chain(accs.iter().copied())
                        .map(cranelift_codegen::ir::BlockArg::Value)
                        .collect();
                    kb.b.ins().jump(header, &args);
                    kb.b.switch_to_block(header);
                    let params = kb.b.block_params(header).to_vec();
                    let i = params[0];
                    let c = kb.b.ins().icmp_imm_s(
                        cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
                        i,
                        n16 as i64,
                    );
                    let exit_args: Vec<_> = params[1..]
                        .iter()
                        .copied()
                        .map(cranelift_codegen::ir::BlockArg::Value)
                        .collect();
                    kb.b.ins().brif(c, body, &[], exit, &exit_args);
                    kb.b.switch_to_block(body);
                    let a = kb.offset(xp, i, 4);
                    let mut next = vec![kb.iconst(0)];
                    for j in 0..4 {
                        let v = kb.load(types::F32X4, a, (16 * j) as i32);
                        next.push(step(kb, kind, Ty::V, params[1 + j], v));
                    }
                    next[0] = kb.b.ins().iadd_imm_s(i, 16);
                    let args: Vec<_> = next
                        .into_iter()
                        .map(cranelift_codegen::ir::BlockArg::Value)
                        .collect();
                    kb.b.ins().jump(header, &args);
                    kb.b.switch_to_block(exit);
                    accs = kb.b.block_params(exit).to_vec();
                    done = n16;
                }
                let mut j = 0;
                while done + 4 <= len {
                    let v = kb.load(types::F32X4, xp, (done * 4) as i32);
                    accs[j] = step(kb, kind, Ty::V, accs[j], v);
                    j = (j + 1) % 4;
                    done += 4;
                }
                let a01 = combine(kb, kind, Ty::V, accs[0], accs[1]);
                let a23 = combine(kb, kind, Ty::V, accs[2], accs[3]);
                let a = combine(kb, kind, Ty::V, a01, a23);
                acc = if kind == Kind::Max {
                    let mut m = kb.b.ins().extractlane(a, 0);
                    for l in 1..4u8 {
                        let v = kb.b.ins().extractlane(a, l);
                        m = max_step(kb, Ty::S, m, v);
                    }
                    m
                } else {
                    hsum(kb, a)
                };
            }
            if len - done > 8 {
                let d = kb.iconst(done as i64);
                let end = kb.iconst(len as i64);
                // Scalar loop with a loop-carried accumulator.
                let header = kb.b.create_block();
                let body = kb.b.create_block();
                let exit = kb.b.create_block();
                kb.b.append_block_param(header, types::I64);
                kb.b.append_block_param(header, types::F32);
                kb.b.append_block_param(exit, types::F32);
                use cranelift_codegen::ir::BlockArg;
                kb.b.ins()
                    .jump(header, &[BlockArg::Value(d), BlockArg::Value(acc)]);
                kb.b.switch_to_block(header);
                let ps = kb.b.block_params(header).to_vec();
                let c = kb.b.ins().icmp(
                    cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
                    ps[0],
                    end,
                );
                kb.b.ins()
                    .brif(c, body, &[], exit, &[BlockArg::Value(ps[1])]);
                kb.b.switch_to_block(body);
                let a = kb.offset(xp, ps[0], 4);
                let v = kb.load(types::F32, a, 0);
                let na = step(kb, kind, Ty::S, ps[1], v);
                let ni = kb.b.ins().iadd_imm_s(ps[0], 1);
                kb.b.ins()
                    .jump(header, &[BlockArg::Value(ni), BlockArg::Value(na)]);
                kb.b.switch_to_block(exit);
                acc = kb.b.block_params(exit)[0];
            } else {
                for i in done..len {
                    let v = kb.load(types::F32, xp, (i * 4) as i32);
                    acc = step(kb, kind, Ty::S, acc, v);
                }
            }
            let r = match kind {
                Kind::Max => max_finish(kb, Ty::S, acc),
                Kind::Avg => {
                    let n = kb.f32const(len as f32);
                    kb.b.ins().fdiv(acc, n)
                }
                Kind::Lp1 => acc,
                Kind::Lp2 => kb.b.ins().sqrt(acc),
            };
            let ya = kb.offset(y, p, 4);
            kb.store(r, ya, 0);
            Ok(())
        })
    })
}
