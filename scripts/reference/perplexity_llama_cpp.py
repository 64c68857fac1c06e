#!/usr/bin/env python3
"""llama.cpp's perplexity of a GGUF over a text, computed exactly as `llama-perplexity` does
(tools/perplexity/perplexity.cpp in the llama.cpp sources of llama-cpp-python 0.3.36): the
text tokenized with BOS when the vocabulary adds one, cut into chunks of CONTEXT tokens (the
remainder dropped), each evaluated from a fresh context with its first token replaced by BOS,
and the predictions of positions CONTEXT/2 .. CONTEXT-2 scored. Logits come from llama.cpp
(logits_all); only the log-softmax is done here, in float64. Prints `[i]running,...` and
`PPL = value`, like `agentc perplexity`.

    python scripts/reference/perplexity_llama_cpp.py MODEL.gguf FILE [CONTEXT] [CHUNKS|""] [THREADS]

FILE is plain text or a .jsonl file of JSON strings (joined with blank lines).
"""

import json
import math
import sys
import time

import llama_cpp
import numpy as np


def read_text(path: str) -> str:
    if not path.endswith(".jsonl"):
        return open(path, encoding="utf-8").read()
    return "\n\n".join(json.loads(line) for line in open(path, encoding="utf-8") if line.strip())


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    model, path = sys.argv[1], sys.argv[2]
    context = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    max_chunks = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else None
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    llm = llama_cpp.Llama(model_path=model, n_ctx=context, n_batch=512, logits_all=True,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    tokens = llm.tokenize(read_text(path).encode("utf-8"), add_bos=True, special=False)
    bos = llm.token_bos()
    add_bos = llm.tokenize(b"a", add_bos=True, special=False)[0] == bos
    chunks = len(tokens) // context
    if max_chunks is not None:
        chunks = min(chunks, max_chunks)
    print(f"{len(tokens)} tokens; {chunks} chunks of {context}", file=sys.stderr)
    first = context // 2
    nll, scored = 0.0, 0
    started = time.perf_counter()
    for i in range(chunks):
        chunk = list(tokens[i * context:(i + 1) * context])
        if add_bos:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[:context], dtype=np.float64)
        rows = logits[first:context - 1]
        top = rows.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(rows - top).sum(axis=1)) + top[:, 0]
        targets = np.asarray(chunk[first + 1:context])
        nll += float((log_sum - rows[np.arange(len(targets)), targets]).sum())
        scored += len(targets)
        print(f"[{i + 1}]{math.exp(nll / scored):.4f},", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"PPL = {math.exp(nll / scored):.4f} ({scored} predictions scored, context {context}, "
          f"{time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
