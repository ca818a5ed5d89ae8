#!/usr/bin/env bash
# The README's main command: install (first run only), then the benchmark suite on the embedded
# data (tools/benchmark.py; arguments are passed on, e.g. --methods mae --stages coco).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
exec .venv/bin/python tools/benchmark.py "$@"
