#!/usr/bin/env bash
# tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args]: one Slurm task per GPU via srun
# (mmengine's slurm launcher, NCCL). GPUS (default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5) and
# SRUN_ARGS (e.g. "--quotatype=auto") come from the environment, as in OpenMMLab's scripts.
set -euo pipefail
exec bash "$(dirname "$0")/srun.sh" "$1" "$2" "$(dirname "$0")/train.py" "${@:3}"
