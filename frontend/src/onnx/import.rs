//! The import driver: ModelProto → [`Model`]. Resolves names through nested scopes (subgraphs capture
//! outer values explicitly), schedules nodes (keeping ONNX order when valid, reporting cycles), inlines
//! model-local functions, checks every op is supported up front, and refines inferred types with the
//! model's declared value types.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use carve_ir::infer::{compatible, refine};
use carve_ir::{Capture, Graph, Type, ValueId};

use super::canonical_domain;
use super::ctx::NodeCtx;
use super::ops::lookup;
use super::types::type_from_proto;
use crate::error::{ImportError, UnsupportedOp};
use crate::proto::{AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto};
use crate::tensor::TensorLoader;

/// Subgraphs nested deeper than this are refused (prost's decoder already bounds message depth).
const MAX_GRAPH_DEPTH: usize = 32;

/// An imported model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The main graph.
    pub graph: Graph,
    /// ONNX IR version of the file.
    pub ir_version: i64,
    /// Opset version per canonical domain.
    pub opsets: BTreeMap<String, i64>,
    /// Producer name and version.
    pub producer: String,
    /// Model metadata properties, in file order.
    pub metadata: Vec<(String, String)>,
    /// Things the importer accepted but a user should know, in graph order: a declared value type
    /// that conflicts with inference (inference wins, as in ONNX Runtime), naming the value and node.
    pub warnings: Vec<String>,
}

/// Model-wide import state shared by every graph and node.
pub struct Importer<'a> {
    pub(crate) opsets: BTreeMap<String, i64>,
    pub(crate) functions: BTreeMap<(String, String), &'a FunctionProto>,
    pub(crate) tensors: &'a TensorLoader,
    /// Warnings collected while importing (see [`Model::warnings`]).
    pub(crate) warnings: std::cell::RefCell<Vec<String>>,
}

/// Name resolution for one graph being built, chained to its parent graph's scope.
pub struct Scope<'p> {
    pub(crate) graph: Graph,
    names: HashMap<String, ValueId>,
    parent: Option<&'p mut dyn Resolve>,
    depth: usize,
}

/// Something that resolves value names to ids, capturing from enclosing scopes as needed.
pub trait Resolve {
    /// The value called `name`, if visible here.
    fn resolve(&mut self, name: &str) -> Option<ValueId>;
    /// The type of a value of this scope.
    fn type_of(&self, v: ValueId) -> Type;
    /// The constant defining a value of this scope, if it is one.
    fn constant_of(&self, v: ValueId) -> Option<carve_ir::Constant>;
    /// Nesting depth.
    fn depth(&self) -> usize;
}

impl Resolve for Scope<'_> {
    fn resolve(&mut self, name: &str) -> Option<ValueId> {
        if let Some(&v) = self.names.get(name) {
            return Some(v);
        }
        let parent = self.parent.as_mut()?;
        let outer = parent.resolve(name)?;
        // An outer constant is re-materialized inside (the buffer is shared, not copied) instead of being
        // captured, so that inference in the subgraph can read its value (e.g. axes of an Unsqueeze in a
        // Scan body).
        let inner = match parent.constant_of(outer) {
            Some(c) => self.graph.add_const(name, c),
            None => {
                let ty = parent.type_of(outer);
                let inner = self.graph.add_value(name, ty);
                self.graph.captures.push(Capture { inner, outer });
                inner
            }
        };
        self.names.insert(name.to_string(), inner);
        Some(inner)
    }

    fn type_of(&self, v: ValueId) -> Type {
        self.graph.ty(v).clone()
    }

    fn constant_of(&self, v: ValueId) -> Option<carve_ir::Constant> {
        self.graph.constant_of(v).cloned()
    }

    fn depth(&self) -> usize {
        self.depth
    }
}

fn graph_err(g: &str, msg: impl Into<String>) -> ImportError {
    ImportError::Graph {
        graph: g.to_string(),
        msg: msg.into(),
    }
}

fn node_display_name(n: &NodeProto, index: usize) -> String {
    if n.name.is_empty() {
        format!("#{index}")
    } else {
        n.name.clone()
    }
}

/// Imports a decoded model.
pub fn import_model(model: &ModelProto, tensors: &TensorLoader) -> Result<Model, ImportError> {
    let mut opsets = BTreeMap::new();
    for o in &model.opset_import {
        opsets.insert(canonical_domain(&o.domain).to_string(), o.version);
    }
    if model.ir_version < 3 && opsets.is_empty() {
        // IR versions before 3 had no opset_import; they imply opset 1.
        opsets.insert("ai.onnx".to_string(), 1);
    }
    let functions = model
        .functions
        .iter()
        .map(|f| ((canonical_domain(&f.domain).to_string(), f.name.clone()), f))
        .collect();
    let imp = Importer {
        opsets,
        functions,
        tensors,
        warnings: Default::default(),
    };
    let graph_proto = model
        .graph
        .as_ref()
        .ok_or_else(|| graph_err("<model>", "the model has no graph"))?;
    imp.check_supported(graph_proto)?;
    let graph = imp.import_graph(graph_proto, None, &[])?;
    Ok(Model {
        graph,
        ir_version: model.ir_version,
        opsets: imp.opsets.clone(),
        producer: format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_string(),
        metadata: model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
        warnings: imp.warnings.take(),
    })
}

impl<'a> Importer<'a> {
    fn opset_of(&self, domain: &str) -> Option<i64> {
        self.opsets.get(canonical_domain(domain)).copied()
    }

    /// Lists every unsupported (domain, op, opset) in the graph, its subgraphs and the functions it uses.
    fn check_supported(&self, g: &GraphProto) -> Result<(), ImportError> {
        let mut missing: BTreeMap<(String, String, i64), Vec<String>> = BTreeMap::new();
        let mut seen_functions = BTreeSet::new();
        self.collect_unsupported(&g.node, &mut missing, &mut seen_functions, 0);
        if missing.is_empty() {
            return Ok(());
        }
        Err(ImportError::Unsupported(
            missing
                .into_iter()
                .map(|((domain, op_type, opset), nodes)| UnsupportedOp {
                    domain,
                    op_type,
                    opset,
                    nodes,
                    reason: None,
                })
                .collect(),
        ))
    }

    fn collect_unsupported(
        &self,
        nodes: &[NodeProto],
        missing: &mut BTreeMap<(String, String, i64), Vec<String>>,
        seen_functions: &mut BTreeSet<(String, String)>,
        depth: usize,
    ) {
        if depth > MAX_GRAPH_DEPTH {
            return;
        }
        for (i, n) in nodes.iter().enumerate() {
            let domain = canonical_domain(&n.domain).to_string();
            let key = (domain.clone(), n.op_type.clone());
            if let Some(f) = self.functions.get(&key) {
                if seen_functions.insert(key) {
                    self.collect_unsupported(&f.node, missing, seen_functions, depth + 1);
                }
            } else if lookup(&domain, &n.op_type).is_none() {
                let opset = self.opset_of(&domain).unwrap_or(0);
                missing
                    .entry((domain, n.op_type.clone(), opset))
                    .or_default()
                    .push(node_display_name(n, i));
            }
            for a in &n.attribute {
                for g in a.g.iter().chain(&a.graphs) {
                    self.collect_unsupported(&g.node, missing, seen_functions, depth + 1);
                }
            }
        }
    }

    /// Imports a graph proto. `parent` is the enclosing scope for subgraphs; `input_types` refine or
    /// supply the formal inputs' types.
    pub fn import_graph(
        &self,
        g: &GraphProto,
        parent: Option<&mut dyn Resolve>,
        input_types: &[Option<Type>],
    ) -> Result<Graph, ImportError> {
        let depth = parent.as_ref().map_or(0, |p| p.depth() + 1);
        if depth > MAX_GRAPH_DEPTH {
            return Err(graph_err(
                &g.name,
                format!("subgraphs nested deeper than {MAX_GRAPH_DEPTH}"),
            ));
        }
        let gname = if g.name.is_empty() {
            "main"
        } else {
            g.name.as_str()
        };
        let mut scope = Scope {
            graph: Graph::new(gname),
            names: HashMap::new(),
            parent,
            depth,
        };

        // Initializers become constants (also when a graph input has the same name: they are not fed).
        for t in &g.initializer {
            let c = self.tensors.constant(t)?;
            let v = scope.graph.add_const(t.name.clone(), c);
            scope.names.insert(t.name.clone(), v);
        }
        for s in &g.sparse_initializer {
            let c = self.tensors.sparse_constant(s)?;
            let name = s
                .values
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_default();
            let v = scope.graph.add_const(name.clone(), c);
            scope.names.insert(name, v);
        }

        // Formal inputs.
        for (i, vi) in g.input.iter().enumerate() {
            if scope.names.contains_key(&vi.name) && depth == 0 {
                continue;
            }
            let declared = match &vi.r#type {
                Some(t) if t.value.is_some() => Some(
                    type_from_proto(t)
                        .map_err(|m| graph_err(gname, format!("input '{}': {m}", vi.name)))?,
                ),
                _ => None,
            };
            let given = input_types.get(i).cloned().flatten();
            let ty = match (declared, given) {
                (Some(d), Some(t)) => {
                    if compatible(&d, &t) {
                        refine(&d, &t)
                    } else {
                        t
                    }
                }
                (Some(d), None) => d,
                (None, Some(t)) => t,
                (None, None) => {
                    return Err(graph_err(gname, format!("input '{}' has no type", vi.name)));
                }
            };
            let v = scope.graph.add_input(vi.name.clone(), ty);
            scope.names.insert(vi.name.clone(), v);
        }

        // Declared types of intermediate values and outputs.
        let mut declared: HashMap<&str, Type> = HashMap::new();
        for vi in g.value_info.iter().chain(&g.output) {
            if let Some(Ok(ty)) = vi.r#type.as_ref().map(type_from_proto) {
                declared.insert(vi.name.as_str(), ty);
            }
        }

        let order = schedule(g, gname)?;
        for idx in order {
            let n = &g.node[idx];
            self.import_node(&mut scope, n, node_display_name(n, idx), &declared, 0)?;
        }

        for o in &g.output {
            let v = scope.resolve(&o.name).ok_or_else(|| {
                graph_err(
                    gname,
                    format!("output '{}' is not defined by any node or input", o.name),
                )
            })?;
            scope.graph.outputs.push(v);
        }
        Ok(scope.graph)
    }

    fn import_node(
        &self,
        scope: &mut Scope<'_>,
        n: &NodeProto,
        display_name: String,
        declared: &HashMap<&str, Type>,
        fn_depth: usize,
    ) -> Result<(), ImportError> {
        let domain = canonical_domain(&n.domain);
        if let Some(f) = self.functions.get(&(domain.to_string(), n.op_type.clone())) {
            if fn_depth > MAX_GRAPH_DEPTH {
                return Err(ImportError::Node {
                    node: display_name,
                    op: n.op_type.clone(),
                    msg: "function calls nest too deep (recursive function?)".into(),
                });
            }
            for (k, inner) in inline_function(f, n, &display_name).iter().enumerate() {
                let name = if inner.name.is_empty() {
                    format!("{display_name}/#{k}")
                } else {
                    inner.name.clone()
                };
                self.import_node(scope, inner, name, declared, fn_depth + 1)?;
            }
            return Ok(());
        }
        let import = lookup(domain, &n.op_type).ok_or_else(|| ImportError::Node {
            node: display_name.clone(),
            op: n.op_type.clone(),
            msg: format!("unsupported operator {domain}::{}", n.op_type),
        })?;
        let opset = self.opset_of(domain).ok_or_else(|| ImportError::Node {
            node: display_name.clone(),
            op: n.op_type.clone(),
            msg: format!("the model imports no opset for domain '{domain}'"),
        })?;
        let mut inputs = Vec::with_capacity(n.input.len());
        for (i, name) in n.input.iter().enumerate() {
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            let v = scope.resolve(name).ok_or_else(|| ImportError::Node {
                node: display_name.clone(),
                op: n.op_type.clone(),
                msg: format!(
                    "input {i} '{name}' is not defined (no node, input or initializer produces it)"
                ),
            })?;
            inputs.push(Some(v));
        }
        let first_new = scope.graph.values.len();
        let outputs = {
            let mut cx = NodeCtx {
                imp: self,
                scope: &mut *scope,
                node: n,
                display_name: display_name.clone(),
                opset,
                inputs,
                emitted: 0,
            };
            import(&mut cx)?
        };
        for (i, name) in n.output.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            let v = *outputs.get(i).ok_or_else(|| ImportError::Node {
                node: display_name.clone(),
                op: n.op_type.clone(),
                msg: format!("output {i} '{name}' is not produced by carve's importer for this op"),
            })?;
            if v.index() >= first_new {
                scope.graph.values[v.index()].name = name.clone();
            }
            if let Some(d) = declared.get(name.as_str()) {
                let inferred = scope.graph.ty(v).clone();
                if !compatible(&inferred, d) {
                    // ONNX Runtime warns and runs with its own inference; so does carve.
                    self.warnings.borrow_mut().push(format!(
                        "node '{display_name}' ({}): output '{name}' is declared {d} but inferred \
                         {inferred}; using the inferred type",
                        n.op_type
                    ));
                } else if v.index() >= first_new {
                    scope.graph.values[v.index()].ty = refine(&inferred, d);
                }
            }
            if scope.names.insert(name.clone(), v).is_some() {
                return Err(ImportError::Node {
                    node: display_name.clone(),
                    op: n.op_type.clone(),
                    msg: format!("output '{name}' is defined twice"),
                });
            }
        }
        Ok(())
    }
}

/// Names a subgraph uses but does not define (recursively through its own subgraphs).
fn free_names(g: &GraphProto, out: &mut BTreeSet<String>, depth: usize) {
    if depth > MAX_GRAPH_DEPTH {
        return;
    }
    let mut defined: BTreeSet<&str> = BTreeSet::new();
    defined.extend(g.input.iter().map(|v| v.name.as_str()));
    defined.extend(g.initializer.iter().map(|t| t.name.as_str()));
    for n in &g.node {
        defined.extend(n.output.iter().map(String::as_str));
    }
    let mut used = BTreeSet::new();
    for n in &g.node {
        used.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        for a in &n.attribute {
            for sg in a.g.iter().chain(&a.graphs) {
                free_names(sg, &mut used, depth + 1);
            }
        }
    }
    used.extend(g.output.iter().map(|o| o.name.clone()));
    out.extend(used.into_iter().filter(|u| !defined.contains(u.as_str())));
}

/// Node order for a graph: the file's order when valid, else a topological order; cycles are errors.
fn schedule(g: &GraphProto, gname: &str) -> Result<Vec<usize>, ImportError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(o.as_str(), i);
        }
    }
    let deps: Vec<Vec<usize>> = g
        .node
        .iter()
        .map(|n| {
            let mut names: BTreeSet<String> =
                n.input.iter().filter(|s| !s.is_empty()).cloned().collect();
            for a in &n.attribute {
                for sg in a.g.iter().chain(&a.graphs) {
                    free_names(sg, &mut names, 1);
                }
            }
            names
                .iter()
                .filter_map(|s| producer.get(s.as_str()).copied())
                .collect()
        })
        .collect();
    carve_ir::algo::schedule(&deps).map_err(|c| {
        let n = &g.node[c.node];
        graph_err(
            gname,
            format!(
                "the graph has a cycle through node '{}' ({})",
                node_display_name(n, c.node),
                n.op_type
            ),
        )
    })
}

/// The body of function `f` specialised to call site `call`: formal inputs/outputs renamed to the actual
/// ones, internal names prefixed with the call's name, attribute references substituted.
fn inline_function(f: &FunctionProto, call: &NodeProto, call_name: &str) -> Vec<NodeProto> {
    let mut rename: HashMap<&str, String> = HashMap::new();
    for (i, formal) in f.input.iter().enumerate() {
        rename.insert(
            formal.as_str(),
            call.input.get(i).cloned().unwrap_or_default(),
        );
    }
    for (i, formal) in f.output.iter().enumerate() {
        rename.insert(
            formal.as_str(),
            call.output.get(i).cloned().unwrap_or_default(),
        );
    }
    let map = |name: &String| -> String {
        if name.is_empty() {
            return String::new();
        }
        rename
            .get(name.as_str())
            .cloned()
            .unwrap_or_else(|| format!("{call_name}/{name}"))
    };
    let resolve_attr = |a: &AttributeProto| -> Option<AttributeProto> {
        if a.ref_attr_name.is_empty() {
            return Some(a.clone());
        }
        let actual = call
            .attribute
            .iter()
            .find(|c| c.name == a.ref_attr_name)
            .or_else(|| f.attribute_proto.iter().find(|d| d.name == a.ref_attr_name))?;
        let mut v = actual.clone();
        v.name = a.name.clone();
        Some(v)
    };
    f.node
        .iter()
        .map(|n| NodeProto {
            input: n.input.iter().map(map).collect(),
            output: n.output.iter().map(map).collect(),
            name: if n.name.is_empty() {
                String::new()
            } else {
                format!("{call_name}/{}", n.name)
            },
            attribute: n.attribute.iter().filter_map(resolve_attr).collect(),
            ..n.clone()
        })
        .collect()
}
