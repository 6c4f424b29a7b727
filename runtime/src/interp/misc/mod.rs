//! Interpreter kernels for the misc op family (`carve_ir::ops::misc`): dropout and random generators,
//! non-max suppression, string ops, n-gram vectorization, losses, training optimizers and the
//! classical-ML ops.
//!
//! Not implemented (they report "no kernel"): `image_decoder` (needs image codecs for PNG, JPEG, BMP,
//! TIFF, WebP, PNM and JPEG 2000) and `zip_map` (its result, a sequence of maps, has no runtime value
//! representation yet).

mod loss;
mod ml;
mod nms;
mod optim;
mod random;
mod strings;
mod tfidf;

use carve_ir::ops::misc::MiscOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one misc op.
pub fn eval(op: &MiscOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        MiscOp::Dropout(o) => random::dropout(o, cx),
        MiscOp::RandomNormal(o) => random::random_normal(o, cx),
        MiscOp::RandomUniform(o) => random::random_uniform(o, cx),
        MiscOp::Bernoulli(o) => random::bernoulli(o, cx),
        MiscOp::Multinomial(o) => random::multinomial(o, cx),
        MiscOp::NonMaxSuppression(o) => nms::eval(o, cx),
        MiscOp::StringNormalizer(o) => strings::normalizer(o, cx),
        MiscOp::StringConcat(_) => strings::concat(cx),
        MiscOp::StringSplit(o) => strings::split(o, cx),
        MiscOp::RegexFullMatch(o) => strings::regex_full_match(o, cx),
        MiscOp::ImageDecoder(_) | MiscOp::ZipMap(_) => Err(no_kernel(cx)),
        MiscOp::TfIdfVectorizer(o) => tfidf::eval(o, cx),
        MiscOp::NllLoss(o) => loss::nll_loss(o, cx),
        MiscOp::SoftmaxCrossEntropyLoss(o) => loss::softmax_cross_entropy(o, cx),
        MiscOp::Adagrad(o) => optim::adagrad(o, cx),
        MiscOp::Adam(o) => optim::adam(o, cx),
        MiscOp::Momentum(o) => optim::momentum(o, cx),
        MiscOp::ArrayFeatureExtractor(_) => ml::array_feature_extractor(cx),
        MiscOp::Binarizer(o) => ml::binarizer(o, cx),
        MiscOp::LabelEncoder(o) => ml::label_encoder(o, cx),
        MiscOp::TreeEnsemble(o) => ml::tree_ensemble(o, cx),
        MiscOp::Normalizer(o) => ml::normalizer(o, cx),
        MiscOp::LinearClassifier(o) => ml::linear_classifier(o, cx),
        MiscOp::Scaler(o) => ml::scaler(o, cx),
    }
}

#[cfg(test)]
mod tests {
    use carve_ir::ops::misc::{
        LabelEncoder, LinearClassifier, Multinomial, NormKind, Normalizer, PostTransform,
        RandomNormal, RandomUniform, Scaler, TreeAggregate, TreeEnsemble,
    };
    use carve_ir::{Buffer, Constant, DType, Graph, Op, TensorType, Type};

    use super::*;
    use crate::interp::run;
    use crate::tensor::{Data, Tensor};

    /// Runs a one-node graph of `op` on `inputs`, with `n` outputs.
    fn run1(op: impl Into<Op>, inputs: Vec<Tensor>, n: usize) -> Result<Vec<Value>, RunError> {
        let mut g = Graph::new("t");
        let ids = inputs
            .iter()
            .map(|t| Some(g.add_input("x", Type::Tensor(t.ty()))))
            .collect();
        let names = (0..n).map(|i| format!("o{i}")).collect();
        g.outputs = g.add_node("n", op.into(), ids, names).unwrap();
        run(&g, inputs.into_iter().map(Value::Tensor).collect())
    }

    fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), Data::F32(v.to_vec())).unwrap()
    }

    fn floats(v: &Value) -> Vec<f32> {
        match v {
            Value::Tensor(Tensor {
                data: Data::F32(x), ..
            }) => x.clone(),
            v => panic!("not an f32 tensor: {v:?}"),
        }
    }

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                "{got:?} vs {want:?}"
            );
        }
    }

    /// The rows used by the classical-ML tests.
    fn x3() -> Tensor {
        f32t(&[3, 2], &[1.0, 2.0, -3.0, 0.5, 0.0, 0.0])
    }

    // Expected values below were computed with ONNX Runtime 1.32.

    #[test]
    fn linear_classifier_matches_onnx_runtime() {
        let binary = |post| LinearClassifier {
            coefficients: vec![0.5, -1.0],
            intercepts: vec![0.25],
            classlabels_ints: vec![7, 9],
            post_transform: post,
            ..LinearClassifier::default()
        };
        let r = run1(binary(PostTransform::None), vec![x3()], 2).unwrap();
        assert_eq!(
            r[0],
            Value::Tensor(Tensor::new(vec![3], Data::I64(vec![7, 7, 9])).unwrap())
        );
        close(&floats(&r[1]), &[2.25, -1.25, 2.75, -1.75, 0.75, 0.25]);
        let r = run1(binary(PostTransform::Logistic), vec![x3()], 2).unwrap();
        close(
            &floats(&r[1]),
            &[
                0.777_3,
                0.222_700_1,
                0.851_952_7,
                0.148_047_27,
                0.437_823_47,
                0.562_176_5,
            ],
        );
        let multi = LinearClassifier {
            coefficients: vec![0.5, -1.0, 1.0, 1.0, -2.0, 0.1],
            intercepts: vec![0.25, 0.0, 1.0],
            classlabels_strings: vec!["a".into(), "b".into(), "c".into()],
            post_transform: PostTransform::Softmax,
            ..LinearClassifier::default()
        };
        let r = run1(multi, vec![x3()], 2).unwrap();
        let labels = Data::Str(vec!["b".into(), "c".into(), "c".into()]);
        assert_eq!(r[0], Value::Tensor(Tensor::new(vec![3], labels).unwrap()));
        close(
            &floats(&r[1]),
            &[
                1.376_013_2e-2,
                9.646_596_3e-1,
                2.158_018_2e-2,
                1.506_995_9e-4,
                7.118_544_5e-5,
                9.997_781e-1,
                2.566_866_3e-1,
                1.999_077_6e-1,
                5.434_056e-1,
            ],
        );
    }

    #[test]
    fn normalizer_and_scaler_match_onnx_runtime() {
        let norm = |n| run1(Normalizer { norm: n }, vec![x3()], 1).unwrap();
        close(
            &floats(&norm(NormKind::Max)[0]),
            &[0.5, 1.0, -6.0, 1.0, 0.0, 0.0],
        );
        close(
            &floats(&norm(NormKind::L2)[0]),
            &[
                0.447_213_6,
                0.894_427_2,
                -0.986_393_9,
                0.164_398_98,
                0.0,
                0.0,
            ],
        );
        let scaler = Scaler {
            offset: vec![1.0, -1.0],
            scale: vec![2.0, 0.5],
        };
        let r = run1(scaler, vec![x3()], 1).unwrap();
        close(&floats(&r[0]), &[0.0, 1.5, -8.0, 0.75, -2.0, 0.5]);
    }

    /// Two trees: `x0 <= 0.5 ? leaf 0 : leaf 1`, and a single-leaf tree (leaf 1).
    fn trees(aggregate: TreeAggregate, post: PostTransform, n_targets: i64) -> TreeEnsemble {
        let u8s = |v: Vec<u8>| {
            Box::new(
                Constant::dense(
                    TensorType::known(DType::U8, &[v.len() as u64]),
                    Buffer::from_vec(v),
                )
                .unwrap(),
            )
        };
        TreeEnsemble {
            aggregate_function: aggregate,
            post_transform: post,
            n_targets,
            tree_roots: vec![0, 1],
            nodes_featureids: vec![0, 0],
            nodes_modes: u8s(vec![0, 0]),
            nodes_splits: Box::new(Constant::from_f32s(&[2], &[0.5, 0.0])),
            nodes_truenodeids: vec![0, 1],
            nodes_trueleafs: vec![1, 1],
            nodes_falsenodeids: vec![1, 1],
            nodes_falseleafs: vec![1, 1],
            leaf_targetids: vec![0, i64::from(n_targets > 1), 0],
            leaf_weights: Box::new(Constant::from_f32s(&[3], &[1.5, -2.0, 0.25])),
            ..TreeEnsemble::default()
        }
    }

    #[test]
    fn tree_ensemble_matches_onnx_runtime() {
        let go = |a, p, n| floats(&run1(trees(a, p, n), vec![x3()], 1).unwrap()[0]);
        close(
            &go(TreeAggregate::Average, PostTransform::None, 1),
            &[-2.0, -0.25, -0.25],
        );
        close(
            &go(TreeAggregate::Min, PostTransform::None, 3),
            &[0.0, -2.0, 0.0, 1.5, -2.0, 0.0, 1.5, -2.0, 0.0],
        );
        close(
            &go(TreeAggregate::Max, PostTransform::Logistic, 1),
            &[-2.0, 1.5, 1.5],
        );
        close(
            &go(TreeAggregate::Sum, PostTransform::Softmax, 3),
            &[
                0.495_462_6,
                0.009_074_714,
                0.495_462_6,
                0.797_876,
                0.024_093_768,
                0.178_030_2,
                0.797_876,
                0.024_093_768,
                0.178_030_2,
            ],
        );
        close(
            &go(TreeAggregate::Sum, PostTransform::Logistic, 3),
            &[
                0.5,
                0.017_986_238,
                0.5,
                0.817_574_4,
                0.119_202_97,
                0.5,
                0.817_574_4,
                0.119_202_97,
                0.5,
            ],
        );
    }

    #[test]
    fn malformed_trees_are_refused() {
        let mut cyclic = trees(TreeAggregate::Sum, PostTransform::None, 1);
        cyclic.tree_roots = vec![0];
        cyclic.nodes_truenodeids = vec![1, 0];
        cyclic.nodes_trueleafs = vec![0, 0];
        cyclic.nodes_falsenodeids = vec![1, 0];
        cyclic.nodes_falseleafs = vec![0, 0];
        let err = run1(cyclic, vec![x3()], 1).unwrap_err();
        assert!(err.msg.contains("cycle"), "{err}");
        let mut dangling = trees(TreeAggregate::Sum, PostTransform::None, 1);
        dangling.nodes_falseleafs = vec![0, 1];
        dangling.nodes_falsenodeids = vec![7, 1];
        let err = run1(dangling, vec![x3()], 1).unwrap_err();
        assert!(err.msg.contains("missing node 7"), "{err}");
    }

    #[test]
    fn label_encoder_matches_nan_and_signed_zero_keys() {
        let op = LabelEncoder {
            keys: Box::new(Constant::from_f32s(&[3], &[f32::NAN, 0.0, 2.5])),
            values: Box::new(Constant::from_i64s(&[3], &[1, 2, 3])),
            default: Box::new(Constant::from_i64s(&[], &[-7])),
        };
        let x = f32t(&[4], &[-0.0, f32::NAN, 2.5, 1.0]);
        let r = run1(op, vec![x], 1).unwrap();
        let want = Tensor::new(vec![4], Data::I64(vec![2, 1, 3, -7])).unwrap();
        assert_eq!(r[0], Value::Tensor(want));
    }

    #[test]
    fn seeded_generators_reproduce_numpy() {
        // numpy: RandomState(0).rand(3) * 2 - 1 and RandomState(42).randn(2) * 3 + 1.
        let u = RandomUniform {
            low: -1.0,
            high: 1.0,
            seed: Some(0.0),
            shape: vec![3],
            ..RandomUniform::default()
        };
        close(
            &floats(&run1(u, vec![], 1).unwrap()[0]),
            &[0.097_627, 0.430_378_7, 0.205_526_8],
        );
        let n = RandomNormal {
            mean: 1.0,
            scale: 3.0,
            seed: Some(42.0),
            shape: vec![2],
            ..RandomNormal::default()
        };
        close(
            &floats(&run1(n, vec![], 1).unwrap()[0]),
            &[2.490_142_4, 0.585_207_1],
        );
        let m = Multinomial {
            dtype: DType::I64,
            sample_size: 50,
            seed: Some(1.0),
        };
        // Class 1 is the only one with any probability mass worth mentioning.
        let logits = f32t(&[2, 3], &[-100.0, 0.0, -100.0, 0.0, -100.0, -100.0]);
        let r = run1(m, vec![logits], 1).unwrap();
        let Value::Tensor(Tensor {
            shape,
            data: Data::I64(v),
        }) = &r[0]
        else {
            panic!("{r:?}");
        };
        assert_eq!(shape, &[2, 50]);
        assert!(v[..50].iter().all(|&k| k == 1) && v[50..].iter().all(|&k| k == 0));
    }
}
