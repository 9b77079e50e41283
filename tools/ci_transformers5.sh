#!/usr/bin/env bash
# CI, second pass: the whole test suite again with transformers 5.x (what the README says we test with).
#
# Runs inside the CI virtualenv that .ci/run made (torch and the pinned transformers 4.57.6 installed).
# transformers 5 and the newer huggingface-hub / tokenizers it needs go into an overlay folder that comes
# first on PYTHONPATH, so torch is not installed twice. Cost on the 2-core CI machine: about 30 s of pip,
# then one suite run.
#
#   bash tools/ci_transformers5.sh [VERSION]      # default: the version the README names
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-5.23.0}"
overlay="$(mktemp -d)/transformers-$version"
trap 'rm -rf "$(dirname "$overlay")"' EXIT
pip install --quiet --target "$overlay" "transformers==$version"
export PYTHONPATH="$overlay${PYTHONPATH:+:$PYTHONPATH}"
python -c "import transformers, sys; v = transformers.__version__; print('transformers', v, 'from', transformers.__file__); sys.exit(v != '$version')"
# the runtime and pack under transformers 5; the ComfyUI trees run in their own venvs (tests/test_in_comfyui.py)
python -m pytest -q --ignore=tests/test_in_comfyui.py
