// A small application backend for the client tests, as a Pusher user writes one: it authorizes channel
// subscriptions and signs users in with the real `pusher` server SDK (`authorizeChannel`, `authenticateUser`),
// and receives the hub's webhooks, checking each with the SDK's `webhook(request).isValid()`.
//
// Who the browser is comes from the `x-user` header (or `?user=` in the endpoint URL), the way a real
// backend would read its session cookie. Listens on 127.0.0.1 with a port chosen by the OS.

import { createServer } from 'node:http';
import { Inbox, serverSdk } from './wire.mjs';

/**
 * Starts the backend. Its webhook URL is known at once (to put in the hub's settings); the SDK needs the
 * hub's credentials and port, so call `backend.attach(hub)` once the hub runs (or pass `hub` here).
 *
 * @param {object} [options]
 * @param {object} [options.hub]  a started hub (tests/clients/hub.mjs)
 * @param {string} [options.encryptionMasterKeyBase64]  enables private-encrypted- channels in the SDK
 * @param {(user: string) => object} [options.userInfo] the presence `user_info` of a user (default: {name})
 */
export async function startBackend(options = {}) {
  let sdk = null;
  const needSdk = () => {
    if (!sdk) throw new Error('backend.attach(hub) was not called');
    return sdk;
  };
  const userInfo = options.userInfo ?? ((user) => ({ name: user }));
  const backend = {
    /** The `pusher` SDK pointed at the hub, once attached. */
    get sdk() {
      return needSdk();
    },
    /** Points the SDK at a started hub. */
    attach(hub) {
      const { encryptionMasterKeyBase64 } = options;
      sdk = serverSdk(hub, encryptionMasterKeyBase64 ? { encryptionMasterKeyBase64 } : {});
      return backend;
    },
    url: '',
    /** Every authorization request: { path, user, socket_id, channel_name }. */
    authRequests: [],
    /** Webhook requests as received: { headers, rawBody, body, valid }. */
    webhooks: new Inbox('webhooks'),
    /** Users the backend refuses (answers 403), as a Set of user names. */
    refused: new Set(),
    /** HTTP status the webhook endpoint answers with (set to 500 to make the hub retry). */
    webhookStatus: 200,
  };

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url, 'http://127.0.0.1');
      const user = req.headers['x-user'] || url.searchParams.get('user') || 'anonymous';
      const json = (status, value) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      try {
        if (req.method === 'POST' && url.pathname === '/webhooks') {
          const valid = needSdk().webhook({ headers: req.headers, rawBody }).isValid();
          let body = null;
          try {
            body = JSON.parse(rawBody);
          } catch {
            // Kept as null: the test asserts on it.
          }
          backend.webhooks.push({ headers: req.headers, rawBody, body, valid });
          res.writeHead(backend.webhookStatus);
          res.end();
          return;
        }
        const form = new URLSearchParams(rawBody);
        const socketId = form.get('socket_id');
        if (req.method === 'POST' && url.pathname === '/pusher/auth') {
          const channel = form.get('channel_name');
          backend.authRequests.push({ path: url.pathname, user, socket_id: socketId, channel_name: channel });
          if (backend.refused.has(user)) return json(403, { error: `${user} may not join ${channel}` });
          const presence = channel.startsWith('presence-') ? { user_id: user, user_info: userInfo(user) } : undefined;
          return json(200, needSdk().authorizeChannel(socketId, channel, presence));
        }
        if (req.method === 'POST' && url.pathname === '/pusher/user-auth') {
          backend.authRequests.push({ path: url.pathname, user, socket_id: socketId });
          if (backend.refused.has(user)) return json(403, { error: `${user} may not sign in` });
          return json(200, needSdk().authenticateUser(socketId, { id: user, ...userInfo(user) }));
        }
        json(404, { error: `no route for ${req.method} ${url.pathname}` });
      } catch (err) {
        json(500, { error: String(err?.message ?? err) });
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.url = `http://127.0.0.1:${server.address().port}`;
  backend.webhookUrl = `${backend.url}/webhooks`;
  if (options.hub) backend.attach(options.hub);
  backend.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    });
  return backend;
}
