// A TCP proxy on a loopback port the OS chooses, owned by a test, standing in for what lies between a client
// and a server: a Wi-Fi link that drops, a load balancer that moves clients to another server, a network that
// silently loses every packet.
//
// - `cut()` drops every connection, and until `release()` the server is unreachable: a new connection stalls,
//   as over a dead Wi-Fi link, and goes through once the link is back. (A refused connection would not do:
//   pusher-js under Node, whose WebSocket is faye-websocket, then waits for its 15 s connection timeout
//   before trying again, where a browser tries again at once.) `hold()` stalls new connections only.
// - `blackhole()` stops forwarding in both directions without closing anything (no FIN, no reset: what a
//   pulled cable or a dropping firewall does), new connections included; `restore()` ends it: the
//   connections that were cut off are closed, and new ones are forwarded again.
// - `retarget(port)` sends new connections to another server.

import net from 'node:net';

export class TcpProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.pairs = new Set();
    this.held = [];
    this.holding = false;
    this.holed = false;
    this.accepted = 0;
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  accept(client) {
    client.on('error', () => client.destroy());
    if (this.holed) {
      // Read nothing, answer nothing, close nothing.
      client.pause();
      this.pairs.add({ client, upstream: null, holed: true });
      return;
    }
    if (this.holding) {
      this.held.push(client);
      return;
    }
    this.accepted += 1;
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair = { client, upstream, holed: false };
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** New connections wait until `release()`. */
  hold() {
    this.holding = true;
  }

  /** The link is back: waiting connections go through. */
  release() {
    this.holding = false;
    for (const client of this.held.splice(0)) {
      if (!client.destroyed) this.accept(client);
    }
  }

  /** Drops every connection; the server is unreachable until `release()`. */
  cut() {
    this.hold();
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream?.destroy();
    }
    this.pairs.clear();
  }

  /** Every packet is lost from now on, both ways, without a reset; until `restore()`. */
  blackhole() {
    this.holed = true;
    for (const pair of this.pairs) {
      pair.holed = true;
      if (pair.upstream) {
        pair.client.unpipe(pair.upstream);
        pair.upstream.unpipe(pair.client);
        pair.upstream.pause();
      }
      pair.client.pause();
    }
  }

  /** The network is back: what was cut off is closed, new connections go through. */
  restore() {
    this.holed = false;
    for (const pair of [...this.pairs].filter((p) => p.holed)) {
      pair.client.destroy();
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    }
  }

  /** New connections go to `port` from now on. */
  retarget(port) {
    this.targetPort = port;
  }

  close() {
    this.holding = false;
    this.holed = false;
    for (const client of this.held.splice(0)) client.destroy();
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream?.destroy();
    }
    this.pairs.clear();
    this.server.close();
  }
}
