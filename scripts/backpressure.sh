#!/usr/bin/env bash
# Backpressure check (issue 7): a spout as fast as it can go into a bolt that sleeps 1 ms per tuple.
# Bounded queues must hold the spout back: RSS stays flat and nothing is lost.
#   scripts/backpressure.sh [SECS]   (default 60)
# Prints RSS samples and one line: bench: backpressure rss_first_mb=.. rss_last_mb=.. growth=.. lost=..
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
cargo build --release --quiet -p gale-cli
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/bp.yaml" <<'YAML'
name: "backpressure"
config:
  topology.acker.executors: 0
spouts:
  - {id: "fast", className: "RandomSentenceSpout"}
bolts:
  - id: "slow"
    className: "SleepBolt"
    properties: [{name: "millis", value: 1}]
streams:
  - {from: "fast", to: "slow", grouping: {type: SHUFFLE}}
YAML
target/release/gale local "$dir/bp.yaml" --duration "$SECS" --metrics-json "$dir/m.json" >"$dir/out" 2>&1 &
pid=$!
samples=()
for _ in $(seq 1 $((SECS / 5))); do
  sleep 5
  rss=$(ps -o rss= -p "$pid" 2>/dev/null || echo 0)
  samples+=("$rss")
  echo "rss_kb=$rss"
done
wait "$pid"
python3 - "$dir/m.json" "${samples[@]}" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
s = [int(x) for x in sys.argv[2:] if int(x) > 0]
c = {x["id"]: x for x in m["components"]}
lost = c["fast"]["emitted"] - c["slow"]["executed"]
# Growth from the second sample (the first includes start-up) to the last.
first, last = s[1] if len(s) > 1 else s[0], s[-1]
growth = (last - first) / first
print(f"bench: backpressure secs={m['elapsed_secs']:.0f} emitted={c['fast']['emitted']} executed={c['slow']['executed']} "
      f"lost={lost} rss_first_mb={first/1024:.1f} rss_last_mb={last/1024:.1f} growth={growth:.3f}")
sys.exit(0 if lost == 0 and growth < 0.10 else 1)
PY
