//! Importers for signal-processing ONNX ops (see `carve_ir::ops::signal`): DFT (opset 17's `axis`
//! attribute becomes the opset 20 `axis` input), STFT, Hann/Hamming/BlackmanWindow (one `window` op) and
//! MelWeightMatrix.

use carve_ir::ops::signal::{Dft, MelWeightMatrix, SignalWindow, Stft, WindowKind};
use carve_ir::{DType, ValueId};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

const fn row(op_type: &'static str, import: fn(&mut NodeCtx) -> Res) -> OpImporter {
    OpImporter {
        domain: "ai.onnx",
        op_type,
        import,
    }
}

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    row("DFT", dft),
    row("STFT", stft),
    row("HannWindow", |cx| window(cx, WindowKind::Hann)),
    row("HammingWindow", |cx| window(cx, WindowKind::Hamming)),
    row("BlackmanWindow", |cx| window(cx, WindowKind::Blackman)),
    row("MelWeightMatrix", mel_weight_matrix),
];

fn dft(cx: &mut NodeCtx) -> Res {
    let op = Dft {
        inverse: cx.bool("inverse", false)?,
        onesided: cx.bool("onesided", false)?,
    };
    let x = cx.req(0)?;
    let len = cx.input(1);
    let axis = if cx.opset() < 20 {
        // Opset 17: `axis` attribute, default 1 (opset 20's default input value is -2).
        let a = cx.i("axis", 1)?;
        Some(cx.const_i64(&[], &[a]))
    } else {
        cx.input(2)
    };
    cx.emit(op, vec![Some(x), len, axis], 1)
}

fn stft(cx: &mut NodeCtx) -> Res {
    let onesided = cx.bool("onesided", true)?;
    cx.simple(Stft { onesided })
}

/// The `output_datatype` attribute (default f32).
fn output_dtype(cx: &NodeCtx) -> Result<DType, ImportError> {
    Ok(cx.get_dtype("output_datatype")?.unwrap_or(DType::F32))
}

fn window(cx: &mut NodeCtx, kind: WindowKind) -> Res {
    let op = SignalWindow {
        kind,
        periodic: cx.bool("periodic", true)?,
        dtype: output_dtype(cx)?,
    };
    cx.simple(op)
}

fn mel_weight_matrix(cx: &mut NodeCtx) -> Res {
    let dtype = output_dtype(cx)?;
    cx.simple(MelWeightMatrix { dtype })
}

#[cfg(test)]
mod tests {
    use carve_ir::Op;
    use carve_ir::ops::signal::{SignalOp, WindowKind};

    use super::super::conv::testutil::*;

    const F32: i32 = 1;

    #[test]
    fn dft_opset_17_axis_attribute_becomes_an_input() {
        let x: Input = ("x", F32, &[1, 10, 8, 1]);
        let g = import(17, "DFT", vec![int("onesided", 1)], &[x], &["x"], &["y"]).unwrap();
        assert_eq!(output_types(&g), ["f32[1,6,8,2]"]);
        let g = import(17, "DFT", vec![int("axis", 2)], &[x], &["x"], &["y"]).unwrap();
        assert_eq!(output_types(&g), ["f32[1,10,8,2]"]);
        // Opset 20: the axis input defaults to -2.
        let g = import(20, "DFT", vec![int("onesided", 1)], &[x], &["x"], &["y"]).unwrap();
        assert_eq!(output_types(&g), ["f32[1,10,5,2]"]);
    }

    #[test]
    fn windows_share_one_op() {
        let n: Input = ("n", 7, &[]);
        let g = import(
            17,
            "HammingWindow",
            vec![int("periodic", 0), int("output_datatype", 11)],
            &[n],
            &["n"],
            &["y"],
        )
        .unwrap();
        assert!(matches!(first_op(&g), Op::Signal(SignalOp::SignalWindow(w))
            if w.kind == WindowKind::Hamming && !w.periodic));
        assert_eq!(output_types(&g), ["f64[?]"]);
    }
}
