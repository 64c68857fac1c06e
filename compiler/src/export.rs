//! Graph exports: Graphviz DOT and a JSON description of the typed graph.

use std::fmt::Write;

use serde::Serialize;

use crate::frontend::uses;
use crate::graph::*;

#[derive(Serialize)]
pub struct GraphJson {
    pub workflow: String,
    pub sla_p95_ms: f64,
    pub inputs: Vec<InputJson>,
    pub nodes: Vec<NodeJson>,
    pub edges: Vec<EdgeJson>,
    pub outputs: Vec<OutputJson>,
}

#[derive(Serialize)]
pub struct InputJson {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub max_len: Option<u32>,
}

#[derive(Serialize)]
pub struct NodeJson {
    pub id: String,
    pub kind: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// The map/branch/loop node whose body holds this node, if any.
    pub parent: Option<String>,
    pub line: usize,
    pub col: usize,
}

#[derive(Serialize)]
pub struct EdgeJson {
    pub from: String,
    pub to: String,
}

#[derive(Serialize)]
pub struct OutputJson {
    pub name: String,
    pub value: String,
}

fn target_name(g: &WorkflowGraph, t: Target) -> String {
    match t {
        Target::Input(i) => format!("inputs.{}", g.inputs[i].name),
        Target::Node(n) => g.nodes[n].id.clone(),
        Target::Var { scope, index } => {
            let owner = g.scopes[scope]
                .owner
                .map(|o| g.nodes[o].id.as_str())
                .unwrap_or("");
            format!("{owner}.{}", g.scopes[scope].vars[index].0)
        }
    }
}

/// Data edges (producer, consumer) in a stable order, inputs and scope variables included.
pub fn edges(g: &WorkflowGraph) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for ix in 0..g.nodes.len() {
        for u in uses(g, ix) {
            if let Some(t) = g.lookup(u.scope, &u.reference.root) {
                let e = (target_name(g, t), g.nodes[ix].id.clone());
                if seen.insert(e.clone()) {
                    out.push(e);
                }
            }
        }
    }
    out
}

pub fn graph_json(g: &WorkflowGraph) -> GraphJson {
    GraphJson {
        workflow: g.name.clone(),
        sla_p95_ms: g.sla.p95_ms,
        inputs: g
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| InputJson {
                name: input.name.clone(),
                ty: g.target_type(Target::Input(i)).to_string(),
                max_len: input.max_len,
            })
            .collect(),
        nodes: g
            .nodes
            .iter()
            .map(|n| NodeJson {
                id: n.id.clone(),
                kind: n.op.kind().into(),
                ty: n.ty.to_string(),
                parent: g.scopes[n.scope].owner.map(|o| g.nodes[o].id.clone()),
                line: n.span.start.line,
                col: n.span.start.col,
            })
            .collect(),
        edges: edges(g)
            .into_iter()
            .map(|(from, to)| EdgeJson { from, to })
            .collect(),
        outputs: g
            .outputs
            .iter()
            .map(|o| OutputJson {
                name: o.name.clone(),
                value: o.value.template.source.clone(),
            })
            .collect(),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz DOT: one cluster per body, inputs as ellipses, nodes as boxes labelled `id: kind`.
pub fn dot(g: &WorkflowGraph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph {} {{", quote(&g.name));
    let _ = writeln!(
        s,
        "  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];"
    );
    for i in &g.inputs {
        let _ = writeln!(
            s,
            "  {} [shape=ellipse];",
            quote(&format!("inputs.{}", i.name))
        );
    }
    write_scope(g, ROOT_SCOPE, 1, &mut s);
    for (from, to) in edges(g) {
        let _ = writeln!(s, "  {} -> {};", quote(&from), quote(&to));
    }
    for o in &g.outputs {
        let name = format!("outputs.{}", o.name);
        let _ = writeln!(s, "  {} [shape=ellipse, style=dashed];", quote(&name));
        for r in o.value.template.refs() {
            if let Some(t) = g.lookup(ROOT_SCOPE, &r.root) {
                let _ = writeln!(s, "  {} -> {};", quote(&target_name(g, t)), quote(&name));
            }
        }
    }
    s.push_str("}\n");
    s
}

fn write_scope(g: &WorkflowGraph, scope: ScopeId, depth: usize, s: &mut String) {
    let pad = "  ".repeat(depth);
    for &n in &g.scopes[scope].order {
        let node = &g.nodes[n];
        let _ = writeln!(
            s,
            "{pad}{} [label={}];",
            quote(&node.id),
            quote(&format!("{}: {} -> {}", node.id, node.op.kind(), node.ty))
        );
        let bodies = node.op.bodies();
        for (i, &body) in bodies.iter().enumerate() {
            let label = match &node.op {
                Op::Branch { .. } if i + 1 == bodies.len() => format!("{} else", node.id),
                Op::Branch { .. } => format!("{} case {i}", node.id),
                _ => format!("{} body", node.id),
            };
            let cluster = format!("cluster_{}_{i}", node.id);
            let _ = writeln!(s, "{pad}subgraph {} {{", quote(&cluster));
            let _ = writeln!(s, "{pad}  label={}; style=rounded;", quote(&label));
            for index in 0..g.scopes[body].vars.len() {
                let var = target_name(g, Target::Var { scope: body, index });
                let _ = writeln!(s, "{pad}  {} [shape=ellipse];", quote(&var));
            }
            write_scope(g, body, depth + 1, s);
            let _ = writeln!(s, "{pad}}}");
        }
    }
}
