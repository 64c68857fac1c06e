#!/usr/bin/env python3
"""Record sentence-transformers' embeddings of all-MiniLM-L6-v2 as a test reference.

The Rust embedder's correctness test (runtime/tests/embed_reference.rs) embeds the same sentences
and needs cosine similarity >= 0.9999 with every recorded vector. The model is read from the local
directory only (models/all-MiniLM-L6-v2, unpacked by scripts/setup.sh); nothing comes from a hub.

Re-run (CPU torch; the CPU wheel index, or plain PyPI when that index is unreachable):
    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /tmp/st-venv/bin/pip install sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python scripts/reference/record_minilm.py \
        --model models/all-MiniLM-L6-v2 --out tests/fixtures/minilm/reference.json
"""

import argparse
import json
import os
import sys

# Sentences of different lengths, scripts and punctuation; the last one is longer than the
# model's 128-token limit, so truncation is checked too.
SENTENCES = [
    "The cat sits on the mat.",
    "A man is playing a guitar on stage.",
    "How do I compile a Rust project with cargo?",
    "Quantum computers use qubits, which can be in superpositions of 0 and 1.",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "東京は日本の首都です。",
    "RAG: retrieve passages, then answer from them!!! (v2.0, 2024-05-01)",
    "x",
    "Embeddings map text to vectors; similar meanings land close together in the vector space.",
    "An agent workflow is a graph of LLM calls, tool calls, embeddings and vector lookups. " * 12,
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/all-MiniLM-L6-v2")
    parser.add_argument("--out", default="tests/fixtures/minilm/reference.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import sentence_transformers
    from sentence_transformers import SentenceTransformer, models

    with open(os.path.join(args.model, "tokenizer.json"), encoding="utf-8") as f:
        max_len = json.load(f)["truncation"]["max_length"]
    # The model directory has no modules.json: assemble the same pipeline explicitly (BERT,
    # mean pooling, L2 normalisation) so nothing is guessed or downloaded.
    word = models.Transformer(args.model, max_seq_length=max_len)
    dim_of = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pooling = models.Pooling(dim_of(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
    vectors = model.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
    out = {
        "model": os.path.basename(os.path.normpath(args.model)),
        "max_seq_length": max_len,
        "recorded_with": f"sentence-transformers {sentence_transformers.__version__}",
        "sentences": SENTENCES,
        "vectors": [[round(float(x), 7) for x in v] for v in vectors],
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(SENTENCES)} vectors of {vectors.shape[1]} floats to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
