#!/usr/bin/env bash
# torchrun wrapper used by dist_train.sh / dist_test.sh: torchrun.sh NPROC SCRIPT [args].
# One process per GPU (NCCL) or NPROC CPU processes (gloo), chosen by the tools; multi-node via
# NNODES, NODE_RANK, MASTER_ADDR and PORT, as in OpenMMLab's launchers.
#
# SIGTERM / SIGUSR1 sent to this script reach every worker through torchrun (which otherwise
# dies on SIGUSR1); the workers finish their iteration, write a checkpoint and stop
# (lomar_transfer/engine/preemption.py). This script then exits 143 (SIGTERM) or 75 (SIGUSR1),
# like a single-process run: run the same command again to resume.
set -euo pipefail
NPROC=$1
SCRIPT=$2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-$([[ -x "$ROOT/.venv/bin/python" ]] && echo "$ROOT/.venv/bin/python" || echo python)}
# torchrun passes these on to its workers (then waits 30 s for them before SIGKILL)
export TORCHELASTIC_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1
PYTHONPATH="$ROOT:${PYTHONPATH:-}" "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" "$SCRIPT" "${@:3}" --launcher pytorch &
pid=$!
stopped=
trap 'stopped=143; kill -TERM "$pid" 2>/dev/null || true' TERM
trap 'stopped=75; kill -USR1 "$pid" 2>/dev/null || true' USR1
while :; do  # a trapped signal interrupts `wait`: wait again until torchrun has ended
  status=0
  wait "$pid" || status=$?
  kill -0 "$pid" 2>/dev/null || break
done
if [[ -n "$stopped" && $status -ne 0 ]]; then
  echo "torchrun.sh: stopped by a signal (training checkpoints first); run the same command again to resume" >&2
  exit "$stopped"
fi
exit "$status"
