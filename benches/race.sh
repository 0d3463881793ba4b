#!/usr/bin/env bash
# Racing campaign (issue 11, item 6): two syncs of different sources into one destination on a
# Garage server, which accepts If-None-Match/If-Match on PutObject and ignores them. Counts how
# often a sync exits 0 while the committed manifest claims bytes the destination does not hold.
#
#   benches/race.sh [--trials N] [--shards N] [--shard-size SIZE] [--modes LIST]
#                   [--max-offset-ms MS] [--jobs N] [--baseline PATH] [--work DIR] [--no-build]
#
#   --trials N        racing trials per binary (default 60), spread round-robin over the modes
#   --shards N        Parquet shards per source (default 24), plus a dataset_info.json sidecar
#   --shard-size S    bytes per shard (default 1MiB)
#   --modes LIST      comma-separated DEST-SRC pairs, DEST fresh (an empty destination prefix)
#                     or presync (the prefix synced from A first, so one side of the race is
#                     incremental), SRC manifest (both local sources carry a manifest) or
#                     nomanifest (neither does; every byte is hashed during the copy).
#                     Default: fresh-manifest,fresh-nomanifest,presync-manifest,presync-nomanifest
#   --max-offset-ms M the second sync starts 0..M ms after the first, at random (default 300);
#                     which source goes first is random too
#   --jobs N          shardsync sync -j (default 32, the sync default)
#   --baseline PATH   also run the same campaign with another shardsync binary (e.g. one built
#                     from the pre-fix commit 34a2ad9 in its own worktree) for the "before"
#   --work DIR        scratch folder (default ${TMPDIR:-/tmp}/shardsync-race); the Garage state
#                     is recreated on every run, each trial's evidence is kept under
#                     DIR/trials/LABEL/NNN
#   --no-build        do not run cargo build (target/release/shardsync and bench-gen must exist)
#
# Two local sources A and B hold the same paths (train/part-NNNNN.parquet, dataset_info.json)
# and different bytes (bench-gen data versions 0 and 1; the sidecar is identical). Per trial:
# a fresh prefix s3://race/LABEL/tNNN on one single-node Garage server (started as compare.sh
# --server garage starts its servers), optionally pre-synced from A; then `shardsync sync A DST
# --json` and `shardsync sync B DST --json` run concurrently; the exit codes, stderr and the
# dst_digest each printed are kept, with each sync's start and end (did they overlap?). The truth
# is taken twice: `shardsync verify --deep DST` with the binary built here (not the baseline),
# and independently of shardsync by a python/boto3 check that downloads the manifest and every
# object under the prefix, sha256s them, and compares each manifest entry (size, sha256) with the
# bytes and the manifest's digest with its entries; the download check is the one counted.
#
# Per trial: both exited 0 / one failed / both failed; the manifest holds or not ("false
# manifest left": some entry names bytes the destination does not hold, whoever wrote it);
# "FALSE CLAIM, exit 0": the manifest does not hold and a sync that printed its digest exited 0;
# "false manifest, a sync exit 0": the same, whatever digest the sync printed (the issue's words);
# "exit 0, superseded": a sync exited 0 with a digest that is not the one left committed (the
# other sync committed after it; the manifest left may still be honest); whether every exit 2
# said "destination changed during sync" (and which situation each named); and whose bytes the destination ended up with (all A,
# all B, mixed). A summary table goes to stdout and WORK/results.md, one row per trial to
# WORK/trials.tsv. Exit 1 if the binary built here (not the baseline) made a false claim.
#
# Nothing is installed here: needs garage on the PATH (or GARAGE=path; `cargo install garage
# --version 2.5.0 --locked`), python3 with boto3, cargo.
set -euo pipefail

# ---------------------------------------------------------------- options
TRIALS=60 SHARDS=24 SHARD_SIZE=1MiB MAX_OFFSET_MS=300 JOBS=32 BUILD=1 BASELINE=
MODES=fresh-manifest,fresh-nomanifest,presync-manifest,presync-nomanifest
WORK=${TMPDIR:-/tmp}/shardsync-race
while [ $# -gt 0 ]; do
  case "$1" in
    --trials) TRIALS=$2; shift ;;
    --shards) SHARDS=$2; shift ;;
    --shard-size) SHARD_SIZE=$2; shift ;;
    --modes) MODES=$2; shift ;;
    --max-offset-ms) MAX_OFFSET_MS=$2; shift ;;
    --jobs|-j) JOBS=$2; shift ;;
    --baseline) BASELINE=$2; shift ;;
    --work) WORK=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$TARGET/release/shardsync
GEN=$TARGET/release/examples/bench-gen
AK=benchkey SK=benchsecret-benchsecret REGION=us-east-1 BUCKET=race
# Some tools choke on the CA bundle variable of this environment; nothing here uses TLS.
unset AWS_CA_BUNDLE AWS_PROFILE AWS_ENDPOINT AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_SESSION_TOKEN || true

note() { echo "== $*" >&2; }
die() { echo "race.sh: $*" >&2; exit 2; }

for m in ${MODES//,/ }; do
  case $m in fresh-manifest|fresh-nomanifest|presync-manifest|presync-nomanifest) ;;
    *) die "bad mode $m (see --help)" ;; esac
done
[[ $TRIALS =~ ^[0-9]+$ ]] && [ "$TRIALS" -gt 0 ] || die "--trials must be a positive number"
[[ $MAX_OFFSET_MS =~ ^[0-9]+$ ]] || die "--max-offset-ms must be a number"

# ---------------------------------------------------------------- prerequisites
command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import boto3' 2>/dev/null || die "python3 boto3 is needed (pip install boto3)"
if [ "$BUILD" = 1 ]; then
  note "building shardsync and bench-gen (cargo build --release)"
  (cd "$REPO" && cargo build --release --quiet --bin shardsync --example bench-gen) || die "build failed"
fi
for b in "$BIN" "$GEN"; do
  [ -x "$b" ] || die "$b is missing: run cargo build --release --bin shardsync --example bench-gen"
done
if [ -n "$BASELINE" ]; then
  [ -x "$BASELINE" ] || die "--baseline $BASELINE is not an executable"
  BASELINE=$(cd "$(dirname "$BASELINE")" && pwd)/$(basename "$BASELINE")
fi
GARAGE=${GARAGE:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
[ -x "$GARAGE" ] || die "garage not found (cargo install garage --version 2.5.0 --locked, or GARAGE=path)"

# ---------------------------------------------------------------- scratch, server, cleanup
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LOGS=$WORK/logs GDIR=$WORK/garage
rm -rf "$LOGS" "$GDIR" "$WORK/trials"
mkdir -p "$LOGS" "$WORK/trials"

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() {
  python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

gcli() { "$GARAGE" -c "$GCFG" "$@"; }

# One single-node Garage, configured as compare.sh --server garage configures its servers.
garage_start() {
  local rpc s3 i id
  mkdir -p "$GDIR/meta" "$GDIR/data"
  read -r rpc s3 < <(free_ports 2)
  python3 -c 'import secrets; print(secrets.token_hex(32))' >"$GDIR/rpc_secret"
  GCFG=$GDIR/garage.toml
  printf '%s\n' \
    "metadata_dir = \"$GDIR/meta\"" \
    "data_dir = \"$GDIR/data\"" \
    'db_engine = "lmdb"' \
    'replication_factor = 1' \
    "rpc_bind_addr = \"127.0.0.1:$rpc\"" \
    "rpc_public_addr = \"127.0.0.1:$rpc\"" \
    "rpc_secret = \"$(cat "$GDIR/rpc_secret")\"" \
    '' '[s3_api]' \
    "s3_region = \"$REGION\"" \
    "api_bind_addr = \"127.0.0.1:$s3\"" >"$GCFG"
  chmod 600 "$GCFG" "$GDIR/rpc_secret"
  "$GARAGE" -c "$GCFG" server >>"$LOGS/garage.out" 2>>"$LOGS/garage.err" &
  PIDS+=($!)
  for i in $(seq 1 300); do
    gcli status >/dev/null 2>&1 && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$LOGS/garage.err" >&2; die "garage exited"; }
    sleep 0.1
  done
  gcli status >"$LOGS/garage.setup" 2>&1 || { tail -20 "$LOGS/garage.err" >&2; die "garage did not start"; }
  id=$(gcli node id -q 2>>"$LOGS/garage.setup") || die "garage node id failed"
  id=${id%%@*}
  { gcli layout assign -z dc1 -c 1G "$id" &&
    gcli layout apply --version 1 &&
    gcli key import --yes -n bench "$AK" "$SK"; } >>"$LOGS/garage.setup" 2>&1 ||
    { tail -20 "$LOGS/garage.setup" >&2; die "garage layout/key setup failed"; }
  for i in $(seq 1 50); do
    gcli bucket info "$BUCKET" >/dev/null 2>&1 ||
      gcli bucket create "$BUCKET" >>"$LOGS/garage.setup" 2>&1 || { sleep 0.2; continue; }
    gcli bucket allow --read --write --owner "$BUCKET" --key "$AK" >>"$LOGS/garage.setup" 2>&1 &&
      break
    sleep 0.2
  done
  [ "$i" -lt 50 ] || die "garage: creating bucket $BUCKET failed (see $LOGS/garage.setup)"
  ENDPOINT=http://127.0.0.1:$s3
}
garage_start
GARAGE_VERSION=$("$GARAGE" --version 2>/dev/null | awk '{ sub(/^cargo:/, "", $2); print $2 }')
note "Garage $GARAGE_VERSION at $ENDPOINT, bucket $BUCKET"

DST_OPTS=(--dst-opt "endpoint=$ENDPOINT" --dst-opt "access_key_id=$AK" --dst-opt "secret_access_key=$SK"
  --dst-opt "region=$REGION" --dst-opt allow_http=true --dst-opt virtual_hosted_style_request=false)
ONE_OPTS=(--opt "endpoint=$ENDPOINT" --opt "access_key_id=$AK" --opt "secret_access_key=$SK"
  --opt "region=$REGION" --opt allow_http=true --opt virtual_hosted_style_request=false)

# ---------------------------------------------------------------- sources
# WORK/src/{a,b}-nomanifest: the generated data; WORK/src/{a,b}-manifest: the same files with a
# manifest built by shardsync. Regenerated every run (a few seconds).
SRC=$WORK/src
rm -rf "$SRC"
mkdir -p "$SRC"
note "generating sources A and B: $SHARDS x $SHARD_SIZE Parquet shards each, different bytes"
"$GEN" parquet --dir "$SRC/a-nomanifest" --shards "$SHARDS" --shard-size "$SHARD_SIZE" --version 0 2>>"$LOGS/gen.log"
"$GEN" parquet --dir "$SRC/b-nomanifest" --shards "$SHARDS" --shard-size "$SHARD_SIZE" --version 1 2>>"$LOGS/gen.log"
for s in a b; do
  cp -a "$SRC/$s-nomanifest" "$SRC/$s-manifest"
  "$BIN" --quiet manifest build "$SRC/$s-manifest" >>"$LOGS/gen.log" 2>&1 || die "manifest build $s failed"
  # sha256 of every source file, for telling whose bytes the destination holds
  (cd "$SRC/$s-nomanifest" && find . -type f -printf '%P\0' | xargs -0 sha256sum) >"$SRC/$s.sums"
done
cmp -s <(cut -c1-64 "$SRC/a.sums" | sort) <(cut -c1-64 "$SRC/b.sums" | sort) &&
  die "sources A and B hold the same bytes"

# ---------------------------------------------------------------- the truth, independently
# check.py ENDPOINT BUCKET PREFIX A_SUMS B_SUMS OUT: download the manifest and every object under
# PREFIX, hash them, write a JSON verdict to OUT.
cat >"$WORK/check.py" <<'PY'
import hashlib, json, sys
import boto3
from botocore.config import Config

endpoint, bucket, prefix, a_sums, b_sums, out = sys.argv[1:7]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="benchkey",
                  aws_secret_access_key="benchsecret-benchsecret", region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}))

def sums(p):
    m = {}
    for line in open(p):
        h, path = line.rstrip("\n").split("  ", 1)
        m[path] = h
    return m

srcs = {"A": sums(a_sums), "B": sums(b_sums)}
objects = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for o in page.get("Contents", []):
        objects[o["Key"][len(prefix) + 1:]] = o["Size"]

def sha(rel):
    h = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=prefix + "/" + rel)["Body"]
    size = 0
    for chunk in iter(lambda: body.read(1 << 20), b""):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size

data = {p: sha(p) for p in objects if not p.startswith("_shardsync/")}
v = {"manifest": False, "holds": False, "digest": None, "digest_ok": None, "entries": 0,
     "bad": [], "missing": [], "strays": [], "from": {}}
for p, (h, _) in sorted(data.items()):
    who = [n for n, m in srcs.items() if m.get(p) == h]
    v["from"][p] = "+".join(who) if who else "neither"
if "_shardsync/manifest.json" in objects:
    raw = s3.get_object(Bucket=bucket, Key=prefix + "/_shardsync/manifest.json")["Body"].read()
    m = json.loads(raw)
    v["manifest"] = True
    v["digest"] = m.get("digest")
    shards = sorted(m.get("shards", []), key=lambda e: e["path"])
    lines = "".join("%s\t%d\t%s\n" % (e["path"], e["size"], e["sha256"]) for e in shards)
    v["digest_ok"] = hashlib.sha256(lines.encode()).hexdigest() == m.get("digest")
    v["entries"] = len(shards)
    named = set()
    for e in shards:
        named.add(e["path"])
        got = data.get(e["path"])
        if got is None:
            v["missing"].append(e["path"])
        elif got != (e["sha256"], e["size"]):
            claimed = [n for n, s in srcs.items() if s.get(e["path"]) == e["sha256"]]
            v["bad"].append({"path": e["path"], "claimed": e["sha256"], "claimed_from": "+".join(claimed) or "neither",
                             "actual": got[0], "actual_from": v["from"][e["path"]]})
    v["strays"] = sorted(set(data) - named)
    v["holds"] = bool(v["digest_ok"]) and not v["bad"] and not v["missing"]
    with open(out.replace("check.json", "manifest.json"), "wb") as f:
        f.write(raw)
json.dump(v, open(out, "w"), indent=1)
PY

# ---------------------------------------------------------------- trials
# one_sync BIN SRC DST DIR NAME: a sync, its JSON report, stderr and exit code in DIR/NAME.*
one_sync() {
  local bin=$1 src=$2 dst=$3 dir=$4 name=$5 rc=0 t0
  t0=$(date +%s%N)
  "$bin" sync "$src" "$dst" --json --no-source-write -j "$JOBS" "${DST_OPTS[@]}" \
    >"$dir/$name.json" 2>"$dir/$name.err" || rc=$?
  echo "$t0 $(date +%s%N)" >"$dir/$name.time"
  echo "$rc" >"$dir/$name.rc"
}

# campaign LABEL BIN: TRIALS racing trials with BIN, evidence under WORK/trials/LABEL/
campaign() {
  local label=$1 bin=$2 i mode dest srcm dir dst off first a b pa pb
  local -a modes=(${MODES//,/ })
  note "$label: $TRIALS trials with $bin ($("$bin" --version))"
  for i in $(seq 1 "$TRIALS"); do
    mode=${modes[$(((i - 1) % ${#modes[@]}))]}
    dest=${mode%%-*} srcm=${mode#*-}
    dir=$WORK/trials/$label/$(printf %03d "$i")
    mkdir -p "$dir"
    dst=s3://$BUCKET/$label/t$(printf %03d "$i")
    a=$SRC/a-$srcm b=$SRC/b-$srcm
    if [ "$dest" = presync ]; then
      "$bin" --quiet sync "$a" "$dst" --no-source-write "${DST_OPTS[@]}" >"$dir/presync.log" 2>&1 ||
        die "$label trial $i: pre-sync from A failed (see $dir/presync.log)"
    fi
    off=$((RANDOM % (MAX_OFFSET_MS + 1))) first=$((RANDOM % 2))
    if [ "$first" = 0 ]; then
      one_sync "$bin" "$a" "$dst" "$dir" a & pa=$!
      sleep "$(printf '%d.%03d' $((off / 1000)) $((off % 1000)))"
      one_sync "$bin" "$b" "$dst" "$dir" b & pb=$!
    else
      one_sync "$bin" "$b" "$dst" "$dir" b & pb=$!
      sleep "$(printf '%d.%03d' $((off / 1000)) $((off % 1000)))"
      one_sync "$bin" "$a" "$dst" "$dir" a & pa=$!
    fi
    wait "$pa" "$pb" || true
    printf '%s\n' "mode=$mode" "first=$([ "$first" = 0 ] && echo A || echo B)" "offset_ms=$off" \
      "dst=$dst" >"$dir/trial.txt"
    local vrc=0
    "$BIN" verify --deep "$dst" --format json "${ONE_OPTS[@]}" >"$dir/verify.json" 2>"$dir/verify.err" || vrc=$?
    echo "$vrc" >"$dir/verify.rc"
    python3 "$WORK/check.py" "$ENDPOINT" "$BUCKET" "${dst#s3://"$BUCKET"/}" "$SRC/a.sums" "$SRC/b.sums" \
      "$dir/check.json" 2>"$dir/check.err" || die "$label trial $i: check.py failed (see $dir/check.err)"
    note "$label $(printf %03d "$i") $mode: $([ "$first" = 0 ] && echo A || echo B) first, +${off}ms: A exit $(cat "$dir/a.rc"), B exit $(cat "$dir/b.rc"), verify --deep exit $vrc, manifest holds: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["holds"])' "$dir/check.json")"
  done
}

LABELS=(new)
campaign new "$BIN"
if [ -n "$BASELINE" ]; then
  LABELS+=(baseline)
  campaign baseline "$BASELINE"
fi

# ---------------------------------------------------------------- table
{
  echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "server: Garage $GARAGE_VERSION, single node (lmdb, replication 1), $ENDPOINT"
  echo "binaries: new = $BIN ($("$BIN" --version))$([ -n "$BASELINE" ] && echo ", baseline = $BASELINE ($("$BASELINE" --version))")"
  echo "sources: $SHARDS x $SHARD_SIZE Parquet shards + dataset_info.json, A and B the same paths, different bytes; -j $JOBS; second sync 0-${MAX_OFFSET_MS} ms after the first"
} >"$WORK/header.txt"
python3 - "$WORK" "${LABELS[@]}" <<'PY' | tee "$WORK/results.md"
import json, os, sys, collections
work, labels = sys.argv[1], sys.argv[2:]
CHANGED = "destination changed during sync"
rows, bad_trials = [], []
kinds = collections.defaultdict(collections.Counter)

def exit2_kind(err):
    """The situation an exit-2 message names, without its paths and counts."""
    for needle, kind in [
            ("replaced by another writer around the commit; dropped", "entries replaced around the commit, dropped by a repair commit"),
            ("could not be repaired", "entries replaced around the commit, repair commit failed"),
            ("replaced the manifest right after", "manifest replaced right after the commit"),
            ("was modified by another writer", "manifest changed before the commit (conflict)"),
            ("another sync is writing to it", "lease held by the other sync"),
            ("changed after this sync verified them; nothing was committed", "entries changed before the commit (re-proof), nothing committed"),
            ("destination object was replaced by another writer right after it was written",
             "'N shard(s) failed': shards replaced right after their PUT, not claimed"),
            (CHANGED, "other 'destination changed during sync'")]:
        if needle in err:
            return kind
    return "other: " + " ".join(err.split())[:160]
for label in labels:
    base = os.path.join(work, "trials", label)
    for t in sorted(os.listdir(base)):
        d = os.path.join(base, t)
        rd = lambda n: open(os.path.join(d, n)).read()
        info = dict(l.split("=", 1) for l in rd("trial.txt").split())
        chk = json.loads(rd("check.json"))
        syncs, times = {}, {}
        for s in "ab":
            rc = int(rd(s + ".rc"))
            try:
                digest = json.loads(rd(s + ".json")).get("dst_digest")
            except ValueError:
                digest = None
            err = "\n".join(l for l in rd(s + ".err").splitlines() if " WARN " not in l)
            syncs[s] = (rc, digest, err)
            times[s] = [int(x) for x in rd(s + ".time").split()]
        holds = chk["holds"]
        committed = chk["digest"]
        false_claim = [s for s, (rc, dg, _) in syncs.items()
                       if rc == 0 and dg is not None and dg == committed and not holds]
        superseded = [s for s, (rc, dg, _) in syncs.items() if rc == 0 and dg != committed]
        # the issue's wording: a false manifest left while some sync exited 0, whatever it printed
        exit0_false = [s for s, (rc, _, _) in syncs.items() if rc == 0 and chk["manifest"] and not holds]
        exit2 = [s for s, (rc, _, _) in syncs.items() if rc == 2]
        exit2_other = [s for s in exit2 if CHANGED not in syncs[s][2]]
        ok = sum(1 for rc, _, _ in syncs.values() if rc == 0)
        owners = set(chk["from"].values()) - {"A+B"}
        data = "A" if owners == {"A"} else "B" if owners == {"B"} else "empty" if not owners else "mixed"
        overlap = min(times["a"][1], times["b"][1]) > max(times["a"][0], times["b"][0])
        for s in exit2:
            kinds[label][exit2_kind(syncs[s][2])] += 1
        r = dict(label=label, trial=t, mode=info["mode"], first=info["first"], offset=info["offset_ms"],
                 overlap=overlap,
                 a_rc=syncs["a"][0], b_rc=syncs["b"][0], ok=ok, manifest=chk["manifest"], holds=holds,
                 verify_rc=int(rd("verify.rc")), bad=len(chk["bad"]) + len(chk["missing"]),
                 strays=len(chk["strays"]), false_claim=",".join(false_claim),
                 exit0_false=",".join(exit0_false), superseded=",".join(superseded), exit2_other=",".join(exit2_other), data=data)
        rows.append(r)
        unknown = any(exit2_kind(syncs[s][2]).startswith("other") for s in exit2)
        if false_claim or not holds or unknown or (r["verify_rc"] == 0 and not holds):
            bad_trials.append((r, d, syncs, chk))

with open(os.path.join(work, "trials.tsv"), "w") as f:
    keys = list(rows[0])
    f.write("\t".join(keys) + "\n")
    for r in rows:
        f.write("\t".join(str(r[k]) for k in keys) + "\n")

def line(cells):
    print("| " + " | ".join(str(c) for c in cells) + " |")

hdr = ["binary", "mode", "trials", "overlapping", "both exit 0", "one failed", "both failed", "FALSE CLAIM, exit 0",
       "false manifest left", "false manifest, a sync exit 0", "no manifest", "verify --deep exit 0", "exit 2 not 'destination changed'",
       "exit 0, superseded", "dst bytes A / B / mixed"]
line(hdr)
print("|" + "|".join("---" for _ in hdr) + "|")
groups = collections.OrderedDict()
for r in rows:
    groups.setdefault((r["label"], r["mode"]), []).append(r)
    groups.setdefault((r["label"], "all"), []).append(r)
order = [k for k in groups if k[1] != "all"] + [k for k in groups if k[1] == "all"]
for key in sorted(order, key=lambda k: (labels.index(k[0]), k[1] == "all", k[1])):
    g = groups[key]
    n = lambda f: sum(1 for r in g if f(r))
    cells = [key[0], key[1] if key[1] != "all" else "**all**", len(g), n(lambda r: r["overlap"]),
             n(lambda r: r["ok"] == 2), n(lambda r: r["ok"] == 1), n(lambda r: r["ok"] == 0),
             n(lambda r: r["false_claim"]), n(lambda r: r["manifest"] and not r["holds"]),
             n(lambda r: r["exit0_false"]),
             n(lambda r: not r["manifest"]), n(lambda r: r["verify_rc"] == 0),
             n(lambda r: r["exit2_other"]), n(lambda r: r["superseded"]),
             "%d / %d / %d" % (n(lambda r: r["data"] == "A"), n(lambda r: r["data"] == "B"),
                               n(lambda r: r["data"] == "mixed"))]
    if key[1] == "all":
        cells = ["**%s**" % c if i > 1 else c for i, c in enumerate(cells)]
    line(cells)
print()
print("exit codes (A, B): " + "; ".join(
    "%s %s" % (label, ", ".join("%s x%d" % (k, v) for k, v in sorted(collections.Counter(
        "(%d,%d)" % (r["a_rc"], r["b_rc"]) for r in rows if r["label"] == label).items())))
    for label in labels))
for label in labels:
    print()
    print("%s, exit 2 by situation: " % label + ("; ".join(
        "%s x%d" % (k, v) for k, v in kinds[label].most_common()) or "none"))
for r, d, syncs, chk in bad_trials:
    print()
    why = []
    if r["false_claim"]: why.append("FALSE CLAIM with exit 0 by " + r["false_claim"].upper())
    if r["manifest"] and not r["holds"]: why.append("false manifest left")
    if r["verify_rc"] == 0 and not r["holds"]: why.append("verify --deep exit 0 on a manifest the download check refutes")
    if r["exit2_other"]: why.append("exit 2 without 'destination changed' by " + r["exit2_other"].upper())
    if not r["manifest"]: why.append("no manifest left")
    print("- %s trial %s (%s, %s first +%sms): %s; evidence in %s" % (
        r["label"], r["trial"], r["mode"], r["first"], r["offset"], "; ".join(why), d))
    for s, (rc, dg, err) in syncs.items():
        e = " ".join(err.split())[:300]
        print("  - %s: exit %d, dst_digest %s%s" % (s.upper(), rc, (dg or "-")[:16], (", stderr: " + e) if e else ""))
    for b in chk["bad"][:5]:
        print("  - %s: manifest says %s… (%s's), bytes are %s… (%s's)" % (
            b["path"], b["claimed"][:12], b["claimed_from"], b["actual"][:12], b["actual_from"]))
    if chk["missing"]:
        print("  - named but absent: " + ", ".join(chk["missing"][:5]))
PY
echo
cat "$WORK/header.txt" | tee -a "$WORK/results.md"
echo "per trial: $WORK/trials.tsv; evidence: $WORK/trials/LABEL/NNN (a/b .json .err .rc, manifest.json, check.json, verify.json)"
if awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "false_claim") c = i; next }
  $1 == "new" && $c != "" { f = 1 } END { exit !f }' "$WORK/trials.tsv"; then
  echo "the binary built here made a false claim with exit 0" >&2
  exit 1
fi
