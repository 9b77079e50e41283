#!/usr/bin/env bash
# Virtualenvs that run the real ComfyUI trees of ../shared/comfyui on a CPU-only machine, for the tests that
# exercise the nodes inside real ComfyUI (tests/test_in_comfyui.py). One venv per tree, because the trees pin
# different frontend packages. Idempotent: a venv whose stamp matches is kept.
#
#   bash tools/setup_comfyui_venvs.sh [SHARED_DIR]      (default ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-${JANUS_SHARED:-../shared}}
[ -d "$SHARED/comfyui" ] || { echo "no $SHARED/comfyui: nothing to set up"; exit 0; }
for tree in "$SHARED"/comfyui/*/; do
  version=$(basename "$tree")
  [ -f "$tree/main.py" ] || continue
  venv=.venv-comfyui/$version
  stamp="$(sha256sum "$tree/requirements.txt" .ci/constraints.txt pyproject.toml | sha256sum | cut -c1-16)"
  if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$stamp" ]; then
    echo "ComfyUI $version venv up to date"; continue
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  py="$venv/bin/python"
  # CPU torch first and pinned; torchvision/torchaudio are CUDA builds, made importable by the shared shims
  "$py" -m pip install --quiet torch==2.13.0
  "$py" -m pip install --quiet --no-deps torchvision==0.28.0 torchaudio==2.11.1
  grep -v -E '^(torch|torchvision|torchaudio)[[:space:]]*$' "$tree/requirements.txt" > "$venv/requirements.txt"
  # no playwright: CI takes no browser screenshots (the web checks that do are run by hand)
  "$py" -m pip install --quiet -c .ci/constraints.txt -r "$venv/requirements.txt" torchsde requests pytest
  # the pack's own runtime dependencies (the pack itself is imported from the work tree)
  "$py" -m pip install --quiet -c .ci/constraints.txt einops "safetensors>=0.4" "huggingface-hub>=0.23" pillow numpy
  sp=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  for shim in torchvision_cpu_shim torchaudio_cpu_shim; do
    cp "$SHARED/tools/$shim.py" "$sp/"
    echo "import $shim" > "$sp/$shim.pth"
  done
  "$py" -c "import torchvision.transforms, torchaudio" 
  echo "$stamp" > "$venv/.stamp"
  echo "ComfyUI $version venv ready: $venv"
done
