#!/usr/bin/env bash
# The Slurm chain for real, on one machine: install Debian's slurm-wlm and munge (if missing),
# start munged, slurmctld and slurmd (this host is the whole cluster), submit submit.sh's chain
# (plan -> --array=0-(N-1) -> commit, afterok) over two local folders, wait for it, check parity
# with `shardsync check`, and stop the daemons it started (by pid). Needs root (apt-get, the
# munge key); the Slurm config and state stay in a temporary folder (SLURM_CONF points there).
#   cargo build && examples/slurm/run-local-cluster.sh [path/to/shardsync]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-$here/../../target/debug/shardsync}")"
[ -x "$bin" ] || { echo "no shardsync binary at $bin: run cargo build first" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root: it installs packages and starts munged and Slurm" >&2; exit 2; }
partitions="${PARTITIONS:-4}"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

work="$(mktemp -d /tmp/shardsync-slurm.XXXXXX)"
started=()
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  echo "daemons stopped; logs and outputs kept in $work"
}
trap cleanup EXIT

# munge: a 1 KiB key owned by munge (mode 400), munged as user munge. One already running is used.
if ! { [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge /run/munge /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 30); do [ -s /run/munge/munged.pid ] && break; sleep 1; done
  started+=("$(cat /run/munge/munged.pid)")
fi

host="$(hostname -s)"
memory="$(free -m | awk '/^Mem:/ { print int($2 * 0.8) }')"
mkdir -p "$work/state" "$work/spool" "$work/out"
cat > "$work/slurm.conf" <<CONF
ClusterName=shardsync-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$work/slurm.conf"
slurmctld
# The daemon writes its pid file once it has forked: wait for it.
for _ in $(seq 1 60); do [ -s "$work/slurmctld.pid" ] && break; sleep 1; done
started+=("$(cat "$work/slurmctld.pid")")
slurmd
for _ in $(seq 1 60); do [ -s "$work/slurmd.pid" ] && break; sleep 1; done
started+=("$(cat "$work/slurmd.pid")")
for _ in $(seq 1 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
  sleep 1
done
sinfo

# A source of 40 objects of varied sizes (40 KB to 920 KB); the destination is empty.
mkdir -p "$work/src/data" "$work/dst"
for i in $(seq 0 39); do
  head -c $(( (i * 37 % 23 + 1) * 40000 )) /dev/urandom > "$work/src/data/obj-$(printf %03d "$i").bin"
done

echo "== submitting plan -> array 0-$((partitions - 1)) -> commit"
read -r plan array commit < <(
  SRC="$work/src" DST="$work/dst" PARTITIONS="$partitions" RUN=slurm-local SHARDSYNC="$bin" \
    "$here/submit.sh" --chdir="$work" --output="$work/out/%x-%j.out"
)
echo "jobs: plan $plan, array $array, commit $commit"
for _ in $(seq 1 600); do
  [ -z "$(squeue -h)" ] && break
  sleep 1
done
for f in "$work"/out/*.out; do echo "== $(basename "$f")"; cat "$f"; done
state="$(scontrol show job "$commit" -o | grep -o 'JobState=[A-Z_]*' || true)"
echo "commit job: $state"
[ "$state" = "JobState=COMPLETED" ] || { echo "the chain did not complete" >&2; exit 1; }

echo "== parity"
"$bin" check "$work/src" "$work/dst"
