//! Running a model over a dataset with the JIT (one sample at a time, in order), reporting progress:
//! the one loop calibration, evaluation and sensitivity measurement share.

use carve_frontend::Model;
use carve_runtime::interp::Value;

use super::Dataset;
use super::{CompressError, Progress};
use crate::compiler::{CompiledModel, Compiler};

/// Compiles `model` for the host with `compiler`, naming `what` in errors.
pub fn compile(
    compiler: &Compiler,
    model: &Model,
    what: &str,
) -> Result<CompiledModel, CompressError> {
    compiler.compile(model).map_err(|e| CompressError::Run {
        what: what.to_string(),
        msg: e.to_string(),
    })
}

/// Runs `compiled` on every sample of `data`, in order, handing each sample's outputs (by name) to `f`.
pub fn for_each_output(
    compiled: &CompiledModel,
    data: &Dataset,
    what: &str,
    progress: &mut dyn Progress,
    mut f: impl FnMut(usize, &[(String, Value)]) -> Result<(), CompressError>,
) -> Result<(), CompressError> {
    progress.start(what, data.len() as u64);
    for (i, s) in data.samples.iter().enumerate() {
        let inputs = s
            .iter()
            .map(|(n, t)| (n.clone(), Value::from(t.clone())))
            .collect();
        let out = compiled.run(inputs).map_err(|e| CompressError::Run {
            what: format!("{what}, sample {i} of {}", data.source),
            msg: e.to_string(),
        })?;
        f(i, &out)?;
        progress.inc();
    }
    progress.finish();
    Ok(())
}

/// The f32 elements of output `name` (other float types converted), or an error naming it.
pub fn f32_output(outs: &[(String, Value)], name: &str) -> Result<Vec<f32>, CompressError> {
    let t = outs
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_tensor())
        .ok_or_else(|| CompressError::Metric(format!("the model produced no tensor '{name}'")))?;
    match &t.data {
        carve_runtime::Data::F32(v) => Ok(v.clone()),
        _ => {
            let c = carve_runtime::interp::elementwise::cast::cast(
                t,
                carve_ir::DType::F32,
                false,
                carve_ir::ops::elementwise::RoundMode::Nearest,
            )
            .map_err(|m| CompressError::Metric(format!("output '{name}': {m}")))?;
            match c.data {
                carve_runtime::Data::F32(v) => Ok(v),
                _ => Err(CompressError::Metric(format!(
                    "output '{name}' is not numeric"
                ))),
            }
        }
    }
}
