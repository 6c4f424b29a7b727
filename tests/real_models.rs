//! The six real models of `shared/models`: each imports, verifies and round-trips through the text
//! format, and `carve inspect` reports their inputs, outputs and parameter counts correctly.
//!
//! The expected numbers were computed independently of carve, with the `onnx` Python package: parameters are
//! the elements of every initializer and Constant-node tensor (subgraphs included), bytes their dense size
//! (`numpy` itemsize × elements).

mod common;

use std::path::Path;

struct Expect {
    name: &'static str,
    params: u64,
    bytes: u64,
    inputs: &'static [&'static str],
    outputs: &'static [&'static str],
}

const MODELS: &[Expect] = &[
    Expect {
        name: "magika_standard_v3_3",
        params: 784_519,
        bytes: 3_138_152,
        inputs: &["bytes"],
        outputs: &["target_label"],
    },
    Expect {
        name: "minilm_l6_v2",
        params: 22_565_482,
        bytes: 90_262_136,
        inputs: &["input_ids", "attention_mask", "token_type_ids"],
        outputs: &["last_hidden_state", "sentence_embedding"],
    },
    Expect {
        name: "ppocr_mobile_v2_cls",
        params: 133_777,
        bytes: 535_412,
        inputs: &["x"],
        outputs: &["save_infer_model/scale_0.tmp_1"],
    },
    Expect {
        name: "ppocrv4_det",
        params: 1_171_841,
        bytes: 4_687_364,
        inputs: &["x"],
        outputs: &["sigmoid_0.tmp_0"],
    },
    Expect {
        name: "silero_vad_openvino_16k",
        params: 309_718,
        bytes: 1_239_204,
        inputs: &["input", "state"],
        outputs: &["output", "stateN"],
    },
    Expect {
        name: "sk_digits_mlp",
        params: 50_837,
        bytes: 203_352,
        inputs: &["X"],
        outputs: &["label", "probabilities"],
    },
];

fn model_path(name: &str) -> std::path::PathBuf {
    common::shared_dir().join("models").join(name)
}

#[test]
fn the_expectation_table_covers_every_real_model() {
    let names: Vec<String> = common::real_models()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let listed: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
    assert_eq!(names, listed);
}

#[test]
fn every_real_model_imports_verifies_and_round_trips() {
    for m in MODELS {
        let model = common::import_roundtrip(&model_path(m.name))
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let g = &model.graph;
        let ins: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
        let outs: Vec<&str> = g
            .outputs
            .iter()
            .map(|&v| g.value(v).name.as_str())
            .collect();
        assert_eq!(ins, m.inputs, "{}: inputs", m.name);
        assert_eq!(outs, m.outputs, "{}: outputs", m.name);
    }
}

#[test]
fn inspect_reports_inputs_outputs_and_parameter_counts() {
    for m in MODELS {
        let path = model_path(m.name).join("model.onnx");
        let s = carve::inspect::summarize(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        assert_eq!(s.params, m.params, "{}: parameter count", m.name);
        assert_eq!(s.param_bytes, m.bytes, "{}: parameter bytes", m.name);
        let ins: Vec<&str> = s.inputs.iter().map(|p| p.name.as_str()).collect();
        let outs: Vec<&str> = s.outputs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(ins, m.inputs, "{}", m.name);
        assert_eq!(outs, m.outputs, "{}", m.name);
        if let Err(e) = &s.import {
            panic!("{}: inspect could not import: {e}", m.name);
        }
        let text = carve::inspect::render(Path::new(m.name), &s);
        assert!(
            text.contains("unsupported ops: none"),
            "{}:\n{text}",
            m.name
        );
    }
}
