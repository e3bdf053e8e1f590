#!/usr/bin/env bash
# Gale's benchmark (docs/contract.md §11): word count in local mode and on a 2-supervisor cluster (TCP between
# workers, on this machine) against the peers in ../shared/peers/, on the same generated text, in the
# same run. Prints one line per measurement:
#   bench: NAME words=N wall_s=S words_per_s=R rss_mb=M runs=3 (median of runs)
# and Gale's ratio to each peer.
#
#   scripts/bench.sh [--size-mb N] [--runs N] [--no-flink]
#
# Ends with scripts/bench-kafka.sh (Kafka -> word count beside the same topology from a file).
#
# The peers are built into $PEERS_DIR (default /tmp/gale-peers) by ../shared/peers/setup.sh.
# Flink (an ~850 MB download the first time, ~1 GB of memory per run) is skipped with --no-flink.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZE_MB=100
RUNS=3
EVENTS=5000000
FLINK=1
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) SIZE_MB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --events) EVENTS=$2; shift 2 ;;
    --flink) FLINK=1; shift ;;
    --no-flink) FLINK=0; shift ;;
    *) echo "unknown option $1 (--size-mb N, --runs N, --events N, --no-flink)" >&2; exit 1 ;;
  esac
done
PEERS_SRC=$(cd "$ROOT/../shared/peers" 2>/dev/null && pwd || true)
OUT=${GALE_BENCH_DIR:-/tmp/gale-bench}
mkdir -p "$OUT"

log() { printf '== %s\n' "$*" >&2; }

if [ ! -x /usr/bin/time ]; then
  log "installing GNU time (peak RSS)"
  sudo_="" ; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq time >/dev/null
fi

log "building gale (release)"
cargo build --release --quiet -p gale-cli
GALE="$ROOT/target/release/gale"

INPUT="$OUT/text-${SIZE_MB}mb.txt"
if [ ! -s "$INPUT" ]; then
  log "generating ${SIZE_MB} MB of text"
  python3 scripts/gen-text.py "$SIZE_MB" "$INPUT"
fi
WORDS=$(wc -w < "$INPUT")
log "input: $INPUT, $WORDS words"

PEERS=()
if [ -n "$PEERS_SRC" ] && [ -x "$PEERS_SRC/run.sh" ]; then
  log "building peers (rust) in ${PEERS_DIR:-/tmp/gale-peers}"
  "$PEERS_SRC/setup.sh" rust >&2
  PEERS=(limit-1t timely-2w)
  if [ "$FLINK" = 1 ]; then
    "$PEERS_SRC/setup.sh" flink >&2
  fi
else
  log "../shared/peers not found: measuring Gale alone"
fi

# gale_run [extra args...]: one run; prints "wall_s rss_mb"
gale_run() {
  local out="$OUT/counts.tsv"
  rm -f "$out"
  local s e
  s=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$OUT/rss" "$GALE" local topologies/word-count.yaml \
    --set input="$INPUT" --set output="$out" "$@" >"$OUT/gale.log" 2>&1 \
    || { tail -20 "$OUT/gale.log" >&2; exit 1; }
  e=$(date +%s.%N)
  grep -o 'sentences: mean complete latency [0-9.]* ms, p50 [0-9.]* ms, p99 [0-9.]* ms' "$OUT/gale.log" \
    | awk '{print $8, $11}' > "$OUT/complete_ms" || true
  # Every word must have been counted.
  local total
  total=$(awk -F'\t' '{s+=$2} END {print s+0}' "$out")
  if [ "$total" != "$WORDS" ]; then
    echo "gale counted $total words, wc -w says $WORDS" >&2
    exit 1
  fi
  python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.4f} {int(sys.argv[3])/1024:.1f}')" "$s" "$e" "$(tail -1 "$OUT/rss")"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# stateful_run PROVIDER [extra args...]: the stateful word count (1 s checkpoints) on the same
# input, fresh state; prints "wall_s rss_mb checkpoint_p50_ms checkpoint_p99_ms" (checkpoint: the
# complete latency of the checkpoint spout's actions, PREPARE and COMMIT each).
stateful_run() {
  local provider=$1; shift
  local out="$OUT/stateful-counts.tsv" state="$OUT/state"
  rm -rf "$out" "$state"
  # State outlives a run (a second run goes on from it): each run starts from none.
  if [ "$provider" = redis ]; then
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
  fi
  local s e
  s=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$OUT/rss" "$GALE" local topologies/stateful-word-count.yaml \
    --set input="$INPUT" --set output="$out" --state-dir "$state" --set provider="$provider" "$@" \
    >"$OUT/stateful.log" 2>&1 || { tail -20 "$OUT/stateful.log" >&2; exit 1; }
  e=$(date +%s.%N)
  local total
  total=$(awk -F'\t' '{s+=$2} END {print s+0}' "$out")
  if [ "$total" != "$WORDS" ]; then
    echo "stateful gale ($provider) counted $total words, wc -w says $WORDS" >&2
    exit 1
  fi
  local ck
  ck=$(grep -o 'checkpointspout: mean complete latency [0-9.]* ms, p50 [0-9.]* ms, p99 [0-9.]* ms' "$OUT/stateful.log" \
    | awk '{print $8, $11}')
  python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.4f} {int(sys.argv[3])/1024:.1f} {sys.argv[4]} {sys.argv[5]}')" \
    "$s" "$e" "$(tail -1 "$OUT/rss")" ${ck:-0 0}
}

# cluster_run: submit word count, wait until the sink has seen every word; prints "wall_s rss_mb"
# (wall from submit to the last word counted, as heartbeats report it, every 0.5 s; RSS: both
# supervisors, which host the workers).
cluster_run() {
  local out="$OUT/cluster-counts.tsv"
  rm -f "$out"
  local s e
  s=$(date +%s.%N)
  "$GALE" submit topologies/word-count.yaml --set input="$INPUT" --set output="$out" >/dev/null
  # The end is when the sink last executed a tuple, as its worker recorded it (status shows it as
  # of the last heartbeat, every 0.5 s; timing the status poll would add up to that lag).
  e=$(python3 - "$GALE" "$WORDS" <<'PY'
import json, subprocess, sys, time
gale, words = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 600
while time.time() < deadline:
    out = subprocess.run([gale, "status", "word-count", "--format", "json"], capture_output=True, text=True)
    if out.returncode == 0:
        t = json.loads(out.stdout)["topologies"][0]
        sink = next(c for c in t["components"] if c["id"] == "sink")
        if sink["stats"]["executed"] >= words:
            last = sink["stats"].get("last_executed_us")
            print(f"{last / 1e6:.6f}" if last else f"{time.time():.6f}")
            sys.exit(0)
    # Polling is only to learn that it ended (the end time comes from the worker): rarely, so
    # the poller takes little CPU from the run it measures.
    time.sleep(0.5)
sys.exit("cluster word count did not finish in 600 s")
PY
)
  local rss=0
  for f in "$CLUSTER_DIR"/supervisor-*.pid; do
    rss=$((rss + $(ps -o rss= -p "$(cat "$f")" 2>/dev/null || echo 0)))
  done
  "$GALE" kill word-count -w 0 >/dev/null
  for _ in $(seq 1 100); do
    "$GALE" list | grep -q "No topologies running." && break
    sleep 0.2
  done
  python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.4f} {int(sys.argv[3])/1024:.1f}')" "$s" "$e" "$rss"
}

log "start to first tuple: the bundled word count on its sample, from before exec to the first tuple a bolt executed"
FIRST=""
for i in 1 2 3 4 5; do
  s=$(date +%s%6N)
  "$GALE" local topologies/word-count.yaml --set output="$OUT/sample.tsv" --metrics-json "$OUT/first.json" >/dev/null 2>&1
  FIRST+="$(python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); print((m["first_tuple_unix_us"] - int(sys.argv[2])) / 1000)' "$OUT/first.json" "$s") "
done
first=$(tr ' ' '\n' <<<"$FIRST" | grep . | median)
echo "bench: start-to-first-tuple ms=$first runs=5 (all: $FIRST)"

declare -A WALLS RSS
FLINK_WINDOW_WALLS=""; FLINK_WINDOW_RSS=""
LAT50=""; LAT99=""
for i in $(seq 1 "$RUNS"); do
  log "run $i/$RUNS"
  read -r w r < <(gale_run)
  WALLS[gale-local]+="$w "; RSS[gale-local]+="$r "
  read -r w r < <(gale_run --set ackers=2)
  WALLS[gale-local-acking]+="$w "; RSS[gale-local-acking]+="$r "
  read -r p50 p99 < "$OUT/complete_ms" || true
  LAT50+="${p50:-0} "; LAT99+="${p99:-0} "
  for p in "${PEERS[@]}"; do
    line=$("$PEERS_SRC/run.sh" "$p" "$INPUT")
    w=$(sed -n 's/.* wall_s=\([0-9.]*\).*/\1/p' <<<"$line")
    r=$(sed -n 's/.* rss_mb=\([0-9.]*\).*/\1/p' <<<"$line")
    WALLS[$p]+="$w "; RSS[$p]+="$r "
  done
done

log "stateful word count (1 s checkpoints): embedded store, then Redis (a private redis-server)"
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if command -v redis-server >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$OUT" >/dev/null 2>&1 &
  REDIS_PID=$!
  trap 'kill "$REDIS_PID" 2>/dev/null || true' EXIT
  sleep 0.5
else
  REDIS_PID=""
  log "redis-server not installed: the Redis run is skipped (scripts/test.sh installs it)"
fi
CK50=""; CK99=""
for i in $(seq 1 "$RUNS"); do
  read -r w r c50 c99 < <(stateful_run embedded)
  WALLS[gale-local-stateful-embedded]+="$w "; RSS[gale-local-stateful-embedded]+="$r "
  CK50+="$c50 "; CK99+="$c99 "
  if [ -n "$REDIS_PID" ]; then
    read -r w r _ _ < <(stateful_run redis --set redis.port="$REDIS_PORT")
    WALLS[gale-local-stateful-redis]+="$w "; RSS[gale-local-stateful-redis]+="$r "
  fi
done
[ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true

log "event-time windows: $EVENTS events, 1,000 keys, 10 s tumbling windows per key, 10 s lag"
EVENTS_FILE="$OUT/events-$EVENTS.tsv"
[ -s "$EVENTS_FILE" ] || python3 scripts/gen-events.py "$EVENTS" "$EVENTS_FILE" --keys 1000 \
  --shuffle-ms 10000 --late-every 1000 --late-ms 60000
# window_run: one run of topologies/event-time-counts.yaml; prints "wall_s rss_mb". Every event is
# counted in its window or on the late stream.
window_run() {
  local out="$OUT/window-counts.tsv" late="$OUT/window-late.tsv" s e
  rm -f "$out" "$late"
  s=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$OUT/rss" "$GALE" local topologies/event-time-counts.yaml \
    --set input="$EVENTS_FILE" --set output="$out" --set late="$late" --set lag.s=10 \
    >"$OUT/window.log" 2>&1 || { tail -20 "$OUT/window.log" >&2; exit 1; }
  e=$(date +%s.%N)
  local counted late_n
  counted=$(awk -F'\t' '{s+=$2} END {print s+0}' "$out")
  late_n=$(wc -l < "$late" 2>/dev/null || echo 0)
  if [ "$((counted + late_n))" != "$EVENTS" ]; then
    echo "event-time windows counted $counted + $late_n late of $EVENTS events" >&2
    exit 1
  fi
  python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.4f} {int(sys.argv[3])/1024:.1f}')" \
    "$s" "$e" "$(tail -1 "$OUT/rss")"
}
WINDOW_WALLS=""; WINDOW_RSS=""
for i in $(seq 1 "$RUNS"); do
  read -r w r < <(window_run)
  WINDOW_WALLS+="$w "; WINDOW_RSS+="$r "
done

log "multi-lang: word count with a Python split bolt beside the all-Rust one (5 MB: Python is slow)"
SMALL="$OUT/text-5mb.txt"
[ -s "$SMALL" ] || python3 scripts/gen-text.py 5 "$SMALL"
SMALL_WORDS=$(wc -w < "$SMALL")
multilang_run() { # YAML -> wall seconds
  local s e
  s=$(date +%s.%N)
  "$GALE" local "$1" --set input="$SMALL" --set output="$OUT/ml.tsv" >/dev/null 2>&1
  e=$(date +%s.%N)
  python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.4f}')" "$s" "$e"
}
PYW=""; RSW=""
for i in $(seq 1 "$RUNS"); do
  PYW+="$(multilang_run examples/multilang/word-count-python.yaml) "
  RSW+="$(multilang_run topologies/word-count.yaml) "
done
pyw=$(tr ' ' '\n' <<<"$PYW" | grep . | median)
rsw=$(tr ' ' '\n' <<<"$RSW" | grep . | median)
python3 -c "w=$SMALL_WORDS; print(f'bench: multilang-python-split words={w} wall_s=$pyw words_per_s={w/$pyw:.0f}'); print(f'bench: rust-split-same-input words={w} wall_s=$rsw words_per_s={w/$rsw:.0f}'); print(f'bench: ratio python-split/rust-split ratio={$rsw/$pyw:.3f}')"

log "batch-size sweep (b = 1, 10, 100, 1000; fixed offered rate and full speed)"
python3 scripts/sweep.py "$GALE" "$OUT/sweep" docs/sweep.svg --secs 3

# The cluster: ZooKeeper, Nimbus and 2 Supervisors on this machine, TCP between the workers. It
# starts only now: ZooKeeper's JVM compiles and the daemons heartbeat, which disturbed the
# latency-mode measurement of the sweep when the cluster was already up (p99 1.35 ms in such a
# run, 0.06-0.10 ms on a quiet machine).
CLUSTER_DIR="$OUT/cluster"
export GALE_CLUSTER_DIR="$CLUSTER_DIR" GALE_BIN="$GALE"
scripts/cluster.sh stop >/dev/null 2>&1 || true
# A fresh cluster: ZooKeeper keeps its data between starts, so a run interrupted earlier would
# leave its word count topology running there.
rm -rf "$CLUSTER_DIR"
scripts/cluster.sh start 2 >&2
eval "$(scripts/cluster.sh status | tail -1)"
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT
# A cluster is measured running, as it would be in use: ZooKeeper's JVM first finishes compiling
# its start-up code (seconds of a core), which would otherwise land on the first run.
sleep 10

log "cluster runs (the cluster is up only now, so it does not disturb the runs above)"
for i in $(seq 1 "$RUNS"); do
  read -r w r < <(cluster_run)
  WALLS[gale-cluster]+="$w "; RSS[gale-cluster]+="$r "
done
scripts/cluster.sh stop >/dev/null 2>&1 || true

if [ "$FLINK" = 1 ]; then
  # Last: a 1 GB JVM leaves the kernel reclaiming memory for a while after it exits, which
  # slowed the runs that followed it when it ran in the loop above.
  log "flink-p2 and flink-ckpt-p2 (a checkpoint every second) runs"
  PEERS+=(flink-p2 flink-ckpt-p2)
  for i in $(seq 1 "$RUNS"); do
    for f in flink-p2 flink-ckpt-p2; do
      line=$("$PEERS_SRC/run.sh" "$f" "$INPUT")
      w=$(sed -n 's/.* wall_s=\([0-9.]*\).*/\1/p' <<<"$line")
      r=$(sed -n 's/.* rss_mb=\([0-9.]*\).*/\1/p' <<<"$line")
      WALLS[$f]+="$w "; RSS[$f]+="$r "
    done
    line=$("$PEERS_SRC/run.sh" flink-window-p2 "$EVENTS_FILE")
    FLINK_WINDOW_WALLS+="$(sed -n 's/.* wall_s=\([0-9.]*\).*/\1/p' <<<"$line") "
    FLINK_WINDOW_RSS+="$(sed -n 's/.* rss_mb=\([0-9.]*\).*/\1/p' <<<"$line") "
  done
fi

declare -A WPS
STATEFUL=(gale-local-stateful-embedded)
[ -n "${WALLS[gale-local-stateful-redis]:-}" ] && STATEFUL+=(gale-local-stateful-redis)
for name in gale-local gale-local-acking "${STATEFUL[@]}" gale-cluster "${PEERS[@]}"; do
  w=$(tr ' ' '\n' <<<"${WALLS[$name]}" | grep . | median)
  r=$(tr ' ' '\n' <<<"${RSS[$name]}" | grep . | median)
  wps=$(python3 -c "print(round($WORDS / $w))")
  WPS[$name]=$wps
  label=$name; [[ "$name" = gale-* ]] || label="peer-$name"
  echo "bench: $label words=$WORDS wall_s=$w words_per_s=$wps rss_mb=$r runs=$RUNS (walls: ${WALLS[$name]% })"
done
for p in "${PEERS[@]}"; do
  for g in gale-local gale-cluster; do
    python3 -c "print(f'bench: ratio $g/$p ratio={${WPS[$g]} / ${WPS[$p]}:.3f}')"
  done
done
python3 -c "print(f'bench: ratio gale-cluster/gale-local ratio={${WPS[gale-cluster]} / ${WPS[gale-local]}:.3f}')"
p50=$(tr ' ' '\n' <<<"$LAT50" | grep . | median)
p99=$(tr ' ' '\n' <<<"$LAT99" | grep . | median)
python3 -c "print(f'bench: ratio gale-local-acking/gale-local ratio={${WPS[gale-local-acking]} / ${WPS[gale-local]}:.3f} complete_p50_ms=$p50 complete_p99_ms=$p99')"
for st in "${STATEFUL[@]}"; do
  python3 -c "print(f'bench: ratio $st/gale-local ratio={${WPS[$st]} / ${WPS[gale-local]}:.3f}'); print(f'bench: ratio $st/gale-local-acking ratio={${WPS[$st]} / ${WPS[gale-local-acking]}:.3f}')"
  if [ -n "${WPS[flink-ckpt-p2]:-}" ]; then
    python3 -c "print(f'bench: ratio $st/flink-ckpt-p2 ratio={${WPS[$st]} / ${WPS[flink-ckpt-p2]}:.3f}')"
  fi
done
w=$(tr ' ' '\n' <<<"$WINDOW_WALLS" | grep . | median)
r=$(tr ' ' '\n' <<<"$WINDOW_RSS" | grep . | median)
GALE_EPS=$(python3 -c "print(round($EVENTS / $w))")
echo "bench: gale-local-event-time-window events=$EVENTS wall_s=$w events_per_s=$GALE_EPS rss_mb=$r runs=$RUNS (walls: ${WINDOW_WALLS% })"
if [ -n "${FLINK_WINDOW_WALLS:-}" ]; then
  w=$(tr ' ' '\n' <<<"$FLINK_WINDOW_WALLS" | grep . | median)
  r=$(tr ' ' '\n' <<<"$FLINK_WINDOW_RSS" | grep . | median)
  eps=$(python3 -c "print(round($EVENTS / $w))")
  echo "bench: peer-flink-window-p2 events=$EVENTS wall_s=$w events_per_s=$eps rss_mb=$r runs=$RUNS (walls: ${FLINK_WINDOW_WALLS% })"
  python3 -c "print(f'bench: ratio gale-local-event-time-window/flink-window-p2 ratio={$GALE_EPS / $eps:.3f}')"
fi
c50=$(tr ' ' '\n' <<<"$CK50" | grep . | median)
c99=$(tr ' ' '\n' <<<"$CK99" | grep . | median)
echo "bench: checkpoint-actions embedded p50_ms=$c50 p99_ms=$c99 (complete latency of each PREPARE and COMMIT)"

log "Kafka: word count from a topic beside the same topology from a file (scripts/bench-kafka.sh)"
scripts/bench-kafka.sh --runs "$RUNS"
