#!/usr/bin/env bash
# The example workflows side by side in one run on this machine, at several concurrency levels,
# for three systems with the same GGUF and threads:
#   agentc        `agentc run --batch`: cross-call continuous batching, radix prefix cache,
#                 deadline scheduling;
#   no-opt        the same with batching and prefix sharing off (`--no-optimizations`);
#   orchestrator  a plain orchestrator: the same workflow walk, one HTTP completion at a time
#                 per run, to llama.cpp's OpenAI server (llama-cpp-python 0.3.36, 1 thread:
#                 its best setting on 2 cores) - what a Python agent framework user gets.
# Prints, per workflow and concurrency, runs/s, p50/p95, SLA attainment and prefix-cache hit
# rate of each, the throughput ratios (targets at 8 concurrent runs: >= 4x the orchestrator,
# >= 2x no-opt, p95 no worse than the orchestrator), and agentc's predicted vs measured ms per
# op kind.
#
#   scripts/bench-workflows.sh [CONCURRENCY ...]       (default: 1 8 32)
#   WORKFLOWS="llm_judge rag_qa" RUNS_PER_SLOT=2 scripts/bench-workflows.sh 8
#
# Inputs: ../shared/workloads/ for llm_judge and tip_suggestion, examples/inputs/ otherwise,
# cycled to max(8, RUNS_PER_SLOT x concurrency) runs.
set -euo pipefail
cd "$(dirname "$0")/.."

CONCURRENCY=("${@:-1 8 32}")
read -r -a CONCURRENCY <<<"${CONCURRENCY[*]}"
WORKFLOWS="${WORKFLOWS:-multi_chain_reasoning llm_judge tip_suggestion map_reduce_summary rag_qa}"
RUNS_PER_SLOT="${RUNS_PER_SLOT:-2}"
THREADS="${THREADS:-2}"
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
OUT="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$OUT"
}
trap cleanup EXIT

bash scripts/setup.sh >&2
source scripts/reference/llama-cpp-venv.sh
echo "building agentc (release) ..." >&2
cargo build --release --locked --quiet -p agentc --bin agentc
agentc=target/release/agentc
"$agentc" index build examples/corpus -o indexes/corpus >&2

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$PY" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$PORT" --n_ctx 4096 \
    --n_threads 1 --n_threads_batch 1 >"$OUT/llama-server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 600); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models', timeout=1)" \
        2>/dev/null && break
    sleep 0.2
done

inputs_for() { # WORKFLOW -> JSONL of inputs
    case "$1" in
        llm_judge) python3 -c 'import json,sys
for l in open("../shared/workloads/llm_judge/articles.jsonl"): print(json.dumps({"article": json.loads(l)}))' ;;
        tip_suggestion) cat ../shared/workloads/tip_suggestion/topic.jsonl ;;
        *) cat "examples/inputs/$1.jsonl" ;;
    esac
}

for wf in $WORKFLOWS; do
    inputs_for "$wf" | grep -v '^\s*$' >"$OUT/$wf.all.jsonl"
    for c in "${CONCURRENCY[@]}"; do
        runs=$((RUNS_PER_SLOT * c)); ((runs < 8)) && runs=8
        python3 - "$OUT/$wf.all.jsonl" "$runs" >"$OUT/$wf.$c.jsonl" <<'EOF'
import itertools, sys
lines = open(sys.argv[1]).read().splitlines()
for line in itertools.islice(itertools.cycle(lines), int(sys.argv[2])):
    print(line)
EOF
        for system in agentc no-opt orchestrator; do
            case "$system" in
                agentc) extra=() ;;
                no-opt) extra=(--no-optimizations) ;;
                orchestrator) extra=(--llm-url "http://127.0.0.1:$PORT/v1") ;;
            esac
            echo "$wf, concurrency $c, $system: $runs runs ..." >&2
            "$agentc" run "examples/$wf.yaml" --batch "$OUT/$wf.$c.jsonl" --concurrency "$c" \
                --threads "$THREADS" --quiet --summary-json "$OUT/$wf.$c.$system.json" \
                "${extra[@]}" >/dev/null 2>"$OUT/$wf.$c.$system.log" || true
        done
    done
done

python3 - "$OUT" "$WORKFLOWS" "${CONCURRENCY[*]}" <<'EOF'
import json, os, sys

out, workflows, levels = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
systems = ["agentc", "no-opt", "orchestrator"]


def load(wf, c, system):
    path = f"{out}/{wf}.{c}.{system}.json"
    return json.load(open(path)) if os.path.exists(path) else None


print("| workflow | conc | system | runs/s | p50 ms | p95 ms | SLA met | failed | cache hit |")
print("|---|---|---|---|---|---|---|---|---|")
ratios = []
for wf in workflows:
    for c in levels:
        rows = {s: load(wf, c, s) for s in systems}
        for s, r in rows.items():
            if r is None:
                print(f"| {wf} | {c} | {s} | (no summary: see its log) | | | | | |")
                continue
            total = r["runs"] + r["failed"]
            print(f"| {wf} | {c} | {s} | {r['runs_per_s']:.3f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                  f"{r['sla_met']}/{total} | {r['failed']} | {100 * r['prefix_cache_hit_rate']:.0f}% |")
        a, n, o = rows["agentc"], rows["no-opt"], rows["orchestrator"]
        if a and n and o and o["runs_per_s"] > 0 and n["runs_per_s"] > 0:
            ratios.append((wf, c, a["runs_per_s"] / o["runs_per_s"], a["runs_per_s"] / n["runs_per_s"],
                           a["p95_ms"] / o["p95_ms"] if o["p95_ms"] else float("nan")))
print()
print("| workflow | conc | agentc / orchestrator | agentc / no-opt | p95 agentc / orchestrator |")
print("|---|---|---|---|---|")
for wf, c, vs_o, vs_n, p95 in ratios:
    print(f"| {wf} | {c} | {vs_o:.2f}x | {vs_n:.2f}x | {p95:.2f} |")
print()
print("agentc, predicted vs measured ms per op (mean), at the highest concurrency:")
for wf in workflows:
    r = load(wf, levels[-1], "agentc")
    if r:
        kinds = ", ".join(f"{k} {v['predicted_ms']:.1f}/{v['measured_ms']:.1f}" for k, v in r["by_kind"].items())
        print(f"  {wf}: {kinds}")
EOF
