#!/usr/bin/env bash
# workflow/profiles/slurm (and cluster-generic) on a real Slurm: installs Debian's slurm-wlm and
# munge, starts a one-node cluster on this machine (munged, slurmctld, slurmd as root; the node's
# real CPUs and memory, one stand-in GPU, no accounting), then in a temporary folder:
#   1. runs the demo with workflow/profiles/local;
#   2. runs it through snakemake-executor-plugin-slurm with workflow/profiles/slurm, kills Snakemake
#      (SIGKILL) while train runs on Slurm, cancels the killed run's jobs, unlocks and reruns the
#      same command; checks that nothing finished before the kill was redone and that auc_micro
#      equals the local run's exactly (training is seeded and runs on the CPU in both);
#   3. builds the training cubes through workflow/profiles/cluster-generic (its slurm dialect:
#      submit.sh, status.sh), per-video jobs as one group job; checks they match the local run's.
#
#   tests/cluster/slurm_test.sh     (as root; .ci/run calls it after pytest; 5-10 minutes on 2 cores)
#
# Exit 0 with "SKIP: <reason>" when it cannot set up a cluster here: not root, no apt-get, the
# packages cannot be installed, or this machine has a Slurm configuration of its own. Exit 1 when
# the cluster does not come up, a workflow fails, or a check fails. Everything it starts is
# stopped at the end (VAD_SLURM_KEEP=1 leaves the cluster running); /etc/slurm/slurm.conf and
# /etc/slurm/gres.conf are its own and removed again. VAD_SLURM_WORKDIR: where to run
# (default: a new folder under /tmp, kept).
#
# The plugin's overrides here, and why:
#   --slurm-status-command squeue   accounting is off in this cluster, so sacct knows no jobs
#   --slurm-init-seconds-before-status-checks 5   (default 40) only to keep the test short
#   --cores N --resources group_slots=1 mem_mb=M   the node has N CPUs and M MB: threads and memory
#       are capped to what it has (--resources replaces the profile's list, hence group_slots)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python}"
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MARK="# written by vad-pipeline tests/cluster/slurm_test.sh"
STATE=/var/tmp/vad-slurm-test
T0=$(date +%s)

say() { echo "[slurm_test $(( $(date +%s) - T0 ))s] $*"; }
skip() { echo "SKIP: tests/cluster/slurm_test.sh: $*"; exit 0; }
fail() {
  echo "FAIL: tests/cluster/slurm_test.sh: $1"
  shift
  for f in "$@"; do [ -f "$f" ] && { echo "---- tail of $f"; tail -n 60 "$f"; }; done
  exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root (installs slurm-wlm and munge, starts munged, slurmctld and slurmd)"
command -v apt-get >/dev/null || skip "needs apt-get (Debian or Ubuntu) to install slurm-wlm and munge"
for f in "$CONF" "$GRES"; do
  if [ -e "$f" ] && ! grep -qF "$MARK" "$f"; then
    skip "$f exists and was not written by this test: this machine has a Slurm of its own"
  fi
done

# ---------------------------------------------------------------- install
need=()
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
    >/tmp/vad-slurm-apt.log 2>&1 || { tail -n 20 /tmp/vad-slurm-apt.log; skip "apt-get could not install ${need[*]}"; }
fi
if ! "$PYTHON" -c "import snakemake_executor_plugin_slurm, snakemake_executor_plugin_cluster_generic" 2>/dev/null; then
  say "pip install snakemake-executor-plugin-slurm snakemake-executor-plugin-cluster-generic"
  "$PYTHON" -m pip install -q snakemake-executor-plugin-slurm snakemake-executor-plugin-cluster-generic \
    || skip "pip could not install the Snakemake executor plugins"
fi
say "$(slurmd -V), $("$PYTHON" -m pip list 2>/dev/null | grep -E '^snakemake(-executor-plugin-(slurm|cluster-generic))? ' | tr -s ' ' | paste -sd, -)"

# ---------------------------------------------------------------- start the cluster
started=()   # pid files of the daemons this script started
cleanup() {
  local rc=$?
  if [ "${VAD_SLURM_KEEP:-0}" = 1 ]; then
    say "VAD_SLURM_KEEP=1: the cluster keeps running ($STATE)"
    return $rc
  fi
  scancel --user root >/dev/null 2>&1 || true
  for pidfile in "${started[@]}"; do
    if [ -s "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  rm -f "$CONF" "$GRES"
  return $rc
}
trap cleanup EXIT

# daemons of an earlier run of this script that kept them (VAD_SLURM_KEEP=1)
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    sleep 1
  fi
done
rm -rf "$STATE"
mkdir -p "$STATE/ctld" "$STATE/d"

if ! munge -n >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  started+=(/run/munge/munged.pid)
  sleep 1
  munge -n >/dev/null || fail "munged did not start" /var/log/munge/munged.log
fi

host="$(hostname -s)"
node="$(slurmd -C | head -n 1)"                  # NodeName=... CPUs=... RealMemory=...
ncpu="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")"
mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
if [ -z "$ncpu" ] || [ -z "$mem" ]; then fail "could not read CPUs and RealMemory from 'slurmd -C': $node"; fi
cat >"$CONF" <<EOF
$MARK
ClusterName=vadtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
ReturnToService=2
GresTypes=gpu
$node NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# a stand-in GPU (/dev/null as its device): the profile's gpu: 1 for train and infer is requested
# and scheduled; torch finds no CUDA and trains on the CPU, as the local run does
cat >"$GRES" <<EOF
$MARK
NodeName=$host Name=gpu File=/dev/null
EOF
say "starting slurmctld and slurmd: $node"
slurmctld -c || fail "slurmctld did not start" "$STATE/slurmctld.log"
started+=("$STATE/slurmctld.pid")
slurmd -c || fail "slurmd did not start" "$STATE/slurmd.log"
started+=("$STATE/slurmd.pid")
for _ in $(seq 60); do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
  [ "$state" = idle ] && break
  sleep 1
done
[ "$state" = idle ] || fail "node $host is '$state', not idle" "$STATE/slurmctld.log" "$STATE/slurmd.log"
say "cluster up: $ncpu CPUs, $mem MB, 1 GPU (stand-in)"

# ---------------------------------------------------------------- the workflow
W="${VAD_SLURM_WORKDIR:-$(mktemp -d /tmp/vad-slurm-run.XXXXXX)}"
mkdir -p "$W/local" "$W/slurm" "$W/generic"
for d in local slurm generic; do cp "$REPO/config.yaml" "$W/$d/"; done
SMK=("$PYTHON" -m snakemake --snakefile "$REPO/Snakefile")
ON_NODE=(--cores "$ncpu" --resources group_slots=1 "mem_mb=$mem")
SLURM=("${SMK[@]}" --workflow-profile "$REPO/workflow/profiles/slurm" --slurm-status-command squeue
       --slurm-init-seconds-before-status-checks 5 "${ON_NODE[@]}")
TARGET=results/demo/auc.json
auc() { "$PYTHON" -c "import json,sys; print(repr(json.load(open(sys.argv[1]))['auc_micro']))" "$1"; }
jobs_since() {  # Slurm jobs submitted after job id $1 (finished ones stay listed for MinJobAge)
  squeue -h --states=all -o %i | awk -v after="$1" '$1 + 0 > after' | wc -l
}
last_jobid() { squeue -h --states=all -o %i | sort -n | tail -n 1 | grep . || echo 0; }

say "1/3 local profile: $TARGET in $W/local"
t=$(date +%s)
(cd "$W/local" && "${SMK[@]}" --workflow-profile "$REPO/workflow/profiles/local" --cores "$ncpu" -- "$TARGET") \
  >"$W/local.log" 2>&1 || fail "the local run failed" "$W/local.log"
local_s=$(( $(date +%s) - t ))
local_auc="$(auc "$W/local/$TARGET")"
say "local: ${local_s}s, auc_micro $local_auc"

say "2/3 slurm profile: $TARGET in $W/slurm; Snakemake is killed (SIGKILL) while train runs"
before="$(last_jobid)"
res="$W/slurm/results/demo"
t=$(date +%s)
(cd "$W/slurm" && exec "${SLURM[@]}" -- "$TARGET") >"$W/slurm.log" 2>&1 &
pid=$!
for _ in $(seq 600); do   # train's log appears when its job starts on the node
  [ -e "$W/slurm/results/logs/demo/train.log" ] && break
  kill -0 "$pid" 2>/dev/null || fail "Snakemake ended before train started" "$W/slurm.log"
  sleep 1
done
[ -e "$W/slurm/results/logs/demo/train.log" ] || fail "train did not start within 10 minutes" "$W/slurm.log"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
killed_s=$(( $(date +%s) - t ))
[ ! -e "$res/train/model.pt" ] || fail "killed too late: training had finished"
grep -q "gpu=1" "$W/slurm.log" || fail "train did not ask for the GPU" "$W/slurm.log"
# finished before train was submitted: every per-video job, the training cubes, the labels
finished=("$res"/detect/*/*.csv "$res"/flow/*/*.h5 "$res"/stc/train.h5 "$res"/labels.csv "$res"/gt_summary.json)
[ ${#finished[@]} -eq 19 ] || fail "expected 19 finished outputs before train, found ${#finished[@]}"
stat -c '%n %Y' "${finished[@]}" >"$W/mtimes.before"
# its jobs keep running on Slurm: cancel them (their name is the run id); its lock stays: unlock
run_id="$(sed -n 's/.*SLURM run ID: \([0-9a-f-]*\).*/\1/p' "$W/slurm.log" | head -n 1)"
[ -n "$run_id" ] || fail "no 'SLURM run ID' in the log" "$W/slurm.log"
scancel --name "$run_id"
say "killed after ${killed_s}s; cancelled the jobs of run $run_id; --unlock, then the same command again"
(cd "$W/slurm" && "${SLURM[@]}" --unlock -- "$TARGET") >"$W/unlock.log" 2>&1 || fail "--unlock failed" "$W/unlock.log"
t=$(date +%s)
(cd "$W/slurm" && timeout 900 "${SLURM[@]}" -- "$TARGET") >"$W/rerun.log" 2>&1 \
  || fail "the rerun after the kill failed" "$W/rerun.log" "$STATE/slurmctld.log"
rerun_s=$(( $(date +%s) - t ))
slurm_jobs="$(jobs_since "$before")"
stat -c '%n %Y' "${finished[@]}" >"$W/mtimes.after"
diff "$W/mtimes.before" "$W/mtimes.after" || fail "outputs finished before the kill were redone"
ran="$(grep -oE '^\s*(local)?rule [a-z_]+:' "$W/rerun.log" | sed 's/.*rule //; s/://' | sort -u | paste -sd' ' -)"
for r in $ran; do  # what follows train, and what may have been in flight beside it (stc of the test split, the
  # motion and cell stages: none of them waits for train, so how far they got before the kill is down to timing)
  case "$r" in stc|stc_video|motion_features|motion_terms|gather_motion_terms|cell_layout|cell_stats_video|cell_stats|cell_terms|gather_cell_terms|train|infer|score|frame_scores|top_anomalies|pictures|localisation|benchmark|evaluate) ;;
    *) fail "the rerun ran $r" "$W/rerun.log" ;; esac
done
slurm_auc="$(auc "$W/slurm/$TARGET")"
say "rerun: ${rerun_s}s, ran: $ran; $slurm_jobs Slurm jobs in all; auc_micro $slurm_auc"
[ "$slurm_auc" = "$local_auc" ] || fail "auc_micro differs: Slurm $slurm_auc, local $local_auc"

say "3/3 cluster-generic profile (its slurm dialect): results/demo/stc/train.h5 in $W/generic"
t=$(date +%s)
(cd "$W/generic" && VAD_SCHEDULER=slurm timeout 600 "${SMK[@]}" \
   --workflow-profile "$REPO/workflow/profiles/cluster-generic" --seconds-between-status-checks 2 \
   "${ON_NODE[@]}" -- results/demo/stc/train.h5) >"$W/generic.log" 2>&1 \
  || fail "the cluster-generic run failed" "$W/generic.log"
generic_s=$(( $(date +%s) - t ))
grep -q "Submitted group job" "$W/generic.log" || fail "no group job was submitted" "$W/generic.log"
for f in "$W"/local/results/demo/detect/train/*.csv; do
  cmp "$f" "$W/generic/results/demo/detect/train/${f##*/}" || fail "cluster-generic's boxes differ from the local run's"
done
say "cluster-generic: ${generic_s}s"

echo "PASS: tests/cluster/slurm_test.sh in $(( $(date +%s) - T0 ))s: local ${local_s}s, auc_micro $local_auc;" \
  "slurm: killed during train after ${killed_s}s, rerun ${rerun_s}s, $slurm_jobs Slurm jobs, the same auc_micro," \
  "finished outputs kept; cluster-generic ${generic_s}s ($W)"
