//! com.microsoft QLinearAdd / QLinearMul (`qlinear_add`, `qlinear_mul`) as map kernels, computed in
//! f32 exactly as the interpreter defines them (`carve_runtime::interp::quant`, which follows ONNX
//! Runtime's x86 MLAS kernels so that near-ties round the same way):
//! - add: `c = fma(p, rp, fma(q, rq, F))`, `F = zc − fma(rp, zp, rq·zq)`, `r = s / sc`, where `p` is
//!   `a` and `q` is `b` unless `a` is broadcast along the innermost output dim (then swapped);
//! - mul: `c = ((a − za)·(b − zb))·(sa·sb / sc) + zc`;
//!
//! then rounded half to even and saturated to the output type. The add needs a fused multiply-add
//! instruction (one rounding): targets without one fall back to the interpreter with that reason.
//! The scales and zero points are scalar operands (constants or computed values).

use carve_ir::ops::quant::QuantOp;

use super::quant::quantize_one;
use super::*;

/// Select phase for `qlinear_add` / `qlinear_mul`.
pub(crate) fn lower(info: &NodeInfo, op: &QuantOp) -> Result<Lowering, CodegenError> {
    let mul = match op {
        QuantOp::QLinearAdd(_) => false,
        QuantOp::QLinearMul(_) => true,
        _ => return Ok(Lowering::Fallback("not a qlinear binary op".into())),
    };
    if !mul && !info.target.has_fma() {
        return Ok(Lowering::Fallback(
            "qlinear_add rounds like ONNX Runtime's FMA kernel: the target has no fused multiply-add"
                .into(),
        ));
    }
    let out_shape = info.out_shape(0)?;
    let dtype = info.out_dtype(0)?;
    let a_shape = info.in_shape(0)?;
    for i in [1, 4, 6] {
        if info.in_dtype(i)? != DType::F32 {
            return Ok(Lowering::Fallback(format!("scale input {i} is not f32")));
        }
    }
    // Operands: a, b, then the scalars sa, sb, sc and the zero points that are present.
    let mut leaves = vec![
        LeafSpec {
            src: 0,
            dtype,
            shape: a_shape.clone(),
        },
        LeafSpec {
            src: 3,
            dtype,
            shape: info.in_shape(3)?,
        },
    ];
    for src in [1, 4, 6] {
        leaves.push(LeafSpec {
            src,
            dtype: DType::F32,
            shape: Vec::new(),
        });
    }
    // Slot of each zero point among the leaves (absent: 0).
    let mut zp_slot = [None; 3];
    for (k, src) in [2, 5, 7].into_iter().enumerate() {
        if info.has_input(src) {
            zp_slot[k] = Some(leaves.len());
            leaves.push(LeafSpec {
                src,
                dtype,
                shape: Vec::new(),
            });
        }
    }
    // ONNX Runtime streams the operand that is not broadcast along the innermost dim.
    let inner = out_shape.last().copied().unwrap_or(1);
    let a_len: usize = a_shape.iter().product();
    let swap = inner > 1 && a_shape.last().is_none_or(|&d| d == 1) || a_len == 1;
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e: &mut Emitter| {
            let body = |b: &mut FunctionBuilder, _fx: Fx, v: &[Value]| {
                let as_f32 = |b: &mut FunctionBuilder, slot: Option<usize>| match slot {
                    Some(k) => {
                        let w = widen(b, dtype, v[k]);
                        b.ins().fcvt_from_sint(types::F32, w)
                    }
                    None => b.ins().f32const(0.0),
                };
                let (x, y) = (as_f32(b, Some(0)), as_f32(b, Some(1)));
                let (za, zb, zc) = (
                    as_f32(b, zp_slot[0]),
                    as_f32(b, zp_slot[1]),
                    as_f32(b, zp_slot[2]),
                );
                let (sa, sb, sc) = (v[2], v[3], v[4]);
                let c = if mul {
                    let dx = b.ins().fsub(x, za);
                    let dy = b.ins().fsub(y, zb);
                    let p = b.ins().fmul(dx, dy);
                    let s = b.ins().fmul(sa, sb);
                    let ratio = b.ins().fdiv(s, sc);
                    let t = b.ins().fmul(p, ratio);
                    b.ins().fadd(t, zc)
                } else {
                    let rac = b.ins().fdiv(sa, sc);
                    let rbc = b.ins().fdiv(sb, sc);
                    let (p, rp, zp, q, rq, zq) = if swap {
                        (y, rbc, zb, x, rac, za)
                    } else {
                        (x, rac, za, y, rbc, zb)
                    };
                    let rqzq = b.ins().fmul(rq, zq);
                    let folded = b.ins().fma(rp, zp, rqzq);
                    let fixed = b.ins().fsub(zc, folded);
                    let inner = b.ins().fma(q, rq, fixed);
                    b.ins().fma(p, rp, inner)
                };
                let one = b.ins().f32const(1.0);
                quantize_one(b, dtype, c, one, None)
            };
            emit_map(e, &out_shape, dtype, &leaves, false, &body)
        }),
    })
}

#[cfg(test)]
mod tests {
    use carve_ir::ops::quant::{QLinearAdd, QLinearMul};
    use carve_runtime::{Data, Tensor};

    use crate::testing::{
        Operand, check_node, check_node_on, host_without, run_both_on, single_node_graph,
    };

    use super::super::test_util::{ints, tensor};
    use super::*;

    fn scalar(v: f32) -> Operand {
        Operand::Const(tensor(&[], Data::F32(vec![v])))
    }

    fn zp(dtype: DType, v: i64) -> Operand {
        Operand::Const(match dtype {
            DType::U8 => tensor(&[], Data::U8(vec![v as u8])),
            _ => tensor(&[], Data::I8(vec![v as i8])),
        })
    }

    /// Every broadcasting arrangement (same shape, `b` a row, `a` a column — the swapped operand
    /// order — and scalars), both types, with and without zero points, with decimal scales whose
    /// ratios put many exact-real ties near f32 rounding boundaries: bit-exact with the interpreter.
    #[test]
    fn qlinear_add_and_mul_match_the_interpreter_exactly() {
        let shapes: [(&[usize], &[usize]); 5] = [
            (&[2, 3, 17], &[2, 3, 17]),
            (&[2, 3, 17], &[17]),
            (&[2, 3, 1], &[2, 3, 17]),
            (&[1], &[4, 9]),
            (&[4, 9], &[]),
        ];
        for dtype in [DType::U8, DType::I8] {
            for (k, (sa, sb)) in shapes.iter().enumerate() {
                for mul in [false, true] {
                    for with_zp in [false, true] {
                        let op: Op = if mul {
                            QLinearMul {}.into()
                        } else {
                            QLinearAdd {}.into()
                        };
                        let zps = |v: i64| {
                            if with_zp {
                                zp(dtype, v)
                            } else {
                                Operand::Absent
                            }
                        };
                        let ops = vec![
                            Operand::Input(ints(dtype, sa, 2 * k as u64)),
                            scalar(0.05),
                            zps(7),
                            Operand::Input(ints(dtype, sb, 2 * k as u64 + 1)),
                            scalar(if mul { 0.02 } else { 0.1 }),
                            zps(3),
                            scalar(if mul { 0.3 } else { 0.1 }),
                            zps(if dtype == DType::U8 { 200 } else { -2 }),
                        ];
                        check_node(op, &ops, 1, 0.0, 0.0).unwrap_or_else(|e| {
                            panic!("{dtype} {sa:?}×{sb:?} mul={mul} zp={with_zp}: {e}")
                        });
                    }
                }
            }
        }
    }

    /// Without a fused multiply-add the add cannot round like ONNX Runtime: it falls back with that
    /// reason (same results, from the interpreter), while the mul stays native.
    #[test]
    fn qlinear_add_falls_back_without_fma() {
        let target = host_without(&["fma", "avx"]).unwrap_or_else(|e| panic!("{e}"));
        let ops = |a: Tensor, b: Tensor| {
            vec![
                Operand::Input(a),
                scalar(0.05),
                zp(DType::U8, 7),
                Operand::Input(b),
                scalar(0.1),
                zp(DType::U8, 3),
                scalar(0.1),
                zp(DType::U8, 200),
            ]
        };
        let (a, b) = (ints(DType::U8, &[3, 8], 1), ints(DType::U8, &[8], 2));
        let g = single_node_graph(QLinearAdd {}.into(), &ops(a.clone(), b.clone()), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let (got, want, report) =
            run_both_on(&target, &g, &[a.clone(), b.clone()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, want);
        assert_eq!(report.fallbacks.len(), 1);
        assert!(report.fallbacks[0].reason.contains("fused multiply-add"));
        check_node_on(&target, QLinearMul {}.into(), &ops(a, b), 1, 0.0, 0.0)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
