#!/usr/bin/env bash
# The main job on the bundled defaults: compiles every example workflow, prints its `agent`
# dialect MLIR (checked by the stock mlir-opt-22) and a summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -q
agentc=target/release/agentc
for wf in examples/*.yaml; do
  echo "=== $wf"
  "$agentc" build "$wf" --emit mlir -o "target/$(basename "$wf" .yaml).agent.mlir"
  mlir-opt-22 --irdl-file=dialects/agent.irdl.mlir "target/$(basename "$wf" .yaml).agent.mlir"
  "$agentc" check "$wf"
done
