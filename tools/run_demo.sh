#!/usr/bin/env bash
# The README's main command: install (first run only), then run the suite on the embedded data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
exec .venv/bin/python tools/demo.py "$@"
