//! Compile options of the C API (`carve_options`): thread count, e-graph on/off and the CPU features
//! code is generated for, set one by one or from `key=value` strings, and turned into a
//! [`carve::Compiler`]. Without a `cpu` option the `CARVE_CPU` environment variable is read (e.g.
//! `CARVE_CPU=native,-avx512f,-avx512vl,-avx512dq,-avx512vnni` for runs under valgrind, which cannot
//! decode AVX-512).

use carve::Compiler;
use carve::codegen::Target;

use crate::error::Error;

/// The environment variable read when no `cpu` option is set.
pub const CPU_ENV: &str = "CARVE_CPU";

/// Compile options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Threads kernels are split over (`None`: one per core).
    pub threads: Option<usize>,
    /// Skip the e-graph optimizer.
    pub no_egraph: bool,
    /// ISA features as `carve compile --cpu` takes them (`native`, `native,-avx512f`, `+avx,+fma`).
    pub cpu: Option<String>,
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        other => Err(Error::invalid(format!(
            "option '{key}': '{other}' is not a boolean (use 1/0, true/false, on/off)"
        ))),
    }
}

impl Options {
    /// Sets option `key` from its text form: `threads` (a positive integer, or `auto`), `egraph`
    /// (a boolean) or `cpu` (a feature list; empty = the default).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key.trim() {
            "threads" => {
                let v = value.trim();
                self.threads = if v == "auto" {
                    None
                } else {
                    match v.parse::<usize>() {
                        Ok(n) if n > 0 => Some(n),
                        _ => {
                            return Err(Error::invalid(format!(
                                "option 'threads': '{v}' is not a positive integer or 'auto'"
                            )));
                        }
                    }
                };
            }
            "egraph" => self.no_egraph = !parse_bool("egraph", value)?,
            "cpu" => {
                let v = value.trim();
                self.cpu = (!v.is_empty()).then(|| v.to_string());
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown option '{other}' (options: threads, egraph, cpu)"
                )));
            }
        }
        Ok(())
    }

    /// Sets every `key=value` of a list separated by `;` or whitespace, e.g. `"threads=2; egraph=off"`.
    pub fn parse_list(&mut self, list: &str) -> Result<(), Error> {
        for item in list
            .split(|c: char| c == ';' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let Some((k, v)) = item.split_once('=') else {
                return Err(Error::invalid(format!("'{item}' is not key=value")));
            };
            self.set(k, v)?;
        }
        Ok(())
    }

    /// The CPU feature list in force: the `cpu` option, else `$CARVE_CPU` (when set and not empty).
    pub fn cpu_in_force(&self) -> Option<String> {
        self.cpu.clone().or_else(|| {
            std::env::var(CPU_ENV)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
    }

    /// The target: this machine, with the features of [`Options::cpu_in_force`] when given.
    pub fn target(&self) -> Result<Target, Error> {
        let Some(cpu) = self.cpu_in_force() else {
            return Target::host()
                .map_err(|e| Error::new(crate::error::Status::Compile, crate::error::chain(&e)));
        };
        carve::build::resolve_target(None, Some(&cpu)).map_err(|e| {
            Error::new(
                crate::error::Status::Compile,
                format!("cpu features '{cpu}': {}", crate::error::chain(&e)),
            )
        })
    }

    /// The compiler these options describe.
    pub fn compiler(&self) -> Result<Compiler, Error> {
        let mut c = Compiler::new()
            .egraph(!self.no_egraph)
            .target(self.target()?);
        if let Some(n) = self.threads {
            c = c.threads(n);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Status;

    #[test]
    fn options_parse_from_text() {
        let mut o = Options::default();
        o.parse_list("threads=2; egraph=off cpu=native,-avx512f")
            .unwrap();
        assert_eq!(
            o,
            Options {
                threads: Some(2),
                no_egraph: true,
                cpu: Some("native,-avx512f".into()),
            }
        );
        o.set("threads", "auto").unwrap();
        o.set("egraph", "ON").unwrap();
        o.set("cpu", "").unwrap();
        assert_eq!(o, Options::default());
    }

    #[test]
    fn bad_options_are_invalid_arguments_with_the_key() {
        let mut o = Options::default();
        for (k, v, want) in [
            ("threads", "0", "option 'threads': '0'"),
            ("threads", "two", "option 'threads': 'two'"),
            (
                "egraph",
                "maybe",
                "option 'egraph': 'maybe' is not a boolean",
            ),
            ("fast", "1", "unknown option 'fast'"),
        ] {
            let e = o.set(k, v).unwrap_err();
            assert_eq!(e.status, Status::InvalidArgument);
            assert!(e.msg.contains(want), "{k}={v}: {}", e.msg);
        }
        let e = o.parse_list("threads").unwrap_err();
        assert!(e.msg.contains("'threads' is not key=value"), "{}", e.msg);
        // A failed set leaves the options unchanged.
        assert_eq!(o, Options::default());
    }

    #[test]
    fn cpu_features_select_the_target() {
        let host = Target::host().unwrap();
        let o = Options {
            cpu: Some("native,-avx512f,-avx512vl,-avx512dq,-avx512vnni".into()),
            ..Options::default()
        };
        let t = o.target().unwrap();
        assert_eq!(t.triple, host.triple);
        assert!(!t.has("avx512f"), "{:?}", t.features);
        assert_eq!(host.has("avx2"), t.has("avx2"));
        let bad = Options {
            cpu: Some("+no_such_feature".into()),
            ..Options::default()
        };
        let e = bad.target().unwrap_err();
        assert_eq!(e.status, Status::Compile);
        assert!(
            e.msg.contains("cpu features '+no_such_feature'"),
            "{}",
            e.msg
        );
    }
}
