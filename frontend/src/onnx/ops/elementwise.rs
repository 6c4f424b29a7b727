//! Importers for elementwise ONNX ops (unary math, activations, binary arithmetic, logic, casts).

use carve_ir::ops::elementwise::{Add, Cast, LeakyRelu, Relu};

use super::OpImporter;
use crate::onnx::ctx::NodeCtx;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    OpImporter {
        domain: "ai.onnx",
        op_type: "Relu",
        import: |cx| cx.simple(Relu {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Add",
        import: |cx| cx.simple(Add {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "LeakyRelu",
        import: |cx| {
            let alpha = cx.f("alpha", 0.01)?;
            cx.simple(LeakyRelu { alpha })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Cast",
        import: cast,
    },
];

fn cast(cx: &mut NodeCtx) -> Result<Vec<carve_ir::ValueId>, crate::ImportError> {
    let to = cx
        .get_dtype("to")?
        .ok_or_else(|| cx.err("attribute 'to' is required"))?;
    let saturate = cx.bool("saturate", true)?;
    cx.simple(Cast { to, saturate })
}
