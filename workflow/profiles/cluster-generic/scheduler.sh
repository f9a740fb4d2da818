# shellcheck shell=bash
# Sourced by submit.sh, status.sh and cancel.sh: the scheduler dialect, from VAD_SCHEDULER or
# guessed from the commands on PATH.
if [ -z "${VAD_SCHEDULER:-}" ]; then
  if command -v qconf >/dev/null; then VAD_SCHEDULER=sge
  elif command -v qsub >/dev/null; then VAD_SCHEDULER=pbs
  elif command -v sbatch >/dev/null; then VAD_SCHEDULER=slurm
  else echo "no qsub or sbatch on PATH; set VAD_SCHEDULER to pbs, sge or slurm" >&2; exit 1
  fi
fi
case "$VAD_SCHEDULER" in
  pbs|sge|slurm) ;;
  *) echo "VAD_SCHEDULER=$VAD_SCHEDULER: expected pbs, sge or slurm" >&2; exit 1 ;;
esac
