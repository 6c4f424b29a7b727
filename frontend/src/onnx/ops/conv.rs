//! Importers for the conv op family (see `carve_ir::ops::conv`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
