//! The operator graph the placement works on: granular ops with their work, dependencies and
//! shared-prefix groups. The compiler builds it from exec-dialect MLIR; tests and benches build
//! it directly with [`OpGraphBuilder`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod work;

pub use work::{Flops, ModelShape, Work};

/// Index of an op in [`OpGraph::ops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct OpId(pub usize);

/// Index of a model (or vector index) whose resident bytes ops may share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ModelId(pub usize);

/// Index of a shared KV-prefix group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PrefixGroupId(pub usize);

/// The granular operators of the exec dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Tokenize,
    Prefill,
    Decode,
    Detokenize,
    Embed,
    Knn,
    Tool,
    Render,
    Json,
    Transfer,
}

impl OpKind {
    /// Host-side ops (string processing, tool calls) run on a CPU only.
    pub fn host_only(self) -> bool {
        matches!(
            self,
            OpKind::Tokenize | OpKind::Detokenize | OpKind::Tool | OpKind::Render | OpKind::Json
        )
    }

    /// The op's name in the exec dialect, without the `exec.` prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Tokenize => "tokenize",
            OpKind::Prefill => "prefill",
            OpKind::Decode => "decode",
            OpKind::Detokenize => "detokenize",
            OpKind::Embed => "embed",
            OpKind::Knn => "knn",
            OpKind::Tool => "tool",
            OpKind::Render => "render",
            OpKind::Json => "json",
            OpKind::Transfer => "transfer",
        }
    }
}

/// A model (or vector index) whose bytes stay resident on every device that runs one of its ops.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub weight_bytes: f64,
}

/// A prompt prefix whose KV several prefills share. The first member in topological order (the
/// leader) computes it; every other member depends on the leader and, when placed on another
/// device, receives `kv_bytes` over the link, so co-location wins unless moving KV is cheaper.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixGroup {
    pub name: String,
    pub kv_bytes: f64,
    pub members: Vec<OpId>,
}

/// A dependency: `from` must finish before the op starts; `bytes` move if they are on different
/// devices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dep {
    pub from: OpId,
    pub bytes: f64,
}

/// One operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub name: String,
    pub kind: OpKind,
    pub work: Work,
    /// The model whose weights the op reads and keeps resident, if any.
    pub model: Option<ModelId>,
    pub prefix_group: Option<PrefixGroupId>,
    pub deps: Vec<Dep>,
}

/// A validated, acyclic operator graph.
#[derive(Debug, Clone)]
pub struct OpGraph {
    ops: Vec<Op>,
    models: Vec<ModelInfo>,
    groups: Vec<PrefixGroup>,
    topo: Vec<OpId>,
    succs: Vec<Vec<(OpId, f64)>>,
}

impl OpGraph {
    /// Starts an empty graph.
    pub fn builder() -> OpGraphBuilder {
        OpGraphBuilder::default()
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn op(&self, id: OpId) -> &Op {
        &self.ops[id.0]
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    pub fn prefix_groups(&self) -> &[PrefixGroup] {
        &self.groups
    }

    /// Ops in a topological order (every dependency before its dependents).
    pub fn topo_order(&self) -> &[OpId] {
        &self.topo
    }

    /// Dependents of `id` with the bytes each edge carries.
    pub fn successors(&self, id: OpId) -> &[(OpId, f64)] {
        &self.succs[id.0]
    }

    /// The op called `name`.
    pub fn find(&self, name: &str) -> Option<OpId> {
        self.ops.iter().position(|op| op.name == name).map(OpId)
    }

    /// Total number of dependency edges (implicit prefix edges included).
    pub fn edge_count(&self) -> usize {
        self.ops.iter().map(|op| op.deps.len()).sum()
    }
}

impl OpGraph {
    /// One graph holding every graph of `parts` side by side, with each op's name prefixed by
    /// its part's label (`label/op`); models of the same name share resident weights, prefix
    /// groups stay per part. Returns the graph and, per part, the range of its op ids (parts
    /// are laid out in order). The simulator runs a mix of workflows on it with
    /// [`crate::sim::RunClass`]es.
    pub fn union(parts: &[(&str, &OpGraph)]) -> Result<(OpGraph, Vec<std::ops::Range<usize>>)> {
        let mut b = OpGraph::builder();
        let mut ranges = Vec::with_capacity(parts.len());
        for (label, g) in parts {
            let base = b.ops.len();
            // The implicit leader -> member edges of prefix groups are added again by `build`.
            let mut implicit = vec![0usize; g.len()];
            for group in g.prefix_groups() {
                for m in group.members.iter().skip(1) {
                    implicit[m.0] += 1;
                }
            }
            for op in g.ops() {
                let id = b.op(format!("{label}/{}", op.name), op.kind, op.work.clone());
                let explicit = op.deps.len().saturating_sub(implicit[id.0 - base]);
                for dep in &op.deps[..explicit] {
                    b.dep_bytes(OpId(base + dep.from.0), id, dep.bytes);
                }
            }
            for group in g.prefix_groups() {
                let gid = b.prefix_group(format!("{label}/{}", group.name), group.kv_bytes);
                for m in &group.members {
                    b.join_prefix(OpId(base + m.0), gid);
                }
            }
            ranges.push(base..b.ops.len());
        }
        Ok((b.build()?, ranges))
    }
}

/// Builds an [`OpGraph`]; all checks happen in [`OpGraphBuilder::build`].
#[derive(Debug, Default)]
pub struct OpGraphBuilder {
    ops: Vec<Op>,
    models: Vec<ModelInfo>,
    model_index: HashMap<String, ModelId>,
    groups: Vec<PrefixGroup>,
    errors: Vec<String>,
}

impl OpGraphBuilder {
    /// Adds an op; `work.weights` (if any) registers its model by name so that ops of the same
    /// model share resident weights.
    pub fn op(&mut self, name: impl Into<String>, kind: OpKind, work: Work) -> OpId {
        let model = work.weights.as_ref().map(|(model, bytes)| {
            *self.model_index.entry(model.clone()).or_insert_with(|| {
                self.models.push(ModelInfo {
                    name: model.clone(),
                    weight_bytes: *bytes,
                });
                ModelId(self.models.len() - 1)
            })
        });
        if let (Some(m), Some((name, bytes))) = (model, work.weights.as_ref())
            && self.models[m.0].weight_bytes != *bytes
        {
            self.errors.push(format!(
                "model `{name}` is declared with {bytes} weight bytes and with {} elsewhere",
                self.models[m.0].weight_bytes
            ));
        }
        self.ops.push(Op {
            name: name.into(),
            kind,
            work,
            model,
            prefix_group: None,
            deps: Vec::new(),
        });
        OpId(self.ops.len() - 1)
    }

    /// `to` depends on `from` and receives `from`'s output bytes.
    pub fn dep(&mut self, from: OpId, to: OpId) -> &mut Self {
        let bytes = self
            .ops
            .get(from.0)
            .map(|op| op.work.output_bytes)
            .unwrap_or(0.0);
        self.dep_bytes(from, to, bytes)
    }

    /// `to` depends on `from` and receives `bytes`.
    pub fn dep_bytes(&mut self, from: OpId, to: OpId, bytes: f64) -> &mut Self {
        match self.ops.get_mut(to.0) {
            Some(op) => op.deps.push(Dep { from, bytes }),
            _ => self
                .errors
                .push(format!("dependency on unknown op {}", to.0)),
        }
        self
    }

    /// The op called `name` added so far.
    pub fn find(&self, name: &str) -> Option<OpId> {
        self.ops.iter().rposition(|op| op.name == name).map(OpId)
    }

    /// Declares a shared prompt prefix whose KV takes `kv_bytes`.
    pub fn prefix_group(&mut self, name: impl Into<String>, kv_bytes: f64) -> PrefixGroupId {
        self.groups.push(PrefixGroup {
            name: name.into(),
            kv_bytes,
            members: Vec::new(),
        });
        PrefixGroupId(self.groups.len() - 1)
    }

    /// Makes `op` a member of `group`.
    pub fn join_prefix(&mut self, op: OpId, group: PrefixGroupId) -> &mut Self {
        match (self.ops.get_mut(op.0), self.groups.get_mut(group.0)) {
            (Some(o), Some(g)) => {
                o.prefix_group = Some(group);
                g.members.push(op);
            }
            _ => self.errors.push(format!(
                "prefix group {} or op {} does not exist",
                group.0, op.0
            )),
        }
        self
    }

    /// Checks names, dependencies and acyclicity, orders the ops and adds the implicit
    /// leader -> member edges of prefix groups.
    pub fn build(mut self) -> Result<OpGraph> {
        if let Some(first) = self.errors.first() {
            return Err(Error::Graph(first.clone()));
        }
        let n = self.ops.len();
        let mut names = HashMap::with_capacity(n);
        for (i, op) in self.ops.iter().enumerate() {
            if let Some(prev) = names.insert(op.name.as_str(), i) {
                return Err(Error::Graph(format!(
                    "op name `{}` is used by ops {prev} and {i}",
                    op.name
                )));
            }
            op.work.check(&op.name).map_err(Error::Graph)?;
            for dep in &op.deps {
                if dep.from.0 >= n || dep.from.0 == i {
                    return Err(Error::Graph(format!(
                        "op `{}` depends on op {} which is not another op of the graph",
                        op.name, dep.from.0
                    )));
                }
                if !(dep.bytes.is_finite() && dep.bytes >= 0.0) {
                    return Err(Error::Graph(format!(
                        "edge into `{}` carries {} bytes",
                        op.name, dep.bytes
                    )));
                }
            }
        }
        let topo = topological_order(&self.ops)?;
        // Prefix members wait for the leader's KV; the edge carries the KV when they are apart.
        let rank: Vec<usize> = {
            let mut r = vec![0; n];
            for (i, id) in topo.iter().enumerate() {
                r[id.0] = i;
            }
            r
        };
        for group in &mut self.groups {
            if !(group.kv_bytes.is_finite() && group.kv_bytes >= 0.0) {
                return Err(Error::Graph(format!(
                    "prefix group `{}` has {} KV bytes",
                    group.name, group.kv_bytes
                )));
            }
            group.members.sort_by_key(|m| rank[m.0]);
            if let Some((&leader, rest)) = group.members.split_first() {
                for &member in rest {
                    self.ops[member.0].deps.push(Dep {
                        from: leader,
                        bytes: group.kv_bytes,
                    });
                }
            }
        }
        // The extra edges go from an earlier to a later op in `topo`, so `topo` stays valid.
        let mut succs = vec![Vec::new(); n];
        for (i, op) in self.ops.iter().enumerate() {
            for dep in &op.deps {
                succs[dep.from.0].push((OpId(i), dep.bytes));
            }
        }
        Ok(OpGraph {
            ops: self.ops,
            models: self.models,
            groups: self.groups,
            topo,
            succs,
        })
    }
}

/// Kahn's algorithm; names an op on a cycle when there is one.
fn topological_order(ops: &[Op]) -> Result<Vec<OpId>> {
    let n = ops.len();
    let mut indegree = vec![0usize; n];
    let mut succs = vec![Vec::new(); n];
    for (i, op) in ops.iter().enumerate() {
        for dep in &op.deps {
            indegree[i] += 1;
            succs[dep.from.0].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    ready.reverse();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(OpId(i));
        for &s in &succs[i] {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                ready.push(s);
            }
        }
    }
    if order.len() != n {
        let on_cycle = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
        return Err(Error::Graph(format!(
            "the dependencies form a cycle through op `{}`",
            ops[on_cycle].name
        )));
    }
    Ok(order)
}
