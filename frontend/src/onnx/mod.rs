//! ONNX import: model → IR graph. `import` drives graphs (scopes, captures, schedule, function inlining),
//! `ctx` is the API per-op importers use, `ops` holds one importer table per op family.

pub mod ctx;
pub mod import;
pub mod ops;
pub mod types;

/// The canonical name of an operator domain (`""` and `ai.onnx` are the same domain).
pub fn canonical_domain(domain: &str) -> &str {
    if domain.is_empty() { "ai.onnx" } else { domain }
}
