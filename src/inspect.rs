//! `carve inspect`: a summary of a model — inputs/outputs with types, opsets, op histogram, parameter
//! count and bytes, compute estimate (the ops' own FLOP and byte counts, see [`crate::cost`]), and the
//! operators carve cannot import yet.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use carve_frontend::onnx::canonical_domain;
use carve_frontend::onnx::types::type_from_proto;
use carve_frontend::proto::{AttributeProto, GraphProto, ModelProto, TensorProto};
use carve_frontend::{ImportError, UnsupportedOp};
use carve_ir::{DType, Graph};

use crate::cost::{GraphCost, estimate_graph};
use crate::shapes::{InputShape, bind_input_shapes};

/// One graph input or output.
#[derive(Debug, Clone)]
pub struct Port {
    /// Name.
    pub name: String,
    /// Declared type, printed (or why it could not be read).
    pub ty: String,
}

/// Everything `carve inspect` reports.
#[derive(Debug)]
pub struct Summary {
    /// ONNX IR version.
    pub ir_version: i64,
    /// Producer name and version.
    pub producer: String,
    /// Imported opsets (canonical domain → version).
    pub opsets: BTreeMap<String, i64>,
    /// Graph inputs (initializers excluded).
    pub inputs: Vec<Port>,
    /// Graph outputs.
    pub outputs: Vec<Port>,
    /// Node count per `domain::op` in the file (subgraphs included).
    pub op_histogram: BTreeMap<String, usize>,
    /// Elements in all initializers and Constant-node tensors (subgraphs included).
    pub params: u64,
    /// Bytes those elements occupy (dense storage).
    pub param_bytes: u64,
    /// Import outcome: `Ok` with the compute estimate, or the error.
    pub import: Result<GraphCost, ImportError>,
    /// Input shapes bound for the estimate (as given on the command line).
    pub bound: Vec<InputShape>,
}

/// Summarizes the model at `path`, binding `shapes` before estimating compute.
pub fn summarize(path: &Path, shapes: &[InputShape]) -> Result<Summary, ImportError> {
    let proto = carve_frontend::decode_file(path)?;
    let mut s = summarize_proto(&proto);
    s.bound = shapes.to_vec();
    s.import = carve_frontend::load(path).and_then(|m| {
        let mut g: Graph = m.graph;
        bind_input_shapes(&mut g, shapes).map_err(|e| ImportError::Graph {
            graph: g.name.clone(),
            msg: e.to_string(),
        })?;
        Ok(estimate_graph(&g))
    });
    Ok(s)
}

fn summarize_proto(m: &ModelProto) -> Summary {
    let mut s = Summary {
        ir_version: m.ir_version,
        producer: format!("{} {}", m.producer_name, m.producer_version)
            .trim()
            .to_string(),
        opsets: m
            .opset_import
            .iter()
            .map(|o| (canonical_domain(&o.domain).to_string(), o.version))
            .collect(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        op_histogram: BTreeMap::new(),
        params: 0,
        param_bytes: 0,
        import: Ok(GraphCost::default()),
        bound: Vec::new(),
    };
    if let Some(g) = &m.graph {
        let inits: std::collections::BTreeSet<&str> =
            g.initializer.iter().map(|t| t.name.as_str()).collect();
        let port = |v: &carve_frontend::proto::ValueInfoProto| Port {
            name: v.name.clone(),
            ty: match v.r#type.as_ref().map(type_from_proto) {
                Some(Ok(t)) => t.to_string(),
                Some(Err(e)) => format!("<{e}>"),
                None => "<no type>".into(),
            },
        };
        s.inputs = g
            .input
            .iter()
            .filter(|v| !inits.contains(v.name.as_str()))
            .map(port)
            .collect();
        s.outputs = g.output.iter().map(port).collect();
        walk(g, &mut s, 0);
    }
    s
}

fn tensor_size(t: &TensorProto) -> (u64, u64) {
    let count = t
        .dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
        .unwrap_or(0);
    let bytes = match DType::from_onnx_code(t.data_type) {
        Some(DType::String) => t.string_data.iter().map(|s| s.len() as u64).sum(),
        Some(d) => d.storage_bytes(count).unwrap_or(0),
        None => 0,
    };
    (count, bytes)
}

fn walk(g: &GraphProto, s: &mut Summary, depth: usize) {
    if depth > 32 {
        return;
    }
    let mut add = |t: &TensorProto| {
        let (c, b) = tensor_size(t);
        s.params += c;
        s.param_bytes += b;
    };
    g.initializer.iter().for_each(&mut add);
    for sp in &g.sparse_initializer {
        if let Some(v) = &sp.values {
            add(v);
        }
    }
    for n in &g.node {
        *s.op_histogram
            .entry(format!("{}::{}", canonical_domain(&n.domain), n.op_type))
            .or_default() += 1;
        if n.op_type == "Constant" && canonical_domain(&n.domain) == "ai.onnx" {
            n.attribute
                .iter()
                .filter_map(|a: &AttributeProto| a.t.as_ref())
                .for_each(&mut add);
        }
    }
    for n in &g.node {
        for a in &n.attribute {
            for sg in a.g.iter().chain(&a.graphs) {
                walk(sg, s, depth + 1);
            }
        }
    }
}

fn human(n: f64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut x = n;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < UNITS.len() {
        x /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n:.0}")
    } else {
        format!("{x:.2}{}", UNITS[u])
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.2} {}", UNITS[u])
    }
}

/// Renders the summary as the text `carve inspect` prints.
pub fn render(path: &Path, s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "model:      {}", path.display());
    let _ = writeln!(
        o,
        "ir version: {}   producer: {}",
        s.ir_version,
        if s.producer.is_empty() {
            "-"
        } else {
            &s.producer
        }
    );
    let opsets: Vec<String> = s.opsets.iter().map(|(d, v)| format!("{d} {v}")).collect();
    let _ = writeln!(o, "opsets:     {}", opsets.join(", "));
    let _ = writeln!(o, "\ninputs:");
    for p in &s.inputs {
        let _ = writeln!(o, "  {:<24} {}", p.name, p.ty);
    }
    let _ = writeln!(o, "outputs:");
    for p in &s.outputs {
        let _ = writeln!(o, "  {:<24} {}", p.name, p.ty);
    }
    let _ = writeln!(
        o,
        "\nparameters: {} ({} elements, {})",
        human(s.params as f64),
        s.params,
        human_bytes(s.param_bytes)
    );
    let total: usize = s.op_histogram.values().sum();
    let _ = writeln!(o, "\nops ({total} nodes):");
    let mut hist: Vec<(&String, &usize)> = s.op_histogram.iter().collect();
    hist.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (op, n) in hist {
        let _ = writeln!(o, "  {n:>6}  {op}");
    }
    let _ = writeln!(o);
    match &s.import {
        Ok(c) => {
            if !s.bound.is_empty() {
                let b: Vec<String> = s
                    .bound
                    .iter()
                    .map(|i| {
                        format!(
                            "{}={}",
                            i.name,
                            i.dims
                                .iter()
                                .map(u64::to_string)
                                .collect::<Vec<_>>()
                                .join(",")
                        )
                    })
                    .collect();
                let _ = writeln!(o, "shapes bound: {}", b.join(" "));
            }
            let _ = writeln!(
                o,
                "compute:    {} MACs, {} FLOPs, {} read and written{}",
                human(c.macs as f64),
                human(c.flops as f64),
                human_bytes(c.bytes),
                if c.unknown_nodes > 0 {
                    format!(
                        " (lower bound: {} node(s) have symbolic or unknown shapes; bind them with --input-shape)",
                        c.unknown_nodes
                    )
                } else {
                    String::new()
                }
            );
            let _ = writeln!(o, "unsupported ops: none");
        }
        Err(ImportError::Unsupported(list)) => {
            let _ = writeln!(o, "compute:    not estimated (the model does not import)");
            let _ = writeln!(o, "unsupported ops ({}):", list.len());
            for UnsupportedOp {
                domain,
                op_type,
                opset,
                nodes,
                reason,
            } in list
            {
                let _ = writeln!(
                    o,
                    "  {domain}::{op_type} (opset {opset}): {} node(s), e.g. {}{}",
                    nodes.len(),
                    nodes.first().map(String::as_str).unwrap_or("?"),
                    reason
                        .as_ref()
                        .map(|r| format!(" — {r}"))
                        .unwrap_or_default()
                );
            }
        }
        Err(e) => {
            let _ = writeln!(o, "compute:    not estimated");
            let _ = writeln!(o, "import error: {e}");
        }
    }
    o
}
