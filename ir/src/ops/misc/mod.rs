//! Everything else: dropout, random number generation, non-max suppression, string ops, image decoding,
//! n-gram vectorization, losses, training optimizers and the classical-ML (`ai.onnx.ml`) ops.
//!
//! Op-set choices: `random_normal`/`random_uniform` take an optional input; when it is present its shape
//! (and, unless `dtype` is set, its element type) is used: this is ONNX's `Random*Like`. A `dtype` of
//! `None` means "like the input" for every op here that has one. `label_encoder` holds its keys, values
//! and default as constants, whatever attribute form (`*_strings`, `*_int64s`, `*_floats`, `*_tensor`) the
//! model used. `softmax_cross_entropy_loss` stays its own op (it is `nll_loss` of a log-softmax, and also
//! returns that log-softmax).
//!
//! The table of ops is here; inference lives by kind in `random`, `nms`, `strings`, `tfidf`, `loss`,
//! `optim` and `ml` (the interpreter's `runtime/src/interp/misc/` file names).

mod loss;
mod ml;
mod nms;
mod optim;
mod random;
mod strings;
#[cfg(test)]
mod tests;
mod tfidf;

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, broadcast_types, same_as_input};
use crate::{Constant, DType, Dim, Shape, TensorType, Type};

crate::attr_enum! {
    /// How a loss is reduced over its elements.
    pub enum Reduction { None = "none", Sum = "sum", Mean = "mean" }
}

crate::attr_enum! {
    /// Case conversion of `string_normalizer`.
    pub enum CaseChange { None = "none", Lower = "lower", Upper = "upper" }
}

crate::attr_enum! {
    /// Channel layout of a decoded image.
    pub enum PixelFormat { Rgb = "rgb", Bgr = "bgr", Grayscale = "grayscale" }
}

crate::attr_enum! {
    /// What `tfidf_vectorizer` outputs per n-gram.
    pub enum TfIdfMode { Tf = "tf", Idf = "idf", TfIdf = "tfidf" }
}

crate::attr_enum! {
    /// Momentum update rule.
    pub enum MomentumMode { Standard = "standard", Nesterov = "nesterov" }
}

crate::attr_enum! {
    /// Transform applied to classical-ML scores.
    pub enum PostTransform {
        None = "none",
        Softmax = "softmax",
        Logistic = "logistic",
        SoftmaxZero = "softmax_zero",
        Probit = "probit",
    }
}

crate::attr_enum! {
    /// How a tree ensemble combines the trees' leaf weights.
    pub enum TreeAggregate { Average = "average", Sum = "sum", Min = "min", Max = "max" }
}

crate::attr_enum! {
    /// Row norm used by `normalizer`.
    pub enum NormKind { Max = "max", L1 = "l1", L2 = "l2" }
}

define_ops! {
    /// Miscellaneous ops.
    pub enum MiscOp {
        /// Inputs `(data, ratio?, training_mode?)`; outputs the data (scaled with a random mask when
        /// training) and optionally the bool mask. Identity at inference.
        Dropout = "dropout" { seed: Option<i64> = None },
        /// Normal samples of shape `shape`, or of input 0's shape when given.
        RandomNormal = "random_normal" {
            mean: f32 = 0.0,
            scale: f32 = 1.0,
            dtype: Option<DType> = None,
            seed: Option<f32> = None,
            shape: Vec<i64> = Vec::new(),
        },
        /// Uniform samples in `[low, high)` of shape `shape`, or of input 0's shape when given.
        RandomUniform = "random_uniform" {
            low: f32 = 0.0,
            high: f32 = 1.0,
            dtype: Option<DType> = None,
            seed: Option<f32> = None,
            shape: Vec<i64> = Vec::new(),
        },
        /// 0/1 draws with the probabilities of input 0.
        Bernoulli = "bernoulli" { dtype: Option<DType> = None, seed: Option<f32> = None },
        /// `sample_size` class indices per row of the unnormalized log-probabilities `[batch, classes]`.
        Multinomial = "multinomial" {
            dtype: DType = DType::I32,
            sample_size: i64 = 1,
            seed: Option<f32> = None,
        },
        /// Inputs `(boxes [B,S,4], scores [B,C,S], max_output_boxes_per_class?, iou_threshold?,
        /// score_threshold?)`; output `[selected, 3]` i64 triples `(batch, class, box)`.
        NonMaxSuppression = "non_max_suppression" { center_point_box: bool = false },
        /// Removes `stopwords` from a `[C]` or `[1,C]` string tensor, then changes case.
        StringNormalizer = "string_normalizer" {
            case_change_action: CaseChange = CaseChange::None,
            is_case_sensitive: bool = false,
            locale: String = String::new(),
            stopwords: Vec<String> = Vec::new(),
        },
        /// Elementwise string concatenation with broadcasting.
        StringConcat = "string_concat" {},
        /// Splits each string on `delimiter` (whitespace runs when empty), at most `maxsplit` times;
        /// outputs the padded substrings (one more dim) and the substring counts.
        StringSplit = "string_split" { delimiter: String = String::new(), maxsplit: Option<i64> = None },
        /// Whether each string fully matches the RE2 `pattern`.
        RegexFullMatch = "regex_full_match" { pattern: String = String::new() },
        /// Decodes an encoded image byte stream into `[H, W, C]` u8.
        ImageDecoder = "image_decoder" { pixel_format: PixelFormat = PixelFormat::Rgb },
        /// Counts n-grams of a `[C]` or `[N, C]` input into `max(ngram_indexes)+1` f32 features.
        TfIdfVectorizer = "tfidf_vectorizer" {
            max_gram_length: i64 = 1,
            max_skip_count: i64 = 0,
            min_gram_length: i64 = 1,
            mode: TfIdfMode = TfIdfMode::Tf,
            ngram_counts: Vec<i64> = Vec::new(),
            ngram_indexes: Vec<i64> = Vec::new(),
            pool_int64s: Vec<i64> = Vec::new(),
            pool_strings: Vec<String> = Vec::new(),
            weights: Vec<f32> = Vec::new(),
        },
        /// Negative log-likelihood of log-probabilities `[N, C, d...]` at integer targets `[N, d...]`,
        /// with optional class weights `[C]`.
        NllLoss = "nll_loss" { reduction: Reduction = Reduction::Mean, ignore_index: Option<i64> = None },
        /// `nll_loss` of `log_softmax(scores, axis=1)`; the optional second output is that log-softmax.
        SoftmaxCrossEntropyLoss = "softmax_cross_entropy_loss" {
            reduction: Reduction = Reduction::Mean,
            ignore_index: Option<i64> = None,
        },
        /// Adagrad step: inputs `(R, T, X..., G..., H...)`, outputs `(X_new..., H_new...)`.
        Adagrad = "adagrad" { decay_factor: f32 = 0.0, epsilon: f32 = 1e-6, norm_coefficient: f32 = 0.0 },
        /// Adam step: inputs `(R, T, X..., G..., V..., H...)`, outputs `(X_new..., V_new..., H_new...)`.
        Adam = "adam" {
            alpha: f32 = 0.9,
            beta: f32 = 0.999,
            epsilon: f32 = 1e-6,
            norm_coefficient: f32 = 0.0,
            norm_coefficient_post: f32 = 0.0,
        },
        /// Momentum step: inputs `(R, T, X..., G..., V...)`, outputs `(X_new..., V_new...)`.
        Momentum = "momentum" {
            alpha: f32 = 0.0,
            beta: f32 = 0.0,
            mode: MomentumMode = MomentumMode::Standard,
            norm_coefficient: f32 = 0.0,
        },
        /// Selects the last-dim entries listed by i64 input 1 (`[..., C]` → `[..., k]`; 1-D → `[1, k]`).
        ArrayFeatureExtractor = "array_feature_extractor" {},
        /// `x > threshold ? 1 : 0` in the input's type.
        Binarizer = "binarizer" { threshold: f32 = 0.0 },
        /// Maps each element equal to `keys[i]` to `values[i]`, others to `default`.
        LabelEncoder = "label_encoder" {
            keys: Box<Constant> = Box::new(Constant::from_i64s(&[0], &[])),
            values: Box<Constant> = Box::new(Constant::from_i64s(&[0], &[])),
            default: Box<Constant> = Box::new(Constant::from_i64s(&[], &[-1])),
        },
        /// A tree ensemble over `[N, F]` features giving `[N, n_targets]` (ONNX-ML `TreeEnsemble`).
        TreeEnsemble = "tree_ensemble" {
            aggregate_function: TreeAggregate = TreeAggregate::Sum,
            post_transform: PostTransform = PostTransform::None,
            n_targets: i64 = 1,
            tree_roots: Vec<i64> = Vec::new(),
            nodes_featureids: Vec<i64> = Vec::new(),
            nodes_modes: Box<Constant> = Box::new(Constant::from_i64s(&[0], &[])),
            nodes_splits: Box<Constant> = Box::new(Constant::from_f32s(&[0], &[])),
            nodes_truenodeids: Vec<i64> = Vec::new(),
            nodes_trueleafs: Vec<i64> = Vec::new(),
            nodes_falsenodeids: Vec<i64> = Vec::new(),
            nodes_falseleafs: Vec<i64> = Vec::new(),
            nodes_hitrates: Option<Box<Constant>> = None,
            nodes_missing_value_tracks_true: Vec<i64> = Vec::new(),
            membership_values: Option<Box<Constant>> = None,
            leaf_targetids: Vec<i64> = Vec::new(),
            leaf_weights: Box<Constant> = Box::new(Constant::from_f32s(&[0], &[])),
        },
        /// Turns each row of `[N, C]` scores into a map from class label to score.
        ZipMap = "zip_map" { classlabels_int64s: Vec<i64> = Vec::new(), classlabels_strings: Vec<String> = Vec::new() },
        /// Normalizes each row (max, L1 or L2 norm) into f32.
        Normalizer = "normalizer" { norm: NormKind = NormKind::Max },
        /// Linear classifier: outputs the label `[N]` and the class scores `[N, E]`.
        LinearClassifier = "linear_classifier" {
            classlabels_ints: Vec<i64> = Vec::new(),
            classlabels_strings: Vec<String> = Vec::new(),
            coefficients: Vec<f32> = Vec::new(),
            intercepts: Vec<f32> = Vec::new(),
            multi_class: bool = false,
            post_transform: PostTransform = PostTransform::None,
        },
        /// `(x - offset) * scale` into f32 (one entry per last-dim column, or one for all).
        Scaler = "scaler" { offset: Vec<f32> = Vec::new(), scale: Vec<f32> = Vec::new() },
    }
}

impl MiscOp {
    /// Properties of each op (see [`crate::ops::Props`]): the generators and `dropout` (random in
    /// training mode) draw random numbers.
    pub fn props(&self) -> crate::ops::Props {
        use crate::ops::Props;
        match self {
            Self::Dropout(_)
            | Self::RandomNormal(_)
            | Self::RandomUniform(_)
            | Self::Bernoulli(_)
            | Self::Multinomial(_) => Props::RANDOM,
            _ => Props::NONE,
        }
    }

    /// Arithmetic (see [`crate::ops::Work`]): the default estimate.
    pub fn work(&self, t: &crate::ops::NodeTypes) -> Option<crate::ops::Work> {
        crate::ops::Work::default_for(t)
    }

    /// Channel map (see [`crate::ops::ChannelMap`]): `dropout` is pointwise on its data input (`c → c`);
    /// the rest are opaque.
    pub fn channels(&self, t: &crate::ops::NodeTypes) -> crate::ops::ChannelMap {
        match self {
            Self::Dropout(_) => crate::ops::ChannelMap::pointwise(&[t.input(0)], t.output(0)),
            _ => crate::ops::ChannelMap::Opaque,
        }
    }
}

fn tensor_out(dtype: DType, shape: Option<Shape>) -> Type {
    Type::Tensor(TensorType {
        dtype,
        shape,
        quant: None,
    })
}

fn check_float(cx: &InferCtx, i: usize, what: &str) -> Result<DType, InferError> {
    let d = cx.dtype(i)?;
    if !d.is_float() {
        return Err(cx.err(format!("{what} must be a float tensor, got {d}")));
    }
    Ok(d)
}

/// Checks that present input `i` holds a single element of a type accepted by `ok`.
fn check_scalar(
    cx: &InferCtx,
    i: usize,
    what: &str,
    ok: fn(DType) -> bool,
) -> Result<(), InferError> {
    if let Some(t) = cx.opt_tensor(i)? {
        if !ok(t.dtype) {
            return Err(cx.err(format!("{what} has the wrong element type {}", t.dtype)));
        }
        if let Some(n) = t.shape.as_ref().and_then(Shape::num_elements)
            && n != 1
        {
            return Err(cx.err(format!("{what} must hold one element, got {t}")));
        }
    }
    Ok(())
}

fn check_outputs(cx: &InferCtx, n: usize) -> Result<(), InferError> {
    if cx.num_outputs() > n {
        return Err(cx.err(format!(
            "the node has {} outputs, at most {n} allowed",
            cx.num_outputs()
        )));
    }
    Ok(())
}

fn dims_from_attr(cx: &InferCtx, shape: &[i64]) -> Result<Shape, InferError> {
    shape
        .iter()
        .map(|&d| {
            u64::try_from(d)
                .map(Dim::Known)
                .map_err(|_| cx.err(format!("shape {shape:?} has a negative dim")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Shape)
}

/// Checks the rank of input `i` when known.
fn check_rank(cx: &InferCtx, i: usize, rank: usize, what: &str) -> Result<(), InferError> {
    if let Some(r) = cx.rank(i)?
        && r != rank
    {
        return Err(cx.err(format!("{what} must have rank {rank}, got {r}")));
    }
    Ok(())
}
