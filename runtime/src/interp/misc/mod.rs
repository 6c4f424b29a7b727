//! Interpreter kernels for the misc op family (`carve_ir::ops::misc`): dropout and random generators,
//! non-max suppression, string ops, n-gram vectorization, losses, training optimizers and the
//! classical-ML ops.
//!
//! Not implemented (they report "no kernel"): `regex_full_match` (RE2 matching needs a regex engine
//! dependency), `image_decoder` (needs image codecs) and `zip_map` (its result, a sequence of maps, has no
//! runtime value representation).

mod loss;
mod ml;
mod nms;
mod optim;
pub mod random;
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
        MiscOp::RegexFullMatch(_) | MiscOp::ImageDecoder(_) | MiscOp::ZipMap(_) => {
            Err(no_kernel(cx))
        }
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
