#!/usr/bin/env python3
"""Timestamped events for the event-time examples, tests and benchmark.

    scripts/gen-events.py EVENTS OUT [--keys N] [--step-ms MS] [--shuffle-ms MS]
                          [--late-every N] [--late-ms MS] [--seed S]

Writes EVENTS lines of `<epoch ms><TAB><key>`: timestamps rise by about --step-ms per event
from 2023-11-14 22:13:20 UTC, keys are `key-0`..`key-(N-1)`. Each event is written up to
--shuffle-ms after its place in time order (out of order, within that bound), and every
--late-every-th event --late-ms after it (a late event for a lag below that). Deterministic
for a seed. Lines are the format `../shared/peers/run.sh flink-window-p2` reads.
"""
import argparse
import random

p = argparse.ArgumentParser()
p.add_argument("events", type=int)
p.add_argument("out")
p.add_argument("--keys", type=int, default=20)
p.add_argument("--step-ms", type=int, default=10)
p.add_argument("--shuffle-ms", type=int, default=5000)
p.add_argument("--late-every", type=int, default=0)
p.add_argument("--late-ms", type=int, default=60000)
p.add_argument("--seed", type=int, default=7)
a = p.parse_args()

rng = random.Random(a.seed)
ts = 1_700_000_000_000
rows = []
for i in range(a.events):
    ts += rng.randint(0, 2 * a.step_ms)
    delay = rng.randint(0, a.shuffle_ms)
    if a.late_every and i % a.late_every == a.late_every - 1:
        delay = a.late_ms + rng.randint(0, a.late_ms)
    rows.append((ts + delay, i, ts, "key-%d" % rng.randrange(a.keys)))
rows.sort()
with open(a.out, "w") as f:
    for _, _, t, k in rows:
        f.write("%d\t%s\n" % (t, k))
