//! Importers for the linalg op family (see `carve_ir::ops::linalg`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
