#!/usr/bin/env bash
# The main job on the bundled defaults: indexes the rag_qa corpus (examples/corpus) into
# indexes/corpus/, the path that workflow names; then for every example workflow: compiles it
# (its `agent` and `exec` MLIR checked by the stock mlir-opt-22), prints its placement on this
# machine (examples/clusters/local.yaml), writes the plan to target/plans/<example>/, and runs
# the plan on examples/inputs/<example>.jsonl, printing one JSON line of outputs per input and
# the run statistics (throughput, p50/p95, SLA attainment, prefix-cache hits, $ per 1k runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -q
agentc=target/release/agentc
echo "=== the rag_qa corpus (examples/corpus) indexed with all-MiniLM-L6-v2"
"$agentc" index build examples/corpus -o indexes/corpus
"$agentc" index search indexes/corpus "When did people first walk on the Moon?" -k 2
for wf in examples/*.yaml; do
  echo "=== $wf"
  "$agentc" build "$wf" --emit mlir -o "target/$(basename "$wf" .yaml).agent.mlir"
  mlir-opt-22 --irdl-file=dialects/agent.irdl.mlir "target/$(basename "$wf" .yaml).agent.mlir" > /dev/null
  "$agentc" check "$wf"
  name=$(basename "$wf" .yaml)
  "$agentc" build "$wf" --cluster examples/clusters/local.yaml --emit report
  "$agentc" build "$wf" --cluster examples/clusters/local.yaml -o "target/plans/$name"
  mlir-opt-22 --irdl-file=dialects/exec.irdl.mlir "target/plans/$name/plan.mlir" > /dev/null
  echo "--- $name on examples/inputs/$name.jsonl"
  "$agentc" run --plan "target/plans/$name" --batch "examples/inputs/$name.jsonl" --concurrency 4 --quiet
done
echo "=== a single completion from the CPU engine"
"$agentc" generate --chat --prompt "In one sentence, what is an agent workflow?" --max-tokens 48
