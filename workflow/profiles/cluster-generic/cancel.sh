#!/usr/bin/env bash
# Cancel the given job ids (cluster-generic-cancel-cmd; called without a shell, so it is a script).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scheduler.sh
source "$here/scheduler.sh"
case "$VAD_SCHEDULER" in
  pbs|sge) qdel "$@" ;;
  slurm) scancel "$@" ;;
esac
