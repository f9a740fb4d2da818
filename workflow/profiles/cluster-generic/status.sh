#!/usr/bin/env bash
# Print running, success or failed for one job id (cluster-generic-status-cmd).
set -uo pipefail
jobid="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scheduler.sh
source "$here/scheduler.sh"

exit_status() {  # success if $1 is 0, else failed
  if [ "${1:-1}" = "0" ]; then echo success; else echo failed; fi
}

case "$VAD_SCHEDULER" in
  pbs)  # finished jobs stay visible with -x (PBS Pro); Torque keeps them as state C for a while
    info="$(qstat -xf "$jobid" 2>/dev/null || qstat -f "$jobid" 2>/dev/null)"
    state="$(sed -n 's/^ *job_state = //p' <<<"$info")"
    code="$(sed -n 's/^ *[Ee]xit_status = //p' <<<"$info")"
    case "$state" in
      F|C) exit_status "$code" ;;
      "") echo failed ;;   # unknown to the scheduler
      *) echo running ;;
    esac ;;
  sge)  # queued or running jobs are known to qstat, finished ones to qacct
    if qstat -j "$jobid" >/dev/null 2>&1; then echo running; exit 0; fi
    acct="$(qacct -j "$jobid" 2>/dev/null)" || { echo running; exit 0; }   # accounting lags
    failed="$(awk '$1 == "failed" {print $2}' <<<"$acct" | tail -1)"
    code="$(awk '$1 == "exit_status" {print $2}' <<<"$acct" | tail -1)"
    if [ "$failed" = "0" ]; then exit_status "$code"; else echo failed; fi ;;
  slurm)  # sacct where accounting is on, else squeue (finished jobs stay MinJobAge seconds)
    state="$(sacct -n -X -P -j "$jobid" -o State 2>/dev/null | head -1)"
    [ -n "$state" ] || state="$(squeue -h -j "$jobid" --states=all -o %T 2>/dev/null | head -1)"
    case "${state%% *}" in
      COMPLETED) echo success ;;
      PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|RESIZING|STAGE_OUT|SIGNALING) echo running ;;
      *) echo failed ;;
    esac ;;
esac
