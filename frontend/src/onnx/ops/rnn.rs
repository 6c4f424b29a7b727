//! Importers for the rnn op family (see `carve_ir::ops::rnn`).

use super::OpImporter;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[];
