//! Importers for the quant op family (see `carve_ir::ops::quant`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
