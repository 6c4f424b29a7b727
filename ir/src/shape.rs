//! Tensor shapes whose dimensions are concrete, symbolic (`N`, `seq`) or unknown.

use std::fmt;

/// One dimension of a shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// A concrete size.
    Known(u64),
    /// A named symbolic size, equal wherever the same name appears in one graph.
    Sym(String),
    /// A size nothing is known about (printed `?`).
    Unknown,
}

impl Dim {
    /// The concrete size, if known.
    pub fn known(&self) -> Option<u64> {
        match self {
            Dim::Known(n) => Some(*n),
            _ => None,
        }
    }

    /// True when two dims certainly differ (both concrete and unequal).
    pub fn conflicts(&self, other: &Dim) -> bool {
        matches!((self, other), (Dim::Known(a), Dim::Known(b)) if a != b)
    }

    /// The more precise of two compatible dims (concrete beats symbolic beats unknown).
    pub fn refine(&self, other: &Dim) -> Dim {
        match (self, other) {
            (Dim::Known(_), _) => self.clone(),
            (_, Dim::Known(_)) => other.clone(),
            (Dim::Sym(_), _) => self.clone(),
            (_, Dim::Sym(_)) => other.clone(),
            _ => Dim::Unknown,
        }
    }

    /// Product of two dims: concrete when both are, `1·d = d`, otherwise unknown.
    pub fn mul(&self, other: &Dim) -> Dim {
        match (self, other) {
            (Dim::Known(a), Dim::Known(b)) => a.checked_mul(*b).map_or(Dim::Unknown, Dim::Known),
            (Dim::Known(1), d) | (d, Dim::Known(1)) => d.clone(),
            (Dim::Known(0), _) | (_, Dim::Known(0)) => Dim::Known(0),
            _ => Dim::Unknown,
        }
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Self {
        Dim::Known(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A shape of known rank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A shape of concrete dims.
    pub fn known(dims: &[u64]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Known(d)).collect())
    }

    /// The scalar shape `[]`.
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The dims.
    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// All dims as concrete sizes, if every one is known.
    pub fn as_known(&self) -> Option<Vec<u64>> {
        self.0.iter().map(Dim::known).collect()
    }

    /// Element count when every dim is known and the product does not overflow.
    pub fn num_elements(&self) -> Option<u64> {
        self.0
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(d.known()?))
    }

    /// True when every dim is concrete.
    pub fn is_static(&self) -> bool {
        self.0.iter().all(|d| d.known().is_some())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl From<Vec<Dim>> for Shape {
    fn from(v: Vec<Dim>) -> Self {
        Shape(v)
    }
}
