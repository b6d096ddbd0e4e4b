"""A stand-in for systemd's socket activation, for the restart test: holds a listening socket on
127.0.0.1 (never accepting on it) and runs the hub with it as file descriptor 3 and LISTEN_FDS=1, as
systemd does for a service with a .socket unit. Lines on stdin: "restart" stops the hub with SIGTERM,
waits for it, and starts it again ("restarted" is printed); "stop" or end of input stops it and exits.

Usage: python3 socket-holder.py HUB_BINARY ARG...
"""

import os
import signal
import socket
import subprocess
import sys

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
print(f"holding port {listener.getsockname()[1]}", flush=True)


def start():
    fd = listener.fileno()
    return subprocess.Popen(
        sys.argv[1:],
        env=dict(os.environ, LISTEN_FDS="1"),
        pass_fds=(fd,),
        # In the child, before exec: the socket becomes descriptor 3 (dup2 leaves it inheritable).
        preexec_fn=(lambda: os.dup2(fd, 3)) if fd != 3 else None,
    )


def stop(hub):
    hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(timeout=10)
    except subprocess.TimeoutExpired:
        hub.kill()
        hub.wait()


hub = start()
for line in sys.stdin:
    if line.strip() == "restart":
        stop(hub)
        hub = start()
        print("restarted", flush=True)
    elif line.strip() == "stop":
        break
stop(hub)
