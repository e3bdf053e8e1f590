#!/usr/bin/env bash
# Instructions per word of the local word count, by stage, counted by valgrind's callgrind on a
# 5 MB text. Unlike wall time on this shared machine (10-25% apart from one minute to the next),
# the counts repeat to within a few tenths of a percent, so a change to the tuple path can be
# judged in one run of each binary. Wall time still decides (docs/performance.md): fewer
# instructions helped only where the path was bound by them, not by cache misses.
#
#   scripts/instructions.sh [GALE_BINARY] [--set key=value ...]
#
# Needs valgrind (`apt-get install -y valgrind`). Each thread is profiled on its own: a bolt's
# `execute` is inlined into its executor's loop (`Bolt::execute_batch`), so a stage is its
# thread's executor loop with everything it calls. Counts under valgrind include the executors'
# waiting and the zeroing of partly filled batches, which depend on how valgrind interleaves the
# threads; the per-stage figures leave those out. Valgrind counts each iteration of `rep stosb`
# and `rep movsb` as an instruction, so zeroing and large copies look far bigger than they are.
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

rm -f "$CG" "$CG"-*
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$CG" "$GALE" local topologies/word-count.yaml \
  --set input="$TEXT" --set output="$OUT/instructions-counts.tsv" "$@" >/dev/null 2>"$OUT/callgrind.log"

# One profile per thread: a bolt's `execute` is inlined into its executor's loop
# (`Bolt::execute_batch`), so a stage is told by its thread, and a thread by the functions it ran.
python3 - "$WORDS" "$CG" <<'PY'
import glob, re, subprocess, sys
words, cg = int(sys.argv[1]), sys.argv[2]
# What a thread ran that no other stage runs (first inserts are kept out of line).
marks = [
    ("spout", "FileLineSpout as topology_api::component::Spout>::next_tuple"),
    ("count", "WordCountBolt::first_seen"),
    ("sink", "TsvSinkBolt::insert_int"),
    ("split", "executor::run_batch|BoltExecutor::run"),
    # With acking on: what is left that sends tuples.
    ("acker", "Router::send_to"),
]
stages = {name: 0 for name, _ in marks}
zeroing = total = 0
for f in sorted(glob.glob(cg + "-*")):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", f],
                         capture_output=True, text=True).stdout
    funcs, thread = {}, 0
    for line in out.splitlines():
        m = re.match(r"\s*([0-9,]+) ", line)
        if not m or "=>" in line:
            continue
        n = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total += n
            thread = n
            continue
        # The function with all it calls: the largest figure among its lines.
        name = line.split(":", 1)[-1].split(" [")[0]
        funcs[name] = max(funcs.get(name, 0), n)
    def cost(pats):
        # `a|b`: the largest figure of any function matching a or b.
        return max((n for k, n in funcs.items() for p in pats.split("|") if p in k), default=0)
    grow = cost("batch::grow")
    zeroing += grow
    for name, pat in marks:
        if cost(pat):
            # A stage: its executor's loop with all it calls (the bolt's `execute` is inlined
            # into it), the zeroing of the batches it fills left out (it varies).
            # The spout: its `next_tuple`; an acker: its whole thread.
            # A bolt's batch: `run_batch`, or `BoltExecutor::run` where it is inlined into it.
            batch = cost("executor::run_batch|BoltExecutor::run")
            work = {"spout": cost("Spout>::next_tuple"), "acker": thread}
            stages[name] += work.get(name, batch) - grow
            break
print(f"instructions: words={words} total_per_word={total / words:.1f}")
for name, n in stages.items():
    print(f"instructions: {name} per_word={n / words:.1f}")
print(f"instructions: batch zeroing (varies) per_word={zeroing / words:.1f}")
PY
echo "instructions: details with callgrind_annotate --auto=yes $CG-NN (one per thread)"
