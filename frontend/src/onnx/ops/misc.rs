//! Importers for the misc op family (see `carve_ir::ops::misc`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
