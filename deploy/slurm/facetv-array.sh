#!/usr/bin/env bash
# facetv-gpu as a Slurm job array over a shared parallel file system.
#
#   FACETV_INPUT=/archive/tv FACETV_OUTPUT=/scratch/$USER/faces sbatch --array=0-15 facetv-array.sh
#
# Each array task takes a fixed share of the inputs (--shard K/N, a hash of each input's path) and
# writes into the one shared output folder; per-input locks make a stray overlap harmless and a
# killed or preempted task's work resumable (see docs/RELIABILITY.md). Requeued tasks simply run
# again and resume from their checkpoints.
#
#SBATCH --job-name=facetv
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
#SBATCH --output=facetv-%A_%a.log
# On a GPU partition also ask for a GPU, e.g.:  sbatch --gres=gpu:1 ... facetv-array.sh
set -euo pipefail

: "${FACETV_INPUT:?set FACETV_INPUT to the folder of recordings}"
: "${FACETV_OUTPUT:?set FACETV_OUTPUT to the shared results folder}"

# The shard of this task: array indices may start anywhere (--array=1-16 as well as 0-15).
task=${SLURM_ARRAY_TASK_ID:-0}
first=${SLURM_ARRAY_TASK_MIN:-0}
count=${SLURM_ARRAY_TASK_COUNT:-1}
shard="$((task - first))/${count}"

# GPUs Slurm gave this task (CUDA_VISIBLE_DEVICES renumbers them from 0); none: CPU.
if [[ -n "${CUDA_VISIBLE_DEVICES:-}" && "${CUDA_VISIBLE_DEVICES}" != "NoDevFiles" ]]; then
  device=auto
else
  device=cpu
fi

# How to run facetv-gpu: the installed binary, or a container, e.g.
#   FACETV_BIN="apptainer exec --nv --bind /archive,/scratch facetv.sif facetv-gpu"
read -r -a bin <<< "${FACETV_BIN:-facetv-gpu}"

# exec: facetv-gpu receives Slurm's SIGTERM itself (preemption, or 120 s before the time limit),
# checkpoints and exits; the requeued task resumes.
exec "${bin[@]}" --input "$FACETV_INPUT" --output "$FACETV_OUTPUT" \
  --shard "$shard" --device "$device" --threads "${SLURM_CPUS_PER_TASK:-$(nproc)}" \
  --progress-interval 60 ${FACETV_ARGS:-}
