#!/usr/bin/env bash
# tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]: evaluation as Slurm
# tasks (same environment variables as slurm_train.sh).
set -euo pipefail
exec bash "$(dirname "$0")/srun.sh" "$1" "$2" "$(dirname "$0")/test.py" "${@:3}"
