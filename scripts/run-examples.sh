#!/usr/bin/env bash
# The main job on the bundled defaults: compiles every example workflow, prints its `agent`
# dialect MLIR (checked by the stock mlir-opt-22), a summary line, and its placement on this
# machine (examples/clusters/local.yaml): the plan is written to target/plans/<example>/. The
# corpus of the rag_qa example is indexed into indexes/corpus/, the path that workflow names.
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
  mlir-opt-22 --irdl-file=dialects/agent.irdl.mlir "target/$(basename "$wf" .yaml).agent.mlir"
  "$agentc" check "$wf"
  name=$(basename "$wf" .yaml)
  "$agentc" build "$wf" --cluster examples/clusters/local.yaml --emit report
  "$agentc" build "$wf" --cluster examples/clusters/local.yaml -o "target/plans/$name"
  mlir-opt-22 --irdl-file=dialects/exec.irdl.mlir "target/plans/$name/plan.mlir" > /dev/null
done
echo "=== a single completion from the CPU engine"
"$agentc" generate --chat --prompt "In one sentence, what is an agent workflow?" --max-tokens 48
