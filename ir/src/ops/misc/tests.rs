//! Unit tests of misc-op inference.

use super::*;
use crate::{Graph, Op, ValueId};

fn t(dtype: DType, dims: &[Dim]) -> Type {
    Type::Tensor(TensorType::new(dtype, Shape(dims.to_vec())))
}
fn k(n: u64) -> Dim {
    Dim::Known(n)
}
fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}
fn run(g: &mut Graph, op: impl Into<Op>, inputs: &[Option<ValueId>], n: usize) -> Vec<String> {
    let outs = g
        .add_node(
            "n",
            op.into(),
            inputs.to_vec(),
            (0..n).map(|i| format!("o{i}")).collect(),
        )
        .unwrap();
    outs.iter().map(|&v| g.ty(v).to_string()).collect()
}
fn fails(g: &mut Graph, op: impl Into<Op>, inputs: &[Option<ValueId>], n: usize) -> String {
    g.add_node(
        "n",
        op.into(),
        inputs.to_vec(),
        (0..n).map(|i| format!("o{i}")).collect(),
    )
    .unwrap_err()
    .msg
}

#[test]
fn op_structs_stay_small() {
    // Large attributes are boxed so that every node does not pay for the biggest op.
    assert!(
        std::mem::size_of::<MiscOp>() <= 280,
        "{}",
        std::mem::size_of::<MiscOp>()
    );
}

#[test]
fn dropout_passes_data_through_with_a_bool_mask() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", t(DType::F16, &[sym("N"), k(8)]));
    let r = g.add_const("r", Constant::from_f32s(&[], &[0.1]));
    assert_eq!(
        run(&mut g, Dropout::default(), &[Some(x), Some(r)], 2),
        ["f16[N,8]", "bool[N,8]"]
    );
    let r2 = g.add_input("r2", t(DType::F32, &[k(2)]));
    assert!(fails(&mut g, Dropout::default(), &[Some(x), Some(r2)], 1).contains("one element"));
}

#[test]
fn random_ops_take_shape_from_attribute_or_input() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", t(DType::F64, &[sym("N"), k(2)]));
    let op = RandomNormal {
        shape: vec![2, 3],
        ..RandomNormal::default()
    };
    assert_eq!(run(&mut g, op, &[], 1), ["f32[2,3]"]);
    assert_eq!(
        run(&mut g, RandomUniform::default(), &[Some(x)], 1),
        ["f64[N,2]"]
    );
    let op = RandomUniform {
        dtype: Some(DType::F16),
        ..RandomUniform::default()
    };
    assert_eq!(run(&mut g, op, &[Some(x)], 1), ["f16[N,2]"]);
    let op = RandomNormal {
        shape: vec![-1],
        ..RandomNormal::default()
    };
    assert!(fails(&mut g, op, &[], 1).contains("negative"));
    let op = Bernoulli {
        dtype: Some(DType::Bool),
        seed: None,
    };
    assert_eq!(run(&mut g, op, &[Some(x)], 1), ["bool[N,2]"]);
    let op = Multinomial {
        sample_size: 5,
        ..Multinomial::default()
    };
    assert_eq!(run(&mut g, op, &[Some(x)], 1), ["i32[N,5]"]);
}

#[test]
fn nms_yields_index_triples() {
    let mut g = Graph::new("g");
    let b = g.add_input("b", t(DType::F32, &[k(1), k(6), k(4)]));
    let s = g.add_input("s", t(DType::F32, &[k(1), k(2), k(6)]));
    let bad = g.add_input("bad", t(DType::F32, &[k(1), k(2), k(5)]));
    assert_eq!(
        run(&mut g, NonMaxSuppression::default(), &[Some(b), Some(s)], 1),
        ["i64[?,3]"]
    );
    assert!(
        fails(
            &mut g,
            NonMaxSuppression::default(),
            &[Some(b), Some(bad)],
            1
        )
        .contains("disagree")
    );
}

#[test]
fn string_ops() {
    let mut g = Graph::new("g");
    let s = g.add_input("s", t(DType::String, &[k(1), k(6)]));
    let op = StringNormalizer {
        stopwords: vec!["monday".into()],
        ..StringNormalizer::default()
    };
    assert_eq!(run(&mut g, op, &[Some(s)], 1), ["string[1,?]"]);
    assert_eq!(
        run(&mut g, StringNormalizer::default(), &[Some(s)], 1),
        ["string[1,6]"]
    );
    let v = g.add_input("v", t(DType::String, &[k(6)]));
    assert_eq!(
        run(&mut g, StringConcat {}, &[Some(s), Some(v)], 1),
        ["string[1,6]"]
    );
    assert_eq!(
        run(&mut g, StringSplit::default(), &[Some(v)], 2),
        ["string[6,?]", "i64[6]"]
    );
    assert_eq!(
        run(&mut g, RegexFullMatch::default(), &[Some(s)], 1),
        ["bool[1,6]"]
    );
    let x = g.add_input("x", t(DType::F32, &[k(6)]));
    assert!(fails(&mut g, RegexFullMatch::default(), &[Some(x)], 1).contains("string"));
}

#[test]
fn image_decoder_and_tfidf() {
    let mut g = Graph::new("g");
    let bytes = g.add_input("b", t(DType::U8, &[k(1000)]));
    let op = ImageDecoder {
        pixel_format: PixelFormat::Grayscale,
    };
    assert_eq!(run(&mut g, op, &[Some(bytes)], 1), ["u8[?,?,1]"]);
    let x = g.add_input("x", t(DType::I32, &[sym("N"), k(6)]));
    let op = TfIdfVectorizer {
        max_gram_length: 2,
        min_gram_length: 2,
        ngram_counts: vec![0, 4],
        ngram_indexes: vec![0, 1, 2, 3, 6],
        pool_int64s: vec![2, 3, 5, 4, 5, 6, 7, 8, 6, 7],
        ..TfIdfVectorizer::default()
    };
    assert_eq!(run(&mut g, op.clone(), &[Some(x)], 1), ["f32[N,7]"]);
    let s = g.add_input("s", t(DType::String, &[k(3)]));
    assert!(fails(&mut g, op, &[Some(s)], 1).contains("pool"));
}

#[test]
fn losses_reduce_or_keep_the_batch_shape() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", t(DType::F32, &[sym("N"), k(5), k(6)]));
    let y = g.add_input("y", t(DType::I64, &[sym("N"), k(6)]));
    let w = g.add_input("w", t(DType::F32, &[k(5)]));
    let none = NllLoss {
        reduction: Reduction::None,
        ignore_index: None,
    };
    assert_eq!(
        run(&mut g, none, &[Some(x), Some(y), Some(w)], 1),
        ["f32[N,6]"]
    );
    assert_eq!(
        run(&mut g, NllLoss::default(), &[Some(x), Some(y)], 1),
        ["f32[]"]
    );
    assert_eq!(
        run(
            &mut g,
            SoftmaxCrossEntropyLoss::default(),
            &[Some(x), Some(y)],
            2
        ),
        ["f32[]", "f32[N,5,6]"]
    );
    let bad = g.add_input("bad", t(DType::I64, &[sym("N"), k(7)]));
    assert!(fails(&mut g, NllLoss::default(), &[Some(x), Some(bad)], 1).contains("match"));
    let w4 = g.add_input("w4", t(DType::F32, &[k(4)]));
    assert!(
        fails(&mut g, NllLoss::default(), &[Some(x), Some(y), Some(w4)], 1).contains("classes")
    );
}

#[test]
fn optimizers_update_each_parameter_group() {
    let mut g = Graph::new("g");
    let r = g.add_input("r", t(DType::F32, &[]));
    let step = g.add_input("t", t(DType::I64, &[]));
    let x1 = g.add_input("x1", t(DType::F32, &[k(1)]));
    let x2 = g.add_input("x2", t(DType::F32, &[k(2)]));
    let ins = [r, step, x1, x2, x1, x2, x1, x2, x1, x2].map(Some);
    assert_eq!(
        run(&mut g, Adam::default(), &ins, 6),
        ["f32[1]", "f32[2]", "f32[1]", "f32[2]", "f32[1]", "f32[2]"]
    );
    assert_eq!(
        run(&mut g, Adagrad::default(), &ins[..8], 4),
        ["f32[1]", "f32[2]", "f32[1]", "f32[2]"]
    );
    assert!(fails(&mut g, Momentum::default(), &ins[..7], 2).contains("groups"));
    let mixed = [r, step, x1, x2, x2, x1, x1, x2].map(Some);
    assert!(fails(&mut g, Momentum::default(), &mixed, 2).contains("group 1"));
}

#[test]
fn classical_ml_ops() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", t(DType::F32, &[sym("N"), k(4)]));
    let idx = g.add_input("i", t(DType::I64, &[k(2)]));
    assert_eq!(
        run(&mut g, ArrayFeatureExtractor {}, &[Some(x), Some(idx)], 1),
        ["f32[N,2]"]
    );
    let v = g.add_input("v", t(DType::F32, &[k(4)]));
    assert_eq!(
        run(&mut g, ArrayFeatureExtractor {}, &[Some(v), Some(idx)], 1),
        ["f32[1,2]"]
    );
    // sklearn converters look up class labels with the argmax as a `[N, 1]` index tensor.
    let am = g.add_input("am", t(DType::I64, &[sym("N"), k(1)]));
    assert_eq!(
        run(&mut g, ArrayFeatureExtractor {}, &[Some(v), Some(am)], 1),
        ["f32[1,N]"]
    );
    assert_eq!(
        run(&mut g, Binarizer::default(), &[Some(x)], 1),
        ["f32[N,4]"]
    );
    let xi = g.add_input("xi", t(DType::I64, &[sym("N"), k(4)]));
    assert_eq!(
        run(&mut g, Normalizer::default(), &[Some(xi)], 1),
        ["f32[N,4]"]
    );
    assert_eq!(run(&mut g, Scaler::default(), &[Some(xi)], 1), ["f32[N,4]"]);
    let zm = ZipMap {
        classlabels_strings: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        ..ZipMap::default()
    };
    assert_eq!(run(&mut g, zm, &[Some(x)], 1), ["seq<map<string,f32[]>>"]);
    let zm = ZipMap {
        classlabels_int64s: vec![1, 2],
        ..ZipMap::default()
    };
    assert!(fails(&mut g, zm, &[Some(x)], 1).contains("columns"));
    let lc = LinearClassifier {
        classlabels_ints: vec![0, 1],
        coefficients: vec![1.0; 4],
        intercepts: vec![0.0],
        ..LinearClassifier::default()
    };
    assert_eq!(run(&mut g, lc, &[Some(x)], 2), ["i64[N]", "f32[N,2]"]);
    let lc = LinearClassifier {
        classlabels_strings: vec!["a".into(), "b".into(), "c".into()],
        coefficients: vec![1.0; 12],
        ..LinearClassifier::default()
    };
    assert_eq!(run(&mut g, lc, &[Some(x)], 2), ["string[N]", "f32[N,3]"]);
}

#[test]
fn label_encoder_maps_to_the_values_type() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", t(DType::I64, &[sym("N")]));
    let op = LabelEncoder {
        keys: Box::new(Constant::from_i64s(&[2], &[1, 2])),
        values: Box::new(Constant::from_f32s(&[2], &[0.5, 1.5])),
        default: Box::new(Constant::from_f32s(&[], &[-0.0])),
    };
    assert_eq!(run(&mut g, op.clone(), &[Some(x)], 1), ["f32[N]"]);
    let bad = LabelEncoder {
        default: Box::new(Constant::from_i64s(&[], &[-1])),
        ..op.clone()
    };
    assert!(fails(&mut g, bad, &[Some(x)], 1).contains("default"));
    let s = g.add_input("s", t(DType::F32, &[k(3)]));
    assert!(fails(&mut g, op, &[Some(s)], 1).contains("keys"));
}

#[test]
fn tree_ensemble_outputs_targets_per_row() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", t(DType::F64, &[sym("N"), k(2)]));
    let op = TreeEnsemble {
        n_targets: 2,
        tree_roots: vec![0],
        nodes_featureids: vec![0],
        nodes_modes: Box::new(Constant::from_i64s(&[1], &[0])),
        nodes_splits: Box::new(Constant::from_f32s(&[1], &[1.0])),
        nodes_truenodeids: vec![0],
        nodes_trueleafs: vec![1],
        nodes_falsenodeids: vec![1],
        nodes_falseleafs: vec![1],
        leaf_targetids: vec![0, 1],
        leaf_weights: Box::new(Constant::from_f32s(&[2], &[1.0, 2.0])),
        ..TreeEnsemble::default()
    };
    assert_eq!(run(&mut g, op.clone(), &[Some(x)], 1), ["f64[N,2]"]);
    let bad = TreeEnsemble {
        leaf_targetids: vec![0, 2],
        ..op
    };
    assert!(fails(&mut g, bad, &[Some(x)], 1).contains("out of range"));
}
