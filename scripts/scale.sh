#!/usr/bin/env bash
# The coordination load of a cluster on one ZooKeeper (docs/scale.md).
#
#   scripts/scale.sh [SUPERVISORS [TOPOLOGIES]]   # default 1000 100: simulated supervisors
#   scripts/scale.sh real                         # a real 2-supervisor cluster, idle then running
#
# Simulated: a private ZooKeeper (scripts/zk.sh, no per-address connection cap), a real
# `gale nimbus` (default settings but --supervisor-timeout-secs $SUP_TIMEOUT), and SUPERVISORS
# supervisors' coordination in one process (supervisor/examples/scale_sim.rs: each its own
# ZooKeeper session and the Supervisor's own following logic; no workers run), SLOTS slots each
# (default 4), and TOPOLOGIES topologies that fill every slot. Over a steady WINDOW (default 60 s)
# it reports ZooKeeper's requests/s (reads and writes of Gale's nodes, from mntr; and every
# packet, keep-alive pings included), bytes/s (read and written nodes; all received and sent),
# Nimbus's assignment pass time (from /metrics), and the time from a supervisor's death to its
# executors' reassignment.
#
# Real: ZooKeeper, Nimbus and 2 `gale supervisor`s (2 slots each), all with default settings;
# ZooKeeper's requests/s idle, then with a 2-worker topology running: per supervisor and per
# worker.
#
# Everything binds to 127.0.0.1 on free ports and is stopped by PID at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=sim
if [ "${1:-}" = real ]; then MODE=real; shift; fi
SUPERVISORS=${1:-1000}
TOPOLOGIES=${2:-100}
SLOTS=${SLOTS:-4}
WINDOW=${WINDOW:-60}
SUP_TIMEOUT=${SUP_TIMEOUT:-10}

log() { echo "== $*" >&2; }

cargo build --release --quiet -p gale-cli
[ "$MODE" = sim ] && cargo build --release --quiet -p supervisor --example scale_sim
GALE=${CARGO_TARGET_DIR:-target}/release/gale
SIM=${CARGO_TARGET_DIR:-target}/release/examples/scale_sim

DIR=$(mktemp -d "${TMPDIR:-/tmp}/gale-scale.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bash scripts/zk.sh stop "$DIR/zk" || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# mntr's counters as JSON. Requests are the reads and writes of nodes under Gale's root
# (zk_cnt_<root>_read/write_per_namespace: pings and session traffic not included; their sums
# are bytes); packets are everything received, keep-alive pings included.
mntr() {
  python3 - "${ZK%:*}" "${ZK#*:}" "${GALE_ZK_ROOT:-/gale}" <<'PY'
import json, socket, sys, time
ns = sys.argv[3].strip("/").split("/")[0]
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"mntr")
m = {}
for line in s.makefile().read().splitlines():
    k, _, v = line.partition("\t")
    try:
        m[k] = float(v)
    except ValueError:
        pass
print(json.dumps({
    "t": time.time(),
    "reads": m.get(f"zk_cnt_{ns}_read_per_namespace", 0),
    "writes": m.get(f"zk_cnt_{ns}_write_per_namespace", 0),
    "read_bytes": m.get(f"zk_sum_{ns}_read_per_namespace", 0),
    "write_bytes": m.get(f"zk_sum_{ns}_write_per_namespace", 0),
    "packets": m.get("zk_packets_received", 0),
    "bytes_in": m.get("zk_bytes_received_count", 0),
    "bytes_out": m.get("zk_response_bytes", 0),
    "connections": m.get("zk_num_alive_connections", 0),
    "watches": m.get("zk_watch_count", 0),
    "znodes": m.get("zk_znode_count", 0),
    "data_bytes": m.get("zk_approximate_data_size", 0),
}))
PY
}

# The leader's pass counters and ZooKeeper requests from /metrics:
# "count sum_seconds max_seconds requests".
passes() {
  python3 - "$NIMBUS" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=30).read().decode()
v = {}
for line in text.splitlines():
    if line.startswith("gale_nimbus_assignment_pass"):
        k, val = line.rsplit(" ", 1)
        v[k] = float(val)
    if line.startswith("gale_nimbus_zookeeper_requests_total"):
        v["requests"] = v.get("requests", 0) + float(line.rsplit(" ", 1)[1])
print(v.get("gale_nimbus_assignment_pass_seconds_count", 0),
      v.get("gale_nimbus_assignment_pass_seconds_sum", 0),
      v.get("gale_nimbus_assignment_pass_recent_max_seconds", 0),
      v.get("requests", 0))
PY
}

# rate A B: per-second rates between two mntr samples.
rate() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
dt = b["t"] - a["t"]
r = lambda k: (b[k] - a[k]) / dt
print(json.dumps({"seconds": round(dt, 1),
                  "requests_per_s": round(r("reads") + r("writes"), 1),
                  "reads_per_s": round(r("reads"), 1), "writes_per_s": round(r("writes"), 1),
                  "packets_per_s": round(r("packets"), 1),
                  "mb_read_per_s": round(r("read_bytes") / 1e6, 3),
                  "mb_written_per_s": round(r("write_bytes") / 1e6, 3),
                  "mb_in_per_s": round(r("bytes_in") / 1e6, 3),
                  "mb_out_per_s": round(r("bytes_out") / 1e6, 3),
                  "connections": b["connections"], "watches": b["watches"],
                  "znodes": b["znodes"], "data_mb": round(b["data_bytes"] / 1e6, 2)}))
PY
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "timed out after ${limit}s waiting for $what" >&2; exit 1; }
    sleep 1
  done
}

ZK=$(ZK_MAX_CLIENTS=0 ZK_HEAP=${ZK_HEAP:-1g} bash scripts/zk.sh start "$DIR/zk")
export GALE_ZOOKEEPER=$ZK
NIMBUS=127.0.0.1:$(free_port)
export GALE_NIMBUS=$NIMBUS

# The topology every run submits: TestWordSpout -> WordCountBolt, one executor of each per
# worker (and Storm's one acker per worker).
topology() { # topology NAME WORKERS
  cat > "$DIR/$1.yaml" <<YAML
name: $1
config: {topology.workers: $2}
spouts: [{id: words, className: TestWordSpout, parallelism: $2}]
bolts: [{id: count, className: WordCountBolt, parallelism: $2}]
streams: [{from: words, to: count, grouping: {type: FIELDS, args: [word]}}]
YAML
  "$GALE" submit "$DIR/$1.yaml" >/dev/null
}

if [ "$MODE" = real ]; then
  log "ZooKeeper $ZK; Nimbus and 2 supervisors with default settings"
  "$GALE" nimbus --listen "$NIMBUS" >"$DIR/nimbus.log" 2>&1 &
  PIDS+=($!)
  for s in a b; do
    "$GALE" supervisor --id "sup-$s" --host 127.0.0.1 --ports "$(free_port),$(free_port)" \
      --work-dir "$DIR/work-$s" >"$DIR/supervisor-$s.log" 2>&1 &
    PIDS+=($!)
  done
  wait_for 60 "Nimbus" "$GALE" list
  sleep 15
  a=$(mntr); sleep "$WINDOW"; b=$(mntr)
  idle=$(rate "$a" "$b")
  log "idle: $idle"
  topology scale-real 2
  wait_for 60 "2 workers running" bash -c "\"$GALE\" status scale-real --format json | python3 -c 'import json,sys; t=json.load(sys.stdin)[\"topologies\"][0]; sys.exit(0 if len({(a[\"supervisor\"], a[\"port\"]) for a in t[\"assignment\"]}) == 2 else 1)'"
  sleep 15
  a=$(mntr); sleep "$WINDOW"; b=$(mntr)
  running=$(rate "$a" "$b")
  log "2 workers running: $running"
  python3 - "$idle" "$running" <<'PY'
import json, sys
idle, run = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| cluster | requests/s (reads+writes) | per supervisor (idle) | per worker (added) | packets/s (pings included) | MB/s read+written | MB/s in/out |")
print("|---|---|---|---|---|---|---|")
print(f"| 2 supervisors, idle | {idle['requests_per_s']} ({idle['reads_per_s']}+{idle['writes_per_s']}) | {idle['requests_per_s'] / 2:.2f} | | {idle['packets_per_s']} | {idle['mb_read_per_s'] + idle['mb_written_per_s']:.4f} | {idle['mb_in_per_s']}/{idle['mb_out_per_s']} |")
added = (run['requests_per_s'] - idle['requests_per_s']) / 2
print(f"| 2 supervisors, 2 workers | {run['requests_per_s']} ({run['reads_per_s']}+{run['writes_per_s']}) | | {added:.2f} | {run['packets_per_s']} | {run['mb_read_per_s'] + run['mb_written_per_s']:.4f} | {run['mb_in_per_s']}/{run['mb_out_per_s']} |")
PY
  exit 0
fi

WORKERS=$(( SUPERVISORS * SLOTS / TOPOLOGIES ))
log "ZooKeeper $ZK; Nimbus $NIMBUS; $SUPERVISORS simulated supervisors x $SLOTS slots; $TOPOLOGIES topologies x $WORKERS workers"
"$GALE" nimbus --listen "$NIMBUS" --supervisor-timeout-secs "$SUP_TIMEOUT" >"$DIR/nimbus.log" 2>&1 &
PIDS+=($!)
"$SIM" --zookeeper "$ZK" --supervisors "$SUPERVISORS" --slots "$SLOTS" --duration 3600 \
  --kill-when "$DIR/kill" >"$DIR/sim.log" 2>"$DIR/sim.err" &
PIDS+=($!)
wait_for 60 "Nimbus" "$GALE" list
sim_says() { grep -q "$1" "$DIR/sim.log"; }
wait_for 300 "every supervisor registered" sim_says "registered=$SUPERVISORS "
start=$SECONDS
for i in $(seq 1 "$TOPOLOGIES"); do topology "scale-$i" "$WORKERS"; done
log "submitted $TOPOLOGIES topologies in $((SECONDS - start)) s"
slots=$((SUPERVISORS * SLOTS))
wait_for 600 "every slot running" bash -c "tail -1 '$DIR/sim.log' | grep -q 'running_slots=$slots '"
log "every slot running $((SECONDS - start)) s after the first submission; settling 20 s"
sleep 20
a=$(mntr); pa=$(passes); sleep "$WINDOW"; b=$(mntr); pb=$(passes)
steady=$(rate "$a" "$b")
log "steady: $steady"
read -r c0 s0 _ r0 <<<"$pa"; read -r c1 s1 max r1 <<<"$pb"
pass=$(python3 -c "c=$c1-$c0; print(f'{c:.0f} passes, mean {($s1-$s0)/c*1000 if c else 0:.1f} ms, longest of the last 100 {$max*1000:.1f} ms')")
nimbus_rate=$(python3 -c "print(f'{($r1-$r0)/$WINDOW:.1f}')")
log "Nimbus sent $nimbus_rate ZooKeeper requests/s (the rest: supervisors)"
log "Nimbus: $pass"
touch "$DIR/kill"
wait_for 180 "the killed supervisor's executors to move" sim_says "released:"
grep -E "^(kill|reassigned|released)" "$DIR/sim.log" >&2
moved=$(grep -E "^reassigned" "$DIR/sim.log" | grep -Eo '[0-9.]+ s after' | grep -Eo '[0-9.]+')
released=$(grep -E "^released" "$DIR/sim.log" | grep -Eo '[0-9.]+ s after' | grep -Eo '[0-9.]+')
python3 - "$steady" "$SUPERVISORS" "$TOPOLOGIES" "$pass" "$moved" "$released" "$SUP_TIMEOUT" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
n, t, p, moved, released, sup_t = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
print("| supervisors | topologies | requests/s (reads+writes) | packets/s (pings included) | MB/s read+written | MB/s in/out | Nimbus pass | reassigned after death | znodes | watches |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {n} | {t} | {s['requests_per_s']} ({s['reads_per_s']}+{s['writes_per_s']}) | {s['packets_per_s']} | {s['mb_read_per_s'] + s['mb_written_per_s']:.3f} | {s['mb_in_per_s']}/{s['mb_out_per_s']} | {p} | {moved} s, released {released} s (supervisor timeout {sup_t} s) | {s['znodes']:.0f} | {s['watches']:.0f} |")
PY
