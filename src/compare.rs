//! Comparing computed values with references, like the ONNX backend test runner: kinds, shapes and dtypes
//! must match; floats within `|a - e| <= atol + rtol·|e|` with NaN in the same places and infinities equal;
//! integers, bools and strings exactly.

use carve_runtime::interp::Value;
use carve_runtime::interp::util::to_f64;
use carve_runtime::{Data, Tensor};

/// Float tolerances.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

/// The ONNX node suite's tolerance (rtol 1e-3, atol 1e-5).
pub const NODE_SUITE: Tolerance = Tolerance {
    rtol: 1e-3,
    atol: 1e-5,
};
/// The real models' tolerance (rtol 1e-3, atol 1e-4).
pub const REAL_MODELS: Tolerance = Tolerance {
    rtol: 1e-3,
    atol: 1e-4,
};

/// How far apart two values are: `Ok(max_abs_error)` when they match, else a description.
pub fn compare(expected: &Value, actual: &Value, tol: Tolerance) -> Result<f64, String> {
    match (expected, actual) {
        (Value::Tensor(e), Value::Tensor(a)) => compare_tensors(e, a, tol),
        (Value::Sequence(e), Value::Sequence(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "sequence of {} items, expected {}",
                    a.len(),
                    e.len()
                ));
            }
            let mut worst = 0.0f64;
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                worst = worst.max(compare(x, y, tol).map_err(|m| format!("item {i}: {m}"))?);
            }
            Ok(worst)
        }
        (Value::Optional(e), Value::Optional(a)) => match (e, a) {
            (None, None) => Ok(0.0),
            (Some(x), Some(y)) => compare(x, y, tol),
            (None, Some(_)) => Err("optional has a value, expected none".into()),
            (Some(_), None) => Err("optional is empty, expected a value".into()),
        },
        // A reference optional holding a tensor matches a tensor (and vice versa).
        (Value::Optional(Some(e)), a) => compare(e, a, tol),
        (e, Value::Optional(Some(a))) => compare(e, a, tol),
        (e, a) => Err(format!("got a {}, expected a {}", a.kind(), e.kind())),
    }
}

fn compare_tensors(e: &Tensor, a: &Tensor, tol: Tolerance) -> Result<f64, String> {
    if e.dtype() != a.dtype() {
        return Err(format!("dtype {} expected {}", a.dtype(), e.dtype()));
    }
    if e.shape != a.shape {
        return Err(format!("shape {:?} expected {:?}", a.shape, e.shape));
    }
    match (&e.data, &a.data) {
        (Data::Str(x), Data::Str(y)) => match x.iter().zip(y).position(|(p, q)| p != q) {
            Some(i) => Err(format!(
                "string element {i} is {:?}, expected {:?}",
                y[i], x[i]
            )),
            None => Ok(0.0),
        },
        (Data::C64(x), Data::C64(y)) => {
            let ex: Vec<f64> = x.iter().flat_map(|c| c.map(f64::from)).collect();
            let ac: Vec<f64> = y.iter().flat_map(|c| c.map(f64::from)).collect();
            close(&ex, &ac, tol)
        }
        (Data::C128(x), Data::C128(y)) => {
            let ex: Vec<f64> = x.iter().flatten().copied().collect();
            let ac: Vec<f64> = y.iter().flatten().copied().collect();
            close(&ex, &ac, tol)
        }
        _ => {
            let ex = to_f64(e).map_err(|m| m.0)?;
            let ac = to_f64(a).map_err(|m| m.0)?;
            if e.dtype().is_float() {
                close(&ex, &ac, tol)
            } else {
                match ex.iter().zip(&ac).position(|(p, q)| p != q) {
                    Some(i) => Err(format!("element {i} is {}, expected {}", ac[i], ex[i])),
                    None => Ok(0.0),
                }
            }
        }
    }
}

fn close(e: &[f64], a: &[f64], tol: Tolerance) -> Result<f64, String> {
    let mut worst = 0.0f64;
    let mut bad: Option<(usize, f64)> = None;
    let mut n_bad = 0usize;
    for (i, (&x, &y)) in e.iter().zip(a).enumerate() {
        if x.is_nan() || y.is_nan() {
            if x.is_nan() != y.is_nan() {
                return Err(format!(
                    "element {i} is {y}, expected {x} (NaN positions differ)"
                ));
            }
            continue;
        }
        if x.is_infinite() || y.is_infinite() {
            if x != y {
                return Err(format!("element {i} is {y}, expected {x}"));
            }
            continue;
        }
        let d = (x - y).abs();
        worst = worst.max(d);
        if d > tol.atol + tol.rtol * x.abs() {
            n_bad += 1;
            if bad.is_none_or(|(_, w)| d > w) {
                bad = Some((i, d));
            }
        }
    }
    match bad {
        Some((i, d)) => Err(format!(
            "{n_bad} of {} elements differ; max error {d:.3e} at element {i} ({} vs expected {})",
            e.len(),
            a[i],
            e[i]
        )),
        None => Ok(worst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f32>) -> Value {
        Value::Tensor(Tensor::new(vec![v.len()], Data::F32(v)).unwrap())
    }

    #[test]
    fn floats_compare_with_tolerance_and_nan_positions() {
        assert!(
            compare(
                &t(vec![1.0, f32::NAN]),
                &t(vec![1.0005, f32::NAN]),
                NODE_SUITE
            )
            .is_ok()
        );
        assert!(compare(&t(vec![1.0]), &t(vec![1.01]), NODE_SUITE).is_err());
        assert!(compare(&t(vec![f32::NAN]), &t(vec![0.0]), NODE_SUITE).is_err());
        assert!(compare(&t(vec![1.0, 2.0]), &t(vec![1.0]), NODE_SUITE).is_err());
    }

    #[test]
    fn integers_must_match_exactly_and_dtypes_must_agree() {
        let a = Value::Tensor(Tensor::new(vec![1], Data::I64(vec![3])).unwrap());
        let b = Value::Tensor(Tensor::new(vec![1], Data::I64(vec![4])).unwrap());
        let c = Value::Tensor(Tensor::new(vec![1], Data::I32(vec![3])).unwrap());
        assert!(compare(&a, &a, NODE_SUITE).is_ok());
        assert!(compare(&a, &b, NODE_SUITE).is_err());
        assert!(compare(&a, &c, NODE_SUITE).is_err());
    }
}
