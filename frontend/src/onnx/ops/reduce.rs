//! Importers for the reduce op family (see `carve_ir::ops::reduce`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
