#!/usr/bin/env python3
"""Record llama.cpp's tokenization and greedy continuations of SmolLM2 as a test reference.

The Rust engine's correctness test (runtime/tests/llama_cpp_reference.rs) replays these prompts
and must reproduce the token ids exactly; where greedy decoding diverges, the recorded top-2
logit margin shows whether llama.cpp itself was at a near-tie.

Re-run (2 cores: ~5 minutes to build llama-cpp-python into target/bench-venv the first time,
~30 seconds to record):
    source scripts/reference/llama-cpp-venv.sh
    "$PY" scripts/reference/record_llama_cpp.py \
        --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --out tests/fixtures/llama_cpp/smollm2_greedy.json

There is no wheel for 0.3.36, so pip builds it, with the instruction sets of this CPU named one
by one (see llama-cpp-venv.sh: -DGGML_NATIVE=ON would enable AMX on a Xeon that has it, and
that build dies in llama_decode with a general protection fault in libggml-cpu.so).
"""

import argparse
import json
import platform
import sys

import jinja2
import llama_cpp
import numpy as np

PINNED_VERSION = "0.3.36"
GENERATED_TOKENS = 32
THREADS = 2
CONTEXT = 1024
RECORDED_CANDIDATES = 5

# Plain prompts: tokenized as-is (special tokens such as <|im_start|> are matched whole, as
# llama.cpp does with parse_special=true) and continued greedily.
PLAIN_PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):\n    ",
    "fn main() {\n    println!(\"Hello, world!\");\n}\n",
    "1 + 1 = 2. 12345 * 678 = ",
    "The year 2024 had 366 days; pi is about 3.14159 and 1,000,000 is a million.",
    "  leading spaces and trailing spaces  ",
    "Héllo wörld! Ünïcödé façade naïve café",
    "Emoji test: 🦀🚀 and 👨‍👩‍👧 family",
    "日本語のテキストと中文字符",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "I'm sure they'll say it's what we've done, isn't it? You'd",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name;",
    "\n\n\nMultiple\n\nnewlines\t\ttabs   and    spaces",
    "https://example.com/path?query=1&x=2#frag",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "A",
    "ALL CAPS SHOUTING AND MiXeD cAsE wOrDs",
    "<file_sep>README.md\n# Project\n",
    "Translate to French: The cat sits on the mat.\nFrench:",
    "Large language models are trained on large amounts of text. They learn to predict the next "
    "token given the previous ones. This simple objective, scaled up, produces systems that can "
    "answer questions, write code, and summarize documents. However, they also",
]

CHAT_PROMPTS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Write a haiku about Rust."},
    ],
    [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": "Another one, please."},
    ],
    [{"role": "user", "content": "Explain recursion in one sentence."}],
]


def render_chat(template: str, messages, bos: str, eos: str) -> str:
    """Render the GGUF chat template the way llama-cpp-python's Jinja2ChatFormatter does."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        messages=messages,
        add_generation_prompt=True,
        bos_token=bos,
        eos_token=eos,
        raise_exception=raise_exception,
    )


def is_end_of_generation(llm, token: int) -> bool:
    return bool(llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), token))


def greedy(llm, prompt_tokens):
    """Greedy decoding that also records each step's leading logits (argmax ties go to the lower id)."""
    llm.reset()
    llm.eval(prompt_tokens)
    steps = []
    generated = []
    stop = "length"
    for _ in range(GENERATED_TOKENS):
        # Logits of the last evaluated token (llama-cpp-python keeps them only with logits_all).
        row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        logits = np.ctypeslib.as_array(row, shape=(llm.n_vocab(),)).astype(np.float32)
        order = np.argsort(-logits, kind="stable")
        top1, top2 = int(order[0]), int(order[1])
        steps.append(
            {
                "top1": top1,
                "top2": top2,
                "top1_logit": float(logits[top1]),
                "top2_logit": float(logits[top2]),
                "margin": float(logits[top1] - logits[top2]),
                # The leading candidates, to tell a near-tie among several tokens.
                "top": [[int(t), float(logits[t])] for t in order[:RECORDED_CANDIDATES]],
            }
        )
        generated.append(top1)
        if is_end_of_generation(llm, top1):
            stop = "eos"
            break
        llm.eval([top1])
    return generated, steps, stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--out", default="tests/fixtures/llama_cpp/smollm2_greedy.json")
    args = parser.parse_args()
    if llama_cpp.__version__ != PINNED_VERSION:
        print(f"warning: llama-cpp-python {llama_cpp.__version__}, references were made with {PINNED_VERSION}", file=sys.stderr)

    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=CONTEXT,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        seed=0,
        verbose=False,
    )
    template = llm.metadata["tokenizer.chat_template"]
    bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8")
    eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8")

    cases = [{"kind": "plain", "text": text} for text in PLAIN_PROMPTS]
    for messages in CHAT_PROMPTS:
        cases.append({"kind": "chat", "messages": messages, "text": render_chat(template, messages, bos, eos)})

    records = []
    for index, case in enumerate(cases):
        # add_bos=True means "add BOS if the model asks for it" (tokenizer.ggml.add_bos_token).
        prompt_tokens = llm.tokenize(case["text"].encode("utf-8"), add_bos=True, special=True)
        generated, steps, stop = greedy(llm, prompt_tokens)
        text = llm.detokenize(generated).decode("utf-8", errors="replace")
        record = dict(case)
        record.update(
            {
                "prompt_tokens": prompt_tokens,
                "generated_tokens": generated,
                "generated_text": text,
                "finish_reason": stop,
                "steps": steps,
            }
        )
        records.append(record)
        min_margin = min(s["margin"] for s in steps)
        print(f"[{index:2}] {len(prompt_tokens):3} prompt tokens, {len(generated):2} generated ({stop}), min margin {min_margin:.3f}: {text[:60]!r}")

    out = {
        "description": "llama.cpp reference for agentc: tokenization (parse_special=true, add_special=true) and greedy continuations",
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", errors="replace"),
        "machine": platform.machine(),
        "model": args.model.split("/")[-1],
        "n_threads": THREADS,
        "n_ctx": CONTEXT,
        "max_generated_tokens": GENERATED_TOKENS,
        "cases": records,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(records)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
