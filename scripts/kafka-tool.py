#!/usr/bin/env python3
"""Kafka from the outside, with kafka-python (an independent client): what Gale's tests and the
README use to create topics, produce lines, read a topic and see committed offsets.

  kafka-tool.py create   --bootstrap H:P TOPIC PARTITIONS
  kafka-tool.py produce  --bootstrap H:P TOPIC FILE     # lines dealt round robin over partitions
  kafka-tool.py read     --bootstrap H:P TOPIC [--idle-secs S]   # partition, offset, key, value (TSV)
  kafka-tool.py committed --bootstrap H:P GROUP TOPIC   # {"partition": offset} as JSON

`produce` prints, as JSON, each partition's end offset as the broker acknowledged it (last acked
offset + 1): what a consumer that read everything has committed.
"""
import argparse
import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def partitions_of(consumer, topic, wait=10.0):
    deadline = time.time() + wait
    while time.time() < deadline:
        ps = consumer.partitions_for_topic(topic)
        if ps:
            return sorted(ps)
        time.sleep(0.2)
    sys.exit(f"topic {topic} has no partitions (does it exist?)")


def create(a):
    admin = KafkaAdminClient(bootstrap_servers=a.bootstrap)
    try:
        admin.create_topics([NewTopic(a.topic, a.partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    admin.close()


def produce(a):
    probe = KafkaConsumer(bootstrap_servers=a.bootstrap)
    parts = partitions_of(probe, a.topic)
    probe.close()
    producer = KafkaProducer(bootstrap_servers=a.bootstrap, acks="all", linger_ms=5,
                             batch_size=256 << 10)
    ends = {}
    futures = []
    with open(a.file, "rb") as f:
        for i, line in enumerate(f):
            p = parts[i % len(parts)]
            futures.append(producer.send(a.topic, value=line.rstrip(b"\r\n"), partition=p))
            if len(futures) >= 10000:
                for fu in futures:
                    md = fu.get(timeout=60)
                    ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
                futures = []
    for fu in futures:
        md = fu.get(timeout=60)
        ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    producer.flush()
    producer.close()
    print(json.dumps({str(p): o for p, o in sorted(ends.items())}))


def read(a):
    consumer = KafkaConsumer(bootstrap_servers=a.bootstrap, enable_auto_commit=False)
    tps = [TopicPartition(a.topic, p) for p in partitions_of(consumer, a.topic)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out = sys.stdout
    last = time.time()
    while time.time() - last < a.idle_secs:
        batch = consumer.poll(timeout_ms=500, max_records=10000)
        for tp, records in batch.items():
            for r in records:
                key = (r.key or b"").decode("utf-8", "replace")
                value = (r.value or b"").decode("utf-8", "replace")
                out.write(f"{tp.partition}\t{r.offset}\t{key}\t{value}\n")
            last = time.time()
    consumer.close()


def committed(a):
    consumer = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group,
                             enable_auto_commit=False)
    res = {}
    for p in partitions_of(consumer, a.topic):
        c = consumer.committed(TopicPartition(a.topic, p))
        if c is not None:
            res[str(p)] = c
    consumer.close()
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("topic")
    c.add_argument("partitions", type=int)
    p = sub.add_parser("produce")
    p.add_argument("topic")
    p.add_argument("file")
    r = sub.add_parser("read")
    r.add_argument("topic")
    r.add_argument("--idle-secs", type=float, default=3.0)
    m = sub.add_parser("committed")
    m.add_argument("group")
    m.add_argument("topic")
    for s in (c, p, r, m):
        s.add_argument("--bootstrap", required=True)
    a = ap.parse_args()
    {"create": create, "produce": produce, "read": read, "committed": committed}[a.cmd](a)


if __name__ == "__main__":
    main()
