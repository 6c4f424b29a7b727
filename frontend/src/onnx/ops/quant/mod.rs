//! Importers for quantization ONNX ops (see `carve_ir::ops::quant`): QuantizeLinear / DequantizeLinear
//! (also their com.microsoft forms), DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul,
//! QLinearConv, and com.microsoft QLinearAdd / QLinearMul / MatMulNBits.
//!
//! `output_dtype`/`precision` of 0 (ONNX "unset") become `None`; opsets before the `axis`/`block_size`
//! attributes existed get their defaults, which mean the same (per-tensor with a scalar scale).
//!
//! QLinearConv, ConvInteger, QLinearMatMul and MatMulInteger (and com.microsoft QGemm's product, see
//! `contrib.rs`) import as the ordinary `conv` / `matmul` over quantized types when their scales and
//! zero points are constants ([`typed`]); with run-time scales or zero points (which cannot live in a
//! type) they keep their own ops.

pub(super) mod typed;

use carve_ir::ops::quant::*;
use carve_ir::{DType, ValueId};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    OpImporter {
        domain: "ai.onnx",
        op_type: "QuantizeLinear",
        import: quantize_linear,
    },
    OpImporter {
        domain: "com.microsoft",
        op_type: "QuantizeLinear",
        import: quantize_linear,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "DequantizeLinear",
        import: dequantize_linear,
    },
    OpImporter {
        domain: "com.microsoft",
        op_type: "DequantizeLinear",
        import: dequantize_linear,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "DynamicQuantizeLinear",
        import: |cx| cx.simple(DynamicQuantizeLinear {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "MatMulInteger",
        import: |cx| match typed::matmul_integer(cx)? {
            Some(y) => Ok(y),
            None => cx.simple(MatMulInteger {}),
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "QLinearMatMul",
        import: |cx| match typed::qlinear_matmul(cx)? {
            Some(y) => Ok(y),
            None => cx.simple(QLinearMatMul {}),
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "ConvInteger",
        import: |cx| {
            let c = super::conv::conv_attrs(cx)?;
            if let Some(y) = typed::conv_integer(cx, &c)? {
                return Ok(y);
            }
            cx.simple(ConvInteger::from_conv(&c))
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "QLinearConv",
        import: |cx| {
            let c = super::conv::conv_attrs(cx)?;
            if let Some(y) = typed::qlinear_conv(cx, &c)? {
                return Ok(y);
            }
            cx.simple(QLinearConv::from_conv(&c))
        },
    },
    OpImporter {
        domain: "com.microsoft",
        op_type: "QLinearAdd",
        import: |cx| cx.simple(QLinearAdd {}),
    },
    OpImporter {
        domain: "com.microsoft",
        op_type: "QLinearMul",
        import: |cx| cx.simple(QLinearMul {}),
    },
    OpImporter {
        domain: "com.microsoft",
        op_type: "MatMulNBits",
        import: matmul_nbits,
    },
];

/// An optional element type attribute where 0 means "unset".
fn opt_dtype(cx: &NodeCtx, name: &str) -> Result<Option<DType>, ImportError> {
    match cx.get_i(name)? {
        None | Some(0) => Ok(None),
        Some(_) => cx.get_dtype(name),
    }
}

fn quantize_linear(cx: &mut NodeCtx) -> Res {
    let op = QuantizeLinear {
        axis: cx.i("axis", 1)?,
        block_size: cx.i("block_size", 0)?,
        saturate: cx.bool("saturate", true)?,
        output_dtype: opt_dtype(cx, "output_dtype")?,
        precision: opt_dtype(cx, "precision")?,
    };
    cx.simple(op)
}

fn dequantize_linear(cx: &mut NodeCtx) -> Res {
    let op = DequantizeLinear {
        axis: cx.i("axis", 1)?,
        block_size: cx.i("block_size", 0)?,
        output_dtype: opt_dtype(cx, "output_dtype")?,
    };
    cx.simple(op)
}

/// com.microsoft MatMulNBits (inputs `A, B, scales, zero_points?, g_idx?, bias?`; attributes `K`,
/// `N`, `bits`, `block_size`, `accuracy_level`) as `matmul_nbits`, which keeps the packed weight as
/// its constant input. ONNX Runtime's contract is checked here with the attribute named: `bits` 2, 4
/// or 8, `block_size` a power of 2 ≥ 16; the type rule checks the operands' shapes and types.
/// `accuracy_level` is kept but does not change the result: carve always computes in f32 (at
/// least the accuracy any level asks for; ORT's level 4 quantizes `A` to int8 and so differs by
/// that rounding). A `g_idx` (deprecated in ORT) runs in the interpreter, natively only when it is
/// the trivial `k / block_size`.
fn matmul_nbits(cx: &mut NodeCtx) -> Res {
    let req = |cx: &NodeCtx, name: &str| -> Result<i64, ImportError> {
        cx.get_i(name)?
            .ok_or_else(|| cx.err(format!("attribute '{name}' is required")))
    };
    let op = MatMulNBits {
        k: req(cx, "K")?,
        n: req(cx, "N")?,
        bits: cx.i("bits", 4)?,
        block_size: req(cx, "block_size")?,
        accuracy_level: cx.i("accuracy_level", 0)?,
    };
    if !matches!(op.bits, 2 | 4 | 8) {
        return Err(cx.err(format!(
            "attribute 'bits' = {} is not supported (2, 4 or 8)",
            op.bits
        )));
    }
    if op.block_size < 16 || op.block_size.count_ones() != 1 {
        return Err(cx.err(format!(
            "attribute 'block_size' = {} must be a power of 2 >= 16",
            op.block_size
        )));
    }
    cx.simple(op)
}

#[cfg(test)]
mod tests {
    use crate::onnx::ops::elementwise::tests::{import, input, int_attr, node};
    use crate::proto::TensorProto;

    fn scalar(name: &str, data_type: i32, raw: Vec<u8>) -> TensorProto {
        TensorProto {
            name: name.into(),
            data_type,
            raw_data: raw.into(),
            ..Default::default()
        }
    }

    #[test]
    fn constant_scale_and_zero_point_become_the_output_quantization() {
        let init = vec![
            scalar("s", 1, 0.5f32.to_le_bytes().to_vec()),
            scalar("z", 3, vec![0xFE]),
        ];
        let n = node("QuantizeLinear", &["x", "s", "z"], vec![]);
        let m = import(vec![n], vec![input("x", 1, &[-1, 4])], &[("", 21)], init).unwrap();
        let g = &m.graph;
        let y = g.outputs[0];
        assert_eq!(g.ty(y).to_string(), "i8[d0,4] q(scale=[0.5], zp=[-2])");
    }

    #[test]
    fn matmul_nbits_needs_its_size_attributes() {
        let mut n = node("MatMulNBits", &["a", "b", "s"], vec![int_attr("K", 64)]);
        n.domain = "com.microsoft".into();
        let ins = vec![
            input("a", 1, &[2, 64]),
            input("b", 2, &[8, 2, 16]),
            input("s", 1, &[16]),
        ];
        let e = import(vec![n], ins, &[("", 17), ("com.microsoft", 1)], vec![]).unwrap_err();
        assert!(e.to_string().contains("'N' is required"), "{e}");
    }

    fn nbits_node(attrs: Vec<crate::proto::AttributeProto>) -> crate::proto::NodeProto {
        let mut n = node("MatMulNBits", &["a", "b", "s"], attrs);
        n.domain = "com.microsoft".into();
        n
    }

    fn nbits_inputs(scales: usize) -> Vec<crate::proto::ValueInfoProto> {
        vec![
            input("a", 1, &[2, 64]),
            input("b", 2, &[8, 2, 16]),
            input("s", 1, &[scales as i64]),
        ]
    }

    #[test]
    fn matmul_nbits_errors_name_the_attribute_or_input() {
        let opsets = &[("", 17), ("com.microsoft", 1)];
        let attrs = |bits: i64, bs: i64| {
            vec![
                int_attr("K", 64),
                int_attr("N", 8),
                int_attr("bits", bits),
                int_attr("block_size", bs),
            ]
        };
        let ok = import(
            vec![nbits_node(attrs(4, 32))],
            nbits_inputs(16),
            opsets,
            vec![],
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
        let e = import(
            vec![nbits_node(attrs(3, 32))],
            nbits_inputs(16),
            opsets,
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'bits' = 3"), "{e}");
        let e = import(
            vec![nbits_node(attrs(4, 24))],
            nbits_inputs(16),
            opsets,
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'block_size' = 24"), "{e}");
        let e = import(
            vec![nbits_node(attrs(4, 32))],
            nbits_inputs(15),
            opsets,
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scales (input 2)"), "{e}");
    }
}
