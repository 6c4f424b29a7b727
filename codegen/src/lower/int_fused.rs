//! The integer `fused_matmul` (8-bit operands, epilogue starting with `rescale`; see
//! `carve_ir::ops::fused`): `matmul_integer(a, b, a_zp, b_zp)` whose kernel
//! ([`crate::lower::integer::matmul_integer`] with an [`IntEpi`]) applies the rescale, a leading bias,
//! a residual right after it and the pointwise steps after those before its f32 store — in the int8
//! tile's registers on x86_64 with AVX2, per element in the Cranelift kernel elsewhere — with the
//! split of [`crate::lower::fused::split`]; the steps after those run as the float fused ops' pass
//! over the output ([`crate::lower::fused::emit_pass`]).

use carve_ir::ops::fused::{EpiStep, FusedOp};
use carve_ir::ops::quant::MatMulInteger;
use carve_ir::{DType, Node, Op};

use crate::CodegenError;
use crate::lower::fused::{Pass, check_operands, split, wrap};
use crate::lower::gemm::Post;
use crate::lower::integer::{IntEpi, matmul_integer};
use crate::lower::{Lowering, NodeInfo, Weights};

fn fallback(reason: impl Into<String>) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(reason.into()))
}

/// Select phase for an integer `fused_matmul` `f`.
pub fn fused_matmul(
    info: &NodeInfo,
    w: &mut Weights,
    f: &FusedOp,
) -> Result<Lowering, CodegenError> {
    if info.out_dtype(0)? != DType::F32 {
        return fallback("integer fused epilogues are native for an f32 result only");
    }
    let sp = match split(f, false) {
        Ok(s) => s,
        Err(r) => return fallback(r),
    };
    let Some(k) = sp.rescale else {
        return Err(info.err("an integer fused_matmul's epilogue must start with rescale"));
    };
    let out_shape = info.out_shape(0)?;
    let total: usize = out_shape.iter().product();
    let n = out_shape.last().copied().unwrap_or(1).max(1);
    let scales: usize = info.in_shape(k)?.iter().product();
    if info.in_dtype(k)? != DType::F32 || (scales != 1 && scales != n) {
        return fallback(format!(
            "the rescale's scales (input {k}) are not 1 or {n} f32 values"
        ));
    }
    let in_kernel: Vec<(EpiStep, Option<usize>)> =
        [(EpiStep::Bias, sp.bias), (EpiStep::Residual, sp.residual)]
            .into_iter()
            .filter(|p| p.1.is_some())
            .collect();
    for steps in [&in_kernel, &sp.pass] {
        if let Some(r) = check_operands(info, steps, total, n)? {
            return fallback(r);
        }
    }
    // The kernel's node: matmul_integer's inputs (a, b, a_zp, b_zp), then the scales, the bias and
    // the residual (IntEpi::SCALE, BIAS, RESIDUAL).
    let inputs: Vec<Option<usize>> = vec![
        Some(0),
        Some(1),
        Some(k + 1),
        Some(k + 2),
        Some(k),
        sp.bias,
        sp.residual,
    ];
    let inner_node = Node {
        name: info.node.name.clone(),
        op: Op::from(MatMulInteger {}),
        inputs: inputs
            .iter()
            .map(|i| i.and_then(|i| info.node.inputs.get(i).copied().flatten()))
            .collect(),
        outputs: info.node.outputs.clone(),
    };
    let inner_info = NodeInfo {
        graph: info.graph,
        node: &inner_node,
        target: info.target,
    };
    let post: Vec<EpiStep> = sp.post.steps().copied().collect();
    let epi = IntEpi {
        per_col: scales != 1,
        bias: sp.bias.is_some(),
        residual: sp.residual.is_some(),
        post: Post::new(&post).unwrap_or(Post::NONE),
    };
    let inner = matmul_integer(&inner_info, w, Some(epi))?;
    let pass = Pass {
        total,
        row_len: n,
        chans: n,
        per_row: false,
        steps: sp.pass,
    };
    wrap(inner, inner_node, inputs, pass)
}
