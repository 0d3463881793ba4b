#!/usr/bin/env bash
# Run the three Jobs in order: plan, the Indexed Job, commit; each waits for the one before.
#   SRC=s3://src-bucket/tokenized/v7 DST=s3://dst-bucket/tokenized/v7 IMAGE=REGISTRY/shardsync:TAG \
#   PARTITIONS=8 examples/kubernetes/run.sh
set -euo pipefail
cd "$(dirname "$0")"
: "${SRC:?}" "${DST:?}" "${IMAGE:?}"
export SRC DST IMAGE PARTITIONS="${PARTITIONS:-4}" RUN="${RUN:-run-$(date +%Y%m%d%H%M%S)}"
apply() { envsubst '${SRC} ${DST} ${IMAGE} ${PARTITIONS} ${RUN}' < "$1" | kubectl apply -f -; }
wait_for() {
  local state
  while :; do
    state=$(kubectl get "job/$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
    case "$state" in
      *Complete*) return 0 ;;
      *Failed*) echo "job $1 failed; see kubectl logs job/$1" >&2; exit 2 ;;
    esac
    sleep 10
  done
}
apply plan-job.yaml
wait_for "shardsync-plan-$RUN"
apply sync-indexed-job.yaml
wait_for "shardsync-sync-$RUN"
apply commit-job.yaml
wait_for "shardsync-commit-$RUN"
echo "committed: plan $RUN"
