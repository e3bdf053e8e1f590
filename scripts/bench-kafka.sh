#!/usr/bin/env bash
# Kafka -> word count, lines per second, beside the same topology reading the same lines from a
# file, in the same run (scripts/bench.sh calls it; it also runs alone). Prints:
#   bench: NAME lines=N wall_s=S lines_per_s=R rss_mb=M runs=K (median of runs)
#
#   scripts/bench-kafka.sh [--size-mb N] [--runs N]
#
# - gale-file-acking: topologies/word-count.yaml, acking on (FileLineSpout, reliable).
# - gale-kafka-acking: the same file with its spout a KafkaSpout (AT_LEAST_ONCE, bounded:
#   stopWhenCaughtUp) on a 3-partition topic holding the same lines.
# - gale-kafka-to-kafka: topologies/kafka-word-count.yaml, bounded: every count update written
#   to an output topic by KafkaBolt (one record per word).
# The broker is tansu 0.6.0, in memory, on a free loopback port (scripts/test.sh installs it
# and kafka-python); the lines are produced by kafka-python before the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZE_MB=20
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) SIZE_MB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "unknown option $1 (--size-mb N, --runs N)" >&2; exit 1 ;;
  esac
done
OUT=${GALE_BENCH_DIR:-/tmp/gale-bench}/kafka
mkdir -p "$OUT"
log() { printf '== %s\n' "$*" >&2; }

TANSU=${GALE_TANSU:-$ROOT/target/tansu/tansu}
PY=${GALE_KAFKA_PYTHON:-$ROOT/target/pystorm-venv/bin/python}
if [ ! -x "$TANSU" ] || ! "$PY" -c 'import kafka' 2>/dev/null; then
  log "tansu or kafka-python missing: run scripts/test.sh once (it installs both); Kafka skipped"
  exit 0
fi
cargo build --release --quiet -p gale-cli
GALE="$ROOT/target/release/gale"

INPUT="$OUT/text-${SIZE_MB}mb.txt"
[ -s "$INPUT" ] || python3 scripts/gen-text.py "$SIZE_MB" "$INPUT"
LINES=$(wc -l < "$INPUT")
WORDS=$(wc -w < "$INPUT")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BOOT="127.0.0.1:$PORT"
"$TANSU" broker --listener-url "tcp://$BOOT" --advertised-listener-url "tcp://$BOOT" \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
TANSU_PID=$!
trap 'kill "$TANSU_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
tool() { "$PY" scripts/kafka-tool.py "$1" --bootstrap "$BOOT" "${@:2}"; }
tool create lines 3
tool create word-counts 3
log "producing $LINES lines ($WORDS words) with kafka-python"
s=$(date +%s.%N)
tool produce lines "$INPUT" >/dev/null
e=$(date +%s.%N)
python3 -c "print(f'bench: kafka-python-produce lines=$LINES wall_s={$e-$s:.3f} lines_per_s={$LINES/($e-$s):.0f}')"

# topologies/word-count.yaml with its file spout swapped for a bounded KafkaSpout (same config,
# same bolts).
cat > "$OUT/kafka-word-count-file-sink.yaml" <<'YAML'
name: "kafka-word-count-file-sink"
config:
  topology.workers: ${workers:-2}
  topology.acker.executors: ${ackers:-0}
  topology.max.spout.pending: ${pending:-2000}
spouts:
  - id: "sentences"
    className: "KafkaSpout"
    parallelism: 1
    properties:
      - {name: "bootstrap.servers", value: "${bootstrap}"}
      - {name: "topics", value: "lines"}
      - {name: "group.id", value: "${group}"}
      - {name: "recordTranslator", value: "value"}
      - {name: "stopWhenCaughtUp", value: true}
bolts:
  - {id: "split", className: "SplitSentenceBolt", parallelism: 2}
  - {id: "count", className: "WordCountBolt", parallelism: 2}
  - {id: "sink", className: "TsvSinkBolt", parallelism: 1, properties: [{name: "path", value: "${output}"}]}
streams:
  - {from: "sentences", to: "split", grouping: {type: SHUFFLE}}
  - {from: "split", to: "count", grouping: {type: FIELDS, args: ["word"]}}
  - {from: "count", to: "sink", grouping: {type: GLOBAL}}
YAML
sed -n '/^streams:/,$p' topologies/word-count.yaml | grep -q 'type: GLOBAL' \
  || log "note: topologies/word-count.yaml's streams changed; update this copy"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run NAME YAML [args...]: prints "wall_s rss_mb"; checks every word was counted where the sink
# is a file.
run() {
  local yaml=$1; shift
  local out="$OUT/counts.tsv" s e
  rm -f "$out"
  s=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$OUT/rss" "$GALE" local "$yaml" --set output="$out" "$@" \
    >"$OUT/gale.log" 2>&1 || { tail -20 "$OUT/gale.log" >&2; exit 1; }
  e=$(date +%s.%N)
  if [ -f "$out" ]; then
    local total
    total=$(awk -F'\t' '{s+=$2} END {print s+0}' "$out")
    [ "$total" = "$WORDS" ] || { echo "counted $total words of $WORDS ($yaml)" >&2; exit 1; }
  fi
  python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.4f} {int(sys.argv[3])/1024:.1f}')" "$s" "$e" "$(tail -1 "$OUT/rss")"
}

declare -A WALLS RSS
for i in $(seq 1 "$RUNS"); do
  log "run $i/$RUNS"
  read -r w r < <(run topologies/word-count.yaml --set input="$INPUT" --set ackers=1)
  WALLS[gale-file-acking]+="$w "; RSS[gale-file-acking]+="$r "
  read -r w r < <(run "$OUT/kafka-word-count-file-sink.yaml" --set ackers=1 \
    --set bootstrap="$BOOT" --set group="bench-file-sink-$i-$$")
  WALLS[gale-kafka-acking]+="$w "; RSS[gale-kafka-acking]+="$r "
  read -r w r < <(run topologies/kafka-word-count.yaml --set bootstrap="$BOOT" --set bounded=true \
    --set group="bench-k2k-$i-$$")
  WALLS[gale-kafka-to-kafka]+="$w "; RSS[gale-kafka-to-kafka]+="$r "
done
declare -A LPS
for name in gale-file-acking gale-kafka-acking gale-kafka-to-kafka; do
  w=$(tr ' ' '\n' <<<"${WALLS[$name]}" | grep . | median)
  r=$(tr ' ' '\n' <<<"${RSS[$name]}" | grep . | median)
  LPS[$name]=$(python3 -c "print(round($LINES / $w))")
  echo "bench: $name lines=$LINES wall_s=$w lines_per_s=${LPS[$name]} rss_mb=$r runs=$RUNS (walls: ${WALLS[$name]% })"
done
python3 -c "print(f'bench: ratio gale-kafka-acking/gale-file-acking ratio={${LPS[gale-kafka-acking]} / ${LPS[gale-file-acking]}:.3f}')"
python3 -c "print(f'bench: ratio gale-kafka-to-kafka/gale-kafka-acking ratio={${LPS[gale-kafka-to-kafka]} / ${LPS[gale-kafka-acking]}:.3f}')"
