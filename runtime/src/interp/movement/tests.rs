//! Unit tests of the movement kernels: edge cases of the ONNX semantics (clamping, wrapping, negative
//! indices, reductions, rounding modes), checked against hand-computed scalar results, and robustness
//! (out-of-range indices and absurd sizes are errors, not panics).

use carve_ir::ops::movement::*;
use carve_ir::{Constant, DType, Op, TensorType, Type};

use super::eval;
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

fn run_n(
    op: impl Into<Op>,
    inputs: &[Option<Value>],
    n_out: usize,
) -> Result<Vec<Value>, RunError> {
    let Op::Movement(op) = op.into() else {
        panic!("not a movement op")
    };
    let ty = Type::Tensor(TensorType::unranked(DType::F32));
    let cx = EvalCtx {
        node: "n",
        op: "test",
        inputs: inputs.iter().map(Option::as_ref).collect(),
        input_types: Vec::new(),
        outputs: vec![&ty; n_out],
        env: &[],
        depth: 0,
    };
    eval(&op, &cx)
}

fn run(op: impl Into<Op>, inputs: &[Option<Value>]) -> Result<Tensor, RunError> {
    match run_n(op, inputs, 1)?.into_iter().next() {
        Some(Value::Tensor(t)) => Ok(t),
        v => panic!("expected a tensor, got {v:?}"),
    }
}

fn t(shape: &[usize], data: Data) -> Option<Value> {
    Some(Value::Tensor(Tensor::new(shape.to_vec(), data).unwrap()))
}

fn f32s(shape: &[usize], v: &[f32]) -> Option<Value> {
    t(shape, Data::F32(v.to_vec()))
}

fn i64s(v: &[i64]) -> Option<Value> {
    t(&[v.len()], Data::I64(v.to_vec()))
}

fn iota(shape: &[usize]) -> Option<Value> {
    let n = shape.iter().product::<usize>();
    f32s(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
}

fn vals(t: &Tensor) -> Vec<f32> {
    match &t.data {
        Data::F32(v) => v.clone(),
        d => panic!("expected f32, got {:?}", d.dtype()),
    }
}

#[test]
fn pad_modes_mirror_wrap_and_clamp_beyond_the_dim() {
    // 1-D [0, 1, 2], 4 before and 5 after.
    let x = iota(&[3]);
    let p = i64s(&[4, 5]);
    let got = |mode| vals(&run(Pad { mode }, &[x.clone(), p.clone()]).unwrap());
    assert_eq!(
        got(PadMode::Reflect),
        [0., 1., 2., 1., 0., 1., 2., 1., 0., 1., 2., 1.]
    );
    assert_eq!(
        got(PadMode::Wrap),
        [2., 0., 1., 2., 0., 1., 2., 0., 1., 2., 0., 1.]
    );
    assert_eq!(
        got(PadMode::Edge),
        [0., 0., 0., 0., 0., 1., 2., 2., 2., 2., 2., 2.]
    );
    assert_eq!(
        got(PadMode::Constant),
        [0., 0., 0., 0., 0., 1., 2., 0., 0., 0., 0., 0.]
    );
}

#[test]
fn negative_pads_crop_before_padding() {
    // [0..5), crop one in front, wrap-pad two at the end: wraps around the cropped data [1, 2, 3, 4].
    let y = run(
        Pad {
            mode: PadMode::Wrap,
        },
        &[iota(&[5]), i64s(&[-1, 2])],
    )
    .unwrap();
    assert_eq!(vals(&y), [1., 2., 3., 4., 1., 2.]);
    let bad = run(Pad::default(), &[iota(&[2]), i64s(&[-2, -1])]);
    assert!(bad.is_err());
}

#[test]
fn pad_with_axes_and_a_typed_constant() {
    let x = t(&[1, 2], Data::I32(vec![5, 6]));
    let v = t(&[], Data::I32(vec![-1]));
    let y = run(Pad::default(), &[x, i64s(&[1, 0]), v, i64s(&[-1, 0])]);
    assert!(y.is_err(), "two axes need four pads");
    // pads = [begin(-1), begin(0), end(-1), end(0)]
    let x = t(&[1, 2], Data::I32(vec![5, 6]));
    let v = t(&[], Data::I32(vec![-1]));
    let y = run(Pad::default(), &[x, i64s(&[1, 0, 0, 1]), v, i64s(&[-1, 0])]).unwrap();
    assert_eq!(y.shape, [2, 3]);
    assert_eq!(y.data, Data::I32(vec![-1, 5, 6, -1, -1, -1]));
}

#[test]
fn slice_clamps_and_steps_backwards() {
    let x = iota(&[10]);
    let y = run(
        Slice {},
        &[x.clone(), i64s(&[-1]), i64s(&[i64::MIN]), None, i64s(&[-3])],
    )
    .unwrap();
    assert_eq!(vals(&y), [9., 6., 3., 0.]);
    let y = run(Slice {}, &[x.clone(), i64s(&[-100]), i64s(&[3])]).unwrap();
    assert_eq!(vals(&y), [0., 1., 2.]);
    let y = run(Slice {}, &[x.clone(), i64s(&[7]), i64s(&[2])]).unwrap();
    assert_eq!(y.shape, [0]);
    assert!(run(Slice {}, &[x, i64s(&[0]), i64s(&[1]), None, i64s(&[0])]).is_err());
}

#[test]
fn reshape_copies_zeros_and_infers_minus_one() {
    let x = iota(&[2, 3, 4]);
    let y = run(Reshape::default(), &[x.clone(), i64s(&[0, -1])]).unwrap();
    assert_eq!(y.shape, [2, 12]);
    assert!(run(Reshape::default(), &[x.clone(), i64s(&[-1, -1])]).is_err());
    assert!(run(Reshape::default(), &[x.clone(), i64s(&[5, -1])]).is_err());
    assert!(run(Reshape::default(), &[x, i64s(&[0, 0, 0, 0])]).is_err());
    let e = f32s(&[0, 3], &[]);
    let y = run(Reshape { allowzero: true }, &[e, i64s(&[3, 0])]).unwrap();
    assert_eq!(y.shape, [3, 0]);
}

#[test]
fn transpose_and_concat_work_on_strings() {
    let s = |v: &[&str]| Data::Str(v.iter().map(|s| s.to_string()).collect());
    let x = t(&[2, 3], s(&["a", "b", "c", "d", "e", "f"]));
    let y = run(Transpose { perm: None }, std::slice::from_ref(&x)).unwrap();
    assert_eq!(y.data, s(&["a", "d", "b", "e", "c", "f"]));
    let y = run(Concat { axis: -1 }, &[x.clone(), x]).unwrap();
    assert_eq!(y.shape, [2, 6]);
    assert_eq!(
        y.data,
        s(&["a", "b", "c", "a", "b", "c", "d", "e", "f", "d", "e", "f"])
    );
    let mixed = run(Concat { axis: 0 }, &[iota(&[1]), i64s(&[1])]);
    assert!(mixed.is_err());
}

#[test]
fn gather_wraps_negative_indices_and_refuses_out_of_range() {
    let x = iota(&[3, 2]);
    let y = run(
        Gather { axis: 0 },
        &[x.clone(), t(&[2], Data::I32(vec![-1, 0]))],
    )
    .unwrap();
    assert_eq!(vals(&y), [4., 5., 0., 1.]);
    let e = run(Gather { axis: 0 }, &[x.clone(), i64s(&[3])]).unwrap_err();
    assert!(e.msg.contains("out of range"), "{}", e.msg);
    assert!(run(Gather { axis: 1 }, &[x.clone(), i64s(&[-3])]).is_err());
    assert!(
        run(
            GatherElements { axis: 1 },
            &[x.clone(), t(&[1, 1], Data::I64(vec![2]))]
        )
        .is_err()
    );
    assert!(
        run(
            GatherNd { batch_dims: 0 },
            &[x, t(&[1, 2], Data::I64(vec![0, 5]))]
        )
        .is_err()
    );
}

#[test]
fn scatter_reductions_combine_duplicates_in_order() {
    let x = t(&[3], Data::I64(vec![1, 2, 3]));
    let idx = t(&[4], Data::I64(vec![0, 0, -1, 1]));
    let upd = t(&[4], Data::I64(vec![10, 20, 30, -5]));
    let red = |reduction| {
        run(
            ScatterElements { axis: 0, reduction },
            &[x.clone(), idx.clone(), upd.clone()],
        )
        .unwrap()
        .data
    };
    assert_eq!(red(ScatterReduction::None), Data::I64(vec![20, -5, 30]));
    assert_eq!(red(ScatterReduction::Add), Data::I64(vec![31, -3, 33]));
    assert_eq!(red(ScatterReduction::Mul), Data::I64(vec![200, -10, 90]));
    assert_eq!(red(ScatterReduction::Max), Data::I64(vec![20, 2, 30]));
    assert_eq!(red(ScatterReduction::Min), Data::I64(vec![1, -5, 3]));
    let bad = t(&[1], Data::I64(vec![3]));
    let one = t(&[1], Data::I64(vec![0]));
    assert!(run(ScatterElements::default(), &[x, bad, one]).is_err());
}

#[test]
fn scatter_on_sub_byte_ints_reduces_on_values() {
    // i4 storage is sign-extended bytes: max(-1, 3) must be 3, not the byte 0xFF.
    let x = t(&[2], Data::Small(DType::I4, vec![0xFF, 0x02]));
    let idx = t(&[2, 1], Data::I64(vec![0, 1]));
    let upd = t(&[2], Data::Small(DType::I4, vec![0x03, 0xF9])); // 3, -7
    let y = run(
        ScatterNd {
            reduction: ScatterReduction::Max,
        },
        &[x.clone(), idx.clone(), upd.clone()],
    )
    .unwrap();
    assert_eq!(y.data, Data::Small(DType::I4, vec![0x03, 0x02]));
    // Addition wraps within 4 bits: 2 + (-7) = -5.
    let y = run(
        ScatterNd {
            reduction: ScatterReduction::Add,
        },
        &[x, idx, upd],
    )
    .unwrap();
    assert_eq!(y.data, Data::Small(DType::I4, vec![0x02, 0xFB]));
}

#[test]
fn strings_refuse_arithmetic_reductions() {
    let s = Data::Str(vec!["a".into()]);
    let r = run(
        ScatterNd {
            reduction: ScatterReduction::Add,
        },
        &[
            t(&[1], s.clone()),
            t(&[1, 1], Data::I64(vec![0])),
            t(&[1], s),
        ],
    );
    assert!(r.is_err());
}

#[test]
fn tensor_scatter_linear_refuses_writes_past_the_cache() {
    let cache = iota(&[1, 4, 1]);
    let upd = f32s(&[1, 2, 1], &[10., 11.]);
    let op = |mode| TensorScatter { axis: 1, mode };
    let y = run(
        op(CacheMode::Circular),
        &[cache.clone(), upd.clone(), i64s(&[3])],
    )
    .unwrap();
    assert_eq!(vals(&y), [11., 1., 2., 10.]);
    assert!(run(op(CacheMode::Linear), &[cache, upd, i64s(&[3])]).is_err());
}

#[test]
fn range_is_exact_for_large_integers_and_counts_like_onnxruntime() {
    let s = |v: i64| t(&[], Data::I64(vec![v]));
    let y = run(Range {}, &[s(1 << 60), s((1 << 60) + 7), s(3)]).unwrap();
    assert_eq!(
        y.data,
        Data::I64(vec![1 << 60, (1 << 60) + 3, (1 << 60) + 6])
    );
    let y = run(Range {}, &[s(5), s(0), s(-2)]).unwrap();
    assert_eq!(y.data, Data::I64(vec![5, 3, 1]));
    assert!(run(Range {}, &[s(0), s(1), s(0)]).is_err());
    let f = |v: f32| f32s(&[], &[v]);
    let y = run(Range {}, &[f(1.0), f(2.0), f(0.25)]).unwrap();
    assert_eq!(vals(&y), [1.0, 1.25, 1.5, 1.75]);
    assert!(run(Range {}, &[f(0.0), f(1e30), f(1e-30)]).is_err());
}

#[test]
fn absurd_data_dependent_sizes_are_errors() {
    let huge = i64s(&[1 << 40, 1 << 40]);
    assert!(run(ConstantOfShape::default(), std::slice::from_ref(&huge)).is_err());
    assert!(run(Expand {}, &[iota(&[1]), i64s(&[1 << 40])]).is_err());
    assert!(run(Tile {}, &[iota(&[2]), i64s(&[1 << 62])]).is_err());
    // One huge dim next to a zero one still allocates a per-axis table: refused too.
    assert!(run(Pad::default(), &[iota(&[0, 1]), i64s(&[0, 1 << 40, 0, 0])]).is_err());
    assert!(run(ConstantOfShape::default(), &[i64s(&[-1])]).is_err());
}

#[test]
fn one_hot_wraps_negative_indices_and_ignores_out_of_range() {
    let ind = i64s(&[-1, 1, 5]);
    let depth = t(&[], Data::I64(vec![3]));
    let v = f32s(&[2], &[0.0, 9.0]);
    let y = run(OneHot { axis: -1 }, &[ind, depth, v]).unwrap();
    assert_eq!(y.shape, [3, 3]);
    assert_eq!(vals(&y), [0., 0., 9., 0., 9., 0., 0., 0., 0.]);
}

#[test]
fn unique_sorted_and_unsorted_outputs() {
    let x = f32s(&[6], &[2., 1., 2., f32::NAN, 1., f32::NAN]);
    let outs = run_n(
        Unique {
            sorted: true,
            axis: None,
        },
        std::slice::from_ref(&x),
        4,
    )
    .unwrap();
    let tens: Vec<&Tensor> = outs.iter().map(|v| v.as_tensor().unwrap()).collect();
    let y = vals(tens[0]);
    assert_eq!(y[..2], [1., 2.]);
    assert!(
        y[2].is_nan() && y.len() == 3,
        "NaNs collapse into one, sorted last"
    );
    assert_eq!(tens[1].data, Data::I64(vec![1, 0, 3]));
    assert_eq!(tens[2].data, Data::I64(vec![1, 0, 1, 2, 0, 2]));
    assert_eq!(tens[3].data, Data::I64(vec![2, 2, 2]));
    let outs = run_n(
        Unique {
            sorted: false,
            axis: None,
        },
        &[x],
        4,
    )
    .unwrap();
    let tens: Vec<&Tensor> = outs.iter().map(|v| v.as_tensor().unwrap()).collect();
    assert_eq!(vals(tens[0])[..2], [2., 1.]);
    assert_eq!(tens[1].data, Data::I64(vec![0, 1, 3]));
    assert_eq!(tens[2].data, Data::I64(vec![0, 1, 0, 2, 1, 2]));
}

#[test]
fn non_zero_lists_coordinates_per_dim() {
    let x = t(&[2, 2], Data::Bool(vec![false, true, true, true]));
    let y = run(NonZero {}, &[x]).unwrap();
    assert_eq!(y.shape, [2, 3]);
    assert_eq!(y.data, Data::I64(vec![0, 1, 1, 1, 0, 1]));
}

#[test]
fn reverse_sequence_reverses_only_the_prefix() {
    // batch_axis 0, time_axis 1: rows are batches.
    let x = iota(&[2, 4]);
    let op = ReverseSequence {
        batch_axis: 0,
        time_axis: 1,
    };
    let y = run(op.clone(), &[x.clone(), i64s(&[3, 1])]).unwrap();
    assert_eq!(vals(&y), [2., 1., 0., 3., 4., 5., 6., 7.]);
    assert!(run(op, &[x, i64s(&[5, 1])]).is_err());
}

fn resize_1d(op: Resize, x: &[f32], scale: f32) -> Vec<f32> {
    let n = x.len();
    let y = run(op, &[f32s(&[n], x), None, f32s(&[1], &[scale])]).unwrap();
    vals(&y)
}

#[test]
fn resize_nearest_modes_round_as_specified() {
    let x = [0., 1., 2., 3., 4.];
    // Asymmetric, scale 2: source coordinates 0, 0.5, 1, 1.5, ...
    let op = |nearest_mode| Resize {
        coordinate_transformation_mode: CoordMode::Asymmetric,
        nearest_mode,
        ..Resize::default()
    };
    assert_eq!(
        resize_1d(op(NearestMode::RoundPreferFloor), &x, 2.0),
        [0., 0., 1., 1., 2., 2., 3., 3., 4., 4.]
    );
    assert_eq!(
        resize_1d(op(NearestMode::RoundPreferCeil), &x, 2.0),
        [0., 1., 1., 2., 2., 3., 3., 4., 4., 4.]
    );
    assert_eq!(
        resize_1d(op(NearestMode::Ceil), &x, 2.0),
        [0., 1., 1., 2., 2., 3., 3., 4., 4., 4.]
    );
    assert_eq!(
        resize_1d(op(NearestMode::Floor), &x, 2.0),
        [0., 0., 1., 1., 2., 2., 3., 3., 4., 4.]
    );
}

#[test]
fn resize_linear_and_cubic_interpolate_with_clamped_edges() {
    let x = [0., 10., 20., 30.];
    let lin = Resize {
        mode: ResizeMode::Linear,
        ..Resize::default()
    };
    // half_pixel, scale 2: x = (y + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, ...; the edge clamps.
    let y = resize_1d(lin, &x, 2.0);
    let want = [0., 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30.];
    for (a, b) in y.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{y:?}");
    }
    // Keys' cubic with a = -0.5 reproduces a linear ramp away from the edges.
    let cubic = Resize {
        mode: ResizeMode::Cubic,
        cubic_coeff_a: -0.5,
        coordinate_transformation_mode: CoordMode::AlignCorners,
        ..Resize::default()
    };
    let ramp: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let y = resize_1d(cubic, &ramp, 2.0);
    let w = 7.0 / 15.0;
    for (i, v) in y.iter().enumerate().take(12).skip(4) {
        assert!((v - i as f32 * w).abs() < 1e-4, "{y:?}");
    }
}

#[test]
fn resize_coefficients_are_normalized() {
    for r in [0.1, 0.5, 0.9, 1.0] {
        let s: f64 = super::resample::tests_support::cubic(r, -0.75).iter().sum();
        assert!((s - 1.0).abs() < 1e-12);
        for scale in [0.3, 0.5, 1.0, 2.0] {
            let s: f64 = super::resample::tests_support::linear_aa(r, scale)
                .iter()
                .sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
    }
}

#[test]
fn resize_rounds_integer_outputs_half_to_even() {
    // u8 [0, 1] linear, asymmetric scale 4: 0, 0.25, 0.5, 0.75, 1, 1, 1, 1 → rounds to 0, 0, 0, 1, 1, ...
    let op = Resize {
        mode: ResizeMode::Linear,
        coordinate_transformation_mode: CoordMode::Asymmetric,
        ..Resize::default()
    };
    let y = run(
        op,
        &[t(&[2], Data::U8(vec![0, 1])), None, f32s(&[1], &[4.0])],
    )
    .unwrap();
    assert_eq!(y.data, Data::U8(vec![0, 0, 0, 1, 1, 1, 1, 1]));
}

#[test]
fn grid_sample_reflection_bounces_between_borders() {
    use super::resample::tests_support::reflect;
    assert_eq!(reflect(-0.75, -0.5, 2.5), -0.25);
    assert_eq!(reflect(3.0, -0.5, 2.5), 2.0);
    assert_eq!(reflect(7.0, -0.5, 2.5), 1.0);
    assert_eq!(reflect(1.0, 0.0, 2.0), 1.0);
}

#[test]
fn depth_to_space_and_back_round_trip() {
    let x = iota(&[1, 8, 2, 3]);
    for mode in [BlockMode::Dcr, BlockMode::Crd] {
        let y = run(
            DepthToSpace { blocksize: 2, mode },
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_eq!(y.shape, [1, 2, 4, 6]);
        let z = run(
            SpaceToDepth { blocksize: 2, mode },
            &[Some(Value::Tensor(y))],
        )
        .unwrap();
        assert_eq!(Some(Value::Tensor(z)), x);
    }
}

#[test]
fn identity_passes_sequences_and_optionals_through() {
    let seq = Value::Sequence(vec![iota(&[2]).unwrap()]);
    let out = run_n(Identity {}, &[Some(seq.clone())], 1).unwrap();
    assert_eq!(out, [seq]);
    let none = Value::Optional(None);
    let out = run_n(Identity {}, &[Some(none.clone())], 1).unwrap();
    assert_eq!(out, [none]);
}

#[test]
fn constant_of_shape_repeats_any_dtype() {
    let op = ConstantOfShape {
        value: Constant::from_i64s(&[1], &[7]),
    };
    let y = run(op, &[i64s(&[2, 0, 3])]).unwrap();
    assert_eq!((y.shape.as_slice(), y.len()), (&[2, 0, 3][..], 0));
    let op = ConstantOfShape {
        value: Constant::from_i64s(&[1], &[7]),
    };
    let y = run(op, &[i64s(&[])]).unwrap();
    assert_eq!(y.data, Data::I64(vec![7]));
}

#[test]
fn split_without_sizes_makes_a_smaller_last_chunk() {
    let outs = run_n(Split { axis: 0 }, &[iota(&[7])], 3).unwrap();
    let lens: Vec<usize> = outs.iter().map(|v| v.as_tensor().unwrap().len()).collect();
    assert_eq!(lens, [3, 3, 1]);
    let bad = run_n(Split { axis: 0 }, &[iota(&[7]), i64s(&[3, 3])], 2);
    assert!(bad.is_err());
}

#[test]
fn trilu_and_eye_like_offset_the_diagonal() {
    let y = run(
        Trilu { upper: false },
        &[iota(&[2, 3]), t(&[], Data::I64(vec![-1]))],
    )
    .unwrap();
    assert_eq!(vals(&y), [0., 0., 0., 3., 0., 0.]);
    let y = run(
        EyeLike {
            dtype: Some(DType::I32),
            k: 1,
        },
        &[iota(&[2, 3])],
    )
    .unwrap();
    assert_eq!(y.data, Data::I32(vec![0, 1, 0, 0, 0, 1]));
}
