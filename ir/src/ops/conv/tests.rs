//! Unit tests of the conv family: window arithmetic edge cases and inference of every op.

use super::*;
use crate::{Constant, Graph, Op};

fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}

fn k(v: u64) -> Dim {
    Dim::Known(v)
}

fn input(g: &mut Graph, name: &str, dtype: DType, dims: Vec<Dim>) -> crate::ValueId {
    g.add_input(name, Type::Tensor(TensorType::new(dtype, Shape(dims))))
}

fn run(
    g: &mut Graph,
    op: impl Into<Op>,
    inputs: Vec<Option<crate::ValueId>>,
    n: usize,
) -> Result<Vec<String>, InferError> {
    let names = (0..n).map(|i| format!("o{i}")).collect();
    let outs = g.add_node("n", op.into(), inputs, names)?;
    Ok(outs.iter().map(|&o| g.ty(o).to_string()).collect())
}

fn w(kernel: u64, stride: u64, dilation: u64, pb: u64, pe: u64) -> Window {
    Window {
        kernel,
        stride,
        dilation,
        pad_begin: pb,
        pad_end: pe,
    }
}

#[test]
fn window_output_floor_and_explicit_pads() {
    assert_eq!(
        window_output(32, &w(3, 1, 1, 1, 1), AutoPad::NotSet, false),
        Ok((32, 1, 1))
    );
    assert_eq!(
        window_output(32, &w(3, 2, 1, 0, 0), AutoPad::NotSet, false),
        Ok((15, 0, 0))
    );
    assert_eq!(
        window_output(7, &w(3, 1, 2, 0, 0), AutoPad::NotSet, false),
        Ok((3, 0, 0))
    );
    assert_eq!(
        window_output(5, &w(2, 2, 1, 0, 1), AutoPad::NotSet, false),
        Ok((3, 0, 1))
    );
}

#[test]
fn window_output_same_is_ceil_of_input_over_stride() {
    assert_eq!(
        window_output(32, &w(2, 1, 1, 9, 9), AutoPad::SameUpper, false),
        Ok((32, 0, 1))
    );
    assert_eq!(
        window_output(32, &w(2, 1, 1, 0, 0), AutoPad::SameLower, false),
        Ok((32, 1, 0))
    );
    assert_eq!(
        window_output(5, &w(3, 2, 1, 0, 0), AutoPad::SameUpper, false),
        Ok((3, 1, 1))
    );
    // Kernel smaller than stride: no padding needed.
    assert_eq!(
        window_output(6, &w(1, 4, 1, 0, 0), AutoPad::SameUpper, true),
        Ok((2, 0, 0))
    );
    assert_eq!(
        window_output(0, &w(3, 1, 1, 0, 0), AutoPad::SameUpper, false),
        Ok((0, 1, 2))
    );
}

#[test]
fn window_output_valid_ignores_pads() {
    assert_eq!(
        window_output(32, &w(5, 1, 1, 2, 2), AutoPad::Valid, false),
        Ok((28, 0, 0))
    );
    assert_eq!(
        window_output(32, &w(5, 3, 1, 2, 2), AutoPad::Valid, false),
        Ok((10, 0, 0))
    );
}

#[test]
fn window_output_ceil_mode_drops_windows_starting_in_end_padding() {
    // test_maxpool_2d_ceil: 4x4, k3 s2 -> 2x2.
    assert_eq!(
        window_output(4, &w(3, 2, 1, 0, 0), AutoPad::NotSet, true),
        Ok((2, 0, 0))
    );
    assert_eq!(
        window_output(4, &w(3, 2, 1, 0, 0), AutoPad::NotSet, false),
        Ok((1, 0, 0))
    );
    // test_maxpool_2d_ceil_output_size_reduce_by_one: 2x2, k1 s2 -> 1x1.
    assert_eq!(
        window_output(2, &w(1, 2, 1, 0, 0), AutoPad::NotSet, true),
        Ok((1, 0, 0))
    );
    // ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start in the end padding.
    assert_eq!(
        window_output(5, &w(2, 2, 1, 1, 1), AutoPad::NotSet, true),
        Ok((3, 1, 1))
    );
    // A window that starts inside the input is kept.
    assert_eq!(
        window_output(6, &w(2, 2, 1, 1, 1), AutoPad::NotSet, true),
        Ok((4, 1, 1))
    );
}

#[test]
fn window_output_rejects_bad_geometry() {
    assert!(window_output(2, &w(3, 1, 1, 0, 0), AutoPad::NotSet, false).is_err());
    assert!(window_output(4, &w(0, 1, 1, 0, 0), AutoPad::NotSet, false).is_err());
    assert!(window_output(4, &w(1, 0, 1, 0, 0), AutoPad::NotSet, false).is_err());
    assert!(window_output(4, &w(1, 1, 0, 0, 0), AutoPad::NotSet, false).is_err());
    assert!(
        window_output(
            u64::MAX,
            &w(u64::MAX, 1, u64::MAX, u64::MAX, 1),
            AutoPad::NotSet,
            false
        )
        .is_err()
    );
}

#[test]
fn transposed_output_formula_same_and_explicit_size() {
    // test_convtranspose: 3x3, k3 -> 5x5.
    assert_eq!(
        transposed_output(3, &w(3, 1, 1, 0, 0), 0, AutoPad::NotSet, None),
        Ok((5, 0, 0))
    );
    // strides 3, output_padding 1 (test_convtranspose_output_shape-style): 3·2 + 1 + 3 = 10.
    assert_eq!(
        transposed_output(3, &w(3, 3, 1, 0, 0), 1, AutoPad::NotSet, None),
        Ok((10, 0, 0))
    );
    assert_eq!(
        transposed_output(3, &w(3, 2, 1, 0, 0), 0, AutoPad::SameUpper, None),
        Ok((6, 0, 1))
    );
    assert_eq!(
        transposed_output(3, &w(3, 2, 1, 0, 0), 0, AutoPad::SameLower, None),
        Ok((6, 1, 0))
    );
    assert_eq!(
        transposed_output(3, &w(3, 3, 1, 0, 0), 0, AutoPad::NotSet, Some(10)),
        Ok((10, 0, -1))
    );
    assert!(transposed_output(1, &w(1, 1, 1, 1, 1), 0, AutoPad::NotSet, None).is_err());
    let huge = w(u64::MAX, u64::MAX, 1, 0, 0);
    assert!(transposed_output(u64::MAX, &huge, u64::MAX, AutoPad::NotSet, None).is_err());
    assert!(transposed_output(u64::MAX, &huge, 0, AutoPad::SameUpper, None).is_err());
}

#[test]
fn conv_infers_output_and_keeps_symbolic_batch() {
    let mut g = Graph::new("t");
    let x = input(
        &mut g,
        "x",
        DType::F32,
        vec![sym("N"), k(3), k(224), k(224)],
    );
    let wt = g.add_const("w", Constant::from_f32s(&[16, 3, 3, 3], &[0.0; 432]));
    let op = Conv {
        strides: vec![2, 2],
        pads: vec![1, 1, 1, 1],
        ..Conv::default()
    };
    assert_eq!(
        run(&mut g, op, vec![Some(x), Some(wt)], 1).unwrap(),
        ["f32[N,16,112,112]"]
    );
}

#[test]
fn conv_same_padding_keeps_symbolic_spatial_dims() {
    let mut g = Graph::new("t");
    let x = input(
        &mut g,
        "x",
        DType::F32,
        vec![sym("N"), k(4), sym("H"), sym("W")],
    );
    let wt = input(&mut g, "w", DType::F32, vec![k(8), k(2), k(5), k(5)]);
    let same = Conv {
        group: 2,
        auto_pad: AutoPad::SameUpper,
        ..Conv::default()
    };
    assert_eq!(
        run(&mut g, same, vec![Some(x), Some(wt)], 1).unwrap(),
        ["f32[N,8,H,W]"]
    );
    let pads = Conv {
        group: 2,
        pads: vec![2, 2, 2, 2],
        ..Conv::default()
    };
    assert_eq!(
        run(&mut g, pads, vec![Some(x), Some(wt)], 1).unwrap(),
        ["f32[N,8,H,W]"]
    );
    let strided = Conv {
        group: 2,
        strides: vec![2, 1],
        pads: vec![2, 2, 2, 2],
        ..Conv::default()
    };
    assert_eq!(
        run(&mut g, strided, vec![Some(x), Some(wt)], 1).unwrap(),
        ["f32[N,8,?,W]"]
    );
}

#[test]
fn conv_with_unknown_ranks_uses_the_weight_or_attributes() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", Type::Tensor(TensorType::unranked(DType::F32)));
    let wt = input(&mut g, "w", DType::F32, vec![k(8), k(4), k(3)]);
    assert_eq!(
        run(&mut g, Conv::default(), vec![Some(x), Some(wt)], 1).unwrap(),
        ["f32[?,8,?]"]
    );
    let wu = g.add_input("wu", Type::Tensor(TensorType::unranked(DType::F32)));
    assert_eq!(
        run(&mut g, Conv::default(), vec![Some(x), Some(wu)], 1).unwrap(),
        ["f32[*]"]
    );
}

#[test]
fn conv_rejects_channel_mismatch_dtype_mismatch_and_bad_bias() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, vec![k(1), k(3), k(8), k(8)]);
    let wt = input(&mut g, "w", DType::F32, vec![k(8), k(4), k(3), k(3)]);
    let e = run(&mut g, Conv::default(), vec![Some(x), Some(wt)], 1).unwrap_err();
    assert!(e.msg.contains("input channels"), "{e}");
    let wh = input(&mut g, "wh", DType::F16, vec![k(8), k(3), k(3), k(3)]);
    assert!(run(&mut g, Conv::default(), vec![Some(x), Some(wh)], 1).is_err());
    let w3 = input(&mut g, "w3", DType::F32, vec![k(8), k(3), k(3), k(3)]);
    let b = input(&mut g, "b", DType::F32, vec![k(7)]);
    assert!(run(&mut g, Conv::default(), vec![Some(x), Some(w3), Some(b)], 1).is_err());
    let xi = input(&mut g, "xi", DType::I32, vec![k(1), k(3), k(8), k(8)]);
    assert!(run(&mut g, Conv::default(), vec![Some(xi), Some(w3)], 1).is_err());
    let bad_strides = Conv {
        strides: vec![1],
        ..Conv::default()
    };
    assert!(run(&mut g, bad_strides, vec![Some(x), Some(w3)], 1).is_err());
    let neg = Conv {
        group: -1,
        ..Conv::default()
    };
    assert!(run(&mut g, neg, vec![Some(x), Some(w3)], 1).is_err());
    let big = Conv {
        kernel_shape: vec![5, 5],
        ..Conv::default()
    };
    assert!(run(&mut g, big, vec![Some(x), Some(w3)], 1).is_err());
}

#[test]
fn conv_transpose_output_shape_padding_and_same() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, vec![sym("N"), k(1), k(3), k(3)]);
    let wt = input(&mut g, "w", DType::F32, vec![k(1), k(2), k(3), k(3)]);
    let ins = vec![Some(x), Some(wt)];
    assert_eq!(
        run(&mut g, ConvTranspose::default(), ins.clone(), 1).unwrap(),
        ["f32[N,2,5,5]"]
    );
    let op = ConvTranspose {
        strides: vec![3, 2],
        output_padding: vec![1, 1],
        ..ConvTranspose::default()
    };
    assert_eq!(run(&mut g, op, ins.clone(), 1).unwrap(), ["f32[N,2,10,8]"]);
    let op = ConvTranspose {
        strides: vec![3, 2],
        output_shape: vec![10, 8],
        ..ConvTranspose::default()
    };
    assert_eq!(run(&mut g, op, ins.clone(), 1).unwrap(), ["f32[N,2,10,8]"]);
    let op = ConvTranspose {
        strides: vec![2, 2],
        auto_pad: AutoPad::SameUpper,
        ..ConvTranspose::default()
    };
    assert_eq!(run(&mut g, op, ins.clone(), 1).unwrap(), ["f32[N,2,6,6]"]);
    let op = ConvTranspose {
        group: 2,
        ..ConvTranspose::default()
    };
    assert!(run(&mut g, op, ins, 1).is_err());
}

#[test]
fn conv_transpose_keeps_symbolic_dims_when_size_preserving() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, vec![sym("N"), k(4), sym("L")]);
    let wt = input(&mut g, "w", DType::F32, vec![k(4), k(3), k(3)]);
    let op = ConvTranspose {
        group: 2,
        pads: vec![1, 1],
        ..ConvTranspose::default()
    };
    assert_eq!(
        run(&mut g, op, vec![Some(x), Some(wt)], 1).unwrap(),
        ["f32[N,6,L]"]
    );
    let op = ConvTranspose {
        group: 2,
        strides: vec![2],
        ..ConvTranspose::default()
    };
    assert_eq!(
        run(&mut g, op, vec![Some(x), Some(wt)], 1).unwrap(),
        ["f32[N,6,?]"]
    );
}

#[test]
fn pool_kinds_ceil_mode_and_indices() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, vec![sym("N"), k(3), k(32), k(32)]);
    let op = Pool {
        kernel_shape: vec![2, 2],
        strides: vec![2, 2],
        ..Pool::default()
    };
    assert_eq!(
        run(&mut g, op, vec![Some(x)], 2).unwrap(),
        ["f32[N,3,16,16]", "i64[N,3,16,16]"]
    );
    let op = Pool {
        kind: PoolKind::Avg,
        kernel_shape: vec![3, 3],
        strides: vec![2, 2],
        ceil_mode: true,
        ..Pool::default()
    };
    assert_eq!(
        run(&mut g, op.clone(), vec![Some(x)], 1).unwrap(),
        ["f32[N,3,16,16]"]
    );
    assert!(run(&mut g, op, vec![Some(x)], 2).is_err());
    let op = Pool {
        kind: PoolKind::Lp,
        kernel_shape: vec![3, 3],
        dilations: vec![2, 2],
        ..Pool::default()
    };
    assert_eq!(
        run(&mut g, op, vec![Some(x)], 1).unwrap(),
        ["f32[N,3,28,28]"]
    );
    assert!(run(&mut g, Pool::default(), vec![Some(x)], 1).is_err());
}

#[test]
fn pool_rank_comes_from_kernel_shape_when_input_is_unranked() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", Type::Tensor(TensorType::unranked(DType::U8)));
    let op = Pool {
        kernel_shape: vec![3],
        ..Pool::default()
    };
    assert_eq!(run(&mut g, op, vec![Some(x)], 1).unwrap(), ["u8[?,?,?]"]);
    let avg = Pool {
        kind: PoolKind::Avg,
        kernel_shape: vec![3],
        ..Pool::default()
    };
    assert!(run(&mut g, avg, vec![Some(x)], 1).is_err());
}

#[test]
fn global_pool_keeps_batch_and_channels() {
    let mut g = Graph::new("t");
    let x = input(
        &mut g,
        "x",
        DType::F16,
        vec![sym("N"), k(8), sym("H"), k(7)],
    );
    assert_eq!(
        run(&mut g, GlobalPool::default(), vec![Some(x)], 1).unwrap(),
        ["f16[N,8,1,1]"]
    );
    let bad = input(&mut g, "b", DType::F32, vec![k(3)]);
    assert!(run(&mut g, GlobalPool::default(), vec![Some(bad)], 1).is_err());
}

#[test]
fn max_unpool_default_and_explicit_output_shape() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, vec![k(1), k(1), k(2), k(2)]);
    let i = input(&mut g, "i", DType::I64, vec![k(1), k(1), k(2), k(2)]);
    let op = MaxUnpool {
        kernel_shape: vec![2, 2],
        strides: vec![2, 2],
        ..MaxUnpool::default()
    };
    assert_eq!(
        run(&mut g, op.clone(), vec![Some(x), Some(i)], 1).unwrap(),
        ["f32[1,1,4,4]"]
    );
    let s = g.add_const("s", Constant::from_i64s(&[4], &[1, 1, 5, 5]));
    assert_eq!(
        run(&mut g, op.clone(), vec![Some(x), Some(i), Some(s)], 1).unwrap(),
        ["f32[1,1,5,5]"]
    );
    let dynamic = input(&mut g, "d", DType::I64, vec![k(4)]);
    assert_eq!(
        run(&mut g, op, vec![Some(x), Some(i), Some(dynamic)], 1).unwrap(),
        ["f32[?,?,?,?]"]
    );
}

#[test]
fn roi_ops_output_per_roi() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, vec![k(1), k(3), k(10), k(10)]);
    let rois = input(&mut g, "r", DType::F32, vec![sym("R"), k(4)]);
    let bi = input(&mut g, "b", DType::I64, vec![sym("R")]);
    let op = RoiAlign {
        output_height: 5,
        output_width: 5,
        ..RoiAlign::default()
    };
    assert_eq!(
        run(&mut g, op, vec![Some(x), Some(rois), Some(bi)], 1).unwrap(),
        ["f32[R,3,5,5]"]
    );
    let rois5 = input(&mut g, "r5", DType::F32, vec![k(7), k(5)]);
    let op = MaxRoiPool {
        pooled_shape: vec![2, 3],
        ..MaxRoiPool::default()
    };
    assert_eq!(
        run(&mut g, op, vec![Some(x), Some(rois5)], 1).unwrap(),
        ["f32[7,3,2,3]"]
    );
    assert!(run(&mut g, MaxRoiPool::default(), vec![Some(x), Some(rois5)], 1).is_err());
}

#[test]
fn deform_conv_checks_offset_channels() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, vec![k(1), k(1), k(3), k(3)]);
    let wt = input(&mut g, "w", DType::F32, vec![k(1), k(1), k(2), k(2)]);
    let off = input(&mut g, "o", DType::F32, vec![k(1), k(8), k(2), k(2)]);
    assert_eq!(
        run(
            &mut g,
            DeformConv::default(),
            vec![Some(x), Some(wt), Some(off)],
            1
        )
        .unwrap(),
        ["f32[1,1,2,2]"]
    );
    let bad = input(&mut g, "bad", DType::F32, vec![k(1), k(4), k(2), k(2)]);
    assert!(
        run(
            &mut g,
            DeformConv::default(),
            vec![Some(x), Some(wt), Some(bad)],
            1
        )
        .is_err()
    );
}

#[test]
fn causal_conv_state_has_kernel_minus_one_positions() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, vec![sym("B"), k(8), sym("L")]);
    let wt = input(&mut g, "w", DType::F32, vec![k(8), k(1), k(4)]);
    assert_eq!(
        run(&mut g, CausalConv::default(), vec![Some(x), Some(wt)], 2).unwrap(),
        ["f32[B,8,L]", "f32[B,8,3]"]
    );
    let past = input(&mut g, "p", DType::F32, vec![k(2), k(8), k(2)]);
    assert!(
        run(
            &mut g,
            CausalConv::default(),
            vec![Some(x), Some(wt), None, Some(past)],
            2
        )
        .is_err()
    );
}

#[test]
fn spatial_output_dims_without_kernel_only_for_same() {
    let attrs = window_attrs(&[2], &[], &[], AutoPad::SameLower, false);
    assert_eq!(
        spatial_output_dims(&[k(7)], &[None], &attrs),
        Ok(vec![k(4)])
    );
    let attrs = window_attrs(&[2], &[], &[], AutoPad::NotSet, false);
    assert_eq!(
        spatial_output_dims(&[k(7)], &[None], &attrs),
        Ok(vec![Dim::Unknown])
    );
    let attrs = window_attrs(&[], &[], &[1, -1], AutoPad::NotSet, false);
    assert!(spatial_output_dims(&[k(7)], &[Some(1)], &attrs).is_err());
}
