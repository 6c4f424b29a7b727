//! The schedule's text form: a header (target, counts, arena and weights sizes, I/O slots), then one
//! block per step in execution order — a line with the step's kernel choice, indented lines with its
//! epilogue or fused chain and its operands — then the output copies. Everything printed is a function
//! of the graph, the target and the options (offsets, sizes, names; no addresses or map orders), so
//! the text is stable across runs and thread counts and diffs line by line.

use std::fmt::{self, Write as _};

use carve_runtime::exec::{Loc, Slot};

use super::{Kernel, Operand, Schedule, Step, StepKind};

/// `arena+64`, `weights+0`, `io2`, `io2+16`.
fn loc_text(loc: Loc) -> String {
    match loc {
        Loc::Arena(off) => format!("arena+{off}"),
        Loc::Weights(off) => format!("weights+{off}"),
        Loc::Io(k, 0) => format!("io{k}"),
        Loc::Io(k, off) => format!("io{k}+{off}"),
    }
}

fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn operand_text(o: &Operand) -> String {
    let ty = match &o.tensor {
        Some((dt, shape)) => format!("{dt}[{}]", dims(shape)),
        None => "?".to_string(),
    };
    let loc = o.loc.map_or_else(|| "baked".to_string(), loc_text);
    let layout = match o.layout {
        super::Layout::RowMajor => "",
    };
    format!("%{} {ty} {loc}{layout}", o.value)
}

fn slot_text(name: &str, s: &Slot) -> String {
    format!(
        "%{name} {}[{}] {}",
        s.dtype,
        dims(&s.shape),
        loc_text(s.loc)
    )
}

fn kernel_text(k: &Kernel) -> String {
    let mut s = k.family.name().to_string();
    if let Some(inner) = k.inner {
        let _ = write!(s, "({inner})");
    }
    if let Some((mr, nr)) = k.micro_tile {
        let _ = write!(s, " tile={mr}x{nr}");
    }
    if let Some(t) = k.x86 {
        let _ = write!(s, " x86={}", t.isa);
    }
    if let Some(p) = k.packed {
        let _ = write!(s, " packed=weights+{}:{}", p.offset, p.len);
    }
    if let Some(j) = k.in_place {
        let _ = write!(
            s,
            " in_place={j}{}",
            if k.reused { "(reused)" } else { "(not reused)" }
        );
    }
    let tiles: Vec<String> = k.tiles.iter().map(|t| t.to_string()).collect();
    let _ = write!(s, " tiles=[{}]", tiles.join(","));
    s
}

fn step_text(out: &mut String, st: &Step) {
    let head = match &st.kind {
        StepKind::Kernel(k) => format!("kernel {}", kernel_text(k)),
        StepKind::Alias => "view".to_string(),
        StepKind::Empty => "empty".to_string(),
        StepKind::Fallback { reason, index } => format!("fallback #{index}: {reason}"),
    };
    let _ = writeln!(out, "{} '{}' ({}): {head}", st.node, st.name, st.op);
    if let StepKind::Kernel(k) = &st.kind {
        if let Some(e) = &k.epilogue {
            let _ = writeln!(out, "    epilogue {e}");
        }
        if let Some(c) = &k.chain {
            let _ = writeln!(out, "    chain [{}] = {}", c.members.join(", "), c.expr);
        }
    }
    for (j, i) in st.inputs.iter().enumerate() {
        match i {
            Some(o) => {
                let _ = writeln!(out, "    in{j}  {}", operand_text(o));
            }
            None => {
                let _ = writeln!(out, "    in{j}  absent");
            }
        }
    }
    for (j, o) in st.outputs.iter().enumerate() {
        let _ = writeln!(out, "    out{j} {}", operand_text(o));
    }
}

impl Schedule<'_> {
    /// The schedule's deterministic text form (see the module documentation).
    pub fn to_text(&self) -> String {
        let r = &self.report;
        let mut out = String::new();
        let _ = writeln!(out, "schedule @{} for {}", self.graph.name, self.target);
        let _ = writeln!(
            out,
            "nodes {}: {} native ({} fused), {} views, {} fallbacks, {} folded; {} kernels ({} split over threads)",
            r.nodes,
            r.native,
            r.fused,
            r.aliases,
            r.fallbacks.len(),
            r.folded,
            r.kernels,
            self.parallel_kernels()
        );
        let _ = writeln!(
            out,
            "arena {} bytes (unshared {}), weights {} bytes",
            r.arena_bytes, r.unshared_bytes, r.weights_bytes
        );
        for (name, s) in &self.inputs {
            let _ = writeln!(out, "input  {}", slot_text(name, s));
        }
        for (name, s) in &self.outputs {
            let _ = writeln!(out, "output {}", slot_text(name, s));
        }
        for st in &self.steps {
            step_text(&mut out, st);
        }
        for c in &self.copies {
            let _ = writeln!(
                out,
                "copy %{} {} -> io{} ({} bytes)",
                c.value,
                loc_text(c.from),
                c.io,
                c.bytes
            );
        }
        out
    }
}

impl fmt::Display for Schedule<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}
