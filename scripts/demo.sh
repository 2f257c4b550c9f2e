#!/usr/bin/env bash
# Install blueprint (the local CPU torch 2.13.0 first, so no CUDA wheels are pulled), then run
# the main job on the example specs: validate them all, explain one, build it to a verified ONNX
# model and generate from it with onnxruntime through the KV cache.
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=specs/gpt2-tiny.yaml

python -m pip install -q torch==2.13.0
python -m pip install -q -e .

echo "== blueprint validate specs/*.yaml"
blueprint validate specs/*.yaml

echo
echo "== blueprint explain ${SPEC}"
blueprint explain "${SPEC}" --seq-len 64

echo
echo "== blueprint build ${SPEC}"
blueprint build "${SPEC}" -o build/gpt2-tiny

echo
echo "== blueprint run build/gpt2-tiny"
blueprint run build/gpt2-tiny --ids '1 2 3 4' --max-new-tokens 16 --temperature 0.8 --top-p 0.95 --seed 0
