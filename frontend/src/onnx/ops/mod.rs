//! The importer registry: one table of (domain, op type, importer) per op family, mirroring the IR's
//! op-family modules. Lookup is by canonical domain and op type.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::ctx::ImportFn;

mod contrib;
mod control;
mod conv;
mod elementwise;
mod linalg;
mod misc;
mod movement;
mod norm;
mod quant;
mod reduce;
mod rnn;
mod signal;

/// One registry row.
pub struct OpImporter {
    /// Canonical domain (`ai.onnx`, `ai.onnx.ml`, `com.microsoft`, ...).
    pub domain: &'static str,
    /// ONNX op type.
    pub op_type: &'static str,
    /// The importer.
    pub import: ImportFn,
}

/// Every family's table.
const TABLES: &[&[OpImporter]] = &[
    elementwise::IMPORTERS,
    reduce::IMPORTERS,
    norm::IMPORTERS,
    linalg::IMPORTERS,
    conv::IMPORTERS,
    movement::IMPORTERS,
    quant::IMPORTERS,
    rnn::IMPORTERS,
    control::IMPORTERS,
    signal::IMPORTERS,
    misc::IMPORTERS,
    contrib::IMPORTERS,
];

fn registry() -> &'static BTreeMap<(&'static str, &'static str), ImportFn> {
    static REG: OnceLock<BTreeMap<(&'static str, &'static str), ImportFn>> = OnceLock::new();
    REG.get_or_init(|| {
        TABLES
            .iter()
            .flat_map(|t| t.iter())
            .map(|r| ((r.domain, r.op_type), r.import))
            .collect()
    })
}

/// The importer for `op_type` in canonical `domain`.
pub fn lookup(domain: &str, op_type: &str) -> Option<ImportFn> {
    registry().get(&(domain, op_type)).copied()
}

/// Every supported (domain, op type), sorted.
pub fn supported() -> Vec<(&'static str, &'static str)> {
    registry().keys().copied().collect()
}
