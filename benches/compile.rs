//! Compile time of generated workflows of 100, 1,000 and 10,000 nodes: parse and validate
//! (`frontend`), lower to unplaced `exec` (`to_exec`), and the whole build with placement on the
//! mixed example cluster (`compile_and_place`, the figure the 2-second target is about).

use agentc_compiler::model_facts::model_facts;
use agentc_compiler::synthetic::pipeline_workflow;
use agentc_compiler::tokens::CharEstimate;
use agentc_compiler::{CompileOptions, PlaceInput, compile, frontend};
use agentc_placement::{Cluster, CostSettings, HardwareCatalog};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn compile_sizes(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = HardwareCatalog::builtin().expect("built-in catalog");
    let cluster = Cluster::from_path(&root.join("examples/clusters/mixed.yaml"), &catalog)
        .expect("mixed cluster");
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
                print: false,
            };
            b.iter(|| compile(graph, "synthetic.yaml", &options).map(|c| c.passes.len()))
        });
        let facts = model_facts(&graph, root);
        let input = PlaceInput {
            cluster: &cluster,
            settings: CostSettings::default(),
            profile: None,
            facts: &facts,
            observed: None,
        };
        group.bench_with_input(
            BenchmarkId::new("compile_and_place", nodes),
            &graph,
            |b, graph| {
                let options = CompileOptions {
                    tokens: &CharEstimate,
                    batch: 1,
                    place: Some(&input),
                    print: false,
                };
                b.iter(|| {
                    compile(graph, "synthetic.yaml", &options).map(|c| c.report.map(|r| r.feasible))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, compile_sizes);
criterion_main!(benches);
