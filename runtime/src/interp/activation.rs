//! The reference definition of the IR's activation vocabulary ([`carve_ir::ops::activation`]): one
//! scalar function in f64 used by every op that carries an activation (fused ops' epilogues, recurrent
//! layers' gates, `causal_conv`) and by the elementwise activation ops' kernels.
//!
//! NaN propagates where numpy propagates it (`relu`, `clip`, `hard_sigmoid`, `hard_swish`) and follows
//! numpy's `where` where the ONNX reference selects (`thresholded_relu` gives 0).

use std::f64::consts::PI;

use carve_ir::ops::activation::{ActKind, Activation};

use super::elementwise::unary::erf;

/// `act(x)`, computed in f64.
pub fn apply(act: &Activation, x: f64) -> f64 {
    let (a, b) = (f64::from(act.alpha), f64::from(act.beta));
    match act.kind {
        ActKind::None => x,
        ActKind::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        ActKind::LeakyRelu => {
            if x < 0.0 {
                a * x
            } else {
                x
            }
        }
        ActKind::Clip => nan_min(nan_max(x, a), b),
        ActKind::HardSigmoid => nan_max(0.0, nan_min(1.0, a * x + b)),
        ActKind::HardSwish => x * nan_max(0.0, nan_min(1.0, x / 6.0 + 0.5)),
        ActKind::Sigmoid => sigmoid(x),
        ActKind::Tanh => x.tanh(),
        ActKind::GeluErf => 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
        ActKind::GeluTanh => {
            let k = (2.0 / PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }
        ActKind::Silu => x * sigmoid(a * x),
        ActKind::Affine => a * x + b,
        ActKind::ThresholdedRelu => {
            if x > a {
                x
            } else {
                0.0
            }
        }
        ActKind::ScaledTanh => a * (b * x).tanh(),
        ActKind::Elu => {
            if x < 0.0 {
                a * x.exp_m1()
            } else {
                x
            }
        }
        ActKind::Selu => {
            if x <= 0.0 {
                b * a * x.exp_m1()
            } else {
                b * x
            }
        }
        ActKind::Celu => nan_max(0.0, x) + nan_min(0.0, a * (x / a).exp_m1()),
        ActKind::Softsign => x / (1.0 + x.abs()),
        ActKind::Softplus => softplus(x),
        ActKind::Mish => x * softplus(x).tanh(),
    }
}

/// numpy `maximum`: NaN if either is NaN.
pub fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// numpy `minimum`: NaN if either is NaN.
pub fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// `1 / (1 + e^−x)` without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^x)` without overflow (numpy's `logaddexp(0, x)`).
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(kind: ActKind, alpha: f32, beta: f32) -> Activation {
        Activation::new(kind, alpha, beta)
    }

    #[test]
    fn every_activation_matches_its_definition() {
        let p = Activation::plain;
        assert_eq!(apply(&p(ActKind::None), -2.5), -2.5);
        assert_eq!(apply(&p(ActKind::Relu), -2.0), 0.0);
        assert!(apply(&p(ActKind::Relu), f64::NAN).is_nan());
        assert_eq!(apply(&act(ActKind::LeakyRelu, 0.5, 0.0), -2.0), -1.0);
        assert_eq!(apply(&act(ActKind::Clip, 0.0, 6.0), 7.0), 6.0);
        assert_eq!(apply(&act(ActKind::Clip, 0.0, 6.0), -1.0), 0.0);
        assert!(apply(&act(ActKind::Clip, 0.0, 6.0), f64::NAN).is_nan());
        assert_eq!(apply(&act(ActKind::HardSigmoid, 0.25, 0.5), 10.0), 1.0);
        assert!((apply(&act(ActKind::HardSigmoid, 0.2, 0.5), 1.0) - 0.7).abs() < 1e-7);
        assert_eq!(apply(&p(ActKind::HardSwish), 3.0), 3.0);
        assert_eq!(apply(&p(ActKind::Sigmoid), 0.0), 0.5);
        assert_eq!(apply(&p(ActKind::Sigmoid), -1000.0), 0.0);
        assert!((apply(&p(ActKind::Tanh), 1.0) - 1f64.tanh()).abs() < 1e-15);
        let g = apply(&p(ActKind::GeluErf), 1.0);
        assert!((g - 0.841_344_746_068_543).abs() < 1e-12, "{g}");
        let g = apply(&p(ActKind::GeluErf), -3.0);
        assert!((g + 0.004_049_694_094_890_3).abs() < 1e-12, "{g}");
        let g = apply(&p(ActKind::GeluTanh), 1.0);
        assert!((g - 0.841_191_990_608_276_8).abs() < 1e-12, "{g}");
        assert!((apply(&p(ActKind::Silu), 1.0) - sigmoid(1.0)).abs() < 1e-15);
        assert_eq!(apply(&act(ActKind::Affine, 2.0, 1.0), 3.0), 7.0);
        assert_eq!(apply(&act(ActKind::ThresholdedRelu, 1.0, 0.0), 0.5), 0.0);
        assert_eq!(apply(&act(ActKind::ThresholdedRelu, 1.0, 0.0), 1.5), 1.5);
        let st = apply(&act(ActKind::ScaledTanh, 2.0, 0.5), 1.0);
        assert!((st - 2.0 * 0.5f64.tanh()).abs() < 1e-12);
        let e = apply(&act(ActKind::Elu, 1.0, 0.0), -1.0);
        assert!((e - ((-1.0f64).exp() - 1.0)).abs() < 1e-12);
        let s = apply(&p(ActKind::Selu), -1.0);
        let (sa, sg) = (f64::from(1.673_263_2f32), f64::from(1.050_701f32));
        assert!((s - sg * sa * (-1.0f64).exp_m1()).abs() < 1e-12);
        assert_eq!(apply(&p(ActKind::Selu), 2.0), 2.0 * sg);
        let c = apply(&act(ActKind::Celu, 2.0, 0.0), -1.0);
        assert!((c - 2.0 * (-0.5f64).exp_m1()).abs() < 1e-12);
        assert_eq!(apply(&p(ActKind::Softsign), 1.0), 0.5);
        assert!((apply(&p(ActKind::Softplus), 0.0) - 2f64.ln()).abs() < 1e-12);
        assert_eq!(apply(&p(ActKind::Softplus), 1000.0), 1000.0);
        let m = apply(&p(ActKind::Mish), 1.0);
        assert!((m - softplus(1.0).tanh()).abs() < 1e-12);
    }
}
