#!/usr/bin/env bash
# torchrun wrapper used by dist_train.sh / dist_test.sh: torchrun.sh NPROC SCRIPT [args].
# One process per GPU (NCCL) or NPROC CPU processes (gloo), chosen by the tools; multi-node via
# NNODES, NODE_RANK, MASTER_ADDR and PORT, as in OpenMMLab's launchers.
set -euo pipefail
NPROC=$1
SCRIPT=$2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-$([[ -x "$ROOT/.venv/bin/python" ]] && echo "$ROOT/.venv/bin/python" || echo python)}
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" "$SCRIPT" "${@:3}" --launcher pytorch
