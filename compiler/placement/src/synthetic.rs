//! Synthetic agent workflow graphs for tests, benches and examples: realistic op mixes
//! (RAG, tool calls, multi-step LLM chains sharing a system prompt) at any size, from a seed.

use crate::catalog::Dtype;
use crate::error::Result;
use crate::graph::{ModelShape, OpGraph, OpGraphBuilder, OpId, OpKind, Work};

/// A small deterministic PRNG (xorshift64*), so graphs are reproducible without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Zero is a fixed point of xorshift.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An 8B-parameter chat model in bf16 (Llama-3-8B shape: 32 layers, 8 KV heads of 128).
pub fn llama_8b() -> ModelShape {
    ModelShape {
        name: "llama-3-8b-bf16".to_string(),
        params: 8.0e9,
        weight_bytes: 16.0e9,
        kv_bytes_per_token: 2.0 * 32.0 * 8.0 * 128.0 * 2.0,
        dtype: Dtype::Fp16,
    }
}

/// SmolLM2-135M in Q4_1 (the default local model; 30 layers, 3 KV heads of 64).
pub fn smollm2_135m() -> ModelShape {
    ModelShape {
        name: "smollm2-135m-q4_1".to_string(),
        params: 135.0e6,
        weight_bytes: 98.0e6,
        kv_bytes_per_token: 2.0 * 30.0 * 3.0 * 64.0 * 2.0,
        dtype: Dtype::Int8,
    }
}

/// all-MiniLM-L6-v2 sentence embedder (22.7M parameters, fp32).
pub fn minilm() -> ModelShape {
    ModelShape {
        name: "all-minilm-l6-v2".to_string(),
        params: 22.7e6,
        weight_bytes: 90.9e6,
        kv_bytes_per_token: 0.0,
        dtype: Dtype::Fp32,
    }
}

const TOKEN_TEXT_BYTES: f64 = 4.0;
const TOKEN_ID_BYTES: f64 = 4.0;

/// One LLM call: tokenize -> prefill -> decode -> detokenize, depending on `after`.
pub fn llm_call(
    b: &mut OpGraphBuilder,
    prefix: &str,
    model: &ModelShape,
    prompt_tokens: u64,
    output_tokens: u64,
    after: &[OpId],
) -> OpId {
    let text = prompt_tokens as f64 * TOKEN_TEXT_BYTES;
    let tok = b.op(
        format!("{prefix}.tokenize"),
        OpKind::Tokenize,
        Work::host(text, prompt_tokens as f64 * TOKEN_ID_BYTES),
    );
    for &a in after {
        b.dep(a, tok);
    }
    let pre = b.op(
        format!("{prefix}.prefill"),
        OpKind::Prefill,
        Work::prefill(model, prompt_tokens, 0).with_output_bytes(0.0),
    );
    b.dep(tok, pre);
    let dec = b.op(
        format!("{prefix}.decode"),
        OpKind::Decode,
        Work::decode(model, prompt_tokens, output_tokens)
            .with_output_bytes(output_tokens as f64 * TOKEN_ID_BYTES),
    );
    // Decode continues from the prefill's KV: moving it costs the KV bytes.
    b.dep_bytes(pre, dec, model.kv_bytes_per_token * prompt_tokens as f64);
    let detok = b.op(
        format!("{prefix}.detokenize"),
        OpKind::Detokenize,
        Work::host(
            output_tokens as f64 * TOKEN_ID_BYTES,
            output_tokens as f64 * TOKEN_TEXT_BYTES,
        ),
    );
    b.dep(dec, detok);
    detok
}

/// A workflow of about `target_ops` ops: a stream of agent steps (RAG lookups, LLM calls that
/// share a system prompt, tool calls, JSON extraction) where each step depends on one or two
/// earlier steps, with `model` as the chat model.
pub fn agent_workflow(target_ops: usize, seed: u64, model: &ModelShape) -> Result<OpGraph> {
    let mut rng = Rng::new(seed);
    let mut b = OpGraph::builder();
    let embedder = minilm();
    let system_prompt_tokens = 256;
    let prefix = b.prefix_group(
        "system-prompt",
        model.kv_bytes_per_token * system_prompt_tokens as f64,
    );
    let input = b.op("input.render", OpKind::Render, Work::host(2048.0, 2048.0));
    let mut frontier: Vec<OpId> = vec![input];
    let mut step = 0usize;
    let mut count = 1usize;
    while count < target_ops {
        let pick = |rng: &mut Rng, frontier: &[OpId]| -> Vec<OpId> {
            let recent = frontier.len().min(8);
            let mut deps = vec![frontier[frontier.len() - 1 - rng.below(recent as u64) as usize]];
            if rng.below(3) == 0 {
                deps.push(frontier[rng.below(frontier.len() as u64) as usize]);
            }
            deps.sort();
            deps.dedup();
            deps
        };
        let after = pick(&mut rng, &frontier);
        let name = format!("s{step}");
        let out = match rng.below(10) {
            0..=4 => {
                let prompt = 128 + rng.below(896);
                let output = 16 + rng.below(240);
                let out = llm_call(&mut b, &name, model, prompt, output, &after);
                if let Some(pre) = b.find(&format!("{name}.prefill")) {
                    b.join_prefix(pre, prefix);
                }
                count += 4;
                out
            }
            5 | 6 => {
                let tokens = 32 + rng.below(480);
                let emb = b.op(
                    format!("{name}.embed"),
                    OpKind::Embed,
                    Work::embed(&embedder, tokens, 384),
                );
                let knn = b.op(
                    format!("{name}.knn"),
                    OpKind::Knn,
                    Work::knn("corpus-index", 100_000, 384, 4.0, 1),
                );
                for &a in &after {
                    b.dep(a, emb);
                }
                b.dep(emb, knn);
                count += 2;
                knn
            }
            7 | 8 => {
                let latency = 0.02 + 0.3 * rng.unit();
                let tool = b.op(
                    format!("{name}.tool"),
                    OpKind::Tool,
                    Work::tool(latency, 4096.0),
                );
                for &a in &after {
                    b.dep(a, tool);
                }
                count += 1;
                tool
            }
            _ => {
                let json = b.op(
                    format!("{name}.json"),
                    OpKind::Json,
                    Work::host(4096.0, 1024.0),
                );
                for &a in &after {
                    b.dep(a, json);
                }
                count += 1;
                json
            }
        };
        frontier.push(out);
        step += 1;
    }
    b.build()
}

/// A catalog of four made-up device types (one CPU, three GPUs) whose memory is small enough
/// that capacity binds on random instances; `seed` varies their prices and speeds.
pub fn random_catalog_yaml(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut text = String::from("version: 1\ndevices:\n");
    let kinds = [
        ("cpu-a", "cpu", 2.0, 0.2, 100.0),
        ("gpu-slow", "gpu", 20.0, 0.3, 300.0),
        ("gpu-mid", "gpu", 120.0, 1.0, 1000.0),
        ("gpu-fast", "gpu", 900.0, 3.0, 3000.0),
    ];
    for (name, class, tflops, price, bandwidth) in kinds {
        let jitter = |rng: &mut Rng| 0.5 + rng.unit();
        let memory = 4.0 + 28.0 * rng.unit();
        text.push_str(&format!(
            "  - name: {name}\n    class: {class}\n    vendor: test\n    model: {name}\n    source: synthetic\n    peak_tflops: {{ fp32: {:.3}, fp16: {:.3} }}\n    memory_gb: {memory:.2}\n    memory_bandwidth_gbs: {:.1}\n    tdp_w: 100\n    interconnect: {{ pcie_gen: 4, pcie_gbs: 64 }}\n    op_overhead_us: 10\n    on_demand: {{ usd_per_hour: {:.4}, date: 2025-01, source: synthetic }}\n",
            tflops * jitter(&mut rng) / 4.0,
            tflops * jitter(&mut rng),
            bandwidth * jitter(&mut rng),
            price * jitter(&mut rng),
        ));
    }
    text
}

/// A two-node cluster over [`random_catalog_yaml`]: one device of each type, or with
/// `duplicate_slow_gpu` two interchangeable `gpu-slow` devices (to exercise symmetry breaking).
pub fn random_cluster_yaml(duplicate_slow_gpu: bool) -> String {
    let slow = if duplicate_slow_gpu { 2 } else { 1 };
    format!(
        "name: random\npricing: {{ mode: on_demand }}\nnodes:\n  - name: a\n    devices:\n      - {{ type: cpu-a, count: 1 }}\n      - {{ type: gpu-slow, count: {slow} }}\n  - name: b\n    devices:\n      - {{ type: gpu-mid, count: 1 }}\n      - {{ type: gpu-fast, count: 1 }}\nlinks:\n  - {{ between: [a, b], bandwidth_gbs: 5, latency_us: 50, usd_per_gb: 0.01 }}\n"
    )
}

/// A random DAG of `n_ops` ops of mixed kinds (including host-only ones), sharing two models
/// and sometimes a KV prefix, each op depending on up to two earlier ones.
pub fn random_graph(seed: u64, n_ops: usize) -> Result<OpGraph> {
    let mut rng = Rng::new(seed);
    let mut b = OpGraph::builder();
    let models = [
        ("model-a".to_string(), 1e9 + 6e9 * rng.unit()),
        ("model-b".to_string(), 1e9 + 12e9 * rng.unit()),
    ];
    let group = b.prefix_group("prefix", 0.5e9 * rng.unit());
    let mut ids = Vec::with_capacity(n_ops);
    for i in 0..n_ops {
        let kind = match rng.below(8) {
            0 => OpKind::Tool,
            1 => OpKind::Json,
            2 => OpKind::Embed,
            3 => OpKind::Knn,
            4 | 5 => OpKind::Prefill,
            _ => OpKind::Decode,
        };
        let mut work = match kind {
            OpKind::Tool => Work::tool(0.001 + 0.05 * rng.unit(), 1e6 * rng.unit()),
            OpKind::Json => Work::host(1e5 + 1e7 * rng.unit(), 1e5),
            _ => {
                let (model, bytes) = &models[rng.below(2) as usize];
                let mut w = Work {
                    flops: crate::graph::Flops::of(
                        if rng.below(2) == 0 {
                            Dtype::Fp16
                        } else {
                            Dtype::Fp32
                        },
                        1e10 * (1.0 + 100.0 * rng.unit()),
                    ),
                    bytes_read: 1e8 * rng.unit(),
                    weights: Some((model.clone(), *bytes)),
                    weight_reads: 1.0 + (rng.below(4) as f64) * 10.0,
                    kv_bytes_held: 4e9 * rng.unit(),
                    tokens: 1 + rng.below(512),
                    steps: 1 + rng.below(32) as u32,
                    ..Work::default()
                };
                w.output_bytes = 1e7 * rng.unit();
                w
            }
        };
        if work.output_bytes == 0.0 {
            work.output_bytes = 1e4;
        }
        let id = b.op(format!("op{i}"), kind, work);
        if kind == OpKind::Prefill && rng.below(2) == 0 {
            b.join_prefix(id, group);
        }
        if i > 0 {
            for _ in 0..=rng.below(2) {
                let from = ids[rng.below(i as u64) as usize];
                b.dep(from, id);
            }
        }
        ids.push(id);
    }
    b.build()
}
