#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what is missing first (apt
# packages for LLVM/MLIR 22, the bundled models), then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked "$@"
