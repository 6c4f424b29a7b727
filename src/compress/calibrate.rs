//! Calibration (the driver's job, DESIGN.md "Compression"): runs the float model through the JIT with
//! observers on the tensors the policy asks for — the graph's outputs are extended by those values — and
//! gathers their min/max, then (for calibrators that need one) a histogram over that range in a second
//! pass.

use std::collections::BTreeMap;

use carve_frontend::Model;
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
