#!/usr/bin/env bash
# tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args]: one Slurm task per GPU via srun
# (mmengine's slurm launcher, NCCL). GPUS (default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5),
# SIGNAL_SECONDS (120) and SRUN_ARGS (e.g. "--quotatype=auto") come from the environment, as in
# OpenMMLab's scripts.
#
# Time limits: the tasks get SIGUSR1 SIGNAL_SECONDS before the limit, checkpoint and exit 75.
# Inside a batch job (sbatch --requeue ... tools/slurm_train.sh ...) the job is then requeued and
# its next start resumes from the checkpoint on its own; run interactively, this script says to run
# the same command again. Preemption (SIGTERM, exit 143) is requeued by Slurm itself when the
# cluster's PreemptMode says so; a cancelled job (scancel) stays cancelled.
set -uo pipefail
bash "$(dirname "$0")/srun.sh" "$1" "$2" "$(dirname "$0")/train.py" "${@:3}"
status=$?
if [[ $status -eq 75 ]]; then
  if [[ -n "${SLURM_JOB_ID:-}" ]] && scontrol requeue "$SLURM_JOB_ID"; then
    echo "slurm_train.sh: time limit near; checkpoint written, job $SLURM_JOB_ID requeued" >&2
  else
    echo "slurm_train.sh: time limit near; checkpoint written: run the same command again to resume" >&2
  fi
fi
exit $status
