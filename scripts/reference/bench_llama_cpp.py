#!/usr/bin/env python3
"""Batch-1 prefill and decode speed of llama.cpp (llama-cpp-python) on the same synthetic prompt as
`cargo run --release -p agentc-runtime --example bench_generate`, for side-by-side figures.

    /tmp/llamavenv/bin/python scripts/reference/bench_llama_cpp.py [PROMPT_TOKENS] [DECODE_TOKENS] [THREADS]
"""

import sys
import time

import llama_cpp
import numpy as np

MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
FILLER = "The quick brown fox jumps over the lazy dog while the farmer watches from the porch. "


def main() -> int:
    prompt_tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    decode_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    llm = llama_cpp.Llama(model_path=MODEL, n_ctx=prompt_tokens + decode_tokens + 8, n_batch=512,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    tokens = []
    while len(tokens) < prompt_tokens:
        tokens += llm.tokenize(FILLER.encode(), add_bos=False, special=False)
    tokens = tokens[:prompt_tokens]
    llm.reset()
    started = time.perf_counter()
    llm.eval(tokens)
    row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    token = int(np.argmax(np.ctypeslib.as_array(row, shape=(llm.n_vocab(),))))
    prefill = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(decode_tokens - 1):
        llm.eval([token])
        row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        token = int(np.argmax(np.ctypeslib.as_array(row, shape=(llm.n_vocab(),))))
    decode = time.perf_counter() - started
    print(f"llama.cpp threads {threads}: prefill {prompt_tokens} tokens {prompt_tokens / prefill:.1f} tok/s "
          f"({prefill * 1e3:.0f} ms); decode {decode_tokens} tokens {(decode_tokens - 1) / decode:.1f} tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
