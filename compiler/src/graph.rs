//! The validated, typed workflow graph: nodes flattened into scopes (the top level and one per
//! map/branch/loop body), references resolved, each scope's nodes in dependency order.

use std::collections::HashMap;

use agentc_plan::ValueType;

use crate::diagnostics::Span;
use crate::frontend::ast::*;
use crate::frontend::template::{RefRoot, Reference, Template};

pub type NodeIx = usize;
pub type ScopeId = usize;

/// The top-level scope.
pub const ROOT_SCOPE: ScopeId = 0;

/// What a reference resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Input(usize),
    Node(NodeIx),
    /// A scope variable: a map's element or a loop's carried value.
    Var {
        scope: ScopeId,
        index: usize,
    },
}

/// A node with its body node lists replaced by scopes.
#[derive(Clone, Debug)]
pub enum Op {
    Llm(LlmNode),
    Embed(EmbedNode),
    Retrieve(RetrieveNode),
    Tool(ToolNode),
    Render(RenderNode),
    Json(JsonNode),
    Map {
        over: TemplateField,
        item: String,
        body: ScopeId,
        output: TemplateField,
        max_concurrency: u32,
    },
    Branch {
        cases: Vec<(ConditionField, ScopeId, TemplateField)>,
        otherwise: (ScopeId, TemplateField),
    },
    Loop {
        max_iters: u32,
        carry: Vec<(String, TemplateField)>,
        body: ScopeId,
        next: Vec<(String, TemplateField)>,
        until: Option<ConditionField>,
        output: TemplateField,
    },
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Llm(_) => "llm",
            Op::Embed(_) => "embed",
            Op::Retrieve(_) => "retrieve",
            Op::Tool(_) => "tool",
            Op::Render(_) => "render",
            Op::Json(_) => "json",
            Op::Map { .. } => "map",
            Op::Branch { .. } => "branch",
            Op::Loop { .. } => "loop",
        }
    }

    /// Scopes this node owns (bodies), in order.
    pub fn bodies(&self) -> Vec<ScopeId> {
        match self {
            Op::Map { body, .. } | Op::Loop { body, .. } => vec![*body],
            Op::Branch { cases, otherwise } => cases
                .iter()
                .map(|(_, s, _)| *s)
                .chain(std::iter::once(otherwise.0))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FlatNode {
    pub id: String,
    pub span: Span,
    pub scope: ScopeId,
    pub op: Op,
    /// The result type, set by type checking.
    pub ty: ValueType,
}

#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub parent: Option<ScopeId>,
    /// The map/branch/loop node whose body this is.
    pub owner: Option<NodeIx>,
    /// Variables bound in the scope: a map element, loop carried values.
    pub vars: Vec<(String, ValueType)>,
    /// Nodes in declaration order.
    pub nodes: Vec<NodeIx>,
    /// Nodes in dependency order (declaration order among independent ones).
    pub order: Vec<NodeIx>,
}

#[derive(Clone, Debug)]
pub struct WorkflowGraph {
    pub name: String,
    pub description: Option<String>,
    pub inputs: Vec<InputDecl>,
    pub models: Vec<ModelDecl>,
    pub tools: Vec<ToolDecl>,
    pub indexes: Vec<IndexDecl>,
    pub sla: Sla,
    pub outputs: Vec<OutputDecl>,
    pub nodes: Vec<FlatNode>,
    pub scopes: Vec<Scope>,
    /// Node index by id (ids are unique across the workflow).
    pub by_id: HashMap<String, NodeIx>,
}

impl WorkflowGraph {
    /// Resolves a reference's root as seen from `scope`: innermost variable first, then inputs
    /// and nodes visible from the scope.
    pub fn lookup(&self, scope: ScopeId, root: &RefRoot) -> Option<Target> {
        match root {
            RefRoot::Input(name) => self
                .inputs
                .iter()
                .position(|i| &i.name == name)
                .map(Target::Input),
            RefRoot::Name(name) => {
                let node = self.by_id.get(name).copied();
                let mut s = Some(scope);
                while let Some(id) = s {
                    let sc = &self.scopes[id];
                    if let Some(index) = sc.vars.iter().position(|(v, _)| v == name) {
                        return Some(Target::Var { scope: id, index });
                    }
                    if let Some(n) = node.filter(|&n| self.nodes[n].scope == id) {
                        return Some(Target::Node(n));
                    }
                    s = sc.parent;
                }
                None
            }
        }
    }

    pub fn target_type(&self, target: Target) -> ValueType {
        match target {
            Target::Input(i) => match self.inputs[i].ty {
                InputType::Text => ValueType::Text,
                InputType::Json => ValueType::Json,
                InputType::List => ValueType::List,
            },
            Target::Node(n) => self.nodes[n].ty,
            Target::Var { scope, index } => self.scopes[scope].vars[index].1,
        }
    }

    /// Type of a reference: its target's, or json for a field access.
    pub fn ref_type(&self, scope: ScopeId, r: &Reference) -> Option<ValueType> {
        let t = self.target_type(self.lookup(scope, &r.root)?);
        Some(if r.path.is_empty() {
            t
        } else {
            ValueType::Json
        })
    }

    /// Type a template produces: its sole reference's, or text.
    pub fn template_type(&self, scope: ScopeId, t: &Template) -> Option<ValueType> {
        match t.sole_ref() {
            Some(r) => self.ref_type(scope, r),
            None => Some(ValueType::Text),
        }
    }

    /// Whether `scope` is `ancestor` or nested inside it.
    pub fn scope_within(&self, mut scope: ScopeId, ancestor: ScopeId) -> bool {
        loop {
            if scope == ancestor {
                return true;
            }
            match self.scopes[scope].parent {
                Some(p) => scope = p,
                None => return false,
            }
        }
    }

    /// Number of nodes, bodies included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
