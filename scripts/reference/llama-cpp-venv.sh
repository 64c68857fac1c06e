# Sourced by the benchmark scripts: makes sure target/bench-venv has a llama-cpp-python that
# decodes on this CPU (built from source without AMX: with -DGGML_NATIVE=ON on a CPU with AMX
# every llama_decode dies with a general protection fault, see docs/engine.md), and sets PY.
VENV=target/bench-venv
PY="$VENV/bin/python"
LLAMA_CPP_VERSION=0.3.36
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DLLAVA_BUILD=OFF"
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

