#!/usr/bin/env python3
"""Splits sentences in batches: a pystorm TicklessBatchingBolt, which holds tuples and acks
them later from its own timer thread (every 50 ms here). It needs a ShellBolt that keeps many
tuples in flight at once, as Storm's does and Gale's does.

    python3 pystorm_batching_split.py [json|msgpack]
"""
import sys

from pystorm.bolt import TicklessBatchingBolt


class BatchingSplitBolt(TicklessBatchingBolt):
    secs_between_batches = 0.05

    # Emits are anchored to every tuple of the batch; the batch is acked after this returns.
    def process_batch(self, key, tups):
        for tup in tups:
            for word in str(tup.values[0]).split():
                self.emit([word])


if __name__ == "__main__":
    BatchingSplitBolt(serializer=sys.argv[1] if len(sys.argv) > 1 else "json").run()
