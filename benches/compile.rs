//! Compile time of generated workflows of 100, 1,000 and 10,000 nodes: parse and validate, emit
//! the agent dialect, and run the pass pipeline to the exec dialect.

use agentc_compiler::synthetic::pipeline_workflow;
use agentc_compiler::tokens::CharEstimate;
use agentc_compiler::{CompileOptions, compile, frontend};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn compile_sizes(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for nodes in [99, 999, 9_999] {
        let src = pipeline_workflow(nodes);
        group.bench_with_input(BenchmarkId::new("frontend", nodes), &src, |b, src| {
            b.iter(|| frontend::parse("synthetic.yaml", src.as_bytes()).map(|g| g.nodes.len()))
        });
        let graph = frontend::parse("synthetic.yaml", src.as_bytes()).expect("valid workflow");
        group.bench_with_input(BenchmarkId::new("to_exec", nodes), &graph, |b, graph| {
            let options = CompileOptions {
                tokens: &CharEstimate,
                batch: 1,
                place: None,
            };
            b.iter(|| compile(graph, "synthetic.yaml", &options).map(|c| c.exec_mlir.len()))
        });
    }
    group.finish();
}

criterion_group!(benches, compile_sizes);
criterion_main!(benches);
