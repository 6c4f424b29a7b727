//! Physical channel removal (`carve_passes::prune::remove_channels`), checked with the reference
//! interpreter: removing channels whose weights are exactly zero leaves every output identical, and
//! removing arbitrary channels computes what zeroing their consumer weights computes, on conv,
//! residual, concat (with depthwise conv and batch norm), flatten-into-FC and transformer-FFN graphs.

mod prune_support;

use std::collections::BTreeSet;

use carve::ir::Graph;
use carve::passes::prune::{
    Criterion, Groups, Role, Selection, analyze, choose, kept_count, remove_channels, zero_channels,
};
use prune_support::{CONCAT, FFN, FLATTEN_FC, RESIDUAL, graph, inputs, max_diff, outputs};

/// The index of the group holding `name.axis`.
fn group_index(g: &Graph, groups: &Groups, name: &str, axis: usize) -> usize {
    groups
        .groups
        .iter()
        .position(|gr| {
            gr.consts
                .iter()
                .any(|c| g.value(c.site.value).name == name && c.site.axis == axis)
        })
        .unwrap_or_else(|| panic!("no group holds {name}.{axis}"))
}

fn selection(group: usize, channels: &[usize]) -> Selection {
    let mut s = Selection::new();
    s.insert(group, channels.iter().copied().collect::<BTreeSet<_>>());
    s
}

/// Weight bytes of every constant.
fn const_bytes(g: &Graph) -> u64 {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            carve::ir::Op::Constant(c) => Some(c.num_elements() * 4),
            _ => None,
        })
        .sum()
}

/// Removing `chans` of the group holding `name.axis` equals zeroing their consumer weights.
fn removal_equals_zeroing(src: &str, name: &str, axis: usize, chans: &[usize]) {
    let g = graph(src);
    let groups = analyze(&g);
    let sel = selection(group_index(&g, &groups, name, axis), chans);
    let removed = remove_channels(&g, &groups, &sel).unwrap_or_else(|e| panic!("{e}"));
    let zeroed = zero_channels(&g, &groups, &sel).unwrap_or_else(|e| panic!("{e}"));
    assert!(const_bytes(&removed) < const_bytes(&g), "the model shrinks");
    for seed in 0..3 {
        let ins = inputs(&g, seed);
        let a = outputs(&zeroed, &ins);
        let b = outputs(&removed, &ins);
        let full = outputs(&g, &ins);
        assert!(max_diff(&a, &b) <= 1e-5, "{}", max_diff(&a, &b));
        assert!(max_diff(&a, &full) > 1e-3, "zeroing changed the output");
    }
}

#[test]
fn removing_residual_channels_equals_zeroing_them() {
    removal_equals_zeroing(RESIDUAL, "w1", 0, &[1, 6]);
}

#[test]
fn removing_concat_channels_across_both_branches_equals_zeroing_them() {
    // 2: the depthwise branch; 5 and 9: the 1×1 branch (its channels 1 and 5).
    removal_equals_zeroing(CONCAT, "wa", 0, &[2, 5, 9]);
}

#[test]
fn removing_channels_before_a_flatten_drops_their_fc_rows() {
    removal_equals_zeroing(FLATTEN_FC, "w", 0, &[0, 4]);
    let g = graph(FLATTEN_FC);
    let groups = analyze(&g);
    let sel = selection(group_index(&g, &groups, "w", 0), &[0, 4]);
    let removed = remove_channels(&g, &groups, &sel).unwrap();
    let wf = removed.values.iter().position(|v| v.name == "wf").unwrap();
    assert_eq!(removed.values[wf].ty.to_string(), "f32[16,5]");
}

#[test]
fn removing_ffn_neurons_equals_zeroing_them() {
    removal_equals_zeroing(FFN, "w1", 1, &[0, 3, 4, 15]);
}

/// Zeroes every producer and parameter slice of `chans` in the group of `name.axis`.
fn zero_weights(g: &Graph, groups: &Groups, gi: usize, chans: &[usize]) -> Graph {
    let mut out = g.clone();
    for &c in chans {
        for cs in groups.groups[gi]
            .consts
            .iter()
            .filter(|c| c.role != Role::Consumer)
        {
            let idx: BTreeSet<u64> = groups.groups[gi].channels[c].indices_on(cs.site).collect();
            let k = out.constant_of(cs.site.value).unwrap();
            let z = carve::passes::prune::remove::zero_constant(k, cs.site.axis, &idx).unwrap();
            carve::passes::prune::remove::set_constant(&mut out, cs.site.value, z);
        }
    }
    out
}

#[test]
fn removing_channels_with_exactly_zero_weights_leaves_outputs_identical() {
    for (src, name, axis, chans) in [
        (RESIDUAL, "w1", 0, vec![0, 3]),
        (FLATTEN_FC, "w", 0, vec![2]),
        (FFN, "w1", 1, vec![1, 7, 8]),
    ] {
        let g = graph(src);
        let groups = analyze(&g);
        let gi = group_index(&g, &groups, name, axis);
        let zero = zero_weights(&g, &groups, gi, &chans);
        let removed = remove_channels(&zero, &groups, &selection(gi, &chans)).unwrap();
        for seed in 0..3 {
            let ins = inputs(&g, seed);
            assert_eq!(outputs(&zero, &ins), outputs(&removed, &ins), "{}", g.name);
        }
    }
}

#[test]
fn blocked_channels_and_emptying_a_layer_are_refused() {
    let g = graph(RESIDUAL);
    let groups = analyze(&g);
    let input = group_index(&g, &groups, "w1", 1);
    let e = remove_channels(&g, &groups, &selection(input, &[0])).unwrap_err();
    assert!(e.to_string().contains("graph input 'x'"), "{e}");
    let gi = group_index(&g, &groups, "w1", 0);
    let e = remove_channels(&g, &groups, &selection(gi, &[0, 1, 2, 3, 4, 5, 6, 7])).unwrap_err();
    assert!(e.to_string().contains("removes all 8"), "{e}");
}

#[test]
fn the_policy_removes_the_weakest_channels_and_keeps_lane_multiples() {
    assert_eq!(kept_count(64, 0.3), 48); // 45 rounded up to a multiple of 8
    assert_eq!(kept_count(20, 0.3), 16); // 14 rounded up to a multiple of 4
    assert_eq!(kept_count(12, 0.3), 9); // small groups are not rounded
    assert_eq!(kept_count(10, 0.3), 7);
    assert_eq!(kept_count(3, 0.9), 1);
    // Scale channel 5's filters (both producers of the residual group) down: it goes first.
    let mut g = graph(RESIDUAL);
    let groups = analyze(&g);
    let gi = group_index(&g, &groups, "w1", 0);
    for name in ["w1", "w2"] {
        let v = carve::ir::ValueId(g.values.iter().position(|v| v.name == name).unwrap() as u32);
        let c = g.constant_of(v).unwrap();
        let dims: Vec<u64> =
            c.ty.dims()
                .unwrap()
                .iter()
                .map(|d| d.known().unwrap())
                .collect();
        let per = (dims[1] * dims[2] * dims[3]) as usize;
        let mut vals: Vec<f32> = c.to_f64s().unwrap().iter().map(|&x| x as f32).collect();
        for x in &mut vals[5 * per..6 * per] {
            *x *= 0.01;
        }
        carve::passes::prune::remove::set_constant(
            &mut g,
            v,
            carve::ir::Constant::from_f32s(&dims, &vals),
        );
    }
    for crit in [Criterion::L1, Criterion::L2] {
        let sel = choose(&g, &groups, 0.15, crit);
        assert_eq!(sel.get(&gi), Some(&BTreeSet::from([5])), "{crit}");
    }
}

/// Per-channel means of every compensation input of `sel` on `ins`, measured by running `g` with
/// those values as extra outputs.
fn means_on(
    g: &Graph,
    groups: &Groups,
    sel: &Selection,
    ins: &[carve_runtime::interp::Value],
) -> std::collections::BTreeMap<carve::passes::prune::Site, Vec<f64>> {
    let sites = carve::passes::prune::compensation_inputs(groups, sel);
    let mut observed = g.clone();
    let extra: Vec<_> = sites.iter().map(|s| s.value).collect();
    observed.outputs.extend(extra.iter().copied());
    let outs = outputs(&observed, ins);
    let base = g.outputs.len();
    sites
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let dims: Vec<usize> = g
                .ty(s.value)
                .as_tensor()
                .and_then(|t| t.dims())
                .unwrap()
                .iter()
                .map(|d| d.known().unwrap() as usize)
                .collect();
            let inner: usize = dims[s.axis + 1..].iter().product();
            let c = dims[s.axis];
            let x = &outs[base + k];
            let mut m = vec![0.0; c];
            for (i, v) in x.iter().enumerate() {
                m[(i / inner) % c] += f64::from(*v);
            }
            let n = (x.len() / c) as f64;
            (*s, m.into_iter().map(|v| v / n).collect())
        })
        .collect()
}

#[test]
fn bias_compensation_with_exact_means_restores_a_linear_consumer() {
    // One sample: the flattened activations' means are the activations, so folding the removed
    // rows' contribution into the FC bias gives back the unpruned output exactly.
    let g = graph(FLATTEN_FC);
    let groups = analyze(&g);
    let sel = selection(group_index(&g, &groups, "w", 0), &[1, 3]);
    let ins = inputs(&g, 7);
    let means = means_on(&g, &groups, &sel, &ins);
    let pruned = remove_channels(&g, &groups, &sel).unwrap();
    let (repaired, report) =
        carve::passes::prune::compensate(&g, &pruned, &groups, &sel, &means).unwrap();
    assert_eq!(report.compensated, ["%y"]);
    let full = outputs(&g, &ins);
    assert!(max_diff(&outputs(&pruned, &ins), &full) > 1e-3);
    assert!(max_diff(&outputs(&repaired, &ins), &full) < 1e-4);
}

#[test]
fn bias_compensation_gives_a_biasless_conv_a_bias_that_restores_its_channel_means() {
    let src = "graph @two_convs(%x: f32[1,3,5,5]) -> (f32[1,4,5,5]) {
  %w1 = const f32[8,3,3,3] #0000000000000041
  %c1 = conv(%x, %w1) {pads=[1, 1, 1, 1]} : f32[1,8,5,5]
  %r1 = relu(%c1) : f32[1,8,5,5]
  %w2 = const f32[4,8,1,1] #0000000000000042
  %y = conv(%r1, %w2) : f32[1,4,5,5]
  return %y
}
";
    let g = graph(src);
    let groups = analyze(&g);
    let sel = selection(group_index(&g, &groups, "w1", 0), &[0, 2, 5]);
    let ins = inputs(&g, 3);
    let means = means_on(&g, &groups, &sel, &ins);
    let pruned = remove_channels(&g, &groups, &sel).unwrap();
    let (repaired, _) =
        carve::passes::prune::compensate(&g, &pruned, &groups, &sel, &means).unwrap();
    assert_eq!(
        repaired.nodes.len(),
        g.nodes.len() + 1,
        "a bias constant was added"
    );
    let channel_means = |o: &[Vec<f32>]| -> Vec<f64> {
        o[0].chunks(25)
            .map(|c| c.iter().map(|&v| f64::from(v)).sum::<f64>() / 25.0)
            .collect()
    };
    let full = channel_means(&outputs(&g, &ins));
    let raw = channel_means(&outputs(&pruned, &ins));
    let fixed = channel_means(&outputs(&repaired, &ins));
    for ((f, r), x) in full.iter().zip(&raw).zip(&fixed) {
        assert!((f - x).abs() < 1e-4, "{f} vs {x}");
        assert!((f - r).abs() > 1e-4, "pruning moved the mean");
    }
}
