//! Miscellaneous ops: `array_feature_extractor` (a gather along the last dim, by the movement
//! family's kernel) and `dropout` at inference (identity; the optional mask output is all ones).

use carve_ir::Op;
use carve_ir::ops::misc::MiscOp;

use crate::CodegenError;
use crate::lower::movement::elem_size;
use crate::lower::movement::strided::{Buf, Copy, emit_phases, strides};
use crate::lower::{Lowering, NodeInfo, Weights, needs_constants};

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    let Op::Misc(m) = info.op() else {
        return Ok(Lowering::Fallback("not a misc op".into()));
    };
    match m {
        MiscOp::Dropout(_) => dropout(info, w),
        MiscOp::ArrayFeatureExtractor(_) => array_feature_extractor(info),
        _ => Ok(Lowering::Fallback(
            "no native kernel for this op yet".into(),
        )),
    }
}

/// Dropout is the identity unless `training_mode` (input 2) is true and `ratio` is not 0.
fn dropout(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    let training = if info.has_input(2) {
        match info.const_i64s(2) {
            Some(v) => v.iter().any(|&t| t != 0),
            None => {
                return Ok(needs_constants(&[2], "training_mode is a runtime input"));
            }
        }
    } else {
        false
    };
    if training {
        let ratio_zero = info.has_input(1) && info.const_f32s(1).is_some_and(|r| r == [0.0]);
        if !ratio_zero {
            return Ok(Lowering::Fallback("dropout in training mode".into()));
        }
    }
    let dtype = info.in_dtype(0)?;
    if info.num_outputs() < 2 && info.out_dtype(0)? == dtype {
        return Ok(Lowering::Alias);
    }
    let Some(es) = elem_size(dtype) else {
        return Ok(Lowering::Fallback(format!(
            "{dtype} elements are not whole bytes"
        )));
    };
    let shape = info.in_shape(0)?;
    let mut phase = vec![Copy::contiguous(Buf::In(0), Buf::Out(0), &shape, es)];
    if info.num_outputs() >= 2 {
        let one = w.add_bytes(&[1u8]);
        phase.push(Copy {
            src: Buf::W(one),
            src_off: 0,
            dst: Buf::Out(1),
            dst_off: 0,
            ss: vec![0; shape.len()],
            ds: strides(&shape, 1),
            dims: shape.clone(),
            es: 1,
        });
    }
    let phases = vec![phase];
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e| emit_phases(e, &phases)),
    })
}

/// `[..., C]` → `[..., k]` picking the columns listed by input 1 (1-D input: `[1, k]`).
fn array_feature_extractor(info: &NodeInfo) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let Some(es) = elem_size(info.in_dtype(0)?) else {
        return Ok(Lowering::Fallback("elements are not whole bytes".into()));
    };
    if x.is_empty() {
        return Ok(Lowering::Fallback("scalar input".into()));
    }
    // The same as gather on the last axis with the indices flattened.
    crate::lower::movement::gather_last_axis(info, es)
}
