//! Value types: tensors (element type, shape, optional quantization), sequences, optionals and maps.

use std::fmt;

use crate::{DType, Dim, Shape};

/// How a quantized tensor's scale and zero point apply.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantAxis {
    /// One scale and zero point for the whole tensor.
    PerTensor,
    /// One scale and zero point per index along `axis`.
    PerAxis { axis: usize },
    /// One scale and zero point per `block` consecutive elements along `axis` (low-bit weights).
    PerBlock { axis: usize, block: u64 },
}

/// Quantization parameters carried in a tensor type: `real = (q - zero_point) * scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quant {
    /// Granularity of `scale` and `zero_point`.
    pub axis: QuantAxis,
    /// Scales (one per tensor, channel or block, in row-major order).
    pub scale: Vec<f32>,
    /// Zero points, same length as `scale`.
    pub zero_point: Vec<i64>,
}

/// The type of a tensor value.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// The shape, or `None` when even the rank is unknown.
    pub shape: Option<Shape>,
    /// Quantization parameters when the integer values stand for real numbers.
    pub quant: Option<Box<Quant>>,
}

impl TensorType {
    /// A tensor type of known shape, not quantized.
    pub fn new(dtype: DType, shape: Shape) -> TensorType {
        TensorType {
            dtype,
            shape: Some(shape),
            quant: None,
        }
    }

    /// A tensor type whose rank is unknown.
    pub fn unranked(dtype: DType) -> TensorType {
        TensorType {
            dtype,
            shape: None,
            quant: None,
        }
    }

    /// A scalar of `dtype`.
    pub fn scalar(dtype: DType) -> TensorType {
        TensorType::new(dtype, Shape::scalar())
    }

    /// A tensor of `dtype` with concrete dims.
    pub fn known(dtype: DType, dims: &[u64]) -> TensorType {
        TensorType::new(dtype, Shape::known(dims))
    }

    /// A tensor of `dtype` and rank `rank` with every dim unknown.
    pub fn of_rank(dtype: DType, rank: usize) -> TensorType {
        TensorType::new(dtype, Shape(vec![Dim::Unknown; rank]))
    }

    /// The rank, if known.
    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(Shape::rank)
    }

    /// The dims, if the rank is known.
    pub fn dims(&self) -> Option<&[Dim]> {
        self.shape.as_ref().map(Shape::dims)
    }
}

/// The type of any IR value.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// A tensor.
    Tensor(TensorType),
    /// A sequence of values of one type.
    Sequence(Box<Type>),
    /// A value that may be absent.
    Optional(Box<Type>),
    /// A map from scalar keys of `key` type to values.
    Map(DType, Box<Type>),
}

impl Type {
    /// The tensor type, if this is a tensor.
    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            Type::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// A short description of the kind of type (`tensor`, `sequence`, ...), for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Type::Tensor(_) => "tensor",
            Type::Sequence(_) => "sequence",
            Type::Optional(_) => "optional",
            Type::Map(..) => "map",
        }
    }
}

impl From<TensorType> for Type {
    fn from(t: TensorType) -> Type {
        Type::Tensor(t)
    }
}

fn fmt_float(f: &mut fmt::Formatter<'_>, x: f32) -> fmt::Result {
    // `{:?}` prints the shortest representation that round-trips.
    write!(f, "{x:?}")
}

impl fmt::Display for Quant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.axis {
            QuantAxis::PerTensor => f.write_str("q(")?,
            QuantAxis::PerAxis { axis } => write!(f, "q(axis={axis}, ")?,
            QuantAxis::PerBlock { axis, block } => write!(f, "q(axis={axis}, block={block}, ")?,
        }
        f.write_str("scale=[")?;
        for (i, s) in self.scale.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            fmt_float(f, *s)?;
        }
        f.write_str("], zp=[")?;
        for (i, z) in self.zero_point.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{z}")?;
        }
        f.write_str("])")
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dtype)?;
        match &self.shape {
            Some(s) => write!(f, "{s}")?,
            None => f.write_str("[*]")?,
        }
        if let Some(q) = &self.quant {
            write!(f, " {q}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Tensor(t) => write!(f, "{t}"),
            Type::Sequence(t) => write!(f, "seq<{t}>"),
            Type::Optional(t) => write!(f, "opt<{t}>"),
            Type::Map(k, v) => write!(f, "map<{k},{v}>"),
        }
    }
}
