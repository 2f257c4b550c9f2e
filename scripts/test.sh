#!/usr/bin/env bash
# Install blueprint with its test extra (the local CPU torch first, so no CUDA wheels) and run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[test]'
python -m pytest -q "$@"
