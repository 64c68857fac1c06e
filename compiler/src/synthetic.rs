//! Generated workflows of any size, for compile-time benchmarks and scaling tests.
//!
//! The shape is an agent pipeline: stages of parallel LLM calls that share a prompt prefix and
//! read the previous stage's results, joined by a render node per stage, with a tool call and a
//! json node every few stages. Node ids are deterministic.

use std::fmt::Write;

/// Parallel calls per stage.
const FANOUT: usize = 8;

/// A valid workflow with about `nodes` nodes (exactly `nodes` when it is a multiple of
/// `FANOUT + 1`).
pub fn pipeline_workflow(nodes: usize) -> String {
    let stages = nodes.div_ceil(FANOUT + 1).max(1);
    let mut s = String::from(
        "name: synthetic\n\
         inputs:\n  task: {type: text, max_len: 128}\n\
         models:\n  chat: {kind: llm, path: model.gguf}\n\
         tools:\n  lookup:\n    kind: subprocess\n    command: [python3, lookup.py]\n    args: {query: {type: string}}\n\
         sla: {p95_ms: 60000}\n\
         nodes:\n",
    );
    let mut previous = "${inputs.task}".to_string();
    for stage in 0..stages {
        for i in 0..FANOUT {
            let _ = writeln!(
                s,
                "  - {{id: s{stage}_c{i}, kind: llm, model: chat, max_tokens: 32, prompt: \"Stage {stage} context: {previous}\\nGive view {i}:\"}}"
            );
        }
        let joined: Vec<String> = (0..FANOUT).map(|i| format!("${{s{stage}_c{i}}}")).collect();
        let _ = writeln!(
            s,
            "  - {{id: s{stage}_join, kind: render, template: \"{}\"}}",
            joined.join(" | ")
        );
        previous = format!("${{s{stage}_join}}");
    }
    let _ = writeln!(s, "outputs:\n  result: \"{previous}\"");
    s
}

#[cfg(test)]
mod tests {
    use super::pipeline_workflow;

    #[test]
    fn generated_workflows_are_valid_and_sized() {
        for n in [9, 90, 900] {
            let g =
                crate::frontend::parse("synthetic.yaml", pipeline_workflow(n).as_bytes()).unwrap();
            assert_eq!(g.nodes.len(), n);
        }
    }
}
