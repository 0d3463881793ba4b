#!/usr/bin/env bash
# Fan-out and renames, measured: three s3s-fs servers (a source and two destinations, each
# behind examples/relay.rs with the cross-region profile: 20 ms one way, 8 MiB/s per
# connection), one dataset of COUNT x SIZE_MIB shards.
#
#   benches/fanout_renames.sh [--count 16] [--size-mib 16] [--delay-ms 20] [--conn-mibps 8] [--work DIR]
#
# Prints, for each run, wall seconds and the bytes copied between the stores and inside the
# destination (from the reports; that the source is read once is counted by the tests,
# tests/suite/fanout.rs):
#   1. two separate syncs, SRC -> A then SRC -> B;
#   2. one fan-out sync, SRC -> A B (fresh destinations);
#   3. the source renamed (every shard moved under a new prefix, on the server's disk) and
#      `sync --delete` to A: the renamed dataset, copied inside the destination.
# Needs: cargo (builds the release binary and the examples), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
count=16 size_mib=16 delay=20 rate=8 work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --count) count=$2; shift 2 ;;
    --size-mib) size_mib=$2; shift 2 ;;
    --delay-ms) delay=$2; shift 2 ;;
    --conn-mibps) rate=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
work=${work:-$(mktemp -d)}
mkdir -p "$work"
cargo build --release --quiet --bin shardsync --example s3-server --example relay
bin=target/release
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# start NAME: an s3s-fs server for NAME and a relay in front of it; sets PORT_NAME.
start() {
  local name=$1 out port
  rm -rf "$work/$name"; mkdir -p "$work/$name/data"
  out=$(mktemp); "$bin/examples/s3-server" --root "$work/$name" --port 0 --access-key k --secret-key s >"$out" & pids+=($!)
  until grep -q listening "$out"; do sleep 0.1; done
  port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$out")
  out=$(mktemp)
  "$bin/examples/relay" --listen 0 --target "127.0.0.1:$port" --delay-ms "$delay" --conn-mibps "$rate" >"$out" 2>"$out.err" & pids+=($!)
  until grep -q listening "$out"; do sleep 0.1; done
  eval "PORT_$name=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$out")"
  eval "RELAY_ERR_$name=$out.err"
}
start src; start a; start b
config="$work/config.toml"
: >"$config"
for n in src a b; do
  p=PORT_$n
  cat >>"$config" <<EOF
[remotes.$n]
url = "s3://data"
options = { endpoint = "http://127.0.0.1:${!p}", allow_http = "true", region = "us-east-1", access_key_id = "k", secret_access_key = "s" }
EOF
done
export SHARDSYNC_CONFIG=$config
unset AWS_CA_BUNDLE
for i in $(seq -w 1 "$count"); do
  mkdir -p "$work/src/data/ds/train"
  head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/src/data/ds/train/shard-$i.bin"
done
"$bin/shardsync" manifest build src:ds >/dev/null

# run LABEL ARGS…: wall seconds and bytes copied of one sync (JSON report to a file).
run() {
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$bin/shardsync" sync "$@" --json -q >"$work/last.json" || true
  t1=$(date +%s.%N)
  python3 - "$label" "$t0" "$t1" "$work/last.json" <<'EOF'
import json, sys
label, t0, t1, path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
doc = json.load(open(path))
reports = doc.get("destinations", [doc])
copied = sum(r["bytes_copied"] for r in reports)
in_place = sum(r.get("bytes_copied_in_place", 0) for r in reports)
ok = all(r["consistent"] for r in reports)
print(f"{label:<34} {t1 - t0:7.2f} s   copied {copied / 2**20:8.1f} MiB   in place {in_place / 2**20:7.1f} MiB   consistent={ok}")
EOF
}
echo "dataset: $count x $size_mib MiB; relay: ${delay} ms one way, ${rate} MiB/s per connection"
run "separate: src -> a" src:ds a:one
run "separate: src -> b" src:ds b:one
run "fan-out: src -> a b" src:ds a:two b:two
# Rename on the source server's disk: every shard under a new prefix, then rebuild its manifest.
mv "$work/src/data/ds/train" "$work/src/data/ds/train-v2"
"$bin/shardsync" manifest build src:ds >/dev/null
run "renamed dataset: src -> a (--delete)" src:ds a:two --delete --max-delete 100%
