#!/usr/bin/env bash
# Instructions per word of the local word count, by stage, counted by valgrind's callgrind on a
# 5 MB text. Unlike wall time on this shared machine (10-25% apart from one minute to the next),
# the counts repeat to within a few tenths of a percent, so a change to the tuple path can be
# judged in one run of each binary. Wall time still decides (docs/performance.md): fewer
# instructions helped only where the path was bound by them, not by cache misses.
#
#   scripts/instructions.sh [GALE_BINARY] [--set key=value ...]
#
# Needs valgrind (`apt-get install -y valgrind`). Counts under valgrind include the executors'
# waiting and the zeroing of partly filled batches, which depend on how valgrind interleaves the
# threads; the per-stage figures below leave those out.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }
GALE=target/release/gale
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then GALE=$1; shift; fi
[ -x "$GALE" ] || cargo build --release --quiet -p gale-cli

OUT=${OUT:-/tmp/gale-bench}
TEXT="$OUT/text-5mb.txt"
mkdir -p "$OUT"
[ -s "$TEXT" ] || python3 scripts/gen-text.py 5 "$TEXT"
WORDS=$(wc -w < "$TEXT")
CG="$OUT/callgrind.out"

valgrind --tool=callgrind --callgrind-out-file="$CG" "$GALE" local topologies/word-count.yaml \
  --set input="$TEXT" --set output="$OUT/instructions-counts.tsv" "$@" >/dev/null 2>"$OUT/callgrind.log"

callgrind_annotate --inclusive=yes "$CG" 2>/dev/null | python3 -c '
import re, sys
words = int(sys.argv[1])
stages = {
    "spout": "FileLineSpout as topology_api::component::Spout>::next_tuple",
    "split": "SplitSentenceBolt as topology_api::component::Bolt>::execute",
    "count": "WordCountBolt as topology_api::component::Bolt>::execute",
    "sink": "TsvSinkBolt as topology_api::component::Bolt>::execute",
    "executor loop (all bolts)": "executor::run_batch ",
    "batch zeroing (varies)": "batch::grow ",
}
total, got = 0, {}
for line in sys.stdin:
    m = re.match(r"\s*([0-9,]+) ", line)
    if not m:
        continue
    n = int(m.group(1).replace(",", ""))
    if "PROGRAM TOTALS" in line:
        total = n
    for name, pat in stages.items():
        # The function with all it calls: the largest figure among its lines.
        if pat in line and "=>" not in line:
            got[name] = max(got.get(name, 0), n)
print(f"instructions: words={words} total_per_word={total / words:.1f}")
for name in stages:
    print(f"instructions: {name} per_word={got.get(name, 0) / words:.1f}")
' "$WORDS"
echo "instructions: details with callgrind_annotate --auto=yes $CG"
