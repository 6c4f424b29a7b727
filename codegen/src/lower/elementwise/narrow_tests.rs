//! Differential tests of the narrow-float kernels ([`super::narrow`]): every 8-bit code and every
//! `f16`/`bf16` code decoded, rounding ties, overflow with and without `saturate`, NaN and ±0, casts to
//! and from integers, arithmetic over all pairs of 8-bit codes, comparisons and `where` — all bit-exact
//! against the interpreter; `is_nan`/`is_inf` also on f32 and f64; casts to and from the packed
//! sub-byte types.

use carve_ir::ops::elementwise as ew;
use carve_ir::ops::elementwise::RoundMode;
use carve_ir::{DType, Op};
use carve_runtime::{Data, Tensor};

use crate::testing::{Operand, random_f32, run_both, single_node_graph};

/// The narrow float types with native kernels.
const NARROW: [DType; 6] = [
    DType::F16,
    DType::BF16,
    DType::F8E4M3FN,
    DType::F8E4M3FNUZ,
    DType::F8E5M2,
    DType::F8E5M2FNUZ,
];

/// A 1-D tensor of `d` from raw codes (the low byte only for 8-bit types).
fn codes(d: DType, c: &[u16]) -> Tensor {
    let bytes: Vec<u8> = if d.bits() == 16 {
        c.iter().flat_map(|x| x.to_le_bytes()).collect()
    } else {
        c.iter().map(|&x| x as u8).collect()
    };
    let data = Data::from_le_bytes(d, &bytes, c.len()).expect("fixed-width type");
    Tensor {
        shape: vec![c.len()],
        data,
    }
}

/// Every code of `d`.
fn all_codes(d: DType) -> Vec<u16> {
    if d.bits() == 16 {
        (0..=u16::MAX).collect()
    } else {
        (0..=255).collect()
    }
}

/// A 1-D tensor.
fn tensor(data: Data) -> Tensor {
    Tensor {
        shape: vec![data.len()],
        data,
    }
}

fn cast(to: DType, saturate: bool) -> Op {
    ew::Cast {
        to,
        saturate,
        round_mode: RoundMode::Up,
    }
    .into()
}

/// Runs `op` natively and in the interpreter; requires every node native and identical bytes.
fn check(op: Op, inputs: &[Tensor]) {
    check_with(op, inputs, false);
}

/// The elements of `t` as f64 (through the interpreter's cast).
fn as_f64(t: &Tensor) -> Vec<f64> {
    match carve_runtime::interp::elementwise::cast::cast(t, DType::F64, true, RoundMode::Up) {
        Ok(Tensor {
            data: Data::F64(v), ..
        }) => v,
        _ => panic!("{} does not cast to f64", t.dtype()),
    }
}

/// [`check`]; with `nan_operands_any_nan`, an element whose operands are all NaN may be any NaN: which
/// operand's NaN (sign) IEEE arithmetic returns is unspecified, and the interpreter's compiled `a + b`
/// may take either.
fn check_with(op: Op, inputs: &[Tensor], nan_operands_any_nan: bool) {
    let operands: Vec<Operand> = inputs.iter().cloned().map(Operand::Input).collect();
    let name = format!("{op:?}");
    let g = single_node_graph(op, &operands, 1).expect("graph");
    let (a, e, report) = run_both(&g, inputs).expect("runs");
    assert!(
        report.fallbacks.is_empty(),
        "{name} fell back: {}",
        report.fallbacks[0].reason
    );
    let (a, e) = (&a[0], &e[0]);
    assert_eq!(a.dtype(), e.dtype(), "{name}");
    let (ab, eb) = (a.data.to_le_bytes(), e.data.to_le_bytes());
    let (ab, eb) = (ab.expect("bytes"), eb.expect("bytes"));
    if a.dtype().bits() < 8 {
        // Packed sub-byte elements: the bytes as a whole (padding bits included).
        assert_eq!(ab, eb, "{name}: native and interpreter bytes differ");
        assert_eq!(ab.len(), a.len().div_ceil(8 / a.dtype().bits() as usize));
        return;
    }
    let w = ab.len() / a.len().max(1);
    let nan_ok = nan_operands_any_nan.then(|| {
        let ins: Vec<Vec<f64>> = inputs.iter().map(as_f64).collect();
        let (av, ev) = (as_f64(a), as_f64(e));
        (0..a.len())
            .map(|i| ins.iter().all(|v| v[i].is_nan()) && av[i].is_nan() && ev[i].is_nan())
            .collect::<Vec<bool>>()
    });
    for i in 0..a.len() {
        let (x, y) = (&ab[i * w..(i + 1) * w], &eb[i * w..(i + 1) * w]);
        if nan_ok.as_ref().is_some_and(|v| v[i]) {
            continue;
        }
        assert_eq!(
            x,
            y,
            "{name}: element {i} (inputs {:?}) native {x:x?}, interpreter {y:x?}",
            inputs
                .iter()
                .map(|t| element_bytes(t, i))
                .collect::<Vec<_>>()
        );
    }
}

/// The bytes of element `i` of a 1-D tensor (for messages).
fn element_bytes(t: &Tensor, i: usize) -> Vec<u8> {
    let b = t.data.to_le_bytes().unwrap_or_default();
    let w = b.len() / t.len().max(1);
    b.get(i * w..(i + 1) * w).unwrap_or_default().to_vec()
}

/// f64 values probing the rounding of format `d`: every representable value, the midpoints between
/// neighbours (ties), values a hair either side of them, overflow boundaries and specials.
fn probes(d: DType) -> Vec<f64> {
    let c = all_codes(d);
    let t = codes(d, &c);
    let Ok(Tensor {
        data: Data::F64(vals),
        ..
    }) = carve_runtime::interp::elementwise::cast::cast(&t, DType::F64, true, RoundMode::Up)
    else {
        panic!("decode {d}");
    };
    let mut v: Vec<f64> = vals.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    let mut out = v.clone();
    for w in v.windows(2) {
        let mid = (w[0] + w[1]) / 2.0;
        let eps = (w[1] - w[0]) * 2f64.powi(-20);
        out.extend([mid, mid - eps, mid + eps]);
    }
    let top = v[v.len() - 1];
    let step = top - v[v.len() - 2];
    out.extend([
        top + step / 2.0,
        top + step / 2.0 - step * 1e-6,
        top + step,
        top * 4.0,
        1e300,
        f64::INFINITY,
        f64::NAN,
        -f64::NAN,
        0.0,
        -0.0,
        1e-300,
        5e-324,
        f64::MIN_POSITIVE,
    ]);
    let neg: Vec<f64> = out.iter().map(|x| -x).collect();
    out.extend(neg);
    out
}

#[test]
fn every_code_decodes_exactly() {
    for d in NARROW {
        let x = codes(d, &all_codes(d));
        for to in [DType::F32, DType::F64] {
            check(cast(to, true), std::slice::from_ref(&x));
        }
    }
}

#[test]
fn f64_and_f32_round_once_to_nearest_even() {
    for d in NARROW {
        let v = probes(d);
        let v32: Vec<f32> = v
            .iter()
            .map(|&x| x as f32)
            .chain(random_f32(4096, 7, -70000.0, 70000.0))
            .chain(random_f32(4096, 8, -1e-3, 1e-3))
            .collect();
        for saturate in [true, false] {
            check(cast(d, saturate), &[tensor(Data::F64(v.clone()))]);
            check(cast(d, saturate), &[tensor(Data::F32(v32.clone()))]);
        }
    }
}

#[test]
fn f16_ties_and_overflow_edges() {
    let v = vec![
        1.0 + 2f64.powi(-11),
        1.0 + 2f64.powi(-11) + 2f64.powi(-40),
        1.0 + 3.0 * 2f64.powi(-11),
        65504.0,
        65519.0,
        65520.0,
        2f64.powi(-25),
        1.5 * 2f64.powi(-25),
        2f64.powi(-24),
        -2f64.powi(-26),
    ];
    check(cast(DType::F16, false), &[tensor(Data::F64(v.clone()))]);
    check(cast(DType::BF16, false), &[tensor(Data::F64(v))]);
}

#[test]
fn narrow_to_narrow_and_saturation() {
    for from in NARROW {
        let c = if from.bits() == 16 {
            // Every 7th f16/bf16 code keeps the test quick while crossing every binade.
            (0..=u16::MAX)
                .step_by(7)
                .chain([0x7C00, 0xFC00, 0x7E00, 0xFE01])
                .collect()
        } else {
            all_codes(from)
        };
        let x = codes(from, &c);
        for to in NARROW {
            if to == from {
                continue;
            }
            for saturate in [true, false] {
                check(cast(to, saturate), std::slice::from_ref(&x));
            }
        }
    }
}

#[test]
fn casts_between_narrow_floats_and_integers() {
    let big = [
        0i64,
        1,
        -1,
        7,
        -300,
        65504,
        65520,
        1 << 40,
        (1 << 53) + 1,
        i64::MAX,
        i64::MIN,
        448,
        449,
        464,
        57344,
        61440,
    ];
    for d in NARROW {
        for sat in [true, false] {
            check(cast(d, sat), &[tensor(Data::I64(big.to_vec()))]);
            let i32s: Vec<i32> = big.iter().map(|&x| x as i32).collect();
            check(cast(d, sat), &[tensor(Data::I32(i32s))]);
            let u64s: Vec<u64> = big.iter().map(|&x| x as u64).collect();
            check(cast(d, sat), &[tensor(Data::U64(u64s))]);
            let u8s: Vec<u8> = big.iter().map(|&x| x as u8).collect();
            check(cast(d, sat), &[tensor(Data::U8(u8s))]);
        }
        check(
            cast(d, true),
            &[tensor(Data::Bool(vec![true, false, true]))],
        );
        let c = if d.bits() == 16 {
            (0..=u16::MAX).step_by(5).collect()
        } else {
            all_codes(d)
        };
        let x = codes(d, &c);
        let mut targets = vec![DType::I64, DType::I32, DType::I8, DType::U8, DType::Bool];
        if d != DType::BF16 {
            targets.push(DType::U64);
        }
        for to in targets {
            check(cast(to, true), std::slice::from_ref(&x));
        }
    }
}

/// All pairs of codes of an 8-bit type, or `n` pseudo-random pairs (plus specials) of a 16-bit one.
fn pairs(d: DType) -> (Tensor, Tensor) {
    let (mut a, mut b): (Vec<u16>, Vec<u16>) = if d.bits() == 8 {
        (0..=255u16)
            .flat_map(|p| (0..=255u16).map(move |q| (p, q)))
            .unzip()
    } else {
        let r = random_f32(2 * 30000, 3, 0.0, 65536.0);
        r.chunks(2).map(|c| (c[0] as u16, c[1] as u16)).unzip()
    };
    if d.bits() == 16 {
        // Specials against each other and against ordinary values (±0, ±∞, NaN, max, 1, subnormals).
        let (inf, nan, max, one) = if d == DType::F16 {
            (0x7C00, 0x7E00, 0x7BFF, 0x3C00)
        } else {
            (0x7F80, 0x7FC0, 0x7F7F, 0x3F80)
        };
        let s = [
            0,
            0x8000,
            inf,
            inf | 0x8000,
            nan,
            nan | 0x8000,
            max,
            max | 0x8000,
            one,
            1,
            0x8001,
        ];
        for &p in &s {
            for &q in &s {
                a.push(p);
                b.push(q);
            }
        }
    }
    (codes(d, &a), codes(d, &b))
}

#[test]
fn arithmetic_rounds_once_from_f64() {
    let ops: Vec<Op> = vec![
        ew::Add {}.into(),
        ew::Sub {}.into(),
        ew::Mul {}.into(),
        ew::Div {}.into(),
        ew::Max {}.into(),
        ew::Min {}.into(),
    ];
    for d in NARROW {
        let (a, b) = pairs(d);
        for op in &ops {
            check_with(op.clone(), &[a.clone(), b.clone()], true);
        }
    }
}

#[test]
fn comparisons_and_where() {
    let ops: Vec<Op> = vec![
        ew::Equal {}.into(),
        ew::Less {}.into(),
        ew::LessOrEqual {}.into(),
        ew::Greater {}.into(),
        ew::GreaterOrEqual {}.into(),
    ];
    for d in NARROW {
        let (a, b) = pairs(d);
        for op in &ops {
            check(op.clone(), &[a.clone(), b.clone()]);
        }
        let c: Vec<bool> = (0..a.len()).map(|i| i % 3 == 0).collect();
        check(ew::Where {}.into(), &[tensor(Data::Bool(c)), a, b]);
    }
}

#[test]
fn unary_ops_on_every_code() {
    let ops: Vec<Op> = vec![
        ew::Neg {}.into(),
        ew::Abs {}.into(),
        ew::Relu {}.into(),
        ew::Sqrt {}.into(),
        ew::IsNan {}.into(),
    ];
    let mut is_inf: Vec<Op> = Vec::new();
    for negative in [false, true] {
        for positive in [false, true] {
            is_inf.push(
                ew::IsInf {
                    detect_negative: negative,
                    detect_positive: positive,
                }
                .into(),
            );
        }
    }
    let wide = [
        0.0,
        -0.0,
        1.5,
        -2.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::MAX,
        5e-324,
    ];
    let f32s: Vec<f32> = wide.iter().map(|&x| x as f32).collect();
    let is_nan: Op = ew::IsNan {}.into();
    for op in is_inf.iter().chain([&is_nan]) {
        check(op.clone(), &[tensor(Data::F64(wide.to_vec()))]);
        check(op.clone(), &[tensor(Data::F32(f32s.clone()))]);
    }
    for d in NARROW {
        let x = codes(d, &all_codes(d));
        for op in ops.iter().chain(&is_inf) {
            check(op.clone(), std::slice::from_ref(&x));
        }
    }
}

/// A 1-D tensor of the packed type `d` holding `codes` (raw low bits; signed types sign-extended).
fn packed(d: DType, codes: &[u8]) -> Tensor {
    let bits = d.bits();
    let v = codes
        .iter()
        .map(|&c| {
            let c = c & ((1u8 << bits) - 1);
            if d.is_signed_int() && c & (1 << (bits - 1)) != 0 {
                c | !((1u8 << bits) - 1)
            } else {
                c
            }
        })
        .collect();
    tensor(Data::Small(d, v))
}

#[test]
fn casts_to_and_from_packed_types() {
    let packed_types = [DType::I4, DType::U4, DType::I2, DType::U2, DType::F4E2M1];
    for d in packed_types {
        // Every code, in lengths that leave the last byte partly filled.
        for len in [16usize, 15, 13] {
            let c: Vec<u8> = (0..len as u8).map(|i| i % (1 << d.bits())).collect();
            let x = packed(d, &c);
            for to in [
                DType::F32,
                DType::F16,
                DType::U8,
                DType::I8,
                DType::I64,
                DType::Bool,
            ] {
                check(cast(to, true), std::slice::from_ref(&x));
            }
            for to in packed_types {
                if to != d {
                    check(cast(to, true), std::slice::from_ref(&x));
                }
            }
        }
        let v: Vec<f32> = [
            0.0,
            -0.0,
            0.25,
            0.75,
            1.0,
            1.25,
            1.5,
            2.5,
            3.0,
            5.0,
            6.0,
            7.0,
            100.0,
            -1.0,
            -1.75,
            -2.5,
            -3.0,
            -6.0,
            -9.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            8.0,
            -8.0,
            17.0,
        ]
        .to_vec();
        check(cast(d, true), &[tensor(Data::F32(v.clone()))]);
        check(cast(d, false), &[tensor(Data::F32(v.clone()))]);
        let h = codes(DType::F16, &(0..=u16::MAX).step_by(97).collect::<Vec<_>>());
        check(cast(d, true), &[h]);
        let ints: Vec<i32> = (-20..21).collect();
        check(cast(d, true), &[tensor(Data::I32(ints))]);
    }
}

#[test]
fn f8e8m0_casts_follow_the_rounding_modes() {
    let all: Vec<u8> = (0..=255).collect();
    let x = tensor(Data::Small(DType::F8E8M0, all));
    for to in [DType::F32, DType::F16, DType::F64, DType::I32] {
        check(cast(to, true), std::slice::from_ref(&x));
    }
    let mut v: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        1.5,
        1.4,
        1.6,
        -4.0,
        3.0,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    v.extend(random_f32(2000, 11, -1e6, 1e6));
    // Halfway mantissas (round to nearest, ties by the exponent's low bit) at several exponents.
    for e in [0u32, 1, 2, 126, 127, 253, 254] {
        for m in [0x40_0000u32, 0x40_0001, 0x3F_FFFF, 0x60_0000, 0x20_0000] {
            v.push(f32::from_bits((e << 23) | m));
        }
    }
    let h = codes(DType::F16, &(0..=u16::MAX).step_by(13).collect::<Vec<_>>());
    for mode in [RoundMode::Up, RoundMode::Down, RoundMode::Nearest] {
        for saturate in [true, false] {
            let op: Op = ew::Cast {
                to: DType::F8E8M0,
                saturate,
                round_mode: mode,
            }
            .into();
            check(op.clone(), &[tensor(Data::F32(v.clone()))]);
            check(op.clone(), std::slice::from_ref(&h));
            check(
                op,
                &[tensor(Data::I64(vec![0, 1, 3, -5, 1 << 40, i64::MAX]))],
            );
        }
    }
}
