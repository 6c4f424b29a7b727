//! Unit tests of the per-op properties: elementwise-ness, channel maps of each family's main ops and
//! their FLOP and byte counts.

use super::{AxisRef, ChannelMap, NodeTypes, Sizes, Work};
use crate::ops::conv::{Conv, Pool};
use crate::ops::elementwise::{Add, Exp, Gelu, Relu};
use crate::ops::linalg::{Gemm, MatMul};
use crate::ops::movement::{Concat, Flatten, Reshape, Split, Transpose};
use crate::ops::norm::{BatchNorm, LayerNorm};
use crate::ops::reduce::Softmax;
use crate::ops::testutil::{input, k, sym};
use crate::{DType, Dim, Graph, Op, Type};

fn i(n: usize, a: usize) -> AxisRef {
    AxisRef::input(n, a)
}

fn o(n: usize, a: usize) -> AxisRef {
    AxisRef::output(n, a)
}

/// Runs `op` on f32 inputs of the given dims (`None`: absent) with `n_out` outputs and returns its
/// work (exact sizes) and channel map.
fn node(op: impl Into<Op>, dims: &[Option<&[Dim]>], n_out: usize) -> (Option<Work>, ChannelMap) {
    let mut g = Graph::new("g");
    let ins: Vec<_> = dims
        .iter()
        .enumerate()
        .map(|(n, d)| d.map(|d| input(&mut g, &format!("i{n}"), DType::F32, d)))
        .collect();
    let op = op.into();
    let outs = g
        .add_node(
            "n",
            op.clone(),
            ins.clone(),
            (0..n_out).map(|n| format!("o{n}")).collect(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let inputs: Vec<Option<&Type>> = ins.iter().map(|v| v.map(|v| g.ty(v))).collect();
    let outputs: Vec<Type> = outs.iter().map(|&v| g.ty(v).clone()).collect();
    let t = NodeTypes {
        inputs: &inputs,
        outputs: &outputs,
        sizes: Sizes::EXACT,
    };
    (op.work(&t), op.channels(&t))
}

fn ks(d: &[u64]) -> Vec<Dim> {
    d.iter().map(|&n| k(n)).collect()
}

#[test]
fn elementwise_ops_are_elementwise_and_the_others_are_not() {
    let yes: [Op; 4] = [
        Relu::default().into(),
        Add::default().into(),
        Exp::default().into(),
        Gelu::default().into(),
    ];
    for op in &yes {
        assert!(op.is_elementwise(), "{}", op.name());
    }
    let no: [Op; 5] = [
        Conv::default().into(),
        MatMul::default().into(),
        Reshape::default().into(),
        BatchNorm::default().into(),
        Softmax::default().into(),
    ];
    for op in &no {
        assert!(!op.is_elementwise(), "{}", op.name());
    }
}

#[test]
fn conv_with_one_group_separates_input_and_output_channels() {
    let (x, w, b) = (ks(&[1, 3, 8, 8]), ks(&[4, 3, 3, 3]), ks(&[4]));
    let conv = Conv {
        pads: vec![1, 1, 1, 1],
        ..Conv::default()
    };
    let (work, map) = node(conv, &[Some(&x), Some(&w), Some(&b)], 1);
    assert_eq!(
        map,
        ChannelMap::Tied(vec![
            vec![i(0, 0), o(0, 0)],
            vec![i(0, 1), i(1, 1)],
            vec![i(1, 0), i(2, 0), o(0, 1)],
        ])
    );
    let work = work.expect("static shapes");
    let out = 4.0 * 8.0 * 8.0;
    assert_eq!(work.macs, out * 27.0);
    assert_eq!(work.flops, out);
    assert_eq!(work.bytes_read, 4.0 * (3.0 * 64.0 + 108.0 + 4.0));
    assert_eq!(work.bytes_written, 4.0 * out);
    assert_eq!(work.total_flops(), 2.0 * out * 27.0 + out);
}

#[test]
fn depthwise_conv_maps_channel_c_to_c_and_grouped_conv_keeps_blocks() {
    let (x, w) = (ks(&[1, 8, 5, 5]), ks(&[8, 1, 3, 3]));
    let dw = Conv {
        group: 8,
        ..Conv::default()
    };
    let (work, map) = node(dw, &[Some(&x), Some(&w)], 1);
    assert_eq!(
        map,
        ChannelMap::Tied(vec![
            vec![i(0, 0), o(0, 0)],
            vec![i(0, 1), i(1, 0), o(0, 1)]
        ])
    );
    assert_eq!(work.map(|w| w.macs), Some(8.0 * 3.0 * 3.0 * 9.0));

    let w = ks(&[8, 4, 3, 3]);
    let grouped = Conv {
        group: 2,
        ..Conv::default()
    };
    let (_, map) = node(grouped, &[Some(&x), Some(&w)], 1);
    assert_eq!(
        map,
        ChannelMap::Grouped {
            groups: 2,
            input: vec![i(0, 1)],
            output: vec![i(1, 0), o(0, 1)],
        }
    );
}

#[test]
fn matmul_contracts_input_channels_and_produces_output_channels() {
    let (a, b) = (ks(&[2, 6, 5]), ks(&[5, 7]));
    let (work, map) = node(MatMul::default(), &[Some(&a), Some(&b)], 1);
    assert_eq!(
        map,
        ChannelMap::Tied(vec![
            vec![i(0, 2), i(1, 0)],
            vec![i(1, 1), o(0, 2)],
            vec![i(0, 1), o(0, 1)],
        ])
    );
    let work = work.expect("static shapes");
    assert_eq!(work.macs, 2.0 * 6.0 * 7.0 * 5.0);
    assert_eq!(
        map.space_of(i(1, 1)),
        Some([i(1, 1), o(0, 2)].as_slice()),
        "N is the output channel space"
    );
}

#[test]
fn gemm_follows_its_transposes_and_ties_the_bias_to_n() {
    let (a, b, c) = (ks(&[5, 3]), ks(&[7, 5]), ks(&[7]));
    let gemm = Gemm {
        trans_a: true,
        trans_b: true,
        ..Gemm::default()
    };
    let (work, map) = node(gemm, &[Some(&a), Some(&b), Some(&c)], 1);
    assert_eq!(
        map,
        ChannelMap::Tied(vec![
            vec![i(0, 0), i(1, 1)],
            vec![i(1, 0), o(0, 1), i(2, 0)],
            vec![i(0, 1), o(0, 0)],
        ])
    );
    assert_eq!(work.map(|w| w.macs), Some(3.0 * 7.0 * 5.0));
}

#[test]
fn concat_split_and_transpose_map_axes_and_reshape_is_opaque() {
    let (a, b) = (ks(&[1, 3, 4]), ks(&[1, 5, 4]));
    let (work, map) = node(Concat { axis: -2 }, &[Some(&a), Some(&b)], 1);
    assert_eq!(map, ChannelMap::Concat { axis: 1 });
    let work = work.expect("static shapes");
    assert_eq!(work.total_flops(), 0.0, "movement computes nothing");
    assert_eq!(work.bytes(), 4.0 * 2.0 * 32.0);

    let x = ks(&[1, 8, 4]);
    let mut g = Graph::new("g");
    let xv = input(&mut g, "x", DType::F32, &x);
    let s = g.add_const("s", crate::Constant::from_i64s(&[2], &[3, 5]));
    let outs = g
        .add_node(
            "n",
            Split { axis: 1 }.into(),
            vec![Some(xv), Some(s)],
            vec!["a".into(), "b".into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let inputs = [Some(g.ty(xv)), Some(g.ty(s))];
    let outputs: Vec<Type> = outs.iter().map(|&v| g.ty(v).clone()).collect();
    let t = NodeTypes {
        inputs: &inputs,
        outputs: &outputs,
        sizes: Sizes::EXACT,
    };
    assert_eq!(
        Op::from(Split { axis: 1 }).channels(&t),
        ChannelMap::Split { axis: 1 }
    );

    let t = Transpose {
        perm: Some(vec![0, 2, 3, 1]),
    };
    let (_, map) = node(t, &[Some(&ks(&[1, 3, 4, 5]))], 1);
    assert_eq!(
        map,
        ChannelMap::Tied(vec![
            vec![i(0, 0), o(0, 0)],
            vec![i(0, 2), o(0, 1)],
            vec![i(0, 3), o(0, 2)],
            vec![i(0, 1), o(0, 3)],
        ])
    );

    let mut g = Graph::new("g");
    let xv = input(&mut g, "x", DType::F32, &ks(&[2, 6]));
    let shape = g.add_const("s", crate::Constant::from_i64s(&[1], &[12]));
    let outs = g
        .add_node(
            "n",
            Reshape::default().into(),
            vec![Some(xv), Some(shape)],
            vec!["y".into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let inputs = [Some(g.ty(xv)), Some(g.ty(shape))];
    let outputs = [g.ty(outs[0]).clone()];
    let t = NodeTypes {
        inputs: &inputs,
        outputs: &outputs,
        sizes: Sizes::EXACT,
    };
    let op = Op::from(Reshape::default());
    assert_eq!(op.channels(&t), ChannelMap::Opaque);
    assert_eq!(op.work(&t), Some(Work::default()), "a view moves no bytes");
}

#[test]
fn elementwise_ops_broadcast_channels_and_count_transcendentals() {
    let (x, bias) = (ks(&[2, 4, 3]), ks(&[4, 1]));
    let (work, map) = node(Add::default(), &[Some(&x), Some(&bias)], 1);
    assert_eq!(
        map,
        ChannelMap::Tied(vec![
            vec![o(0, 0), i(0, 0)],
            vec![o(0, 1), i(0, 1), i(1, 0)],
            vec![o(0, 2), i(0, 2)],
        ])
    );
    let work = work.expect("static shapes");
    assert_eq!((work.flops, work.transcendental), (24.0, 0.0));
    assert_eq!(work.bytes_read, 4.0 * (24.0 + 4.0));

    let (work, _) = node(Exp::default(), &[Some(&x)], 1);
    assert_eq!(
        work.map(|w| (w.flops, w.transcendental)),
        Some((24.0, 24.0))
    );
    let (work, _) = node(Gelu::default(), &[Some(&x)], 1);
    assert_eq!(
        work.map(|w| (w.flops, w.transcendental)),
        Some((72.0, 24.0))
    );
}

#[test]
fn batchnorm_and_layernorm_tie_their_parameters_to_the_channel() {
    let x = ks(&[2, 4, 3, 3]);
    let p = ks(&[4]);
    let (work, map) = node(
        BatchNorm::default(),
        &[Some(&x), Some(&p), Some(&p), Some(&p), Some(&p)],
        1,
    );
    assert_eq!(
        map,
        ChannelMap::Tied(vec![
            vec![i(0, 0), o(0, 0)],
            vec![i(0, 1), i(1, 0), i(2, 0), i(3, 0), i(4, 0), o(0, 1)],
        ])
    );
    assert_eq!(work.map(|w| w.flops), Some(8.0 * 72.0));

    let (x, s) = (ks(&[2, 5, 8]), ks(&[8]));
    let (_, map) = node(LayerNorm::default(), &[Some(&x), Some(&s), Some(&s)], 1);
    assert_eq!(
        map.space_of(o(0, 2)),
        Some([i(0, 2), i(1, 0), i(2, 0), o(0, 2)].as_slice())
    );
}

#[test]
fn pooling_and_softmax_keep_channels() {
    let x = ks(&[1, 3, 4, 4]);
    let pool = Pool {
        kernel_shape: vec![2, 2],
        ..Pool::default()
    };
    let (_, map) = node(pool, &[Some(&x)], 1);
    assert_eq!(
        map,
        ChannelMap::Tied(vec![vec![i(0, 0), o(0, 0)], vec![i(0, 1), o(0, 1)]])
    );
    let (work, map) = node(Softmax::default(), &[Some(&x)], 1);
    assert_eq!(map.space_of(o(0, 1)), Some([i(0, 1), o(0, 1)].as_slice()));
    assert_eq!(
        map.space_of(o(0, 3)),
        None,
        "the normalized axis is no channel"
    );
    assert_eq!(work.map(|w| w.flops), Some(2.0 * 48.0 + 48.0));
}

#[test]
fn symbolic_dims_are_unknown_exactly_and_guessed_on_request() {
    let x = [sym("N"), k(4)];
    let mut g = Graph::new("g");
    let xv = input(&mut g, "x", DType::F32, &x);
    let outs = g
        .add_node(
            "n",
            Relu::default().into(),
            vec![Some(xv)],
            vec!["y".into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let inputs = [Some(g.ty(xv))];
    let outputs = [g.ty(outs[0]).clone()];
    let op = Op::from(Relu::default());
    let exact = NodeTypes {
        inputs: &inputs,
        outputs: &outputs,
        sizes: Sizes::EXACT,
    };
    assert_eq!(op.work(&exact), None);
    let guessed = NodeTypes {
        sizes: Sizes::guess(16.0),
        ..exact
    };
    let w = op.work(&guessed).expect("guessed sizes are known");
    assert_eq!(w.flops, 64.0);
    assert_eq!(w.bytes(), 2.0 * 64.0 * 4.0);
    assert_eq!(
        op.channels(&exact),
        ChannelMap::Tied(vec![vec![o(0, 0), i(0, 0)], vec![o(0, 1), i(0, 1)]])
    );
}

#[test]
fn fused_conv_is_its_conv_plus_the_activation_per_output_element() {
    use crate::ops::activation::{ActKind, Activation};
    use crate::ops::fused::{EpiStep, Epilogue, FusedConv};
    let (x, w) = (ks(&[1, 3, 8, 8]), ks(&[4, 3, 3, 3]));
    let conv = Conv::default();
    let (base, base_map) = node(conv.clone(), &[Some(&x), Some(&w)], 1);
    let sigmoid = EpiStep::Act(Activation::plain(ActKind::Sigmoid));
    let fused = FusedConv::new(&conv, Epilogue(vec![sigmoid]));
    let (work, map) = node(fused, &[Some(&x), Some(&w)], 1);
    let (base, work) = (base.expect("static"), work.expect("static"));
    let out = 4.0 * 6.0 * 6.0;
    assert_eq!(work.macs, base.macs);
    let (plain, transcendental) = (ActKind::Sigmoid.flops(0.0), ActKind::Sigmoid.flops(1.0));
    assert_eq!(work.flops, base.flops + out * transcendental);
    assert_eq!(work.transcendental, out * (transcendental - plain));
    assert_eq!(map, base_map);

    // A residual add is one more FLOP per output element, and its operand makes the channel map
    // opaque (the conv's map does not describe it).
    let y = ks(&[1, 4, 6, 6]);
    let fused = FusedConv::new(&conv, Epilogue(vec![sigmoid, EpiStep::Residual]));
    let (with_residual, map) = node(fused, &[Some(&x), Some(&w), Some(&y)], 1);
    let with_residual = with_residual.expect("static");
    assert_eq!(with_residual.flops, work.flops + out);
    assert_eq!(map, ChannelMap::Opaque);
}

#[test]
fn flatten_maps_a_channel_to_a_block_of_columns_and_squeeze_ties_the_rest() {
    let x = vec![sym("N"), k(8), k(2), k(3)];
    let (_, map) = node(Flatten::default(), &[Some(&x)], 1);
    assert_eq!(
        map,
        ChannelMap::Blocks {
            tied: vec![vec![i(0, 0), o(0, 0)]],
            blocks: vec![super::BlockMap {
                outer: i(0, 1),
                inner: 6,
                flat: o(0, 1),
            }],
        }
    );
    let x = ks(&[1, 8, 1, 1]);
    let (_, map) = node(Flatten::default(), &[Some(&x)], 1);
    assert_eq!(
        map,
        ChannelMap::Blocks {
            tied: vec![vec![i(0, 1), o(0, 1)]],
            blocks: vec![],
        }
    );
}
