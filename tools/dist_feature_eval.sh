#!/usr/bin/env bash
# tools/dist_feature_eval.sh CONFIG CHECKPOINT NUM_GPUS [feature_eval.py args]: MAE-CT's frozen-
# feature evaluation through torchrun; each rank extracts a shard of the train set and the k-NN
# merges the ranks' top-k (NCCL on GPUs, gloo on CPU).
set -euo pipefail
exec bash "$(dirname "$0")/torchrun.sh" "$3" "$(dirname "$0")/feature_eval.py" "$1" "$2" "${@:4}"
