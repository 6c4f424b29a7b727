//! Importers for the control op family (see `carve_ir::ops::control`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
