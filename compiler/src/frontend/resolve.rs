//! Builds the [`WorkflowGraph`] from the syntax tree: flattens bodies into scopes, checks ids,
//! resolves every reference, finds cycles and orders each scope. Type checking follows in
//! `typecheck`.

use std::collections::HashMap;

use agentc_plan::ValueType;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::ast::*;
use super::decode::Decoder;
use super::template::{RefRoot, Reference};
use crate::diagnostics::{Diagnostic, Span, closest, name_hint};
use crate::graph::*;

/// A reference with the scope it is evaluated in and the node that uses it.
pub struct Use<'a> {
    pub scope: ScopeId,
    pub reference: &'a Reference,
    pub span: Span,
    pub text: &'a str,
}

pub fn build(d: &mut Decoder, wf: Workflow) -> WorkflowGraph {
    let mut g = WorkflowGraph {
        name: wf.name,
        description: wf.description,
        inputs: wf.inputs,
        models: wf.models,
        tools: wf.tools,
        indexes: wf.indexes,
        sla: wf.sla,
        outputs: wf.outputs,
        nodes: Vec::new(),
        scopes: vec![Scope::default()],
        by_id: HashMap::new(),
    };
    let mut first_seen: HashMap<String, Span> = HashMap::new();
    // Bodies nest at most as deep as the YAML reader allows, so this recursion is bounded.
    flatten(d, &mut g, wf.nodes, ROOT_SCOPE, &mut first_seen);
    g
}

fn flatten(
    d: &mut Decoder,
    g: &mut WorkflowGraph,
    nodes: Vec<Node>,
    scope: ScopeId,
    seen: &mut HashMap<String, Span>,
) {
    for node in nodes {
        if let Some(first) = seen.get(&node.id) {
            d.err_hint(
                node.span.start,
                format!(
                    "duplicate node id `{}` (first at {}:{})",
                    node.id, first.start.line, first.start.col
                ),
                "node ids are unique across the whole workflow, bodies included",
            );
            continue;
        }
        if node.id == "inputs" {
            d.err(
                node.span.start,
                "`inputs` is reserved and cannot be a node id",
            );
            continue;
        }
        seen.insert(node.id.clone(), node.span);
        let ix = g.nodes.len();
        g.by_id.insert(node.id.clone(), ix);
        g.nodes.push(FlatNode {
            id: node.id.clone(),
            span: node.span,
            scope,
            op: Op::Render(RenderNode {
                template: Default::default(),
            }),
            ty: ValueType::Text,
        });
        g.scopes[scope].nodes.push(ix);
        let new_scope = |g: &mut WorkflowGraph, vars: Vec<(String, ValueType)>| {
            g.scopes.push(Scope {
                parent: Some(scope),
                owner: Some(ix),
                vars,
                ..Scope::default()
            });
            g.scopes.len() - 1
        };
        let op = match node.kind {
            NodeKind::Llm(n) => Op::Llm(n),
            NodeKind::Embed(n) => Op::Embed(n),
            NodeKind::Retrieve(n) => Op::Retrieve(n),
            NodeKind::Tool(n) => Op::Tool(n),
            NodeKind::Render(n) => Op::Render(n),
            NodeKind::Json(n) => Op::Json(n),
            NodeKind::Map(m) => {
                // The element's type is fixed once `over` is typed; text until then.
                let body = new_scope(g, vec![(m.item.clone(), ValueType::Text)]);
                flatten(d, g, m.nodes, body, seen);
                Op::Map {
                    over: m.over,
                    item: m.item,
                    body,
                    output: m.output,
                    max_concurrency: m.max_concurrency,
                }
            }
            NodeKind::Branch(b) => {
                let mut cases = Vec::new();
                for case in b.cases {
                    let body = new_scope(g, Vec::new());
                    flatten(d, g, case.nodes, body, seen);
                    cases.push((case.when, body, case.output));
                }
                let body = new_scope(g, Vec::new());
                flatten(d, g, b.otherwise.nodes, body, seen);
                Op::Branch {
                    cases,
                    otherwise: (body, b.otherwise.output),
                }
            }
            NodeKind::Loop(l) => {
                let vars = l
                    .carry
                    .iter()
                    .map(|(n, _)| (n.clone(), ValueType::Text))
                    .collect();
                let body = new_scope(g, vars);
                flatten(d, g, l.nodes, body, seen);
                Op::Loop {
                    max_iters: l.max_iters,
                    carry: l.carry,
                    body,
                    next: l.next,
                    until: l.until,
                    output: l.output,
                }
            }
        };
        g.nodes[ix].op = op;
    }
}

/// Every reference a node makes, with the scope each is evaluated in.
type RawUse<'a> = (ScopeId, &'a Reference, Span, &'a str);

fn add_t<'a>(scope: ScopeId, t: &'a TemplateField, raw: &mut Vec<RawUse<'a>>) {
    for r in t.template.refs() {
        raw.push((scope, r, t.span, t.template.source.as_str()));
    }
}

pub fn uses(g: &WorkflowGraph, ix: NodeIx) -> Vec<Use<'_>> {
    let node = &g.nodes[ix];
    let mut out = Vec::new();
    let mut raw: Vec<RawUse> = Vec::new();
    let s = node.scope;
    match &node.op {
        Op::Llm(n) => {
            if let Some(p) = &n.prompt {
                add_t(s, p, &mut raw);
            }
            for m in n.messages.iter().flatten() {
                add_t(s, &m.content, &mut raw);
            }
        }
        Op::Embed(n) => add_t(s, &n.input, &mut raw),
        Op::Retrieve(n) => add_t(s, &n.query, &mut raw),
        Op::Tool(n) => {
            for (_, a) in &n.args {
                if let ArgValue::Template(t) = a {
                    add_t(s, t, &mut raw);
                }
            }
        }
        Op::Render(n) => add_t(s, &n.template, &mut raw),
        Op::Json(n) => {
            if let Some(f) = &n.from {
                add_t(s, f, &mut raw);
            }
            for (_, t) in n.fields.iter().flatten() {
                add_t(s, t, &mut raw);
            }
        }
        Op::Map {
            over, body, output, ..
        } => {
            add_t(s, over, &mut raw);
            add_t(*body, output, &mut raw);
        }
        Op::Branch { cases, otherwise } => {
            for (when, body, output) in cases {
                for r in when.condition.refs() {
                    raw.push((s, r, when.span, ""));
                }
                add_t(*body, output, &mut raw);
            }
            add_t(otherwise.0, &otherwise.1, &mut raw);
        }
        Op::Loop {
            carry,
            body,
            next,
            until,
            output,
            ..
        } => {
            for (_, t) in carry {
                add_t(s, t, &mut raw);
            }
            for (_, t) in next {
                add_t(*body, t, &mut raw);
            }
            if let Some(u) = until {
                for r in u.condition.refs() {
                    raw.push((*body, r, u.span, ""));
                }
            }
            add_t(*body, output, &mut raw);
        }
    }
    for (scope, reference, span, text) in raw {
        out.push(Use {
            scope,
            reference,
            span,
            text,
        });
    }
    out
}

/// Resolves every reference, reports errors, and returns dependency edges (dep, user) between
/// nodes of the same scope.
pub fn resolve_refs(d: &mut Decoder, g: &WorkflowGraph) -> Vec<(NodeIx, NodeIx)> {
    let mut edges = Vec::new();
    for ix in 0..g.nodes.len() {
        for u in uses(g, ix) {
            // Located only when reported: finding a position costs a scan of the scalar.
            let pos = |d: &Decoder| {
                if u.text.is_empty() {
                    u.span.start
                } else {
                    d.src.locate_in_scalar(u.span, u.text, u.reference.offset)
                }
            };
            match g.lookup(u.scope, &u.reference.root) {
                Some(Target::Node(dep)) => {
                    let dep_scope = g.nodes[dep].scope;
                    if is_ancestor_node(g, dep, u.scope) {
                        let at = pos(d);
                        d.err_hint(
                            at,
                            format!(
                                "cycle: `{}` refers to `{}`, which contains it",
                                g.nodes[ix].id, g.nodes[dep].id
                            ),
                            "a body cannot read the result of its own map/branch/loop",
                        );
                        continue;
                    }
                    // The ancestor of the user (or the user) that sits in the dependency's scope.
                    let mut rep = ix;
                    while g.nodes[rep].scope != dep_scope {
                        match g.scopes[g.nodes[rep].scope].owner {
                            Some(owner) => rep = owner,
                            None => break,
                        }
                    }
                    if g.nodes[rep].scope == dep_scope {
                        edges.push((dep, rep));
                    }
                }
                Some(_) => {}
                None => {
                    let at = pos(d);
                    unknown_reference(d, g, u.scope, u.reference, at);
                }
            }
        }
    }
    for out in &g.outputs {
        for r in out.value.template.refs() {
            if g.lookup(ROOT_SCOPE, &r.root).is_none() {
                let pos =
                    d.src
                        .locate_in_scalar(out.value.span, &out.value.template.source, r.offset);
                unknown_reference(d, g, ROOT_SCOPE, r, pos);
            }
        }
    }
    edges
}

fn is_ancestor_node(g: &WorkflowGraph, node: NodeIx, mut scope: ScopeId) -> bool {
    loop {
        let sc = &g.scopes[scope];
        if sc.owner == Some(node) {
            return true;
        }
        match sc.parent {
            Some(p) => scope = p,
            None => return false,
        }
    }
}

fn unknown_reference(
    d: &mut Decoder,
    g: &WorkflowGraph,
    scope: ScopeId,
    r: &Reference,
    pos: crate::diagnostics::Pos,
) {
    match &r.root {
        RefRoot::Input(name) => {
            let declared: Vec<&str> = g.inputs.iter().map(|i| i.name.as_str()).collect();
            let hint = if declared.is_empty() {
                "the workflow declares no inputs; add them under `inputs:`".to_string()
            } else {
                let suggest = |c: &str| format!("did you mean `${{inputs.{c}}}`?");
                name_hint(name, &declared, suggest, "declared inputs: ")
            };
            d.push(Diagnostic::new(pos, format!("unknown input `inputs.{name}`")).with_hint(hint));
        }
        RefRoot::Name(name) => {
            if let Some(n) = g.nodes.iter().position(|n| &n.id == name) {
                let mut owner_scope = g.nodes[n].scope;
                // The outermost body holding the node that is not visible from `scope`.
                let mut container = g.scopes[owner_scope].owner;
                while let Some(parent) = g.scopes[owner_scope].parent {
                    if g.scope_within(scope, parent) {
                        break;
                    }
                    owner_scope = parent;
                    container = g.scopes[owner_scope].owner;
                }
                let c = container.map(|c| g.nodes[c].id.as_str()).unwrap_or("?");
                d.push(
                    Diagnostic::new(
                        pos,
                        format!("`{name}` is inside `{c}` and not visible here"),
                    )
                    .with_hint(format!(
                        "use `${{{c}}}`, the result of `{c}`, or move `{name}` out of its body"
                    )),
                );
                return;
            }
            if d.broken_ids.contains(name) {
                // The node failed to decode and was reported already.
                return;
            }
            let mut visible: Vec<&str> = Vec::new();
            let mut s = Some(scope);
            while let Some(id) = s {
                visible.extend(g.scopes[id].vars.iter().map(|(v, _)| v.as_str()));
                visible.extend(g.scopes[id].nodes.iter().map(|&n| g.nodes[n].id.as_str()));
                s = g.scopes[id].parent;
            }
            let mut diag = Diagnostic::new(pos, format!("unknown reference `${{{name}}}`"));
            if let Some(c) = closest(name, visible.iter().copied()) {
                diag = diag.with_hint(format!("did you mean `${{{c}}}`?"));
            } else if g.inputs.iter().any(|i| &i.name == name) {
                diag = diag.with_hint(format!("inputs are written `${{inputs.{name}}}`"));
            } else {
                diag = diag.with_hint(
                    "a reference names a node id, `inputs.<name>`, or a map/loop variable",
                );
            }
            d.push(diag);
        }
    }
}

/// Finds cycles among each scope's nodes and orders every scope; returns false if any cycle.
pub fn order_scopes(d: &mut Decoder, g: &mut WorkflowGraph, edges: &[(NodeIx, NodeIx)]) -> bool {
    let mut ok = true;
    for scope in 0..g.scopes.len() {
        let members = g.scopes[scope].nodes.clone();
        let mut graph: DiGraph<NodeIx, ()> = DiGraph::new();
        let mut index: HashMap<NodeIx, NodeIndex> = HashMap::new();
        for &n in &members {
            index.insert(n, graph.add_node(n));
        }
        for &(a, b) in edges {
            if let (Some(&ia), Some(&ib)) = (index.get(&a), index.get(&b)) {
                graph.update_edge(ia, ib, ());
            }
        }
        let mut sccs = tarjan_scc(&graph);
        let mut cyclic = false;
        sccs.sort_by_key(|c| c.iter().map(|&i| graph[i]).min());
        for scc in &sccs {
            let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
            if scc.len() > 1 || self_loop {
                cyclic = true;
                // Edges run producer -> consumer; show the cycle as "refers to" steps.
                let mut path = cycle_path(&graph, scc);
                path.reverse();
                let names: Vec<&str> = path
                    .iter()
                    .map(|&i| g.nodes[graph[i]].id.as_str())
                    .collect();
                let first = graph[path[0]];
                d.err_hint(
                    g.nodes[first].span.start,
                    format!("cycle: {}", names.join(" -> ")),
                    "a node cannot depend on its own result; loops are written with `kind: loop`",
                );
            }
        }
        if cyclic {
            ok = false;
            continue;
        }
        // Kahn's algorithm, always taking the earliest-declared ready node: a stable order.
        let mut indegree: Vec<usize> = graph
            .node_indices()
            .map(|i| {
                graph
                    .neighbors_directed(i, petgraph::Direction::Incoming)
                    .count()
            })
            .collect();
        let mut order = Vec::with_capacity(members.len());
        let mut ready: std::collections::BTreeSet<usize> =
            (0..members.len()).filter(|&i| indegree[i] == 0).collect();
        while let Some(i) = ready.pop_first() {
            order.push(members[i]);
            for next in graph.neighbors(NodeIndex::new(i)) {
                indegree[next.index()] -= 1;
                if indegree[next.index()] == 0 {
                    ready.insert(next.index());
                }
            }
        }
        g.scopes[scope].order = order;
    }
    ok
}

/// A cycle through the strongly connected component `scc`, starting at its earliest node.
fn cycle_path(graph: &DiGraph<NodeIx, ()>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let start = scc
        .iter()
        .copied()
        .min_by_key(|&i| graph[i])
        .unwrap_or(scc[0]);
    let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
    // Breadth-first search from start back to start inside the component: the shortest cycle.
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(n).filter(|m| members.contains(m)).collect();
        next.sort_by_key(|&m| graph[m]);
        for m in next {
            if m == start {
                let mut path = vec![start];
                let mut cur = n;
                while cur != start {
                    path.push(cur);
                    match prev.get(&cur) {
                        Some(&p) => cur = p,
                        None => break,
                    }
                }
                path[1..].reverse();
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![start, start]
}
