//! Pruning's dependency groups (`carve_passes::prune::analyze`): snapshots of the groups' text form
//! on small IR graphs (residual add, concat with batch norm and a depthwise conv, flatten into a fully
//! connected layer, a transformer FFN) and on the real models, plus the facts each snapshot shows.

mod prune_support;

use carve::passes::prune::{Role, analyze};
use prune_support::{CONCAT, FFN, FLATTEN_FC, RESIDUAL, graph};

/// The group holding the constant axis `name.axis`.
fn group_of<'a>(
    g: &carve::ir::Graph,
    groups: &'a carve::passes::prune::Groups,
    name: &str,
    axis: usize,
) -> &'a carve::passes::prune::Group {
    groups
        .groups
        .iter()
        .find(|gr| {
            gr.consts
                .iter()
                .any(|c| g.value(c.site.value).name == name && c.site.axis == axis)
        })
        .unwrap_or_else(|| panic!("no group holds {name}.{axis}"))
}

#[test]
fn a_residual_add_ties_both_convs_filters_into_one_group() {
    let g = graph(RESIDUAL);
    let groups = analyze(&g);
    let grp = group_of(&g, &groups, "w1", 0);
    assert_eq!((grp.channels.len(), grp.prunable().count()), (8, 8));
    let producers: Vec<&str> = grp
        .with_role(Role::Producer)
        .map(|c| g.value(c.site.value).name.as_str())
        .collect();
    assert_eq!(producers, ["w1", "w2"]);
    let consumers: Vec<&str> = grp
        .with_role(Role::Consumer)
        .map(|c| g.value(c.site.value).name.as_str())
        .collect();
    assert_eq!(consumers, ["w2", "w3"]);
    // The input's channels and the output's are fixed by the graph's signature.
    assert_eq!(group_of(&g, &groups, "w1", 1).prunable().count(), 0);
    assert_eq!(group_of(&g, &groups, "w3", 0).prunable().count(), 0);
    insta::assert_snapshot!(groups.to_text(&g));
}

#[test]
fn concat_maps_each_branch_into_its_range_and_depthwise_ties_through() {
    let g = graph(CONCAT);
    let groups = analyze(&g);
    // One group: both branches' filters, the depthwise conv, batch norm and the consumer.
    let grp = group_of(&g, &groups, "wa", 0);
    assert_eq!(grp.channels.len(), 10);
    assert!(std::ptr::eq(grp, group_of(&g, &groups, "wb", 0)));
    assert!(std::ptr::eq(grp, group_of(&g, &groups, "wc", 1)));
    // Channel k of the concat is channel k of `a` for k < 4 and channel k-4 of `b` after.
    let cat = g.values.iter().position(|v| v.name == "cat").unwrap();
    let wb = g.values.iter().position(|v| v.name == "wb").unwrap();
    let ch = grp
        .channels
        .iter()
        .find(|c| {
            c.members
                .iter()
                .any(|(s, i)| s.value.index() == cat && *i == 6)
        })
        .unwrap();
    assert!(
        ch.members
            .iter()
            .any(|(s, i)| s.value.index() == wb && s.axis == 0 && *i == 2)
    );
    insta::assert_snapshot!(groups.to_text(&g));
}

#[test]
fn flatten_into_a_fully_connected_layer_maps_a_channel_to_its_block_of_rows() {
    let g = graph(FLATTEN_FC);
    let groups = analyze(&g);
    let grp = group_of(&g, &groups, "w", 0);
    assert_eq!((grp.channels.len(), grp.prunable().count()), (6, 6));
    let wf = g.values.iter().position(|v| v.name == "wf").unwrap();
    // Channel 1 of the conv is rows 4..8 of the FC weight.
    let rows: Vec<u64> = grp.channels[1]
        .members
        .iter()
        .filter(|(s, _)| s.value.index() == wf)
        .map(|&(_, i)| i)
        .collect();
    assert_eq!(rows, [4, 5, 6, 7]);
    insta::assert_snapshot!(groups.to_text(&g));
}

#[test]
fn ffn_neurons_are_prunable_and_the_residual_stream_is_not() {
    let g = graph(FFN);
    let groups = analyze(&g);
    let hidden = group_of(&g, &groups, "w1", 1);
    assert_eq!((hidden.channels.len(), hidden.prunable().count()), (16, 16));
    assert!(std::ptr::eq(hidden, group_of(&g, &groups, "w2", 0)));
    let stream = group_of(&g, &groups, "w2", 1);
    assert_eq!(stream.prunable().count(), 0, "it reaches the graph output");
    insta::assert_snapshot!(groups.to_text(&g));
}

fn model_groups(name: &str) -> String {
    let path = prune_support::shared_model(name);
    let model = carve::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    analyze(&model.graph).to_text(&model.graph)
}

#[test]
fn groups_of_the_digits_mlp() {
    let text = model_groups("sk_digits_mlp");
    insta::assert_snapshot!(text);
}

#[test]
fn groups_of_ppocr_mobile_v2_cls() {
    let text = model_groups("ppocr_mobile_v2_cls");
    insta::assert_snapshot!(text);
}

#[test]
fn groups_of_magika() {
    let text = model_groups("magika_standard_v3_3");
    insta::assert_snapshot!(text);
}

#[test]
fn groups_of_minilm_l6_v2() {
    let text = model_groups("minilm_l6_v2");
    insta::assert_snapshot!(text);
}
