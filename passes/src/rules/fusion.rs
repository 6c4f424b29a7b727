//! fusion rules (placeholder).

use super::Rule;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    Vec::new()
}
