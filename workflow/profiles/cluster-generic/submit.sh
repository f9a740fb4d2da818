#!/usr/bin/env bash
# Submit one Snakemake job script; print the scheduler's job id (cluster-generic-submit-cmd).
# Reads threads and resources (mem_mb, runtime in minutes, gpu) from the script's
# "# properties = {...}" line, which Snakemake writes into every job script.
set -euo pipefail
script="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scheduler.sh
source "$here/scheduler.sh"

read -r name threads mem_mb runtime gpu < <(python3 - "$script" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
props = json.loads(re.search(r"^# properties = (.*)$", text, re.M).group(1))
res = props.get("resources", {})
name = props.get("rule") or f"group_{props.get('groupid', 'job')}"
name = re.sub(r"[^A-Za-z0-9_]", "_", f"smk_{name}")[:40]
print(name, max(1, int(props.get("threads", 1))), int(res.get("mem_mb", 2000)),
      int(res.get("runtime", 60)), int(res.get("gpu", 0) or 0))
PY
)
logs=".snakemake/cluster_logs"   # relative to the working directory Snakemake submits from
mkdir -p "$logs"
walltime="$(printf '%02d:%02d:00' $((runtime / 60)) $((runtime % 60)))"
queue="${VAD_QUEUE:-}"
if [ "$gpu" -gt 0 ] && [ -n "${VAD_GPU_QUEUE:-}" ]; then queue="$VAD_GPU_QUEUE"; fi
args=()

case "$VAD_SCHEDULER" in
  pbs)    # OpenPBS / PBS Pro; on Torque: -l nodes=1:ppn=$threads,mem=${mem_mb}mb (GPUs: :gpus=N)
    select="select=1:ncpus=$threads:mem=${mem_mb}mb"
    if [ "$gpu" -gt 0 ]; then select="$select:ngpus=$gpu"; fi
    if [ -n "$queue" ]; then args+=(-q "$queue"); fi
    qsub -V -N "$name" -j oe -o "$logs/" -l "$select" -l "walltime=$walltime" "${args[@]}" "$script"
    ;;
  sge)    # Grid Engine: h_vmem is per slot; the GPU resource name (gpu) is site-specific
    per_slot=$(( (mem_mb + threads - 1) / threads ))
    if [ "$gpu" -gt 0 ]; then args+=(-l "gpu=$gpu"); fi
    if [ -n "$queue" ]; then args+=(-q "$queue"); fi
    qsub -terse -cwd -V -N "$name" -j y -o "$logs/" -pe "${VAD_SGE_PE:-smp}" "$threads" \
      -l "h_vmem=${per_slot}M,h_rt=$walltime" "${args[@]}" "$script"
    ;;
  slurm)
    if [ "$gpu" -gt 0 ]; then args+=("--gpus=$gpu"); fi
    if [ -n "$queue" ]; then args+=(-p "$queue"); fi
    sbatch --parsable -J "$name" -o "$logs/%j.log" -c "$threads" --mem "$mem_mb" -t "$runtime" \
      "${args[@]}" "$script" | cut -d';' -f1
    ;;
esac
