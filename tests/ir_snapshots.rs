//! Golden snapshots of the imported IR (insta): every real model of `shared/models`, and one or more
//! representative node-suite models per op family. Under `CI=true` a missing or changed snapshot fails;
//! review changes with `cargo insta review` (see README, "Snapshot tests").

mod common;

use std::path::Path;

fn snapshot_of(dir: &Path) -> String {
    let m =
        carve::load(dir.join("model.onnx")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    carve::ir::text::print(&m.graph)
}

#[test]
fn real_model_ir_snapshots() {
    for dir in common::real_models() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        insta::assert_snapshot!(format!("model_{name}"), snapshot_of(&dir));
    }
}

/// One or more node-suite cases per op family (elementwise, reduce, norm, linalg, conv, rnn, signal,
/// movement, quant, control, misc).
const NODE_CASES: &[&str] = &[
    // elementwise
    "test_relu",
    "test_add_bcast",
    "test_cast_FLOAT_to_FLOAT16",
    "test_where_example",
    "test_clip",
    // reduce
    "test_reduce_sum_keepdims_example",
    "test_argmax_default_axis_example",
    "test_softmax_axis_1",
    "test_top_k",
    // norm
    "test_layer_normalization_2d_axis0",
    "test_batchnorm_example",
    // linalg
    "test_matmul_2d",
    "test_gemm_all_attributes",
    "test_einsum_batch_matmul",
    "test_attention_3d",
    // conv
    "test_conv_with_strides_padding",
    "test_convtranspose_pads",
    "test_maxpool_2d_pads",
    "test_globalaveragepool",
    "test_roialign_aligned_true",
    // rnn
    "test_lstm_defaults",
    "test_gru_defaults",
    // signal
    "test_dft",
    "test_stft",
    // movement
    "test_reshape_reordered_all_dims",
    "test_slice",
    "test_gather_0",
    "test_constant_pad",
    "test_resize_upsample_scales_linear",
    "test_transpose_default",
    "test_concat_2d_axis_0",
    // quant
    "test_quantizelinear",
    "test_dequantizelinear_axis",
    "test_dynamicquantizelinear",
    "test_qlinearmatmul_2D_uint8_float32",
    // control
    "test_if",
    "test_loop11",
    "test_scan9_sum",
    "test_sequence_insert_at_back",
    "test_optional_has_element_tensor_input",
    // misc
    "test_dropout_default",
    "test_nonmaxsuppression_center_point_box_format",
    "test_ai_onnx_ml_label_encoder_string_int",
    "test_sce_mean",
    "test_string_split_basic",
    // expanded function bodies
    "test_layer_normalization_4d_axis_negative_1_expanded",
    "test_range_float_type_positive_delta_expanded",
];

#[test]
fn node_suite_ir_snapshots() {
    let root = common::shared_dir().join("onnx-node-tests");
    for case in NODE_CASES {
        insta::assert_snapshot!(format!("node_{case}"), snapshot_of(&root.join(case)));
    }
}
