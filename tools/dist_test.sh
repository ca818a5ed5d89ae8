#!/usr/bin/env bash
# tools/dist_test.sh CONFIG CHECKPOINT NUM_GPUS [test.py args]: evaluation through torchrun
# (NCCL on GPUs, gloo on CPU); NNODES / NODE_RANK / MASTER_ADDR / PORT for several nodes.
set -euo pipefail
exec bash "$(dirname "$0")/torchrun.sh" "$3" "$(dirname "$0")/test.py" "$1" "$2" "${@:4}"
