//! One-line, human-readable summaries of runtime values for the CLI (`carve run`).

use carve_runtime::Tensor;
use carve_runtime::interp::Value;
use carve_runtime::interp::util::to_f64;

fn tensor_summary(t: &Tensor) -> String {
    let head = format!("{}{:?}", t.dtype(), t.shape);
    if t.is_empty() {
        return format!("{head} (empty)");
    }
    let Ok(v) = to_f64(t) else {
        return head;
    };
    if t.dtype().is_float() {
        let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        let (lo, hi) = finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
        let nonfinite = v.len() - finite.len();
        let extra = if nonfinite > 0 {
            format!(", {nonfinite} non-finite")
        } else {
            String::new()
        };
        let first: Vec<String> = v.iter().take(6).map(|x| format!("{x:.6}")).collect();
        format!(
            "{head}  min {lo:.6}  max {hi:.6}  mean {mean:.6}{extra}  [{}{}]",
            first.join(", "),
            if v.len() > 6 { ", …" } else { "" }
        )
    } else {
        let first: Vec<String> = v.iter().take(10).map(|x| format!("{x}")).collect();
        format!(
            "{head}  [{}{}]",
            first.join(", "),
            if v.len() > 10 { ", …" } else { "" }
        )
    }
}

/// A one-line summary: dtype and shape, then min/max/mean and the first values for floats, or the first
/// values for integers; sequences and optionals described by their items.
pub fn summary(v: &Value) -> String {
    match v {
        Value::Tensor(t) => tensor_summary(t),
        Value::Sequence(items) => {
            let inner: Vec<String> = items.iter().take(3).map(summary).collect();
            format!(
                "sequence of {} [{}{}]",
                items.len(),
                inner.join("; "),
                if items.len() > 3 { "; …" } else { "" }
            )
        }
        Value::Optional(None) => "optional (empty)".into(),
        Value::Optional(Some(x)) => format!("optional {}", summary(x)),
    }
}
