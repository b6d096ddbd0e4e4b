"""Browses for Poussr hubs with python-zeroconf on one IPv4 address, as a device on the LAN would: prints one
JSON object a line for each service added (resolved: port, addresses, host name, TXT record), updated or
removed, until its standard input closes. Usage: zeroconf_browse.py IP"""

import json
import sys
import threading

from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

SERVICE_TYPE = "_poussr._tcp.local."
lock = threading.Lock()


def say(**fields):
    with lock:
        print(json.dumps(fields), flush=True)


def on_change(zeroconf, service_type, name, state_change):
    if state_change is ServiceStateChange.Removed:
        say(event="removed", name=name)
        return
    # Resolving asks the network and waits: not on the browser's thread.
    threading.Thread(target=resolve, args=(zeroconf, service_type, name, state_change), daemon=True).start()


def resolve(zeroconf, service_type, name, state_change):
    info = zeroconf.get_service_info(service_type, name, timeout=5000)
    if info is None:
        say(event="unresolved", name=name)
        return
    say(
        event="added" if state_change is ServiceStateChange.Added else "updated",
        name=name,
        port=info.port,
        server=info.server,
        addresses=sorted(info.parsed_addresses()),
        txt=info.decoded_properties,
    )


def main():
    zc = Zeroconf(interfaces=[sys.argv[1]])
    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    say(event="browsing")
    sys.stdin.read()
    browser.cancel()
    zc.close()


if __name__ == "__main__":
    main()
