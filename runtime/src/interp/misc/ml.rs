//! The classical-ML (`ai.onnx.ml`) kernels: `array_feature_extractor`, `binarizer`, `label_encoder`,
//! `tree_ensemble`, `normalizer`, `linear_classifier` and `scaler`.
//!
//! Where the Python reference and ONNX Runtime disagree these follow ONNX Runtime (the runtime models are
//! checked against): `normalizer`'s MAX norm divides by the row maximum (not the maximum magnitude) and
//! leaves a row whose norm is 0 unchanged; `linear_classifier` picks labels from the raw scores (a single
//! score column is positive above 0) and reports a single-score two-label classifier as `[1 - p, p]`,
//! where `p` is the score after LOGISTIC or PROBIT and the raw score otherwise;
//! `tree_ensemble` applies `post_transform` (the reference ignores it; a single target gets only PROBIT),
//! reads `membership_values` in node order (the specification's order), and leaves a target no tree
//! reached at 0 under MIN and MAX aggregation.

use std::collections::HashMap;

use carve_ir::ops::misc::{
    Binarizer, LabelEncoder, LinearClassifier, NormKind, Normalizer, PostTransform, Scaler,
    TreeAggregate, TreeEnsemble,
};
use carve_ir::{Constant, DType};

use super::super::control::data::{Run, gather_runs, take};
use crate::interp::util::{checked_numel, from_f64, to_f64, to_i64};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

fn tensor_value(cx: &EvalCtx, t: Result<Tensor, crate::TensorError>) -> Result<Value, RunError> {
    t.map(Value::Tensor).map_err(|e| cx.err(e.0))
}

/// `array_feature_extractor`: the last-dim entries listed by input 1 (1-D input gives `[1, k]`).
pub fn array_feature_extractor(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let idx = cx.i64s(1)?;
    let Some(&c) = x.shape.last() else {
        return Err(cx.err("input 0 must have rank >= 1"));
    };
    let cols = idx
        .iter()
        .map(|&i| usize::try_from(i).ok().filter(|&i| i < c))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| cx.err(format!("indices {idx:?} are out of range for {c} columns")))?;
    let mut shape = if x.rank() == 1 {
        vec![1]
    } else {
        x.shape[..x.rank() - 1].to_vec()
    };
    let rows: usize = shape.iter().product();
    shape.push(cols.len());
    checked_numel(&shape).map_err(|e| cx.err(e.0))?;
    let flat: Vec<usize> = (0..rows)
        .flat_map(|r| cols.iter().map(move |&k| r * c + k))
        .collect();
    let t = take(x, &flat, shape).map_err(|e| cx.err(e))?;
    Ok(vec![Value::Tensor(t)])
}

/// `binarizer`: `x > threshold ? 1 : 0` in the input's type.
pub fn binarizer(op: &Binarizer, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let th = f64::from(op.threshold);
    let v: Vec<f64> = to_f64(x)
        .map_err(|e| cx.err(e.0))?
        .iter()
        .map(|&v| f64::from(u8::from(v > th)))
        .collect();
    Ok(vec![tensor_value(
        cx,
        from_f64(x.dtype(), x.shape.clone(), &v),
    )?])
}

/// A lookup key: strings, integers, or floats by value (all NaNs equal, -0 equal to 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(String),
    Int(i64),
    Float(u64),
}

fn float_key(v: f64) -> Key {
    if v.is_nan() {
        Key::Float(f64::NAN.to_bits())
    } else if v == 0.0 {
        Key::Float(0f64.to_bits())
    } else {
        Key::Float(v.to_bits())
    }
}

fn keys_of(t: &Tensor) -> Result<Vec<Key>, String> {
    Ok(match &t.data {
        Data::Str(s) => s.iter().cloned().map(Key::Str).collect(),
        _ if t.dtype().is_float() => to_f64(t)
            .map_err(|e| e.0)?
            .into_iter()
            .map(float_key)
            .collect(),
        _ => to_i64(t)
            .map_err(|e| e.0)?
            .into_iter()
            .map(Key::Int)
            .collect(),
    })
}

fn constant_tensor(cx: &EvalCtx, c: &Constant, what: &str) -> Result<Tensor, RunError> {
    Tensor::from_constant(c).map_err(|e| cx.err(format!("{what}: {e}")))
}

/// `label_encoder`: each element equal to `keys[i]` becomes `values[i]`, others `default`.
pub fn label_encoder(op: &LabelEncoder, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let keys = constant_tensor(cx, &op.keys, "keys")?;
    let values = constant_tensor(cx, &op.values, "values")?;
    let default = constant_tensor(cx, &op.default, "default")?;
    if keys.len() != values.len() || default.len() != 1 || default.dtype() != values.dtype() {
        return Err(cx.err(format!(
            "{} keys, {} values and a default of {} elements ({}) do not make a mapping",
            keys.len(),
            values.len(),
            default.len(),
            default.dtype()
        )));
    }
    if (x.dtype() == DType::String) != (keys.dtype() == DType::String) {
        return Err(cx.err(format!(
            "input element type {} does not match the keys' {}",
            x.dtype(),
            keys.dtype()
        )));
    }
    let mut map = HashMap::new();
    for (i, k) in keys_of(&keys)
        .map_err(|e| cx.err(e))?
        .into_iter()
        .enumerate()
    {
        map.entry(k).or_insert(i);
    }
    let runs: Vec<Run> = keys_of(x)
        .map_err(|e| cx.err(e))?
        .iter()
        .map(|k| match map.get(k) {
            Some(&i) => Run {
                src: 0,
                start: i,
                len: 1,
            },
            None => Run {
                src: 1,
                start: 0,
                len: 1,
            },
        })
        .collect();
    let data = gather_runs(values.dtype(), &[&values.data, &default.data], &runs)
        .map_err(|e| cx.err(e))?;
    Ok(vec![tensor_value(cx, Tensor::new(x.shape.clone(), data))?])
}

/// ONNX Runtime's `ErfInv` approximation (used by PROBIT).
fn erf_inv(x: f64) -> f64 {
    let sgn = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f64::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

fn probit(v: f64) -> f64 {
    std::f64::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

fn logistic(v: f64) -> f64 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

/// Applies `post` to one row of scores as ONNX Runtime does: rows of one score only get PROBIT.
fn post_transform(post: PostTransform, row: &mut [f64]) {
    if row.len() == 1 {
        if post == PostTransform::Probit {
            row[0] = probit(row[0]);
        }
        return;
    }
    match post {
        PostTransform::None => {}
        PostTransform::Probit => row.iter_mut().for_each(|v| *v = probit(*v)),
        PostTransform::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
        PostTransform::Softmax => {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
        PostTransform::SoftmaxZero => {
            // Zero scores stay (near) zero: they are not exponentiated and not summed.
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exp_neg_max = (-max).exp();
            let mut sum = 0.0;
            for v in row.iter_mut() {
                if v.abs() > 1e-7 {
                    *v = (*v - max).exp();
                    sum += *v;
                } else {
                    *v *= exp_neg_max;
                }
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

/// Branch comparison modes of `tree_ensemble` (`nodes_modes` values).
const LEQ: i64 = 0;
const LT: i64 = 1;
const GTE: i64 = 2;
const GT: i64 = 3;
const EQ: i64 = 4;
const NEQ: i64 = 5;
const MEMBER: i64 = 6;

struct Trees {
    features: Vec<usize>,
    modes: Vec<i64>,
    splits: Vec<f64>,
    true_ids: Vec<usize>,
    true_leaf: Vec<bool>,
    false_ids: Vec<usize>,
    false_leaf: Vec<bool>,
    tracks_true: Vec<bool>,
    members: Vec<Vec<f64>>,
    leaf_targets: Vec<usize>,
    leaf_weights: Vec<f64>,
}

fn indices(v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&i| usize::try_from(i).map_err(|_| format!("{what} has a negative entry {i}")))
        .collect()
}

impl Trees {
    fn new(op: &TreeEnsemble, n_features: usize) -> Result<Trees, String> {
        let n = op.nodes_featureids.len();
        let c = |c: &Constant, what: &str| {
            Tensor::from_constant(c)
                .map_err(|e| format!("{what}: {e}"))
                .and_then(|t| to_f64(&t).map_err(|e| format!("{what}: {e}")))
        };
        let modes_t = Tensor::from_constant(&op.nodes_modes).map_err(|e| e.0)?;
        let modes = to_i64(&modes_t).map_err(|e| e.0)?;
        let splits = c(&op.nodes_splits, "nodes_splits")?;
        let leaf_weights = c(&op.leaf_weights, "leaf_weights")?;
        let features = indices(&op.nodes_featureids, "nodes_featureids")?;
        if let Some(f) = features.iter().find(|&&f| f >= n_features) {
            return Err(format!(
                "feature {f} is out of range for {n_features} features"
            ));
        }
        let t = Trees {
            features,
            splits,
            true_ids: indices(&op.nodes_truenodeids, "nodes_truenodeids")?,
            true_leaf: op.nodes_trueleafs.iter().map(|&b| b != 0).collect(),
            false_ids: indices(&op.nodes_falsenodeids, "nodes_falsenodeids")?,
            false_leaf: op.nodes_falseleafs.iter().map(|&b| b != 0).collect(),
            tracks_true: (0..n)
                .map(|i| {
                    op.nodes_missing_value_tracks_true
                        .get(i)
                        .is_some_and(|&b| b != 0)
                })
                .collect(),
            members: Vec::new(),
            leaf_targets: indices(&op.leaf_targetids, "leaf_targetids")?,
            leaf_weights,
            modes,
        };
        let lens = [
            t.modes.len(),
            t.splits.len(),
            t.true_ids.len(),
            t.true_leaf.len(),
            t.false_ids.len(),
            t.false_leaf.len(),
        ];
        if lens.iter().any(|&l| l != n) || t.leaf_targets.len() != t.leaf_weights.len() {
            return Err("the node and leaf attribute lists have different lengths".into());
        }
        let mut t = t;
        // Each MEMBER node's set, in node order, from the NaN-separated membership values.
        let all = match &op.membership_values {
            Some(m) => c(m, "membership_values")?,
            None => Vec::new(),
        };
        let mut rest = all.as_slice();
        for &m in &t.modes {
            let mut set = Vec::new();
            if m == MEMBER {
                if rest.is_empty() {
                    return Err(
                        "membership_values lists fewer sets than there are MEMBER nodes".into(),
                    );
                }
                let end = rest.iter().position(|v| v.is_nan()).unwrap_or(rest.len());
                set = rest[..end].to_vec();
                rest = rest.get(end + 1..).unwrap_or(&[]);
            }
            t.members.push(set);
        }
        Ok(t)
    }

    /// The leaf a row reaches from root `root`.
    fn leaf(&self, root: usize, x: &[f64]) -> Result<usize, String> {
        let node_ok = |i: usize| i < self.modes.len();
        if !node_ok(root) {
            return Err(format!("tree root {root} is out of range"));
        }
        if self.true_leaf[root]
            && self.false_leaf[root]
            && self.true_ids[root] == self.false_ids[root]
        {
            return Ok(root); // a tree that is a single leaf
        }
        let mut i = root;
        // A path longer than the node count repeats a node: the tree has a cycle.
        for _ in 0..=self.modes.len() {
            let v = x[self.features[i]];
            let s = self.splits[i];
            let go_true = (v.is_nan() && self.tracks_true[i])
                || match self.modes[i] {
                    LEQ => v <= s,
                    LT => v < s,
                    GTE => v >= s,
                    GT => v > s,
                    EQ => v == s,
                    NEQ => v != s,
                    MEMBER => self.members[i].contains(&v),
                    m => return Err(format!("node {i} has unknown mode {m}")),
                };
            let (next, leaf) = if go_true {
                (self.true_ids[i], self.true_leaf[i])
            } else {
                (self.false_ids[i], self.false_leaf[i])
            };
            if leaf {
                return Ok(next);
            }
            if !node_ok(next) {
                return Err(format!("node {i} points to a missing node {next}"));
            }
            i = next;
        }
        Err(format!("the tree rooted at node {root} has a cycle"))
    }
}

/// `tree_ensemble`: `[N, F]` features to `[N, n_targets]` aggregated leaf weights.
pub fn tree_ensemble(op: &TreeEnsemble, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let (rows, f) = match x.shape[..] {
        [r, f] => (r, f),
        [f] => (1, f),
        _ => return Err(cx.err(format!("input must be [N, F], got shape {:?}", x.shape))),
    };
    let targets = usize::try_from(op.n_targets)
        .ok()
        .filter(|&t| t >= 1)
        .ok_or_else(|| cx.err(format!("n_targets must be >= 1, got {}", op.n_targets)))?;
    checked_numel(&[rows, targets]).map_err(|e| cx.err(e.0))?;
    let trees = Trees::new(op, f).map_err(|e| cx.err(e))?;
    let roots = indices(&op.tree_roots, "tree_roots").map_err(|e| cx.err(e))?;
    let xv = to_f64(x).map_err(|e| cx.err(e.0))?;
    let mut out = vec![0.0f64; rows * targets];
    for r in 0..rows {
        let row = &xv[r * f..(r + 1) * f];
        let acc = &mut out[r * targets..(r + 1) * targets];
        let mut hit = vec![false; targets];
        for &root in &roots {
            let leaf = trees.leaf(root, row).map_err(|e| cx.err(e))?;
            let (Some(&t), Some(&w)) = (trees.leaf_targets.get(leaf), trees.leaf_weights.get(leaf))
            else {
                return Err(cx.err(format!("leaf {leaf} is out of range")));
            };
            if t >= targets {
                return Err(cx.err(format!("leaf target {t} is out of range 0..{targets}")));
            }
            acc[t] = match op.aggregate_function {
                TreeAggregate::Sum | TreeAggregate::Average => acc[t] + w,
                TreeAggregate::Min if hit[t] => acc[t].min(w),
                TreeAggregate::Max if hit[t] => acc[t].max(w),
                TreeAggregate::Min | TreeAggregate::Max => w,
            };
            hit[t] = true;
        }
        if op.aggregate_function == TreeAggregate::Average && !roots.is_empty() {
            acc.iter_mut().for_each(|v| *v /= roots.len() as f64);
        }
        post_transform(op.post_transform, acc);
    }
    Ok(vec![tensor_value(
        cx,
        from_f64(x.dtype(), vec![rows, targets], &out),
    )?])
}

/// `[batch, columns]` of a 1-D or 2-D input.
fn rows_cols(cx: &EvalCtx, t: &Tensor) -> Result<(usize, usize), RunError> {
    match t.shape[..] {
        [c] => Ok((1, c)),
        [n, c] => Ok((n, c)),
        _ => Err(cx.err(format!(
            "input must be [N, C] or [C], got shape {:?}",
            t.shape
        ))),
    }
}

/// `normalizer`: each row divided by its max, L1 or L2 norm (rows with norm 0 unchanged), into f32.
pub fn normalizer(op: &Normalizer, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let (_, c) = rows_cols(cx, x)?;
    let mut v = to_f64(x).map_err(|e| cx.err(e.0))?;
    for row in v.chunks_mut(c.max(1)) {
        let norm = match op.norm {
            NormKind::Max => row.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            NormKind::L1 => row.iter().map(|v| v.abs()).sum(),
            NormKind::L2 => row.iter().map(|v| v * v).sum::<f64>().sqrt(),
        };
        if norm != 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    Ok(vec![tensor_value(
        cx,
        from_f64(DType::F32, x.shape.clone(), &v),
    )?])
}

/// `scaler`: `(x - offset) * scale` into f32, per last-dim column (or one value for all).
pub fn scaler(op: &Scaler, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let c = x.shape.last().copied().unwrap_or(1).max(1);
    let pick = |v: &[f32], what: &str, default: f64| -> Result<Vec<f64>, RunError> {
        match v.len() {
            0 => Ok(vec![default; c]),
            1 => Ok(vec![f64::from(v[0]); c]),
            n if n == c => Ok(v.iter().map(|&x| f64::from(x)).collect()),
            n => Err(cx.err(format!("{what} has {n} entries for {c} columns"))),
        }
    };
    let offset = pick(&op.offset, "offset", 0.0)?;
    let scale = pick(&op.scale, "scale", 1.0)?;
    let v: Vec<f64> = to_f64(x)
        .map_err(|e| cx.err(e.0))?
        .iter()
        .enumerate()
        .map(|(i, &v)| (v - offset[i % c]) * scale[i % c])
        .collect();
    Ok(vec![tensor_value(
        cx,
        from_f64(DType::F32, x.shape.clone(), &v),
    )?])
}

/// `linear_classifier`: labels `[N]` and scores `[N, E]` (ONNX Runtime's conventions; see the module doc).
pub fn linear_classifier(op: &LinearClassifier, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let (n, f) = rows_cols(cx, x)?;
    let xv = to_f64(x).map_err(|e| cx.err(e.0))?;
    let coef: Vec<f64> = op.coefficients.iter().map(|&v| f64::from(v)).collect();
    let classes = coef.len().checked_div(f).unwrap_or(op.intercepts.len());
    if classes == 0 || classes * f != coef.len() {
        return Err(cx.err(format!(
            "{} coefficients do not make classes of {f} features",
            coef.len()
        )));
    }
    if !op.intercepts.is_empty() && op.intercepts.len() != classes {
        return Err(cx.err(format!(
            "{} intercepts for {classes} classes",
            op.intercepts.len()
        )));
    }
    let strings = !op.classlabels_strings.is_empty();
    let n_labels = if strings {
        op.classlabels_strings.len()
    } else {
        op.classlabels_ints.len()
    };
    let two_columns = classes == 1 && n_labels == 2;
    let width = if two_columns { 2 } else { classes };
    checked_numel(&[n, width]).map_err(|e| cx.err(e.0))?;
    let mut scores = Vec::with_capacity(n * width);
    // Per row: the index of its label, or (one score column without two labels) whether it is positive.
    let mut labels: Vec<Result<usize, bool>> = Vec::with_capacity(n);
    for r in 0..n {
        let row = &xv[r * f..(r + 1) * f];
        let mut s: Vec<f64> = (0..classes)
            .map(|k| {
                let w = &coef[k * f..(k + 1) * f];
                let dot: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum();
                dot + op.intercepts.get(k).map_or(0.0, |&b| f64::from(b))
            })
            .collect();
        if classes == 1 {
            let positive = s[0] > 0.0;
            labels.push(if n_labels == 2 {
                Ok(usize::from(positive))
            } else {
                Err(positive)
            });
        } else {
            let mut best = 0;
            for k in 1..classes {
                if s[k] > s[best] {
                    best = k;
                }
            }
            if best >= n_labels {
                return Err(cx.err(format!("class {best} has no label ({n_labels} labels)")));
            }
            labels.push(Ok(best));
        }
        if classes == 1 {
            // A single score becomes a probability only under LOGISTIC or PROBIT.
            let p = match op.post_transform {
                PostTransform::Logistic => logistic(s[0]),
                PostTransform::Probit => probit(s[0]),
                _ => s[0],
            };
            s = if two_columns {
                vec![1.0 - p, p]
            } else {
                vec![p]
            };
        } else {
            post_transform(op.post_transform, &mut s);
        }
        scores.extend(s);
    }
    let label_t = if strings {
        let v = labels
            .iter()
            .map(|l| match l {
                Ok(i) => op.classlabels_strings[*i].clone(),
                Err(p) => (if *p { "1" } else { "0" }).to_string(),
            })
            .collect();
        Tensor::new(vec![n], Data::Str(v))
    } else {
        let v = labels
            .iter()
            .map(|l| match l {
                Ok(i) => op.classlabels_ints[*i],
                Err(p) => i64::from(*p),
            })
            .collect();
        Tensor::new(vec![n], Data::I64(v))
    };
    let mut out = vec![tensor_value(cx, label_t)?];
    if cx.num_outputs() >= 2 {
        out.push(tensor_value(
            cx,
            from_f64(DType::F32, vec![n, width], &scores),
        )?);
    }
    Ok(out)
}
