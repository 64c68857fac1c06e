#!/usr/bin/env bash
# agentc against llama.cpp on the formats people download: the bundled SmolLM2 as Q4_1 and as
# llama.cpp's own Q4_K_M, Q5_K_M, Q6_K and Q8_0 requantizations (scripts/quantize-models.sh).
# For each file it records llama.cpp's greedy continuations of the fixture prompts
# (scripts/reference/record_llama_cpp.py, into models/quantized/) and runs the differential
# tests of runtime/tests/llama_cpp_reference.rs on that file and recording, printing per file:
# identical greedy continuations, teacher-forced top-1 agreement and the largest first-step
# logit difference; then the perplexity over ../shared/workloads/llm_judge/articles.jsonl (the
# essays joined) at context 2048 from `agentc perplexity` and from llama.cpp's logits scored the
# same way (scripts/reference/perplexity_llama_cpp.py), and their ratio. With --speed it also
# runs scripts/bench-engine.sh on each file.
#
#   scripts/check-kquants.sh [--speed] [TYPE ...]    (default: Q4_K_M Q5_K_M Q6_K Q8_0)
set -euo pipefail
cd "$(dirname "$0")/.."

SPEED=0
if [[ "${1:-}" == "--speed" ]]; then SPEED=1; shift; fi
types=("$@")
[[ ${#types[@]} -gt 0 ]] || types=(Q4_K_M Q5_K_M Q6_K Q8_0)
scripts/quantize-models.sh "${types[@]}"
source scripts/reference/llama-cpp-venv.sh

TEXT=../shared/workloads/llm_judge/articles.jsonl
[[ -f "$TEXT" ]] || { echo "error: $TEXT is absent (the shared workloads sit beside the repo)" >&2; exit 2; }
echo "building agentc and the differential tests (release) ..." >&2
cargo build --release --quiet -p agentc --bin agentc
cargo test --release --quiet -p agentc-runtime --test llama_cpp_reference --no-run 2>/dev/null

report() { # MODEL FIXTURE
    local log
    log="$(mktemp)"
    # Absolute paths: the test runs in runtime/.
    if ! AGENTC_LLAMA_CPP_MODEL="$PWD/$1" AGENTC_LLAMA_CPP_FIXTURE="$PWD/$2" cargo test --release --quiet \
        -p agentc-runtime --test llama_cpp_reference -- --nocapture --test-threads 1 \
        greedy_generation_matches teacher_forced_steps first_step_logits >"$log" 2>&1; then
        echo "$1: a differential test failed:"
        grep -E "^thread|^\[[0-9]+\]|divergences|disagreements" "$log" | head -20 | sed 's/^/  /'
    fi
    echo "$1:"
    grep -E "continuations identical|teacher-forced:|largest first-step" "$log" | sed 's/^/  /'
    rm -f "$log"
}

files=(models/SmolLM2-135M-Instruct.Q4_1.gguf)
for kind in "${types[@]}"; do files+=("models/quantized/SmolLM2-135M-Instruct.$kind.gguf"); done
mkdir -p models/quantized
for model in "${files[@]}"; do
    fixture="models/quantized/$(basename "$model" .gguf).llama_cpp.json"
    if [[ ! -s "$fixture" ]]; then
        echo "recording llama.cpp on $model ..." >&2
        "$PY" scripts/reference/record_llama_cpp.py --model "$model" --out "$fixture" >&2
    fi
    report "$model" "$fixture"
    ours="$(target/release/agentc perplexity --model "$model" --file "$TEXT" --context 2048 \
        --threads 2 2>/dev/null | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')"
    theirs="$("$PY" scripts/reference/perplexity_llama_cpp.py "$model" "$TEXT" 2048 "" 2 \
        2>/dev/null | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')"
    python3 -c "print(f'  perplexity, context 2048: agentc $ours, llama.cpp $theirs, ratio {$ours / $theirs:.4f}')"
done

if [[ "$SPEED" == 1 ]]; then
    for model in "${files[@]}"; do
        echo "== speed: $model"
        AGENTC_BENCH_MODEL="$model" scripts/bench-engine.sh 2
    done
fi
