#!/usr/bin/env bash
# The default recipe on a CUDA GPU: two deterministic runs compared by md5, then images/s, peak memory and GPU
# utilisation per runtime.amp x runtime.channels_last (and runtime.compile). Writes bench/results/gpu_check.json.
#
#   make install && bash bench/gpu_check.sh            # on a CUDA machine, about 3-5 minutes
#   bash bench/gpu_check.sh --smoke                    # the same logic on the CPU, tiny sample, under a minute
#
# Options go to bench/gpu_check.py (--out PATH, --people N, --steps N, --device cuda|cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
export NO_ALBUMENTATIONS_UPDATE=1
exec "$PY" bench/gpu_check.py "$@"
