#!/usr/bin/env bash
# agentc's engine and server against llama.cpp (llama-cpp-python 0.3.36), side by side in one
# run on this machine, with the same GGUF and thread count. Prints a table: each figure for
# both, agentc's speed-up over llama.cpp and the issue's target for it, the cold/cached TTFT
# ratio and the share of the memory-bandwidth bound batch-1 decode reaches.
#
#   scripts/bench-engine.sh [THREADS]          (default 2; AGENTC_BENCH_MODEL picks the GGUF)
#
# 1. memory bandwidth (the measurement `agentc profile` uses);
# 2. engine: batch-1 prefill of 512 tokens, decode at context 8 and 512, decode summed over 8
#    concurrent sequences, time to first token after a 400-token prefix cold and cached
#    (runtime/examples/bench_serving.rs vs scripts/reference/bench_llama_cpp_engine.py);
# 3. HTTP: 8 concurrent streaming completions sharing a ~400-token prefix, 64 tokens each,
#    against `agentc serve` and llama-cpp-python's OpenAI server with 1 and 2 threads (its best
#    counts), through scripts/reference/bench_http.py, end-of-generation tokens banned so that
#    every request really generates 64 tokens on both. llama-cpp-python's server runs with
#    --interrupt_requests False: by default each new request aborts the one being generated, so
#    7 of the 8 would end after a few tokens and the wall time would measure far less work.
#
# llama-cpp-python is built from source into target/bench-venv the first time (~5 minutes on 2
# cores), without AMX: with -DGGML_NATIVE=ON on a CPU with AMX every llama_decode dies with a
# general protection fault (see docs/engine.md). Later runs reuse the venv.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS="${1:-2}"
MODEL="${AGENTC_BENCH_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
# End-of-generation token ids banned in the HTTP workload (logit_bias -100) so both servers
# generate all 64 tokens of every request: SmolLM2's <|endoftext|>, <|im_start|>, <|im_end|>.
BANNED_IDS="${AGENTC_BENCH_BANNED_IDS:-0,1,2}"
OUT="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$OUT"
}
trap cleanup EXIT

[[ -f "$MODEL" ]] || { echo "error: $MODEL is absent; run scripts/setup.sh" >&2; exit 2; }

source scripts/reference/llama-cpp-venv.sh

echo "building agentc (release) ..." >&2
cargo build --release --quiet -p agentc --bin agentc -p agentc-runtime --example bench_serving

echo "engine figures: agentc ..." >&2
target/release/examples/bench_serving "$MODEL" "$THREADS" >"$OUT/agentc.txt"
echo "engine figures: llama.cpp ..." >&2
"$PY" scripts/reference/bench_llama_cpp_engine.py "$MODEL" "$THREADS" >"$OUT/llama.txt"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_ready() { # URL
    for _ in $(seq 600); do
        if python3 -c "import urllib.request; urllib.request.urlopen('$1', timeout=1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "error: $1 did not answer" >&2
    return 1
}

echo "HTTP workload: agentc serve ..." >&2
target/release/agentc serve --model "$MODEL" --port 0 --threads "$THREADS" \
    --served-model-name bench >"$OUT/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 600); do
    grep -q '^listening on ' "$OUT/serve.log" && break
    sleep 0.2
done
BASE="$(sed -n 's/^listening on //p' "$OUT/serve.log" | head -n1)"
[[ -n "$BASE" ]] || { cat "$OUT/serve.log" >&2; exit 1; }
wait_ready "$BASE/health"
python3 scripts/reference/bench_http.py "$BASE" bench 8 "$BANNED_IDS" | sed 's/^/agentc_/' >>"$OUT/http.txt"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

for llama_threads in 1 2; do
    echo "HTTP workload: llama_cpp.server, $llama_threads thread(s) ..." >&2
    PORT="$(free_port)"
    "$PY" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$PORT" --n_ctx 2048 \
        --n_threads "$llama_threads" --n_threads_batch "$llama_threads" \
        --interrupt_requests False --model_alias bench >"$OUT/llama-server-$llama_threads.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "http://127.0.0.1:$PORT/v1/models"
    "$PY" scripts/reference/bench_http.py "http://127.0.0.1:$PORT" bench 8 "$BANNED_IDS" |
        sed "s/^/llama${llama_threads}_/" >>"$OUT/http.txt"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
done

python3 - "$OUT" "$THREADS" "$MODEL" <<'EOF'
import sys

out, threads, model = sys.argv[1], sys.argv[2], sys.argv[3]


def read(name):
    values = {}
    with open(f"{out}/{name}") as f:
        for line in f:
            key, value = line.split()
            values[key] = float(value)
    return values


agentc, llama, http = read("agentc.txt"), read("llama.txt"), read("http.txt")
best = min((1, 2), key=lambda t: http[f"llama{t}_http_wall_s"])
# Each row: label, agentc, llama.cpp, unit, higher is better, and the issue's target for the
# speed-up (agentc's figure over llama.cpp's, or llama.cpp's over agentc's for times).
rows = [
    ("prefill, 512-token prompt", agentc["prefill_512_tok_s"], llama["prefill_512_tok_s"], "tok/s", True, 1.5),
    ("decode, batch 1, context 8", agentc["decode_ctx8_tok_s"], llama["decode_ctx8_tok_s"], "tok/s", True, 1.2),
    ("decode, batch 1, context 512", agentc["decode_ctx512_tok_s"], llama["decode_ctx512_tok_s"], "tok/s", True, 1.2),
    ("decode, 8 sequences summed", agentc["decode_8seq_tok_s"], llama["decode_8seq_tok_s"], "tok/s", True, 3.0),
    ("TTFT, 400-token prefix, cold", agentc["ttft_cold_ms"], llama["ttft_cold_ms"], "ms", False, None),
    ("TTFT, 400-token prefix, cached", agentc["ttft_cached_ms"], llama["ttft_cached_ms"], "ms", False, None),
    (f"HTTP 8 x 64 tokens, wall (llama.cpp best: {best} thread)", http["agentc_http_wall_s"],
     http[f"llama{best}_http_wall_s"], "s", False, 3.0),
    ("HTTP mean TTFT", http["agentc_http_mean_ttft_ms"], http[f"llama{best}_http_mean_ttft_ms"], "ms", False, None),
    ("HTTP output tokens/s", http["agentc_http_output_tok_s"], http[f"llama{best}_http_output_tok_s"], "tok/s", True, None),
]
print(f"model {model}, {threads} threads; llama.cpp = llama-cpp-python 0.3.36 (AMX-free build)")
print()
print("| figure | agentc | llama.cpp | speed-up | target |")
print("|---|---|---|---|---|")
for label, ours, theirs, unit, higher, target in rows:
    speedup = (ours / theirs if higher else theirs / ours) if ours and theirs else float("inf")
    goal = "-" if target is None else f">= {target:.1f}x" + ("" if speedup >= target else " NOT MET")
    print(f"| {label} | {ours:.1f} {unit} | {theirs:.1f} {unit} | {speedup:.2f}x | {goal} |")

cold_over_cached = agentc["ttft_cold_ms"] / agentc["ttft_cached_ms"]
print(f"| agentc TTFT cold / cached | {agentc['ttft_cold_ms']:.1f} ms / {agentc['ttft_cached_ms']:.1f} ms "
      f"| - | {cold_over_cached:.1f}x | >= 5.0x{'' if cold_over_cached >= 5 else ' NOT MET'} |")
# Batch-1 decode reads every weight once per token: tokens/s x bytes per token over the read
# bandwidth is the share of the bound reached. The bound uses the higher of main memory's
# bandwidth and that of a buffer the size of the weights (which a large last-level cache keeps
# between tokens), so the share is never flattered by a low bandwidth figure.
dram = agentc["memory_bandwidth_gbs"]
cached = agentc["weights_bandwidth_gbs"]
gbs = max(dram, cached)
weight_mb = agentc["decode_weight_bytes"] / 1e6
bound = gbs * 1e3 / weight_mb
share = agentc["decode_ctx8_tok_s"] / bound
print(f"| batch-1 decode (context 8) / bandwidth bound | {agentc['decode_ctx8_tok_s']:.1f} tok/s "
      f"| - | {share:.0%} of {bound:.0f} tok/s | >= 40%{'' if share >= 0.4 else ' NOT MET'} |")
print()
print(f"read bandwidth ({threads} threads): main memory {dram:.1f} GB/s, a {weight_mb:.1f} MB buffer "
      f"(the weights read per decoded token) {cached:.1f} GB/s")
expected = 8 * 64
print(f"HTTP output tokens (expected {expected} on each): agentc {http['agentc_http_output_tokens']:.0f}, "
      f"llama.cpp 1 thread {http['llama1_http_output_tokens']:.0f} "
      f"({http['llama1_http_wall_s']:.2f} s), 2 threads {http['llama2_http_output_tokens']:.0f} "
      f"({http['llama2_http_wall_s']:.2f} s)")
print(f"cached prefix tokens reported by agentc's serving engine: {agentc['ttft_cached_tokens']:.0f}")
EOF
