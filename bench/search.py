#!/usr/bin/env python3
"""The console's search over a full history store, and what publishing waits meanwhile.

Usage: bench/search.py HUB_BINARY  (prints a Markdown section)

The store is written straight in the history's file format (schema 2, docs/architecture.md) as the default
bounds leave it full: 1,300 channels of 1,000 events of about 170 bytes (226 MB, under the 256 MiB byte bound),
one event every 50 ms over 18 hours, in one app. The hub then serves it on 127.0.0.1 and the admin API's
search is timed. The baseline, in the same run and on the same file, is one scan of the whole store sorted by
time (SQLite through Python's sqlite3): what a search cost before the search became a merge of the channels,
all of it on the history's writer, with every kept publish waiting behind it.
"""

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

CHANNELS = 1300
PER_CHANNEL = 1000
STEP_MS = 50
APP = "searchbench"
TOKEN = "search-bench-admin-token-0123456789"
RUNS = 5
PUBLISHES = 100


def fill(path):
    db = sqlite3.connect(path)
    db.executescript(
        """PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
        CREATE TABLE channels (id INTEGER PRIMARY KEY, app TEXT NOT NULL, name TEXT NOT NULL, epoch TEXT NOT NULL,
            last_serial INTEGER NOT NULL, last_at_ms INTEGER NOT NULL, UNIQUE (app, name));
        CREATE TABLE events (channel INTEGER NOT NULL, serial INTEGER NOT NULL, at_ms INTEGER NOT NULL,
            size INTEGER NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL, user_id TEXT, except_socket TEXT,
            PRIMARY KEY (channel, serial)) WITHOUT ROWID;
        PRAGMA user_version = 2;"""
    )
    start = int(time.time() * 1000) - 20 * 3600 * 1000
    db.executemany(
        "INSERT INTO channels VALUES (?, ?, ?, ?, 0, 0)",
        [(c + 1, APP, f"orders-{c}", f"epoch{c}") for c in range(CHANNELS)],
    )
    rows = []
    for serial in range(1, PER_CHANNEL + 1):
        for c in range(CHANNELS):
            n = (serial - 1) * CHANNELS + c
            data = '{"order":%d,"line":"L%d","status":"shipped","note":"%s"}' % (n, c % 40, "x" * 100)
            rows.append((c + 1, serial, start + n * STEP_MS, len(data) + 13, "order.shipped", data))
        if len(rows) >= 100_000:
            db.executemany("INSERT INTO events (channel, serial, at_ms, size, event, data) VALUES (?,?,?,?,?,?)", rows)
            rows = []
    db.executemany("INSERT INTO events (channel, serial, at_ms, size, event, data) VALUES (?,?,?,?,?,?)", rows)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return start


def baseline(path, queries):
    """Median milliseconds of the whole-store scan, per query."""
    db = sqlite3.connect(path)
    out = {}
    for name, (where, args) in queries.items():
        sql = (
            "SELECT c.app, c.name, e.channel, e.serial, e.at_ms, e.event, e.data, e.except_socket FROM events e "
            f"JOIN channels c ON c.id = e.channel WHERE {where} ORDER BY e.at_ms DESC, e.channel DESC, "
            "e.serial DESC LIMIT 101"
        )
        times = []
        for _ in range(RUNS):
            t = time.perf_counter()
            db.execute(sql, args).fetchall()
            times.append((time.perf_counter() - t) * 1000)
        out[name] = statistics.median(times)
    db.close()
    return out


def request(port, path, body=None):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers)
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as res:
        payload = res.read()
        status = res.status
    return status, (time.perf_counter() - t) * 1000, payload


def publish(port):
    body = json.dumps({"channel": "orders-1", "event": "during", "data": "{}", "app_id": APP}).encode()
    status, ms, _ = request(port, "/admin/api/publish", body)
    assert status == 200, status
    return ms


def spread(times):
    times = sorted(times)
    return f"median {statistics.median(times):.1f} ms, p90 {times[int(len(times) * 0.9)]:.1f} ms, max {times[-1]:.1f} ms"


def main():
    hub = sys.argv[1]
    work = tempfile.mkdtemp(prefix="poussr-search-bench-")
    proc = None
    try:
        history = os.path.join(work, "history")
        os.makedirs(history)
        store = os.path.join(history, "history.sqlite")
        t = time.perf_counter()
        start = fill(store)
        filled_s = time.perf_counter() - t
        mid = start + PER_CHANNEL * CHANNELS * STEP_MS // 2
        queries = {
            "the newest page (no filter)": ("e.at_ms >= 0", (), {}),
            "one channel": ("c.name LIKE '%orders-77%'", (), {"channel": "orders-77"}),
            "one minute, 9 hours back": (
                "e.at_ms >= ? AND e.at_ms <= ?",
                (mid, mid + 60_000),
                {"from_ms": mid, "to_ms": mid + 60_000},
            ),
            "text found in 1 event of 40": ("e.data LIKE '%\"L7\"%'", (), {"text": '"L7"'}),
            "text found nowhere": ("e.data LIKE '%zzzz%'", (), {"text": "zzzz"}),
        }
        base = baseline(store, {k: (w, a) for k, (w, a, _) in queries.items()})

        config = os.path.join(work, "poussr.toml")
        with open(config, "w") as f:
            f.write(f'admin_token = "{TOKEN}"\n[[apps]]\nid = "{APP}"\nkey = "searchbenchkey"\nsecret = "searchbenchsecret"\n')
        with socket_port() as port:
            pass
        env = dict(os.environ, POUSSR_NO_MDNS="1")
        proc = subprocess.Popen(
            [hub, "serve", "--bind", "127.0.0.1", "--port", str(port), "--config", config, "--history-dir", history],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit("the hub did not start")
                time.sleep(0.2)

        hub_ms = {}
        for name, (_, _, params) in queries.items():
            qs = urllib.parse.urlencode({"kinds": "event", "limit": 100, **params})
            times = []
            for _ in range(RUNS):
                status, ms, payload = request(port, f"/admin/api/search?{qs}")
                assert status == 200, (status, payload[:200])
                times.append(ms)
            hub_ms[name] = (statistics.median(times), len(json.loads(payload)["entries"]))

        alone = [publish(port) for _ in range(PUBLISHES)]
        stop = threading.Event()
        searches = []

        def search_on():
            qs = urllib.parse.urlencode({"kinds": "event", "limit": 100, "text": "zzzz"})
            while not stop.is_set():
                searches.append(request(port, f"/admin/api/search?{qs}")[1])

        searcher = threading.Thread(target=search_on)
        searcher.start()
        while not searches:  # a search is under way from here on
            time.sleep(0.01)
        during = [publish(port) for _ in range(PUBLISHES)]
        stop.set()
        searcher.join()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    print("## Search of a full history store\n")
    print(
        f"`bench/search.py`: a store as the default bounds leave it full ({CHANNELS:,} channels × {PER_CHANNEL:,} "
        f"events of about 170 bytes, 226 MB, one event every {STEP_MS} ms over 18 hours; written in {filled_s:.0f} s), "
        "served by the release hub on 127.0.0.1. Each figure is the median of "
        f"{RUNS} runs of a page of 100 through `GET /admin/api/search` (HTTP included). The baseline is one "
        "scan of the whole store sorted by time, in the same run on the same file (Python's sqlite3, "
        f"SQLite {sqlite3.sqlite_version}): what each search cost before it became a merge of the channels, all "
        "of it on the history's writer.\n"
    )
    print("| search | matches | hub | whole-store scan (baseline) |")
    print("|---|---|---|---|")
    for name in queries:
        ms, found = hub_ms[name]
        print(f"| {name} | {found} | {ms:.1f} ms | {base[name]:.1f} ms |")
    print(
        f"\nA kept publish (`POST /admin/api/publish`, `sync = full`), {PUBLISHES} one after another: alone "
        f"{spread(alone)}; while searches for text found nowhere run back to back ({len(searches)} searches "
        f"during them) {spread(during)}. The search runs in slices of about 10 ms between the writer's commits.\n"
    )


class socket_port:
    """A free port on 127.0.0.1."""

    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


if __name__ == "__main__":
    main()
