#!/usr/bin/env python3
"""Measures the desktop app: launch to /health, memory (PSS of the app and its WebKit children) with the
window open, after closing it to the tray, and when started hidden; idle CPU; the .deb's size.

Runs the release binary under its own Xvfb and session bus, on 127.0.0.1 ports only, and stops everything
it starts. Prints a Markdown section for bench/RESULTS.md. Usage: bench/desktop.py [path/to/poussr-desktop]
"""

import glob
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/poussr-desktop")
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=0.5) as r:
            return r.status == 200
    except OSError:
        return False


def tree(root):
    """The pid and all its descendants."""
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = open(stat).read()
        except OSError:
            continue
        pid = int(text.split(" ", 1)[0])
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_mb(root):
    """Total PSS in MB, and 'name NN MB' for each process."""
    total = 0
    names = []
    for pid in tree(root):
        try:
            kb = 0
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    kb += int(line.split()[1])
            total += kb
            names.append(f"{open(f'/proc/{pid}/comm').read().strip()} {kb / 1024:.0f}")
        except OSError:
            pass
    return total / 1024, names


def cpu_ticks(root):
    ticks = 0
    for pid in tree(root):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return ticks


def idle_cpu_percent(root, seconds=20):
    a = cpu_ticks(root)
    time.sleep(seconds)
    return 100.0 * (cpu_ticks(root) - a) / CLK / seconds


class App:
    def __init__(self, env, hidden=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="poussr-bench-")
        with open(os.path.join(self.dir, "settings.json"), "w") as f:
            json.dump({"bind": "127.0.0.1", "port": self.port}, f)
        args = [BIN, "--config-dir", self.dir] + (["--hidden"] if hidden else [])
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not health(self.port):
            if self.proc.poll() is not None or time.monotonic() - self.started > 30:
                raise RuntimeError("the app did not answer /health")
            time.sleep(0.005)
        self.launch_ms = (time.monotonic() - self.started) * 1000

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def close_window(display):
    """Asks the window to close, as a window manager's close button does (WM_DELETE_WINDOW)."""
    from Xlib import X, display as xdisplay, protocol

    d = xdisplay.Display(display)
    root = d.screen().root
    wm_protocols = d.intern_atom("WM_PROTOCOLS")
    wm_delete = d.intern_atom("WM_DELETE_WINDOW")
    closed = 0
    todo = [root]
    while todo:
        w = todo.pop()
        try:
            if w.get_wm_name() == "Poussr":
                ev = protocol.event.ClientMessage(window=w, client_type=wm_protocols, data=(32, [wm_delete, X.CurrentTime, 0, 0, 0]))
                w.send_event(ev, event_mask=X.NoEventMask)
                closed += 1
            todo.extend(w.query_tree().children)
        except Exception:
            pass
    d.flush()
    d.close()
    return closed


def main():
    xvfb_display = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(xvfb_display[1]), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=[xvfb_display[1]], stderr=subprocess.DEVNULL)
    display = ":" + os.read(xvfb_display[0], 16).decode().strip()
    dbus = subprocess.run(["dbus-launch", "--sh-syntax"], capture_output=True, text=True, env={**os.environ, "DISPLAY": display})
    env = {**os.environ, "DISPLAY": display, "RUST_LOG": "warn"}
    for line in dbus.stdout.splitlines():
        if line.startswith("DBUS_SESSION_BUS_ADDRESS="):
            env["DBUS_SESSION_BUS_ADDRESS"] = line.split("=", 1)[1].strip("';")
        if line.startswith("DBUS_SESSION_BUS_PID="):
            dbus_pid = int(line.split("=", 1)[1].strip(";"))
    try:
        launches = []
        for _ in range(5):
            app = App(env)
            launches.append(app.launch_ms)
            app.stop()

        app = App(env)
        time.sleep(6)
        open_mb, open_procs = pss_mb(app.proc.pid)
        open_cpu = idle_cpu_percent(app.proc.pid)
        closed = close_window(display)
        time.sleep(6)
        closed_mb, closed_procs = pss_mb(app.proc.pid)
        closed_cpu = idle_cpu_percent(app.proc.pid)
        still_serving = health(app.port)
        app.stop()

        app = App(env, hidden=True)
        time.sleep(6)
        hidden_mb, hidden_procs = pss_mb(app.proc.pid)
        app.stop()
    finally:
        xvfb.terminate()
        try:
            os.kill(dbus_pid, 15)
        except Exception:
            pass

    debs = glob.glob(os.path.join(ROOT, "target/release/bundle/deb/*.deb"))
    deb = f"{os.path.getsize(debs[0]) / 1048576:.1f} MiB ({os.path.basename(debs[0])})" if debs else "not built (run make bundle)"
    cpu = open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()
    print(f"""## Desktop app

Measured {time.strftime('%Y-%m-%d')} by `bench/desktop.py` on {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()},
release build, under Xvfb, hub on 127.0.0.1. PSS is summed over the app and its WebKit child processes
(`/proc/PID/smaps_rollup`). Baseline for comparison (TAURI-NOTES): a minimal Tauri app with its window open
is about 260 MB here and answers HTTP 0.3–0.7 s after launch.

| figure | goal | measured |
|---|---|---|
| launch to `/health` answering (5 launches) | ≤ 1 s | median {statistics.median(launches):.0f} ms (min {min(launches):.0f}, max {max(launches):.0f}) |
| memory, window open | — | {open_mb:.0f} MB PSS: {', '.join(open_procs)} |
| memory, window closed to the tray | ≤ 60 MB | {closed_mb:.0f} MB PSS: {', '.join(closed_procs)} (windows closed: {closed}; hub still serving: {still_serving}) |
| memory, started hidden in the tray | ≤ 60 MB | {hidden_mb:.0f} MB PSS: {', '.join(hidden_procs)} |
| idle CPU, window open (20 s) | — | {open_cpu:.2f} % of one core |
| idle CPU, in the tray (20 s) | — | {closed_cpu:.2f} % of one core |
| `.deb` size | ≤ 10 MiB | {deb} |
""")


if __name__ == "__main__":
    main()
