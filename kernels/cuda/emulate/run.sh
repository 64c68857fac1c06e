#!/usr/bin/env bash
# Compiles check.cpp (the kernels of kernels/cuda/ on the CPU, against C++ references) with the
# launch constants of kernels/src/cuda_launch.rs and runs it. Needs a C++20 compiler, no GPU.
set -euo pipefail
cd "$(dirname "$0")"
constant() { sed -n "s/^pub const $1: u32 = \([0-9_]*\);.*/\1/p" ../../src/cuda_launch.rs | tr -d _; }
out="${TMPDIR:-/tmp}/agentc-cuda-emulate"
"${CXX:-c++}" -std=c++20 -O1 -pthread -Wall -Wno-unused-function \
  -DMATMUL_WARPS="$(constant MATMUL_WARPS)u" -DATTN_WARPS="$(constant ATTN_WARPS)u" \
  -DATTN_MAX_HEAD_DIM="$(constant ATTN_MAX_HEAD_DIM)u" check.cpp -o "$out"
"$out"
