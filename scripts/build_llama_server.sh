#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the llama.cpp sources inside the llama-cpp-python sdist on PyPI
# (the registry has no binary wheel), once per llama.cpp version and CPU model: the binary is kept in
# ~/.cache/apr/llama-server/ and found there by apr.serve.llamacpp.find_llama_server, so a reused machine
# does not build again. Prints the binary's path. Needs gcc and cmake (pip installs cmake if missing).
# The build targets AVX2 (every Intel and AMD machine here has it), not -march=native: a native build
# on an AMX-capable Xeon crashes (SIGILL / SIGSEGV) on the first quantized matrix product in a VM that
# does not grant the process AMX state; F32 models run either way.
#   scripts/build_llama_server.sh            # -> ~/.cache/apr/llama-server/<version>-avx2-<cpu>/llama-server
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CPU=$(python -c "from apr.serve.llamacpp import cpu_tag; print(cpu_tag())")
DEST=${APR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apr}/llama-server/$VERSION-avx2-$CPU
if [ -x "$DEST/llama-server" ]; then echo "$DEST/llama-server"; exit 0; fi
command -v cmake >/dev/null || python -m pip install -q cmake
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python -m pip download -q --no-binary :all: --no-deps -d "$WORK" "llama-cpp-python==$VERSION" >&2
tar xzf "$WORK"/llama_cpp_python-*.tar.gz -C "$WORK"
SRC=$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)
cmake -S "$SRC" -B "$WORK/build" -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON >&2
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >&2
mkdir -p "$DEST"
cp "$WORK/build/bin/llama-server" "$DEST/llama-server.partial"
mv "$DEST/llama-server.partial" "$DEST/llama-server"
echo "$DEST/llama-server"
