#!/usr/bin/env python3
"""Splits sentences into words: a Storm multi-lang bolt written against the plain protocol,
with no library, so it runs unchanged under Storm and under Gale.

Protocol: JSON messages each followed by a line "end". The worker sends a handshake (conf,
context, pidDir); the bolt writes an empty file named after its pid in pidDir and answers
{"pid": N}. Then for each tuple it emits (anchored to the tuple) and acks it.
"""
import json
import os
import sys


def read_message():
    lines = []
    while True:
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)  # the worker closed our input: shut down
        line = line.rstrip("\n")
        if line == "end":
            break
        lines.append(line)
    return json.loads("\n".join(lines))


def send(message):
    sys.stdout.write(json.dumps(message) + "\nend\n")
    sys.stdout.flush()


setup = read_message()
pid = os.getpid()
open(os.path.join(setup["pidDir"], str(pid)), "w").close()
send({"pid": pid})

while True:
    message = read_message()
    if isinstance(message, list):
        continue  # task ids of an emit; we asked for none
    if message.get("stream") == "__heartbeat":
        send({"command": "sync"})
        continue
    for word in str(message["tuple"][0]).split():
        send({"command": "emit", "anchors": [message["id"]], "tuple": [word], "need_task_ids": False})
    send({"command": "ack", "id": message["id"]})
