#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what is missing first (apt
# packages for LLVM/MLIR 22, the bundled models, the pinned OpenAI Python client in .venv),
# then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The API tests drive the server with the real `openai` package; the venv is rebuilt only when
# tests/python/requirements.txt changes.
REQUIREMENTS=tests/python/requirements.txt
if ! cmp -s "$REQUIREMENTS" .venv/.requirements 2>/dev/null; then
  echo "test: installing $REQUIREMENTS into .venv"
  rm -rf .venv
  python3 -m venv .venv || { echo "test: python3 -m venv failed; install python3-venv" >&2; exit 1; }
  .venv/bin/pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" .venv/.requirements
fi

cargo test --workspace --locked "$@"
