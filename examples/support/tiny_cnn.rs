//! Builds the bundled example model `examples/models/tiny_cnn.onnx`: a small image classifier
//! (Conv 3→8 3×3 + bias → Relu → MaxPool 2×2 → Conv 8→8 → Relu → GlobalAveragePool → Flatten → Gemm 8→4 →
//! Softmax) with deterministic pseudo-random weights and a symbolic batch dim `N`. Shared by the
//! `make_example_model` example and the test that checks the committed files are reproducible. An example
//! input, `tiny_cnn_input.npy`, is generated next to it.

use carve::frontend::proto::tensor_shape_proto::{Dimension, dimension};
use carve::frontend::proto::{
    AttributeProto, AttributeType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};
use prost::Message;

/// Deterministic weights in [-0.5, 0.5) from a 64-bit LCG.
fn weights(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn init(name: &str, dims: &[i64], seed: u64) -> TensorProto {
    let n = dims.iter().product::<i64>() as usize;
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: weights(seed, n),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn tensor_type(dims: &[Result<i64, &str>]) -> Option<TypeProto> {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Ok(v) => dimension::Value::DimValue(*v),
                Err(p) => dimension::Value::DimParam(p.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    Some(TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: 1,
            shape: Some(TensorShapeProto { dim }),
        })),
        ..Default::default()
    })
}

/// A deterministic example input for the model, `image` f32[1,3,16,16], as `.npy` bytes.
pub fn tiny_cnn_input_npy() -> Vec<u8> {
    let t = carve_runtime::Tensor::new(
        vec![1, 3, 16, 16],
        carve_runtime::Data::F32(weights(42, 3 * 16 * 16)),
    )
    .expect("768 elements for [1,3,16,16]");
    carve::npy::npy_bytes(&t).expect("f32 tensors encode as .npy")
}

/// The model's protobuf bytes.
pub fn tiny_cnn_bytes() -> Vec<u8> {
    let graph = GraphProto {
        name: "tiny_cnn".into(),
        node: vec![
            node(
                "Conv",
                "conv1",
                &["image", "w1", "b1"],
                &["c1"],
                vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
            ),
            node("Relu", "relu1", &["c1"], &["r1"], vec![]),
            node(
                "MaxPool",
                "pool1",
                &["r1"],
                &["p1"],
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ),
            node(
                "Conv",
                "conv2",
                &["p1", "w2", "b2"],
                &["c2"],
                vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
            ),
            node("Relu", "relu2", &["c2"], &["r2"], vec![]),
            node("GlobalAveragePool", "gap", &["r2"], &["g"], vec![]),
            node("Flatten", "flatten", &["g"], &["f"], vec![int("axis", 1)]),
            node(
                "Gemm",
                "fc",
                &["f", "w3", "b3"],
                &["logits"],
                vec![int("transB", 1)],
            ),
            node(
                "Softmax",
                "softmax",
                &["logits"],
                &["probs"],
                vec![int("axis", 1)],
            ),
        ],
        initializer: vec![
            init("w1", &[8, 3, 3, 3], 1),
            init("b1", &[8], 2),
            init("w2", &[8, 8, 3, 3], 3),
            init("b2", &[8], 4),
            init("w3", &[4, 8], 5),
            init("b3", &[4], 6),
        ],
        input: vec![ValueInfoProto {
            name: "image".into(),
            r#type: tensor_type(&[Err("N"), Ok(3), Ok(16), Ok(16)]),
            ..Default::default()
        }],
        output: vec![ValueInfoProto {
            name: "probs".into(),
            r#type: tensor_type(&[Err("N"), Ok(4)]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "carve examples/make_example_model".into(),
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}
