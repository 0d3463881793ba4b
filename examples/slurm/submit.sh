#!/usr/bin/env bash
# Submit the chain plan -> array of N partitions -> commit, each step after the one before
# succeeded. Prints the three job IDs (plan, array, commit) on one line.
#   SRC=s3://a/ds DST=s3://b/ds PARTITIONS=8 examples/slurm/submit.sh [extra sbatch flags]
# SHARDSYNC (path of the binary) and SHARDSYNC_OPTS (e.g. "--src-opt profile=east") pass through.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${SRC:?}" "${DST:?}"
export SRC DST PARTITIONS="${PARTITIONS:-4}" RUN="${RUN:-run-$(date +%Y%m%d%H%M%S)}"
export SHARDSYNC="${SHARDSYNC:-shardsync}" SHARDSYNC_OPTS="${SHARDSYNC_OPTS:-}"
plan=$(sbatch --parsable --export=ALL "$@" "$here/plan.sbatch")
array=$(sbatch --parsable --export=ALL --dependency="afterok:${plan%%;*}" \
  --array="0-$((PARTITIONS - 1))" "$@" "$here/partition.sbatch")
commit=$(sbatch --parsable --export=ALL --dependency="afterok:${array%%;*}" "$@" "$here/commit.sbatch")
echo "${plan%%;*} ${array%%;*} ${commit%%;*}"
