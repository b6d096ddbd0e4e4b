"""pysher (the Python Pusher client from PyPI) against a test hub, for tests/clients/recovery.test.mjs.

Usage: python pysher_listen.py PORT KEY CHANNEL EVENT

Subscribes to CHANNEL, prints "ready" once subscribed, then waits for EVENT and prints one JSON line:
{"data": <EVENT's data>, "frames": [every frame pysher logged receiving, as text]}. Exits 1 if nothing
arrives within 20 s.
"""

import json
import logging
import os
import sys
import threading

import pysher

port, key, channel_name, event_name = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
frames = []
PREFIX = "Connection: Message - "


class Frames(logging.Handler):
    """Keeps what pysher logs of each frame it receives."""

    def emit(self, record):
        message = record.getMessage()
        if message.startswith(PREFIX):
            frames.append(message[len(PREFIX):])


received = threading.Event()
got = {}


def on_event(data):
    got["data"] = data
    received.set()


def on_connect(_data):
    channel = pusher.subscribe(channel_name)
    channel.bind(event_name, on_event)
    channel.bind("pusher_internal:subscription_succeeded", lambda _d: print("ready", flush=True))


pusher = pysher.Pusher(key, custom_host="127.0.0.1", port=port, secure=False, log_level=logging.INFO)
pusher.connection.logger.addHandler(Frames())
pusher.connection.bind("pusher:connection_established", on_connect)
pusher.connect()
# pysher's disconnect() can wait forever for its socket thread; the process ends without it (os._exit, since
# that thread may not be a daemon).
if not received.wait(20):
    print("no event within 20 s", file=sys.stderr, flush=True)
    os._exit(1)
print(json.dumps({"data": got["data"], "frames": frames}), flush=True)
os._exit(0)
