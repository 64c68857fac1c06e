# Sourced by the benchmark scripts: makes sure target/bench-venv has a llama-cpp-python that
# decodes on this CPU (built from source without AMX: with -DGGML_NATIVE=ON on a CPU with AMX
# every llama_decode dies with a general protection fault, see docs/engine.md), and sets PY.
VENV=target/bench-venv
PY="$VENV/bin/python"
LLAMA_CPP_VERSION=0.3.36
# The instruction sets are this CPU's, named one by one (not -DGGML_NATIVE, which would also
# turn on AMX): AVX-512 and VNNI only where /proc/cpuinfo lists them, so that the same script
# builds a llama.cpp that runs on AVX2-only CPUs (e.g. AMD EPYC before Zen 4) too.
has_flag() { grep -qw "$1" /proc/cpuinfo; }
on_off() { if has_flag "$1"; then echo ON; else echo OFF; fi; }
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=$(on_off avx512f) -DGGML_AVX512_VNNI=$(on_off avx512_vnni) \
-DGGML_AVX512_BF16=$(on_off avx512_bf16) -DGGML_AVX_VNNI=$(on_off avx_vnni) \
-DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
# A llama.cpp build that can decode: a wheel from pip's cache may have been built natively (with
# AMX) and crash, so a failed smoke test rebuilds from source without the cache.
llama_cpp_works() {
    "$PY" -c "import llama_cpp, uvicorn, fastapi; assert llama_cpp.__version__ == '$LLAMA_CPP_VERSION'" \
        2>/dev/null &&
        "$PY" scripts/reference/bench_llama_cpp.py 8 2 1 >/dev/null 2>&1
}
if ! llama_cpp_works; then
    echo "building llama-cpp-python $LLAMA_CPP_VERSION from source into $VENV (~5 minutes) ..." >&2
    [[ -x "$PY" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "llama-cpp-python[server]==$LLAMA_CPP_VERSION" >&2
    if ! llama_cpp_works; then
        "$VENV/bin/pip" install --quiet --no-cache-dir --no-binary llama-cpp-python \
            --force-reinstall --no-deps "llama-cpp-python==$LLAMA_CPP_VERSION" >&2
    fi
    llama_cpp_works || { echo "error: llama-cpp-python does not run here" >&2; exit 1; }
fi

