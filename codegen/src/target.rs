//! Target descriptions: a target-lexicon triple plus the ISA feature flags code is generated for.
//!
//! Feature flags are always explicit. The host target is detected with `cranelift-native`, and then the
//! flags carve relies on are set by name: on x86_64 `fma` is only lowered to `vfmadd` when *both*
//! `has_avx` and `has_fma` are enabled (Cranelift 0.135's `x86-64-v3`/`x86-64-v4`/`znver4` presets omit
//! `has_avx`, which silently turns every `fma` into a `fmaf` library call), so carve never uses presets.
//! Vector types are only used where the target can lower them ([`Target::f32_lanes`]).

use std::fmt;
use std::str::FromStr;

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use target_lexicon::{Architecture, Triple};

use crate::CodegenError;

/// A code-generation target: triple and enabled ISA features (Cranelift setting names without the
/// `has_` prefix, e.g. `avx`, `fma`, `dotprod`, `v`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The target triple.
    pub triple: Triple,
    /// Enabled ISA features, sorted, without the `has_` prefix.
    pub features: Vec<String>,
}

/// Features that are enabled by default for each architecture when compiling for a foreign triple
/// (the architecture's baseline that carve's kernels want).
fn baseline(arch: Architecture) -> &'static [&'static str] {
    match arch {
        Architecture::X86_64 => &["sse3", "ssse3", "sse41", "sse42", "popcnt"],
        _ => &[],
    }
}

impl Target {
    /// The machine this process runs on, with every ISA feature it has.
    pub fn host() -> Result<Target, CodegenError> {
        let triple = Triple::host();
        let mut features = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            for (det, name) in [
                (std::is_x86_feature_detected!("sse3"), "sse3"),
                (std::is_x86_feature_detected!("ssse3"), "ssse3"),
                (std::is_x86_feature_detected!("sse4.1"), "sse41"),
                (std::is_x86_feature_detected!("sse4.2"), "sse42"),
                (std::is_x86_feature_detected!("popcnt"), "popcnt"),
                (std::is_x86_feature_detected!("avx"), "avx"),
                (std::is_x86_feature_detected!("avx2"), "avx2"),
                (std::is_x86_feature_detected!("fma"), "fma"),
                (std::is_x86_feature_detected!("bmi1"), "bmi1"),
                (std::is_x86_feature_detected!("bmi2"), "bmi2"),
                (std::is_x86_feature_detected!("lzcnt"), "lzcnt"),
                (std::is_x86_feature_detected!("avx512f"), "avx512f"),
                (std::is_x86_feature_detected!("avx512vl"), "avx512vl"),
                (std::is_x86_feature_detected!("avx512dq"), "avx512dq"),
                (std::is_x86_feature_detected!("avx512vnni"), "avx512vnni"),
                (std::is_x86_feature_detected!("avxvnni"), "avx_vnni"),
            ] {
                if det {
                    features.push(name.to_string());
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                features.push("dotprod".to_string());
            }
            if std::arch::is_aarch64_feature_detected!("i8mm") {
                features.push("i8mm".to_string());
            }
        }
        Target::new(triple, &features)
    }

    /// A target for `triple` with the architecture's baseline features plus `features`.
    pub fn new(triple: Triple, features: &[String]) -> Result<Target, CodegenError> {
        let mut all: Vec<String> = baseline(triple.architecture)
            .iter()
            .map(|s| s.to_string())
            .collect();
        all.extend(features.iter().cloned());
        all.sort();
        all.dedup();
        let t = Target {
            triple,
            features: all,
        };
        // Validate the triple and every feature name now, so later ISA construction cannot fail on them.
        t.isa(false)?;
        Ok(t)
    }

    /// Parses a triple and a feature list like `+v,+dotprod,-fma` (features may also be given without
    /// `+`; `-name` removes a baseline feature).
    pub fn parse(triple: &str, cpu: Option<&str>) -> Result<Target, CodegenError> {
        let triple = Triple::from_str(triple).map_err(|e| CodegenError::Target {
            msg: format!("unknown target triple '{triple}': {e}"),
        })?;
        let mut add = Vec::new();
        let mut remove = Vec::new();
        for f in cpu
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            if let Some(r) = f.strip_prefix('-') {
                remove.push(r.to_string());
            } else {
                add.push(f.trim_start_matches('+').to_string());
            }
        }
        let mut t = Target::new(triple, &add)?;
        t.features.retain(|f| !remove.contains(f));
        Ok(t)
    }

    /// This target with the changes `spec` describes (`+name` or `name` adds a feature, `-name`
    /// removes one), e.g. the host without AVX-512: `-avx512f,-avx512vl,-avx512dq,-avx512vnni`.
    pub fn with_changes(&self, spec: &str) -> Result<Target, CodegenError> {
        let mut features = self.features.clone();
        for f in spec.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if let Some(r) = f.strip_prefix('-') {
                features.retain(|x| x != r);
            } else {
                features.push(f.trim_start_matches('+').to_string());
            }
        }
        features.sort();
        features.dedup();
        let t = Target {
            triple: self.triple.clone(),
            features,
        };
        t.isa(false)?;
        Ok(t)
    }

    /// True if feature `name` is enabled.
    pub fn has(&self, name: &str) -> bool {
        self.features.iter().any(|f| f == name)
    }

    /// True if scalar `fma` is lowered to one instruction (never a library call).
    pub fn has_fma(&self) -> bool {
        match self.triple.architecture {
            Architecture::X86_64 => self.has("fma") && self.has("avx"),
            Architecture::Aarch64(_) => true,
            Architecture::Riscv64(_) => true,
            _ => false,
        }
    }

    /// Lanes of an f32 vector that carve's kernels may use on this target: 4 where 128-bit vectors
    /// lower (x86_64 with SSE4.1, aarch64 NEON, riscv64 with V), 1 (scalar code only) otherwise.
    pub fn f32_lanes(&self) -> u32 {
        match self.triple.architecture {
            Architecture::X86_64 if self.has("sse41") => 4,
            Architecture::Aarch64(_) => 4,
            Architecture::Riscv64(_) if self.has("v") => 4,
            _ => 1,
        }
    }

    /// Number of floating-point vector registers the register allocator can use (x86_64 without
    /// AVX-512 encodings in Cranelift: xmm0–15).
    pub fn vector_registers(&self) -> u32 {
        match self.triple.architecture {
            Architecture::X86_64 => 16,
            _ => 32,
        }
    }

    /// Builds the Cranelift ISA for this target. `pic` selects position-independent code (objects).
    pub fn isa(&self, pic: bool) -> Result<OwnedTargetIsa, CodegenError> {
        let mut flags = settings::builder();
        let set = |flags: &mut settings::Builder, k: &str, v: &str| {
            flags.set(k, v).map_err(|e| CodegenError::Target {
                msg: format!("cranelift setting {k}={v}: {e}"),
            })
        };
        set(&mut flags, "opt_level", "speed")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", if pic { "true" } else { "false" })?;
        set(
            &mut flags,
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        )?;
        let mut b = isa::lookup(self.triple.clone()).map_err(|e| CodegenError::Target {
            msg: format!("no code generator for '{}': {e}", self.triple),
        })?;
        for f in &self.features {
            b.enable(&format!("has_{f}"))
                .map_err(|e| CodegenError::Target {
                    msg: format!("unknown ISA feature '{f}' for {}: {e}", self.triple),
                })?;
        }
        b.finish(settings::Flags::new(flags))
            .map_err(|e| CodegenError::Target {
                msg: format!("cannot configure {}: {e}", self.triple),
            })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.triple)?;
        if !self.features.is_empty() {
            write!(f, " (+{})", self.features.join(",+"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_target_builds_and_has_vectors() {
        let t = Target::host().unwrap();
        assert!(t.isa(false).is_ok());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(t.f32_lanes(), 4);
        }
    }

    #[test]
    fn cross_targets_parse() {
        let a = Target::parse("aarch64-unknown-linux-gnu", None).unwrap();
        assert_eq!(a.f32_lanes(), 4);
        let r = Target::parse("riscv64gc-unknown-linux-gnu", None).unwrap();
        assert_eq!(r.f32_lanes(), 1, "scalar riscv64 must not use vector types");
        let rv = Target::parse("riscv64gc-unknown-linux-gnu", Some("+v")).unwrap();
        assert_eq!(rv.f32_lanes(), 4);
        let x = Target::parse("x86_64-unknown-linux-gnu", Some("+avx,+fma")).unwrap();
        assert!(x.has_fma());
        assert!(
            !Target::parse("x86_64-unknown-linux-gnu", Some("+fma"))
                .unwrap()
                .has_fma()
        );
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(Target::parse("nonsense-triple-x", None).is_err());
        assert!(Target::parse("x86_64-unknown-linux-gnu", Some("+warp_drive")).is_err());
    }
}
