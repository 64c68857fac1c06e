//! The operator graph builder: ordering, implicit prefix edges and exact error messages.

use agentc_placement::synthetic::llama_8b;
use agentc_placement::{OpGraph, OpId, OpKind, Work};

#[test]
fn prefix_members_depend_on_the_leader() {
    let m = llama_8b();
    let mut b = OpGraph::builder();
    let group = b.prefix_group("system", 1e6);
    let first = b.op("a.prefill", OpKind::Prefill, Work::prefill(&m, 100, 0));
    let second = b.op("b.prefill", OpKind::Prefill, Work::prefill(&m, 100, 0));
    b.join_prefix(second, group).join_prefix(first, group);
    let graph = b.build().expect("graph");
    let deps = &graph.op(second).deps;
    assert_eq!(deps.len(), 1);
    assert_eq!(deps[0].from, first);
    assert_eq!(deps[0].bytes, 1e6);
    assert_eq!(graph.successors(first), &[(second, 1e6)]);
    assert_eq!(graph.models().len(), 1, "both prefills share one model");
}

#[test]
fn topological_order_puts_dependencies_first() {
    let mut b = OpGraph::builder();
    let c = b.op("c", OpKind::Json, Work::host(10.0, 10.0));
    let a = b.op("a", OpKind::Json, Work::host(10.0, 10.0));
    let d = b.op("d", OpKind::Json, Work::host(10.0, 10.0));
    b.dep(a, c).dep(c, d);
    let graph = b.build().expect("graph");
    let pos = |id: OpId| graph.topo_order().iter().position(|&x| x == id);
    assert!(pos(a) < pos(c) && pos(c) < pos(d));
    assert_eq!(graph.find("d"), Some(d));
}

#[test]
fn a_cycle_is_named() {
    let mut b = OpGraph::builder();
    let x = b.op("x", OpKind::Json, Work::host(1.0, 1.0));
    let y = b.op("y", OpKind::Json, Work::host(1.0, 1.0));
    b.dep(x, y).dep(y, x);
    let err = b.build().expect_err("cycle").to_string();
    assert_eq!(
        err,
        "invalid operator graph: the dependencies form a cycle through op `x`"
    );
}

#[test]
fn duplicate_names_and_bad_numbers_are_rejected() {
    let mut b = OpGraph::builder();
    b.op("x", OpKind::Json, Work::host(1.0, 1.0));
    b.op("x", OpKind::Json, Work::host(1.0, 1.0));
    assert_eq!(
        b.build().expect_err("dup").to_string(),
        "invalid operator graph: op name `x` is used by ops 0 and 1"
    );
    let mut b = OpGraph::builder();
    b.op("t", OpKind::Tool, Work::tool(f64::NAN, 1.0));
    assert_eq!(
        b.build().expect_err("nan").to_string(),
        "invalid operator graph: op `t`: external_latency_s is NaN; it must be finite and >= 0"
    );
}

#[test]
fn a_model_declared_with_two_sizes_is_rejected() {
    let mut b = OpGraph::builder();
    let mut w = Work::prefill(&llama_8b(), 10, 0);
    b.op("a", OpKind::Prefill, w.clone());
    w.weights = Some(("llama-3-8b-bf16".to_string(), 1.0));
    b.op("b", OpKind::Prefill, w);
    assert_eq!(
        b.build().expect_err("sizes").to_string(),
        "invalid operator graph: model `llama-3-8b-bf16` is declared with 1 weight bytes and with 16000000000 elsewhere"
    );
}
