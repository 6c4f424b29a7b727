//! The one activation vocabulary of the IR: [`ActKind`] names a scalar function, [`Activation`] is a
//! function with its (up to two) parameters. Every op that carries an activation uses it: the fused ops'
//! epilogues ([`crate::ops::fused`]), the recurrent layers' gate and cell functions
//! ([`crate::ops::rnn`]) and `causal_conv`; the elementwise activation ops map onto it
//! ([`Activation::of_elementwise`]).
//!
//! The IR only names the functions: their semantics are the reference interpreter's
//! (`carve_runtime::interp::activation`), their native code is `carve_codegen::lower::activation`.
//!
//! Text form of an activation inside an epilogue list: the keyword, then its parameters in parentheses
//! when the function takes any (`relu`, `leaky_relu(0.1)`, `hard_sigmoid(0.2, 0.5)`).

use crate::ops::elementwise::{ElementwiseOp as E, GeluApprox};
use crate::ops::{AttrType, AttrValue};

crate::attr_enum! {
    /// A scalar activation function (parameters `alpha`, `beta` in [`Activation`]).
    pub enum ActKind {
        /// The identity.
        None = "none",
        /// `x < 0 ? 0 : x`.
        Relu = "relu",
        /// `x < 0 ? alpha·x : x`.
        LeakyRelu = "leaky_relu",
        /// `min(max(x, alpha), beta)`.
        Clip = "clip",
        /// `clamp(alpha·x + beta, 0, 1)`.
        HardSigmoid = "hard_sigmoid",
        /// `x · clamp(x/6 + 1/2, 0, 1)`.
        HardSwish = "hard_swish",
        /// `1/(1+e⁻ˣ)`.
        Sigmoid = "sigmoid",
        /// `tanh(x)`.
        Tanh = "tanh",
        /// `0.5·x·(1 + erf(x/√2))`.
        GeluErf = "gelu_erf",
        /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
        GeluTanh = "gelu_tanh",
        /// `x · sigmoid(alpha·x)` (ONNX Swish; SiLU is alpha = 1).
        Silu = "silu",
        /// `alpha·x + beta`.
        Affine = "affine",
        /// `x > alpha ? x : 0`.
        ThresholdedRelu = "thresholded_relu",
        /// `alpha·tanh(beta·x)`.
        ScaledTanh = "scaled_tanh",
        /// `x < 0 ? alpha·(eˣ − 1) : x`.
        Elu = "elu",
        /// `x ≤ 0 ? beta·alpha·(eˣ − 1) : beta·x` (beta is ONNX's gamma).
        Selu = "selu",
        /// `max(0, x) + min(0, alpha·(e^(x/alpha) − 1))`.
        Celu = "celu",
        /// `x / (1 + |x|)`.
        Softsign = "softsign",
        /// `ln(1 + eˣ)`.
        Softplus = "softplus",
        /// `x · tanh(softplus(x))`.
        Mish = "mish",
    }
}

impl ActKind {
    /// Parses an ONNX activation-function name as the recurrent layers spell them (`Sigmoid`,
    /// `LeakyRelu`, …; case-insensitive).
    pub fn from_onnx(name: &str) -> Option<ActKind> {
        Some(match name.to_ascii_lowercase().as_str() {
            "relu" => ActKind::Relu,
            "tanh" => ActKind::Tanh,
            "sigmoid" => ActKind::Sigmoid,
            "affine" => ActKind::Affine,
            "leakyrelu" => ActKind::LeakyRelu,
            "thresholdedrelu" => ActKind::ThresholdedRelu,
            "scaledtanh" => ActKind::ScaledTanh,
            "hardsigmoid" => ActKind::HardSigmoid,
            "elu" => ActKind::Elu,
            "softsign" => ActKind::Softsign,
            "softplus" => ActKind::Softplus,
            _ => return None,
        })
    }

    /// Number of parameters the function reads (0, 1: `alpha`, or 2: `alpha` and `beta`).
    pub fn arity(self) -> usize {
        match self {
            ActKind::LeakyRelu
            | ActKind::Silu
            | ActKind::ThresholdedRelu
            | ActKind::Elu
            | ActKind::Celu => 1,
            ActKind::Clip
            | ActKind::HardSigmoid
            | ActKind::Affine
            | ActKind::ScaledTanh
            | ActKind::Selu => 2,
            _ => 0,
        }
    }

    /// True if the function takes `alpha`.
    pub fn uses_alpha(self) -> bool {
        self.arity() >= 1
    }

    /// True if the function takes `beta`.
    pub fn uses_beta(self) -> bool {
        self.arity() >= 2
    }

    /// Default `(alpha, beta)`: those of the corresponding ONNX ops, 0 where unused.
    pub fn default_params(self) -> (f32, f32) {
        match self {
            ActKind::Affine => (1.0, 0.0),
            ActKind::LeakyRelu => (0.01, 0.0),
            ActKind::ThresholdedRelu | ActKind::Elu | ActKind::Celu | ActKind::Silu => (1.0, 0.0),
            ActKind::ScaledTanh => (1.0, 1.0),
            ActKind::HardSigmoid => (0.2, 0.5),
            ActKind::Selu => (1.673_263_2, 1.050_701),
            ActKind::Clip => (f32::NEG_INFINITY, f32::INFINITY),
            _ => (0.0, 0.0),
        }
    }

    /// Estimated FLOPs per element (a transcendental function counts as `transcendental`).
    pub fn flops(self, transcendental: f64) -> f64 {
        match self {
            ActKind::None => 0.0,
            ActKind::Relu | ActKind::LeakyRelu | ActKind::Clip | ActKind::ThresholdedRelu => 1.0,
            ActKind::Affine => 2.0,
            ActKind::HardSigmoid | ActKind::HardSwish | ActKind::Softsign => 3.0,
            ActKind::Mish => 2.0 * transcendental + 3.0,
            _ => transcendental + 2.0,
        }
    }
}

/// A list of activation functions (a recurrent layer's) is printed as a list of keyword strings.
impl AttrType for Vec<ActKind> {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Strs(self.iter().map(|a| a.keyword().to_string()).collect())
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Strs(s) => s
                .iter()
                .map(|k| {
                    ActKind::from_keyword(k).ok_or_else(|| {
                        format!(
                            "unknown activation '{k}', expected one of {:?}",
                            ActKind::KEYWORDS
                        )
                    })
                })
                .collect(),
            AttrValue::Ints(i) if i.is_empty() => Ok(Vec::new()),
            o => Err(format!("expected a list of activation names, got {o:?}")),
        }
    }
}

/// An activation function with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Activation {
    /// Which function.
    pub kind: ActKind,
    /// First parameter (see [`ActKind`]); 0 when unused.
    pub alpha: f32,
    /// Second parameter; 0 when unused.
    pub beta: f32,
}

impl Activation {
    /// The identity.
    pub const NONE: Activation = Activation {
        kind: ActKind::None,
        alpha: 0.0,
        beta: 0.0,
    };

    /// An activation with parameters `alpha`, `beta` (unused ones are stored as 0, so equal
    /// functions compare equal).
    pub fn new(kind: ActKind, alpha: f32, beta: f32) -> Activation {
        let a = kind.arity();
        Activation {
            kind,
            alpha: if a >= 1 { alpha } else { 0.0 },
            beta: if a >= 2 { beta } else { 0.0 },
        }
    }

    /// The function with its default parameters ([`ActKind::default_params`]).
    pub fn plain(kind: ActKind) -> Activation {
        let (a, b) = kind.default_params();
        Activation::new(kind, a, b)
    }

    /// True for the identity.
    pub fn is_none(&self) -> bool {
        self.kind == ActKind::None
    }

    /// The activation an elementwise op computes on its one input, if it is one of the vocabulary
    /// (`clip`, whose bounds are operands, is matched by the fusion rules themselves).
    pub fn of_elementwise(op: &E) -> Option<Activation> {
        let p = Activation::plain;
        Some(match op {
            E::Relu(_) => p(ActKind::Relu),
            E::LeakyRelu(o) => Activation::new(ActKind::LeakyRelu, o.alpha, 0.0),
            E::HardSigmoid(o) => Activation::new(ActKind::HardSigmoid, o.alpha, o.beta),
            E::HardSwish(_) => p(ActKind::HardSwish),
            E::Sigmoid(_) => p(ActKind::Sigmoid),
            E::Tanh(_) => p(ActKind::Tanh),
            E::Gelu(g) => p(match g.approximate {
                GeluApprox::Erf => ActKind::GeluErf,
                GeluApprox::Tanh => ActKind::GeluTanh,
            }),
            E::Swish(o) => Activation::new(ActKind::Silu, o.alpha, 0.0),
            E::ThresholdedRelu(o) => Activation::new(ActKind::ThresholdedRelu, o.alpha, 0.0),
            E::Elu(o) => Activation::new(ActKind::Elu, o.alpha, 0.0),
            E::Selu(o) => Activation::new(ActKind::Selu, o.alpha, o.gamma),
            E::Celu(o) => Activation::new(ActKind::Celu, o.alpha, 0.0),
            E::Softsign(_) => p(ActKind::Softsign),
            E::Softplus(_) => p(ActKind::Softplus),
            E::Mish(_) => p(ActKind::Mish),
            _ => return None,
        })
    }

    /// Parses the text form (`relu`, `leaky_relu(0.1)`, `hard_sigmoid(0.2, 0.5)`); `None` if `s`
    /// does not name an activation. A function given the wrong number of parameters is an error.
    pub fn parse(s: &str) -> Option<Result<Activation, String>> {
        let (name, args) = split_call(s);
        let kind = ActKind::from_keyword(name)?;
        Some((|| {
            let args = parse_floats(args?)?;
            if args.len() != kind.arity() {
                return Err(format!(
                    "'{name}' takes {} parameter(s), got {}",
                    kind.arity(),
                    args.len()
                ));
            }
            let a = args.first().copied().unwrap_or(0.0);
            let b = args.get(1).copied().unwrap_or(0.0);
            Ok(Activation::new(kind, a, b))
        })())
    }
}

/// `relu`, `leaky_relu(0.1)`, `hard_sigmoid(0.2, 0.5)`: floats in their shortest round-trip form.
impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.keyword())?;
        match self.kind.arity() {
            0 => Ok(()),
            1 => write!(f, "({:?})", self.alpha),
            _ => write!(f, "({:?}, {:?})", self.alpha, self.beta),
        }
    }
}

/// Splits `name(args)` into the name and the argument text (`Ok("")` without parentheses, `Err`
/// when the parentheses are unbalanced).
pub(crate) fn split_call(s: &str) -> (&str, Result<&str, String>) {
    let s = s.trim();
    match s.find('(') {
        None => (s, Ok("")),
        Some(i) => {
            let name = s[..i].trim();
            let rest = &s[i + 1..];
            match rest.strip_suffix(')') {
                Some(args) => (name, Ok(args)),
                None => (name, Err(format!("'{s}': missing ')'"))),
            }
        }
    }
}

/// Parses a comma-separated list of floats (empty text: no floats).
pub(crate) fn parse_floats(s: &str) -> Result<Vec<f32>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|p| {
            let p = p.trim();
            p.parse::<f32>()
                .map_err(|e| format!("'{p}' is not a float: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_text_round_trips() {
        for kw in ActKind::KEYWORDS {
            let kind = ActKind::from_keyword(kw).unwrap();
            let a = Activation::new(kind, 0.125, -3.5);
            let text = a.to_string();
            let back = Activation::parse(&text).unwrap().unwrap();
            assert_eq!(back, a, "{text}");
        }
        assert_eq!(
            Activation::parse("leaky_relu(0.1)").unwrap().unwrap(),
            Activation::new(ActKind::LeakyRelu, 0.1, 0.0)
        );
        assert!(Activation::parse("relu(1.0)").unwrap().is_err());
        assert!(Activation::parse("bias").is_none());
    }

    #[test]
    fn unused_parameters_are_normalized() {
        assert_eq!(
            Activation::new(ActKind::Relu, 3.0, 4.0),
            Activation::plain(ActKind::Relu)
        );
        assert_eq!(Activation::plain(ActKind::Silu).alpha, 1.0);
    }
}
