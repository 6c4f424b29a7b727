//! Everything else: dropout, random number generation, non-max suppression, string ops, image decoding,
//! n-gram vectorization, losses, training optimizers and the classical-ML (`ai.onnx.ml`) ops.
//!
//! Op-set choices: `random_normal`/`random_uniform` take an optional input; when it is present its shape
//! (and, unless `dtype` is set, its element type) is used: this is ONNX's `Random*Like`. A `dtype` of
//! `None` means "like the input" for every op here that has one. `label_encoder` holds its keys, values
//! and default as constants, whatever attribute form (`*_strings`, `*_int64s`, `*_floats`, `*_tensor`) the
//! model used. `softmax_cross_entropy_loss` stays its own op (it is `nll_loss` of a log-softmax, and also
//! returns that log-softmax).

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

impl Infer for Dropout {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        check_scalar(cx, 1, "ratio (input 1)", DType::is_float)?;
        check_scalar(cx, 2, "training_mode (input 2)", |d| d == DType::Bool)?;
        check_outputs(cx, 2)?;
        let mut out = vec![tensor_out(t.dtype, t.shape.clone())];
        if cx.num_outputs() == 2 {
            out.push(tensor_out(DType::Bool, t.shape.clone()));
        }
        Ok(out)
    }
}

/// Output type of the random generators: input 0's shape (and dtype unless set) when present, else the
/// `shape` attribute and `dtype` (default f32).
fn random_type(
    cx: &InferCtx,
    dtype: Option<DType>,
    shape: &[i64],
) -> Result<Vec<Type>, InferError> {
    let (dtype, shape) = match cx.opt_tensor(0)? {
        Some(t) => (dtype.unwrap_or(t.dtype), t.shape.clone()),
        None => (
            dtype.unwrap_or(DType::F32),
            Some(dims_from_attr(cx, shape)?),
        ),
    };
    if !dtype.is_float() {
        return Err(cx.err(format!(
            "random values must be a float type, got {dtype} (set dtype)"
        )));
    }
    Ok(vec![tensor_out(dtype, shape)])
}

impl Infer for RandomNormal {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        random_type(cx, self.dtype, &self.shape)
    }
}

impl Infer for RandomUniform {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        random_type(cx, self.dtype, &self.shape)
    }
}

impl Infer for Bernoulli {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let d = check_float(cx, 0, "input 0")?;
        let t = cx.tensor(0)?;
        Ok(vec![tensor_out(self.dtype.unwrap_or(d), t.shape.clone())])
    }
}

impl Infer for Multinomial {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_float(cx, 0, "input 0")?;
        if !matches!(self.dtype, DType::I32 | DType::I64) {
            return Err(cx.err(format!("dtype must be i32 or i64, got {}", self.dtype)));
        }
        let n = u64::try_from(self.sample_size).map_err(|_| {
            cx.err(format!(
                "sample_size must be >= 0, got {}",
                self.sample_size
            ))
        })?;
        let t = cx.tensor(0)?;
        let batch = match t.dims() {
            Some([b, _]) => b.clone(),
            Some(d) => {
                return Err(cx.err(format!(
                    "input 0 must be [batch, classes], got rank {}",
                    d.len()
                )));
            }
            None => Dim::Unknown,
        };
        Ok(vec![tensor_out(
            self.dtype,
            Some(Shape(vec![batch, Dim::Known(n)])),
        )])
    }
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

impl Infer for NonMaxSuppression {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_float(cx, 0, "boxes (input 0)")?;
        check_float(cx, 1, "scores (input 1)")?;
        check_rank(cx, 0, 3, "boxes (input 0)")?;
        check_rank(cx, 1, 3, "scores (input 1)")?;
        if let Some(d) = cx.tensor(0)?.dims()
            && d[2].conflicts(&Dim::Known(4))
        {
            return Err(cx.err(format!("boxes must be [B, S, 4], last dim is {}", d[2])));
        }
        if let (Some(b), Some(s)) = (cx.tensor(0)?.dims(), cx.tensor(1)?.dims())
            && (b[0].conflicts(&s[0]) || b[1].conflicts(&s[2]))
        {
            return Err(cx.err(format!(
                "boxes [B, S, 4] and scores [B, C, S] disagree: {} and {}",
                cx.tensor(0)?,
                cx.tensor(1)?
            )));
        }
        check_scalar(cx, 2, "max_output_boxes_per_class (input 2)", |d| {
            d == DType::I64
        })?;
        check_scalar(cx, 3, "iou_threshold (input 3)", DType::is_float)?;
        check_scalar(cx, 4, "score_threshold (input 4)", DType::is_float)?;
        Ok(vec![tensor_out(
            DType::I64,
            Some(Shape(vec![Dim::Unknown, Dim::Known(3)])),
        )])
    }
}

fn check_string<'a>(cx: &InferCtx<'a>, i: usize) -> Result<&'a TensorType, InferError> {
    let t = cx.tensor(i)?;
    if t.dtype != DType::String {
        return Err(cx.err(format!(
            "input {i} must be a string tensor, got {}",
            t.dtype
        )));
    }
    Ok(t)
}

impl Infer for StringNormalizer {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_string(cx, 0)?;
        let shape = match t.dims() {
            None => None,
            Some(d) => {
                let ok = d.len() == 1 || (d.len() == 2 && !d[0].conflicts(&Dim::Known(1)));
                if !ok {
                    return Err(cx.err(format!("input must be [C] or [1, C], got {t}")));
                }
                if self.stopwords.is_empty() {
                    Some(Shape(d.to_vec()))
                } else {
                    let mut d = d.to_vec();
                    let last = d.len() - 1;
                    d[last] = Dim::Unknown;
                    Some(Shape(d))
                }
            }
        };
        Ok(vec![tensor_out(DType::String, shape)])
    }
}

impl Infer for StringConcat {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let a = check_string(cx, 0)?;
        let b = check_string(cx, 1)?;
        let shape = broadcast_types(&[a, b]).map_err(|m| cx.err(m))?;
        Ok(vec![tensor_out(DType::String, shape)])
    }
}

impl Infer for StringSplit {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_string(cx, 0)?;
        if let Some(m) = self.maxsplit
            && m < 0
        {
            return Err(cx.err(format!("maxsplit must be >= 0, got {m}")));
        }
        check_outputs(cx, 2)?;
        let y = t.shape.as_ref().map(|s| {
            let mut d = s.0.clone();
            d.push(Dim::Unknown);
            Shape(d)
        });
        let mut out = vec![tensor_out(DType::String, y)];
        if cx.num_outputs() == 2 {
            out.push(tensor_out(DType::I64, t.shape.clone()));
        }
        Ok(out)
    }
}

impl Infer for RegexFullMatch {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_string(cx, 0)?;
        Ok(vec![tensor_out(DType::Bool, t.shape.clone())])
    }
}

impl Infer for ImageDecoder {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if t.dtype != DType::U8 {
            return Err(cx.err(format!("the encoded stream must be u8, got {}", t.dtype)));
        }
        check_rank(cx, 0, 1, "the encoded stream (input 0)")?;
        let c = match self.pixel_format {
            PixelFormat::Grayscale => 1,
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
        };
        Ok(vec![tensor_out(
            DType::U8,
            Some(Shape(vec![Dim::Unknown, Dim::Unknown, Dim::Known(c)])),
        )])
    }
}

impl Infer for TfIdfVectorizer {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        match t.dtype {
            DType::String if self.pool_int64s.is_empty() => {}
            DType::I32 | DType::I64 if self.pool_strings.is_empty() => {}
            d => {
                return Err(cx.err(format!(
                    "input element type {d} does not match the pool (pool_strings for string input, \
                     pool_int64s for integer input)"
                )));
            }
        }
        if self.min_gram_length < 1 || self.max_gram_length < self.min_gram_length {
            return Err(cx.err(format!(
                "need 1 <= min_gram_length <= max_gram_length, got {} and {}",
                self.min_gram_length, self.max_gram_length
            )));
        }
        if self.max_skip_count < 0 {
            return Err(cx.err("max_skip_count must be >= 0"));
        }
        if self.ngram_indexes.iter().any(|&i| i < 0) {
            return Err(cx.err("ngram_indexes must be >= 0"));
        }
        let width = self
            .ngram_indexes
            .iter()
            .max()
            .map_or(Some(0), |&m| (m as u64).checked_add(1))
            .ok_or_else(|| cx.err("ngram_indexes overflow"))?;
        let shape = match t.dims() {
            None => None,
            Some([_]) => Some(Shape(vec![Dim::Known(width)])),
            Some([n, _]) => Some(Shape(vec![n.clone(), Dim::Known(width)])),
            Some(d) => {
                return Err(cx.err(format!("input must be [C] or [N, C], got rank {}", d.len())));
            }
        };
        Ok(vec![tensor_out(DType::F32, shape)])
    }
}

/// Shared checks and output 0 of the two losses: input `[N, C, d...]`, target `[N, d...]`, weight `[C]`.
fn loss_type(cx: &InferCtx, reduction: Reduction) -> Result<Type, InferError> {
    let d = check_float(cx, 0, "input 0")?;
    let x = cx.tensor(0)?;
    let target = cx.tensor(1)?;
    if !matches!(target.dtype, DType::I32 | DType::I64) {
        return Err(cx.err(format!(
            "target (input 1) must be i32 or i64, got {}",
            target.dtype
        )));
    }
    if let Some(w) = cx.opt_tensor(2)? {
        if w.dtype != d {
            return Err(cx.err(format!("weight must be {d}, got {}", w.dtype)));
        }
        check_rank(cx, 2, 1, "weight (input 2)")?;
        if let (Some(wd), Some(xd)) = (w.dims(), x.dims())
            && xd.len() >= 2
            && wd[0].conflicts(&xd[1])
        {
            return Err(cx.err(format!("weight {w} does not match the {} classes", xd[1])));
        }
    }
    let out_dims: Option<Vec<Dim>> = match (x.dims(), target.dims()) {
        (Some(xd), _) if xd.len() < 2 => {
            return Err(cx.err(format!("input must be [N, C, d...], got {x}")));
        }
        (Some(xd), Some(td)) => {
            if td.len() + 1 != xd.len() {
                return Err(cx.err(format!(
                    "target must have rank {} for input {x}, got {target}",
                    xd.len() - 1
                )));
            }
            let expect = std::iter::once(&xd[0]).chain(&xd[2..]);
            let mut out = Vec::with_capacity(td.len());
            for (a, b) in expect.zip(td) {
                if a.conflicts(b) {
                    return Err(cx.err(format!("target {target} does not match input {x}")));
                }
                out.push(a.refine(b));
            }
            Some(out)
        }
        (Some(xd), None) => Some(std::iter::once(&xd[0]).chain(&xd[2..]).cloned().collect()),
        (None, Some(td)) => Some(td.to_vec()),
        (None, None) => None,
    };
    Ok(match reduction {
        Reduction::None => tensor_out(d, out_dims.map(Shape)),
        Reduction::Sum | Reduction::Mean => tensor_out(d, Some(Shape::scalar())),
    })
}

impl Infer for NllLoss {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_outputs(cx, 1)?;
        Ok(vec![loss_type(cx, self.reduction)?])
    }
}

impl Infer for SoftmaxCrossEntropyLoss {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_outputs(cx, 2)?;
        let mut out = vec![loss_type(cx, self.reduction)?];
        if cx.num_outputs() == 2 {
            out.extend(same_as_input(cx)?);
        }
        Ok(out)
    }
}

/// The optimizers: inputs `(R, T, groups × n tensors)`, outputs `out_groups × n` tensors whose types are
/// those of input groups `out_from`.
fn optimizer_types(
    cx: &InferCtx,
    groups: usize,
    out_from: &[usize],
) -> Result<Vec<Type>, InferError> {
    check_scalar(cx, 0, "the learning rate R (input 0)", DType::is_float)?;
    check_scalar(cx, 1, "the step count T (input 1)", |d| d == DType::I64)?;
    cx.required(0)?;
    cx.required(1)?;
    let rest = cx.num_inputs().saturating_sub(2);
    if rest == 0 || !rest.is_multiple_of(groups) {
        return Err(cx.err(format!(
            "expected R, T and {groups} groups of n tensors, got {} inputs",
            cx.num_inputs()
        )));
    }
    let n = rest / groups;
    for i in 2..cx.num_inputs() {
        check_float(cx, i, &format!("input {i}"))?;
    }
    for k in 0..n {
        let x = cx.tensor(2 + k)?;
        for g in 1..groups {
            let y = cx.tensor(2 + g * n + k)?;
            let same = y.dtype == x.dtype
                && match (x.dims(), y.dims()) {
                    (Some(a), Some(b)) => {
                        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| !p.conflicts(q))
                    }
                    _ => true,
                };
            if !same {
                return Err(cx.err(format!(
                    "tensor {k} of group {g} is {y} but the parameter is {x}"
                )));
            }
        }
    }
    if cx.num_outputs() != out_from.len() * n {
        return Err(cx.err(format!(
            "expected {} outputs for {n} parameters, the node has {}",
            out_from.len() * n,
            cx.num_outputs()
        )));
    }
    let mut out = Vec::with_capacity(out_from.len() * n);
    for &g in out_from {
        for k in 0..n {
            let t = cx.tensor(2 + g * n + k)?;
            out.push(tensor_out(t.dtype, t.shape.clone()));
        }
    }
    Ok(out)
}

impl Infer for Adagrad {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        optimizer_types(cx, 3, &[0, 2])
    }
}

impl Infer for Adam {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        optimizer_types(cx, 4, &[0, 2, 3])
    }
}

impl Infer for Momentum {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        optimizer_types(cx, 3, &[0, 2])
    }
}

impl Infer for ArrayFeatureExtractor {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let y = cx.tensor(1)?;
        if y.dtype != DType::I64 {
            return Err(cx.err(format!("indices (input 1) must be i64, got {}", y.dtype)));
        }
        // The indices' element count.
        let k = match y.dims() {
            Some(d) => d.iter().fold(Dim::Known(1), |acc, x| acc.mul(x)),
            None => Dim::Unknown,
        };
        let shape = match x.dims() {
            None => None,
            Some([]) => return Err(cx.err("input 0 must have rank >= 1")),
            Some([_]) => Some(Shape(vec![Dim::Known(1), k])),
            Some(d) => {
                let mut d = d.to_vec();
                let last = d.len() - 1;
                d[last] = k;
                Some(Shape(d))
            }
        };
        Ok(vec![tensor_out(x.dtype, shape)])
    }
}

impl Infer for Binarizer {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        same_as_input(cx)
    }
}

impl Infer for LabelEncoder {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if t.dtype != self.keys.ty.dtype {
            return Err(cx.err(format!(
                "input element type {} differs from the keys' {}",
                t.dtype, self.keys.ty.dtype
            )));
        }
        if self.keys.num_elements() != self.values.num_elements() {
            return Err(cx.err(format!(
                "{} keys but {} values",
                self.keys.num_elements(),
                self.values.num_elements()
            )));
        }
        if self.default.ty.dtype != self.values.ty.dtype || self.default.num_elements() != 1 {
            return Err(cx.err(format!(
                "the default must be one {} value, got {}",
                self.values.ty.dtype, self.default.ty
            )));
        }
        Ok(vec![tensor_out(self.values.ty.dtype, t.shape.clone())])
    }
}

impl Infer for TreeEnsemble {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let d = check_float(cx, 0, "input 0")?;
        let x = cx.tensor(0)?;
        let n_targets = u64::try_from(self.n_targets)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| cx.err(format!("n_targets must be >= 1, got {}", self.n_targets)))?;
        let n_nodes = self.nodes_featureids.len();
        let node_lens = [
            ("nodes_modes", self.nodes_modes.num_elements() as usize),
            ("nodes_splits", self.nodes_splits.num_elements() as usize),
            ("nodes_truenodeids", self.nodes_truenodeids.len()),
            ("nodes_trueleafs", self.nodes_trueleafs.len()),
            ("nodes_falsenodeids", self.nodes_falsenodeids.len()),
            ("nodes_falseleafs", self.nodes_falseleafs.len()),
        ];
        if let Some((name, len)) = node_lens.iter().find(|(_, l)| *l != n_nodes) {
            return Err(cx.err(format!(
                "{name} has {len} entries but nodes_featureids has {n_nodes}"
            )));
        }
        if self.leaf_targetids.len() as u64 != self.leaf_weights.num_elements() {
            return Err(cx.err(format!(
                "leaf_targetids has {} entries but leaf_weights has {}",
                self.leaf_targetids.len(),
                self.leaf_weights.num_elements()
            )));
        }
        if let Some(bad) = self
            .leaf_targetids
            .iter()
            .find(|&&t| t < 0 || t as u64 >= n_targets)
        {
            return Err(cx.err(format!(
                "leaf target id {bad} is out of range 0..{n_targets}"
            )));
        }
        let batch = match x.dims() {
            Some([n, _]) => n.clone(),
            Some([_]) => Dim::Known(1),
            Some(dims) => {
                return Err(cx.err(format!("input must be [N, F], got rank {}", dims.len())));
            }
            None => Dim::Unknown,
        };
        Ok(vec![tensor_out(
            d,
            Some(Shape(vec![batch, Dim::Known(n_targets)])),
        )])
    }
}

/// Class labels of a classifier: the key type and count, exactly one of the two lists being set.
fn class_labels(
    cx: &InferCtx,
    ints: &[i64],
    strings: &[String],
) -> Result<(DType, usize), InferError> {
    match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Ok((DType::I64, ints.len())),
        (true, false) => Ok((DType::String, strings.len())),
        _ => Err(cx.err("exactly one of the integer and string class label lists must be set")),
    }
}

impl Infer for ZipMap {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        if x.dtype != DType::F32 {
            return Err(cx.err(format!("input must be f32, got {}", x.dtype)));
        }
        let (key, n) = class_labels(cx, &self.classlabels_int64s, &self.classlabels_strings)?;
        if let Some(d) = x.dims()
            && let Some(c) = d.last()
            && c.conflicts(&Dim::Known(n as u64))
        {
            return Err(cx.err(format!("input has {c} columns but there are {n} labels")));
        }
        let value = Type::Tensor(TensorType::scalar(DType::F32));
        Ok(vec![Type::Sequence(Box::new(Type::Map(
            key,
            Box::new(value),
        )))])
    }
}

fn check_ml_numeric<'a>(cx: &InferCtx<'a>) -> Result<&'a TensorType, InferError> {
    let t = cx.tensor(0)?;
    if !matches!(t.dtype, DType::F32 | DType::F64 | DType::I64 | DType::I32) {
        return Err(cx.err(format!(
            "input must be f32, f64, i64 or i32, got {}",
            t.dtype
        )));
    }
    Ok(t)
}

impl Infer for Normalizer {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_ml_numeric(cx)?;
        Ok(vec![tensor_out(DType::F32, t.shape.clone())])
    }
}

impl Infer for Scaler {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = check_ml_numeric(cx)?;
        Ok(vec![tensor_out(DType::F32, t.shape.clone())])
    }
}

impl Infer for LinearClassifier {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = check_ml_numeric(cx)?;
        let (label, n_labels) =
            class_labels(cx, &self.classlabels_ints, &self.classlabels_strings)?;
        check_outputs(cx, 2)?;
        let (batch, features) = match x.dims() {
            Some([n, c]) => (n.clone(), c.known()),
            Some([c]) => (Dim::Known(1), c.known()),
            Some(d) => {
                return Err(cx.err(format!("input must be [N, C], got rank {}", d.len())));
            }
            None => (Dim::Unknown, None),
        };
        let classes = if !self.intercepts.is_empty() {
            Some(self.intercepts.len() as u64)
        } else {
            features
                .filter(|&c| c > 0)
                .map(|c| self.coefficients.len() as u64 / c)
        };
        if let (Some(k), Some(c)) = (classes, features)
            && k.checked_mul(c) != Some(self.coefficients.len() as u64)
        {
            return Err(cx.err(format!(
                "{} coefficients do not make {k} classes of {c} features",
                self.coefficients.len()
            )));
        }
        // A single score column with two labels is a binary classifier reporting both classes.
        let e = match classes {
            Some(1) if n_labels == 2 => Dim::Known(2),
            Some(k) => Dim::Known(k),
            None => Dim::Unknown,
        };
        let mut out = vec![tensor_out(label, Some(Shape(vec![batch.clone()])))];
        if cx.num_outputs() == 2 {
            out.push(tensor_out(DType::F32, Some(Shape(vec![batch, e]))));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
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
}
