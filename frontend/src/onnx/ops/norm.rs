//! Importers for the norm op family (see `carve_ir::ops::norm`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
