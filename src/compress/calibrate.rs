//! Calibration (the driver's job, DESIGN.md "Compression"): runs the float model through the JIT with
//! observers on the tensors the policy asks for — the graph's outputs are extended by those values — and
//! gathers their min/max, then (for calibrators that need one) a histogram over that range in a second
//! pass; or, for GPTQ, the Gram matrix `XᵀX` of each observed input over its last axis ([`grams`]).

use std::collections::BTreeMap;

use carve_frontend::Model;
use carve_passes::quantize::gptq::Gram;
use carve_passes::quantize::{Calibrator, Histogram, TensorStats};

use super::Dataset;
use super::run::{compile, f32_output, for_each_output};
use super::{CompressError, Progress};
use crate::compiler::Compiler;

/// `model` with `values` (by name) added to its outputs, so that running it observes them.
pub fn observing(model: &Model, values: &[String]) -> Result<Model, CompressError> {
    let mut m = model.clone();
    for name in values {
        let v = m
            .graph
            .values
            .iter()
            .position(|v| &v.name == name)
            .ok_or_else(|| CompressError::Run {
                what: "calibration".into(),
                msg: format!("the graph has no value '{name}' to observe"),
            })?;
        let id = carve_ir::ValueId(v as u32);
        if !m.graph.outputs.contains(&id) {
            m.graph.outputs.push(id);
        }
    }
    Ok(m)
}

/// Statistics of `values` over `data`, by value name.
pub fn calibrate(
    compiler: &Compiler,
    model: &Model,
    values: &[String],
    data: &Dataset,
    calibrator: Calibrator,
    progress: &mut dyn Progress,
) -> Result<BTreeMap<String, TensorStats>, CompressError> {
    let observed = observing(model, values)?;
    let compiled = compile(compiler, &observed, "the model with calibration observers")?;
    let mut stats: BTreeMap<String, TensorStats> = values
        .iter()
        .map(|v| (v.clone(), TensorStats::new()))
        .collect();
    for_each_output(
        &compiled,
        data,
        "calibration: ranges",
        progress,
        |_, outs| {
            for (name, s) in stats.iter_mut() {
                s.observe(&f32_output(outs, name)?);
            }
            Ok(())
        },
    )?;
    if calibrator.needs_histogram() {
        for s in stats.values_mut() {
            s.hist = Some(Histogram::new(s.min, s.max));
        }
        for_each_output(
            &compiled,
            data,
            "calibration: histograms",
            progress,
            |_, outs| {
                for (name, s) in stats.iter_mut() {
                    let xs = f32_output(outs, name)?;
                    if let Some(h) = s.hist.as_mut() {
                        h.add(&xs);
                    }
                }
                Ok(())
            },
        )?;
    }
    Ok(stats)
}

/// `XᵀX` of each value in `values` (name, channels of its last axis) over `data`, the rows being all of
/// the value's elements grouped by the last axis (tokens × batch), by value name.
pub fn grams(
    compiler: &Compiler,
    model: &Model,
    values: &[(String, usize)],
    data: &Dataset,
    progress: &mut dyn Progress,
) -> Result<BTreeMap<String, Gram>, CompressError> {
    let names: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
    let observed = observing(model, &names)?;
    let compiled = compile(compiler, &observed, "the model with GPTQ observers")?;
    let mut grams: BTreeMap<String, Gram> = values
        .iter()
        .map(|(n, k)| (n.clone(), Gram::new(*k)))
        .collect();
    let mut xt = Vec::new();
    let mut xtx = Vec::new();
    for_each_output(
        &compiled,
        data,
        "calibration: input statistics for GPTQ",
        progress,
        |_, outs| {
            for (name, g) in grams.iter_mut() {
                let x = f32_output(outs, name)?;
                let k = g.k;
                if k == 0 || x.len() % k != 0 {
                    return Err(CompressError::Run {
                        what: "GPTQ statistics".into(),
                        msg: format!(
                            "'{name}' has {} elements, not rows of {k} channels",
                            x.len()
                        ),
                    });
                }
                let rows = x.len() / k;
                // Xᵀ (k × rows), then XᵀX = Xᵀ · X with one GEMM.
                xt.clear();
                xt.resize(k * rows, 0f32);
                for (r, row) in x.chunks_exact(k).enumerate() {
                    for (c, &v) in row.iter().enumerate() {
                        xt[c * rows + r] = v;
                    }
                }
                xtx.clear();
                xtx.resize(k * k, 0f32);
                carve_runtime::interp::util::sgemm(
                    k, rows, k, &xt, rows, &x, k, &mut xtx, k, false,
                );
                g.add_gram(&xtx, rows as u64);
            }
            Ok(())
        },
    )?;
    Ok(grams)
}
