#!/usr/bin/env python3
"""llama.cpp's (llama-cpp-python 0.3.36) figures for the same measurements as
`cargo run --release -p agentc-runtime --example bench_serving`, one `name value` line each:
batch-1 prefill and decode, decode summed over 8 sequences in one llama_batch (the low-level
API, as llama.cpp's own batched example does it), and time to first token after a 400-token
prefix cold and with that prefix left in the KV cache.

    target/bench-venv/bin/python scripts/reference/bench_llama_cpp_engine.py MODEL [THREADS]
"""

import statistics
import sys
import time

import llama_cpp
import numpy as np

FILLER = "The quick brown fox jumps over the lazy dog while the farmer watches from the porch. "
DECODE_TOKENS = 64
SEQUENCES = 8
PREFIX_TOKENS = 400
RUNS = 3


def filler(llm, count):
    tokens = []
    while len(tokens) < count:
        tokens += llm.tokenize(FILLER.encode(), add_bos=False, special=False)
    return tokens[:count]


def argmax(ctx, index, n_vocab):
    row = llama_cpp.llama_get_logits_ith(ctx, index)
    return int(np.argmax(np.ctypeslib.as_array(row, shape=(n_vocab,))))


def batch1(llm, prompt_tokens):
    """Median (prefill tok/s, decode tok/s) over RUNS runs, greedy."""
    tokens = filler(llm, prompt_tokens)
    prefill_rates, decode_rates = [], []
    for _ in range(RUNS):
        llm.reset()
        started = time.perf_counter()
        llm.eval(tokens)
        token = argmax(llm.ctx, -1, llm.n_vocab())
        prefill = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(DECODE_TOKENS - 1):
            llm.eval([token])
            token = argmax(llm.ctx, -1, llm.n_vocab())
        decode = time.perf_counter() - started
        prefill_rates.append(prompt_tokens / prefill)
        decode_rates.append((DECODE_TOKENS - 1) / decode)
    return statistics.median(prefill_rates), statistics.median(decode_rates)


def batched_decode(llm, threads):
    """Tokens per second summed over SEQUENCES sequences decoded together in one batch each step,
    counting from the first prompt token (like the serving engine's figure)."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = SEQUENCES * 128
    params.n_batch = 512
    params.n_seq_max = SEQUENCES
    params.n_threads = threads
    params.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    n_vocab = llm.n_vocab()
    batch = llama_cpp.llama_batch_init(512, 0, SEQUENCES)
    prompts = [filler(llm, 8 + i)[i:] for i in range(SEQUENCES)]

    def submit(entries):
        """entries: (token, position, sequence, wants_logits)."""
        batch.n_tokens = len(entries)
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    started = time.perf_counter()
    entries, last_index = [], []
    for seq, prompt in enumerate(prompts):
        for pos, token in enumerate(prompt):
            entries.append((token, pos, seq, pos == len(prompt) - 1))
        last_index.append(len(entries) - 1)
    submit(entries)
    next_tokens = [argmax(ctx, i, n_vocab) for i in last_index]
    positions = [len(p) for p in prompts]
    generated = SEQUENCES
    for _ in range(DECODE_TOKENS - 1):
        submit([(next_tokens[s], positions[s], s, True) for s in range(SEQUENCES)])
        next_tokens = [argmax(ctx, s, n_vocab) for s in range(SEQUENCES)]
        positions = [p + 1 for p in positions]
        generated += SEQUENCES
    elapsed = time.perf_counter() - started
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    return generated / elapsed


def ttft(llm):
    """Time to the first token after a 400-token prefix plus a question: cold (empty cache) and
    cached (the prefix's KV kept, only the new question evaluated)."""
    prefix = filler(llm, PREFIX_TOKENS)

    def question(text):
        return llm.tokenize(text.encode(), add_bos=False, special=False)

    llm.reset()
    started = time.perf_counter()
    llm.eval(prefix + question(" Question one: who watches?"))
    argmax(llm.ctx, -1, llm.n_vocab())
    cold = time.perf_counter() - started
    started = time.perf_counter()
    llm.n_tokens = len(prefix)  # eval() drops the KV past n_tokens, keeping the prefix
    llm.eval(question(" Question two: who jumps?"))
    argmax(llm.ctx, -1, llm.n_vocab())
    cached = time.perf_counter() - started
    return cold, cached


def main():
    model = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    llm = llama_cpp.Llama(model_path=model, n_ctx=1024, n_batch=512, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    prefill_512, decode_512 = batch1(llm, 512)
    _, decode_8 = batch1(llm, 8)
    print(f"prefill_512_tok_s {prefill_512:.1f}")
    print(f"decode_ctx8_tok_s {decode_8:.1f}")
    print(f"decode_ctx512_tok_s {decode_512:.1f}")
    print(f"decode_8seq_tok_s {batched_decode(llm, threads):.1f}")
    cold, cached = ttft(llm)
    print(f"ttft_cold_ms {cold * 1e3:.1f}")
    print(f"ttft_cached_ms {cached * 1e3:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
