#!/usr/bin/env bash
# Build the llama.cpp peers of `tuneloop bench` from the llama.cpp source that the
# llama-cpp-python source distribution carries, CPU only, into the tuneloop cache:
#
#   <cache>/llama.cpp/<version>/build/bin/   llama-server, llama-quantize, llama-perplexity,
#                                            libllama.so and the ggml libraries
#   llama-cpp-python installed into the current venv without compiling again: it loads the
#   libllama.so above through LLAMA_CPP_LIB_PATH (tuneloop bench sets it).
#
# A bench-only dependency: CI and users never need it. About 10 minutes on 2 cores, once.
#   VERSION  llama-cpp-python version (default 0.3.36)
#   PYTHON   interpreter of the venv to install llama-cpp-python into (default .venv/bin/python)
#   JOBS     parallel compile jobs (default: the number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-0.3.36}
PYTHON=${PYTHON:-.venv/bin/python}
JOBS=${JOBS:-$(nproc)}
CACHE=${TUNELOOP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tuneloop}
ROOT=$CACHE/llama.cpp/$VERSION
SOURCE=$ROOT/llama_cpp_python-$VERSION
BUILD=$ROOT/build

mkdir -p "$ROOT"
if [[ ! -d $SOURCE ]]; then
  echo "build-llama-cpp: downloading the llama-cpp-python $VERSION source distribution"
  "$PYTHON" -m pip download -q --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$ROOT"
  tar -xzf "$ROOT/llama_cpp_python-$VERSION.tar.gz" -C "$ROOT"
fi

if [[ ! -x $BUILD/bin/llama-server ]]; then
  echo "build-llama-cpp: compiling llama.cpp (CPU only, $JOBS jobs)"
  # Nothing may be downloaded at build time: no prebuilt web UI, no curl/openssl.
  cmake -S "$SOURCE/vendor/llama.cpp" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_APP=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF >/dev/null
  cmake --build "$BUILD" -j "$JOBS" --target llama-server llama-quantize llama-perplexity
fi

if ! "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llama_cpp') is None)"; then
  echo "build-llama-cpp: installing llama-cpp-python $VERSION (bindings only, no second compile)"
  CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" "$PYTHON" -m pip install -q --no-deps \
    "$ROOT/llama_cpp_python-$VERSION.tar.gz"
  "$PYTHON" -m pip install -q "diskcache>=5.6" "jinja2>=2.11.3"
fi
echo "build-llama-cpp: done; binaries in $BUILD/bin"
