#!/usr/bin/env python3
"""Splits sentences into words: a bolt written with the third-party pystorm library
(pip install pystorm), unchanged from how it runs under Storm.

    python3 pystorm_split.py [json|msgpack]

The argument picks pystorm's serializer; the topology must ask Gale for the same one (the
component's `serializer` property, or `topology.multilang.serializer`).
"""
import sys

from pystorm import Bolt


class SplitSentenceBolt(Bolt):
    # pystorm acks each tuple after process() and anchors emits to it (auto_ack, auto_anchor).
    def process(self, tup):
        for word in str(tup.values[0]).split():
            self.emit([word])


if __name__ == "__main__":
    SplitSentenceBolt(serializer=sys.argv[1] if len(sys.argv) > 1 else "json").run()
