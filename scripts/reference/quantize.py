#!/usr/bin/env python3
"""Requantizes a GGUF with llama.cpp's own quantizer (`llama_model_quantize` through
llama-cpp-python, `allow_requantize` on), writing to a temporary file that is renamed into place
only when llama.cpp succeeds.

    python scripts/reference/quantize.py SRC.gguf DST.gguf TYPE [THREADS]

TYPE is one of llama.cpp's file types: Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0, Q5_0, Q5_1.
"""

import ctypes
import os
import sys

import llama_cpp

FTYPES = {
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q5_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_0,
    "Q5_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_1,
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "Q6_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
}


def main() -> int:
    if len(sys.argv) not in (4, 5) or sys.argv[3] not in FTYPES:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.allow_requantize = True
    params.nthread = int(sys.argv[4]) if len(sys.argv) == 5 else 2
    partial = dst + ".partial"
    rc = llama_cpp.llama_model_quantize(src.encode(), partial.encode(), ctypes.byref(params))
    if rc != 0:
        print(f"error: llama_model_quantize {src} -> {kind} failed ({rc})", file=sys.stderr)
        return 1
    os.replace(partial, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
