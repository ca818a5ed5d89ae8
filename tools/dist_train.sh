#!/usr/bin/env bash
# tools/dist_train.sh CONFIG NUM_GPUS [train.py args]: NUM_GPUS processes through torchrun
# (NCCL on GPUs, gloo on CPU); NNODES / NODE_RANK / MASTER_ADDR / PORT for several nodes.
set -euo pipefail
exec bash "$(dirname "$0")/torchrun.sh" "$2" "$(dirname "$0")/train.py" "$1" "${@:3}"
