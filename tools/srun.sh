#!/usr/bin/env bash
# srun wrapper used by slurm_train.sh / slurm_test.sh: srun.sh PARTITION JOB_NAME SCRIPT [args].
# SIGNAL_SECONDS (default 120): Slurm sends SIGUSR1 to every task that long before the time
# limit, so training checkpoints and exits 75 in time (lomar_transfer/engine/preemption.py).
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-$([[ -x "$ROOT/.venv/bin/python" ]] && echo "$ROOT/.venv/bin/python" || echo python)}
# shellcheck disable=SC2086  # SRUN_ARGS holds several options
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec srun -p "$PARTITION" --job-name="$JOB_NAME" \
  --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 --signal=USR1@"${SIGNAL_SECONDS:-120}" \
  ${SRUN_ARGS:-} "$PYTHON" -u "$SCRIPT" "${@:4}" --launcher slurm
