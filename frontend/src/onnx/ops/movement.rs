//! Importers for shape/data-movement ONNX ops.

use carve_ir::ops::movement::{Identity, ShapeOf};

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    OpImporter {
        domain: "ai.onnx",
        op_type: "Shape",
        import: |cx| {
            let start = cx.i("start", 0)?;
            let end = cx.get_i("end")?;
            cx.simple(ShapeOf { start, end })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Identity",
        import: |cx| cx.simple(Identity {}),
    },
];
