//! Accuracy metrics of a compressed model against the float model on real data: top-1 agreement with
//! the float model's prediction (the default), accuracy against labels, and the cosine similarity of an
//! embedding output; plus the per-sample output error used to rank layer sensitivity.

use std::fmt;
use std::str::FromStr;

use carve_ir::{DType, Graph, Type};

use super::CompressError;

/// Which number the accuracy budget holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricKind {
    /// Share of samples whose argmax equals the float model's.
    Top1,
    /// Share of samples whose argmax equals the label (needs labels).
    Accuracy,
    /// Cosine similarity to the float model's output: the minimum over samples is held (the mean is
    /// reported too).
    Cosine,
}

/// A metric over one output (`None`: the first float output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    /// What is measured.
    pub kind: MetricKind,
    /// The output measured.
    pub output: Option<String>,
}

impl FromStr for MetricSpec {
    type Err = String;

    /// `top1`, `accuracy` or `cosine`, optionally `:OUTPUT`.
    fn from_str(s: &str) -> Result<MetricSpec, String> {
        let (k, out) = match s.split_once(':') {
            Some((k, o)) if !o.is_empty() => (k, Some(o.to_string())),
            Some(_) => return Err(format!("'{s}': the output name after ':' is empty")),
            None => (s, None),
        };
        let kind = match k {
            "top1" => MetricKind::Top1,
            "accuracy" => MetricKind::Accuracy,
            "cosine" => MetricKind::Cosine,
            _ => {
                return Err(format!(
                    "'{k}' is not a metric: top1, accuracy or cosine (each optionally :OUTPUT)"
                ));
            }
        };
        Ok(MetricSpec { kind, output: out })
    }
}

impl fmt::Display for MetricSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind {
            MetricKind::Top1 => "top1",
            MetricKind::Accuracy => "accuracy",
            MetricKind::Cosine => "cosine",
        };
        match &self.output {
            Some(o) => write!(f, "{k}:{o}"),
            None => write!(f, "{k}"),
        }
    }
}

impl MetricSpec {
    /// The output this metric reads in `g`: the named one (which must exist) or the first f32 output.
    pub fn resolve_output(&self, g: &Graph) -> Result<String, CompressError> {
        let outs: Vec<(&str, &Type)> = g
            .outputs
            .iter()
            .map(|&v| (g.value(v).name.as_str(), g.ty(v)))
            .collect();
        match &self.output {
            Some(o) => outs
                .iter()
                .find(|(n, _)| n == o)
                .map(|(n, _)| n.to_string())
                .ok_or_else(|| {
                    let names: Vec<&str> = outs.iter().map(|(n, _)| *n).collect();
                    CompressError::Metric(format!(
                        "the model has no output '{o}' (its outputs: {})",
                        names.join(", ")
                    ))
                }),
            None => outs
                .iter()
                .find(|(_, t)| matches!(t, Type::Tensor(t) if t.dtype == DType::F32))
                .map(|(n, _)| n.to_string())
                .ok_or_else(|| {
                    CompressError::Metric(
                        "the model has no f32 output; name one with --metric KIND:OUTPUT".into(),
                    )
                }),
        }
    }

    /// The default budget for this metric: 0.5 point of top-1/accuracy, 0.01 of cosine.
    pub fn default_max_drop(&self) -> f64 {
        match self.kind {
            MetricKind::Top1 | MetricKind::Accuracy => 0.005,
            MetricKind::Cosine => 0.01,
        }
    }
}

/// The metric of a model variant on a dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// The held number (top-1 agreement, accuracy or minimum cosine).
    pub value: f64,
    /// Mean cosine (cosine metric), or the same as `value`.
    pub mean: f64,
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || (v[best].is_nan() && !x.is_nan()) {
            best = i;
        }
    }
    best
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// Scores `outs` (the measured output per sample) against the float model's outputs `reference` and,
/// for accuracy, `labels`. Scoring the float outputs themselves gives the float model's score.
pub fn score(
    kind: &MetricKind,
    outs: &[Vec<f32>],
    reference: &[Vec<f32>],
    labels: Option<&[i64]>,
) -> Result<Score, CompressError> {
    let n = outs.len().max(1) as f64;
    match kind {
        MetricKind::Top1 => {
            let agree = outs
                .iter()
                .zip(reference)
                .filter(|(o, r)| argmax(o) == argmax(r))
                .count();
            let v = agree as f64 / n;
            Ok(Score { value: v, mean: v })
        }
        MetricKind::Accuracy => {
            let labels = labels.ok_or_else(|| {
                CompressError::Metric("the accuracy metric needs labels (--labels ARRAY)".into())
            })?;
            let right = outs
                .iter()
                .zip(labels)
                .filter(|(o, l)| i64::try_from(argmax(o)).is_ok_and(|a| a == **l))
                .count();
            let v = right as f64 / n;
            Ok(Score { value: v, mean: v })
        }
        MetricKind::Cosine => {
            let cs: Vec<f64> = outs
                .iter()
                .zip(reference)
                .map(|(o, r)| cosine(o, r))
                .collect();
            let min = cs.iter().copied().fold(f64::INFINITY, f64::min);
            let mean = cs.iter().sum::<f64>() / n;
            Ok(Score {
                value: if cs.is_empty() { 1.0 } else { min },
                mean,
            })
        }
    }
}

/// Mean relative L2 error of `outs` against `reference` (per sample `‖o − r‖ / ‖r‖`): how much a
/// variant moves the output, the sensitivity of a layer quantized alone.
pub fn output_error(outs: &[Vec<f32>], reference: &[Vec<f32>]) -> f64 {
    let errs: Vec<f64> = outs
        .iter()
        .zip(reference)
        .map(|(o, r)| {
            let (mut d, mut nr) = (0f64, 0f64);
            for (&x, &y) in o.iter().zip(r) {
                d += (f64::from(x) - f64::from(y)).powi(2);
                nr += f64::from(y).powi(2);
            }
            if nr > 0.0 { (d / nr).sqrt() } else { d.sqrt() }
        })
        .collect();
    errs.iter().sum::<f64>() / errs.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_score_agreement_accuracy_and_cosine() {
        let r = vec![vec![0.1, 0.9], vec![0.8, 0.2]];
        let o = vec![vec![0.2, 0.8], vec![0.4, 0.6]];
        assert_eq!(score(&MetricKind::Top1, &o, &r, None).unwrap().value, 0.5);
        let l = [1, 1];
        assert_eq!(
            score(&MetricKind::Accuracy, &o, &r, Some(&l))
                .unwrap()
                .value,
            1.0
        );
        assert!((score(&MetricKind::Cosine, &r, &r, None).unwrap().value - 1.0).abs() < 1e-12);
        assert!(score(&MetricKind::Accuracy, &o, &r, None).is_err());
        assert!(output_error(&o, &r) > 0.0 && output_error(&r, &r) == 0.0);
        assert_eq!(
            "cosine:emb".parse::<MetricSpec>().unwrap().to_string(),
            "cosine:emb"
        );
    }
}
