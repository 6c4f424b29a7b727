//! Importers for the signal op family (see `carve_ir::ops::signal`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
