#!/usr/bin/env bash
# The README's test command: install (first run only), then run the test suite.
# pytest's own exit status is returned: 5 (no test ran) counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
exec .venv/bin/python -m pytest "$@"
