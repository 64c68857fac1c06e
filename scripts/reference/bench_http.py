#!/usr/bin/env python3
"""The HTTP workload of scripts/bench-engine.sh against any OpenAI-compatible server: N concurrent
streaming /v1/completions requests whose prompts share a ~400-token prefix, 64 output tokens each
(greedy). Prints `name value` lines: wall time for all of them, mean and worst time to first
token, and output tokens per second over the wall time.

    python3 scripts/reference/bench_http.py BASE_URL MODEL [CONCURRENCY [BANNED_IDS]]

BANNED_IDS (comma-separated token ids, e.g. the model's end-of-generation tokens) are sent as
`logit_bias` -100, so that every request generates exactly 64 tokens on every server and the
wall times compare the same work.

Standard library only. Output tokens are the usage the server reports when it honours
stream_options.include_usage, else the number of non-empty text chunks (one per token on both
agentc and llama-cpp-python).
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

# A prompt both models continue without stopping early (they count), so every request really
# generates 64 tokens: about 400 shared tokens of counting, then a different count per request.
SHARED_PREFIX = "Counting practice.\n" + ", ".join(str(n) for n in range(1, 103)) + "\n"
QUESTIONS = [f"Now count on from {start}: {start}, {start + 1}," for start in range(200, 1000, 100)]
MAX_TOKENS = 64


def one_request(base, model, question, start, results, index, banned):
    url = urllib.parse.urlparse(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    body = json.dumps({
        "model": model, "prompt": SHARED_PREFIX + question, "max_tokens": MAX_TOKENS,
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True},
        **({"logit_bias": {str(i): -100 for i in banned}} if banned else {}),
    })
    start.wait()
    sent = time.perf_counter()
    connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:500]!r}")
    first = None
    chunks = 0
    usage = None
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[len("data: "):])
        if chunk.get("usage"):
            usage = chunk["usage"]["completion_tokens"]
        for choice in chunk.get("choices", []):
            if choice.get("text"):
                chunks += 1
                if first is None:
                    first = time.perf_counter() - sent
    done = time.perf_counter()
    connection.close()
    results[index] = (sent, first if first is not None else done - sent, done,
                      usage if usage is not None else chunks)


def run(base, model, concurrency, banned):
    start = threading.Event()
    results = [None] * concurrency
    threads = [
        threading.Thread(target=one_request,
                         args=(base, model, QUESTIONS[i % len(QUESTIONS)], start, results, i, banned))
        for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    start.set()
    for thread in threads:
        thread.join()
    if any(r is None for r in results):
        raise RuntimeError("a request failed")
    short = [(i, r[3]) for i, r in enumerate(results) if r[3] != MAX_TOKENS]
    if short and banned:
        # The wall times only compare when every server did the same work.
        raise RuntimeError(f"requests (index, tokens) {short} did not generate {MAX_TOKENS} tokens")
    return results


def main():
    base, model = sys.argv[1], sys.argv[2]
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    banned = [int(i) for i in sys.argv[4].split(",")] if len(sys.argv) > 4 and sys.argv[4] else []
    run(base, model, 1, banned)  # warm-up: first-request costs stay out of the figures
    results = run(base, model, concurrency, banned)
    begin = min(r[0] for r in results)
    end = max(r[2] for r in results)
    ttfts = [r[1] for r in results]
    tokens = sum(r[3] for r in results)
    print(f"http_wall_s {end - begin:.2f}")
    print(f"http_mean_ttft_ms {sum(ttfts) / len(ttfts) * 1e3:.0f}")
    print(f"http_max_ttft_ms {max(ttfts) * 1e3:.0f}")
    print(f"http_output_tokens {tokens}")
    print(f"http_output_tok_s {tokens / (end - begin):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
