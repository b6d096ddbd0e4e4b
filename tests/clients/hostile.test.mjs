// Hostile input: one table of malformed or malicious inputs — WebSocket frames on a Pusher connection,
// WebSocket handshakes, HTTP requests (the signed Pusher API, Poussr v1 publishing, raw TCP) and auth
// payloads — each with the exact answer the hub gives (docs/protocol.md §2, §3 and §5,
// src/ws, src/http). All of it goes to one hub while a well-behaved pusher-js client receives a numbered
// stream of events triggered with the `pusher` server SDK; the last test checks that the good client got
// every event exactly once and in order, and that the hub is still healthy.

import assert from 'node:assert/strict';
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startHub } from './hub.mjs';
import {
  RawSocket,
  assertNextIsSentinel,
  connectPusher,
  eventually,
  inboxOf,
  openPusherSocket,
  pusherUrl,
  serverSdk,
  signedUrl,
  startTicker,
  subscribe,
  uniqueName,
  withTimeout,
} from './wire.mjs';

// --- the hub under attack ----------------------------------------------------------------------------------

/**
 * Short timeouts so the timeout rows run in seconds; a publishing budget that the stream (an event per test, fewer
 * than 200 in all) can never use up, even were every test to start in the same second.
 */
const LIMITS = {
  handshake_timeout_secs: 2,
  http_request_timeout_secs: 2,
  max_body_bytes: 65536,
  max_publish_per_second: 200,
};
const MAX_MESSAGE_BYTES = 16384; // the default max_message_bytes
const ALLOWED_ORIGIN = 'http://good.example'; // pusher-js in Node sends no Origin, so it is not concerned

/** A second app (the 429 row bursts there, never on the stream's app) and a disabled third one. */
const credentials = () => ({
  appId: String(randomInt(100_000, 999_999_999)),
  key: randomBytes(10).toString('hex'),
  secret: randomBytes(16).toString('hex'),
});
const SECOND = credentials();
const DISABLED = credentials();

const hubOptions = {
  config:
    `allowed_origins = ["${ALLOWED_ORIGIN}"]\n[limits]\n` +
    Object.entries(LIMITS)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n'),
  app:
    `client_events = true\n` +
    `[[apps]]\nid = "${SECOND.appId}"\nkey = "${SECOND.key}"\nsecret = "${SECOND.secret}"\n` +
    `[[apps]]\nid = "${DISABLED.appId}"\nkey = "${DISABLED.key}"\nsecret = "${DISABLED.secret}"\nenabled = false\n`,
};

// --- small builders used by the table ----------------------------------------------------------------------

const hmac = (secret, text) => createHmac('sha256', secret).update(text).digest('hex');

/** A channel auth value the way the app's backend makes it (docs/protocol.md §2.7, "Auth signatures"). */
function channelAuth(socketId, channel, channelData, { key, secret }) {
  const signed = channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
  return `${key}:${hmac(secret, signed)}`;
}

/** A `pusher:signin` frame signed over `socket_id::user::user_data`. */
function signin(socketId, userData, { key, secret }) {
  return { event: 'pusher:signin', data: { auth: `${key}:${hmac(secret, `${socketId}::user::${userData}`)}`, user_data: userData } };
}

const sub = (channel, extra = {}) => ({ event: 'pusher:subscribe', data: { channel, ...extra } });

/** A validly signed presence subscription with this exact channel_data. */
const presence = (c, channel, channelData) =>
  sub(channel, { auth: channelAuth(c.socketId, channel, channelData, c.main), channel_data: channelData });

/** The path and query of a hand-signed API request (wire.mjs signs per docs/protocol.md §3). */
function signedPath(hub, method, path, body, options) {
  return signedUrl(hub, method, path, body, options).slice(hub.httpUrl.length);
}

/** A signed POST of `body` (a string) to `path`, as the row input of an HTTP row. */
function signedPost(hub, path, body, options) {
  return { method: 'POST', path: signedPath(hub, 'POST', path, body, options), headers: { 'Content-Type': 'application/json' }, body };
}

const eventBody = (overrides = {}) => JSON.stringify({ name: 'e', data: '{}', channel: 'hostile-http', ...overrides });

// Shared expectations.
const NOT_AN_OBJECT = /the frame must be a JSON object with a string "event" field/;
const BAD_AUTH = /the auth signature for ".*" is not valid for socket \d+\.\d+/;

// --- the table -----------------------------------------------------------------------------------------------
//
// category: frame | handshake | http | auth (what the row is about)
// kind:     how the input is sent —
//   pusher  frames on a fresh protocol-7 socket (input: frame(s), or (c) => frame(s), c.socketId known).
//           A frame is a string (sent as is), an object (JSON), { binary: Buffer }, { badUtf8Text: Buffer }
//           or { closeWith: code }.
//   v1      frames on a fresh Poussr v1 socket at /v1/ws.
//   ws      a WebSocket handshake (input: { url: (hub) => url, headers? }).
//   http    one HTTP request over a fresh TCP connection (input: (c) => { method, path, headers?, body?, chunked? }).
//   tcp     raw bytes on a TCP connection (input: { send, trickle? }).
//   burst   many concurrent HTTP requests (input: (c) => [requests]).
// expect:   for pusher/v1 rows, one step or a list of steps, in order:
//   { error: re }                         pusher:error with code null and a message matching re
//   { subscriptionError: { status, type, error } }   pusher:subscription_error on the channel just named
//   { succeeded: channel }                pusher_internal:subscription_succeeded
//   { signedIn: user_data }               pusher:signin_success
//   { close: code, error: re }            pusher:error with that code, then the close frame with that code
//   { closeFrame: code }                  a close frame with that code (and nothing before it)
//   { v1error: re }                       poussr:error with code 4000
//   After the last step, unless the socket was closed, a ping must get a pong as the very next frame: the
//   socket is still open and nothing else was sent to it.
//   for ws rows: { close, error } (one pusher:error, then that close code), { status } (the handshake is
//   refused with that HTTP status) or { established: true }; for http/tcp rows: { status, error?, reason?,
//   headers?, minMs?, nothingOn? } (nothingOn: a raw subscriber of that channel receives nothing) or
//   { silentCloseWithinMs: [min, max] }; burst: { status, error, headers, othersStatus }.

const ROWS = [
  // ===== WebSocket frames on a Pusher connection ==========================================================
  { category: 'frame', kind: 'pusher', name: 'not JSON', input: '{"event": "pusher:subscribe", nope', expect: { error: /^the frame is not valid JSON: / } },
  { category: 'frame', kind: 'pusher', name: 'an empty text frame', input: '', expect: { error: /^the frame is not valid JSON: EOF while parsing/ } },
  { category: 'frame', kind: 'pusher', name: 'JSON null', input: 'null', expect: { error: NOT_AN_OBJECT } },
  { category: 'frame', kind: 'pusher', name: 'a JSON string', input: '"pusher:ping"', expect: { error: NOT_AN_OBJECT } },
  { category: 'frame', kind: 'pusher', name: 'a JSON array of numbers', input: '[1,2]', expect: { error: NOT_AN_OBJECT } },
  // serde reads a struct from a JSON array too; docs/protocol.md §2.2: every frame is a JSON object.
  { category: 'frame', kind: 'pusher', name: 'a JSON array shaped like a ping (not an object)', input: '["pusher:ping"]', expect: { error: NOT_AN_OBJECT } },
  {
    category: 'frame', kind: 'pusher', name: 'a JSON array shaped like a subscribe (not an object)',
    input: '["pusher:subscribe", null, {"channel":"array-smuggled"}]', expect: { error: NOT_AN_OBJECT },
  },
  { category: 'frame', kind: 'pusher', name: '"event" is a number', input: '{"event":42,"data":{}}', expect: { error: NOT_AN_OBJECT } },
  { category: 'frame', kind: 'pusher', name: '"event" is missing', input: '{"data":{"channel":"x"}}', expect: { error: NOT_AN_OBJECT } },
  { category: 'frame', kind: 'pusher', name: '"event" given twice', input: '{"event":"pusher:ping","event":"pusher:ping"}', expect: { error: NOT_AN_OBJECT } },
  { category: 'frame', kind: 'pusher', name: 'a lone UTF-16 surrogate escape', input: '{"event":"\\ud800"}', expect: { error: /^the frame is not valid JSON: (lone leading surrogate|unexpected end of hex escape)/ } },
  { category: 'frame', kind: 'pusher', name: '10,000 nested [ (recursion bomb)', input: '['.repeat(10_000), expect: { error: /^the frame is not valid JSON: (recursion limit exceeded|EOF while parsing a list)/ } },
  {
    category: 'frame', kind: 'pusher', name: '8,000 nested arrays inside "data"',
    input: `{"event":"pusher:ping","data":${'['.repeat(8000)}${']'.repeat(8000)}}`,
    expect: { error: /^the frame is not valid JSON: recursion limit exceeded/ },
  },
  { category: 'frame', kind: 'pusher', name: 'an unknown pusher: event', input: { event: 'pusher:foo', data: {} }, expect: { error: /^unknown event "pusher:foo"; clients send pusher:subscribe/ } },
  {
    category: 'frame', kind: 'pusher', name: 'an application event forged onto the good client\'s channel',
    input: (c) => ({ event: 'tick', channel: c.steadyChannel, data: { n: 999_999 } }),
    expect: { error: /^unknown event "tick"/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'pusher_internal:subscription_succeeded from a client',
    input: { event: 'pusher_internal:subscription_succeeded', channel: 'x', data: '{}' },
    expect: { error: /"pusher_internal:subscription_succeeded" is reserved for the server/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'pusher_internal:member_added from a client',
    input: { event: 'pusher_internal:member_added', channel: 'presence-x', data: '{"user_id":"1"}' },
    expect: { error: /"pusher_internal:member_added" is reserved for the server/ },
  },
  { category: 'frame', kind: 'pusher', name: 'subscribe without data', input: { event: 'pusher:subscribe' }, expect: { error: /^invalid pusher:subscribe: "data" is missing/ } },
  { category: 'frame', kind: 'pusher', name: 'subscribe with data {}', input: { event: 'pusher:subscribe', data: {} }, expect: { error: /^invalid pusher:subscribe: missing field `channel`/ } },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe with data a string that is not JSON',
    input: { event: 'pusher:subscribe', data: 'nope' }, expect: { error: /^invalid pusher:subscribe: data is a string that is not a JSON object/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe with a numeric channel',
    input: { event: 'pusher:subscribe', data: { channel: 42 } }, expect: { error: /^invalid pusher:subscribe: invalid type: integer `42`, expected a string/ },
  },
  { category: 'frame', kind: 'pusher', name: 'subscribe to ""', input: sub(''), expect: { subscriptionError: { status: 400, type: 'InvalidChannel', error: /the channel name is empty/ } } },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to a 165-character name',
    input: sub('a'.repeat(165)), expect: { subscriptionError: { status: 400, type: 'InvalidChannel', error: /165 characters long; the limit is 164/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to "café"',
    input: sub('café'), expect: { subscriptionError: { status: 400, type: 'InvalidChannel', error: /the channel name contains 'é'/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to "my channel" (a space)',
    input: sub('my channel'), expect: { subscriptionError: { status: 400, type: 'InvalidChannel', error: /the channel name contains ' '/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to a name with a NUL byte',
    input: sub('orders\u0000admin'), expect: { subscriptionError: { status: 400, type: 'InvalidChannel', error: /the channel name contains '\\0'/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to "#server-to-user-" without an id',
    input: sub('#server-to-user-'), expect: { subscriptionError: { status: 400, type: 'InvalidChannel', error: /the channel name contains '#'/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to #server-to-user-7 without signing in',
    input: sub('#server-to-user-7'),
    expect: { subscriptionError: { status: 403, type: 'AuthError', error: /can be joined only by a connection signed in \(pusher:signin\) as user "7"/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to a private channel without auth',
    input: sub('private-orders'), expect: { subscriptionError: { status: 401, type: 'AuthError', error: /private channel needs an auth signature .* none was sent/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to an encrypted channel with a forged signature',
    input: (c) => sub('private-encrypted-vault', { auth: `${c.main.key}:${'ab'.repeat(32)}` }),
    expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to a presence channel without auth',
    input: sub('presence-room', { channel_data: '{"user_id":"7"}' }),
    expect: { subscriptionError: { status: 401, type: 'AuthError', error: /presence channel needs an auth signature .* none was sent/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'presence with a valid auth but no channel_data',
    input: (c) => sub('presence-room', { auth: channelAuth(c.socketId, 'presence-room', undefined, c.main) }),
    expect: { subscriptionError: { status: 400, type: 'InvalidChannelData', error: /needs channel_data .* none was sent/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'presence channel_data that is not JSON (signed)',
    input: (c) => presence(c, 'presence-room', 'user_id=7'),
    expect: { subscriptionError: { status: 400, type: 'InvalidChannelData', error: /channel_data is not valid JSON/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'presence channel_data a JSON array (signed)',
    input: (c) => presence(c, 'presence-room', '["7"]'),
    expect: { subscriptionError: { status: 400, type: 'InvalidChannelData', error: /channel_data must be a JSON object with user_id and user_info/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'presence channel_data without user_id (signed)',
    input: (c) => presence(c, 'presence-room', '{"user_info":{"name":"Mallory"}}'),
    expect: { subscriptionError: { status: 400, type: 'InvalidChannelData', error: /channel_data has no user_id/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'presence with an empty user_id (signed)',
    input: (c) => presence(c, 'presence-room', '{"user_id":""}'),
    expect: { subscriptionError: { status: 400, type: 'InvalidChannelData', error: /user_id in channel_data is empty/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'presence with user_id an object (signed)',
    input: (c) => presence(c, 'presence-room', '{"user_id":{"admin":true}}'),
    expect: { subscriptionError: { status: 400, type: 'InvalidChannelData', error: /user_id in channel_data must be a string or a number/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'presence with a 129-character user_id (signed)',
    input: (c) => presence(c, 'presence-room', JSON.stringify({ user_id: 'u'.repeat(129) })),
    expect: { subscriptionError: { status: 400, type: 'InvalidChannelData', error: /user_id is 129 characters long; the limit is 128/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'presence with a 4 KB user_info (signed)',
    input: (c) => presence(c, 'presence-room', JSON.stringify({ user_id: '7', user_info: { bio: 'b'.repeat(4000) } })),
    expect: { subscriptionError: { status: 400, type: 'InvalidChannelData', error: /user_info is \d+ bytes of JSON; the limit is 1024/ } },
  },
  {
    category: 'frame', kind: 'pusher', name: 'a binary frame',
    input: { binary: Buffer.from('{"event":"pusher:ping","data":{}}') }, expect: { error: /^binary frames are not part of the protocol; send JSON text frames/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'a text frame that is not UTF-8',
    // RFC 6455 §8.1 and §7.1.7: fail the connection with 1007 (invalid payload data); as for every close
    // the hub decides, a pusher:error with the same code says why first.
    input: { badUtf8Text: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }, expect: { close: 1007, error: /^a text frame was not valid UTF-8/ },
  },
  {
    category: 'frame', kind: 'pusher', name: `a 20 KB frame (over max_message_bytes = ${MAX_MESSAGE_BYTES})`,
    input: JSON.stringify({ event: 'pusher:ping', data: { pad: 'x'.repeat(20 * 1024) } }),
    expect: { close: 1009, error: new RegExp(`^a frame of \\d+ bytes exceeds the ${MAX_MESSAGE_BYTES}-byte limit`) },
  },
  {
    category: 'frame', kind: 'pusher', name: 'a 2 MB frame (over the WebSocket layer\'s own 1 MiB limit too)',
    // README: 1009 for a frame larger than max_message_bytes, "a pusher:error with the same code comes first".
    input: JSON.stringify({ event: 'pusher:ping', data: { pad: 'x'.repeat(2 * 1024 * 1024) } }),
    expect: { close: 1009, error: /exceeds|larger than|too large/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'a client event on a public channel it has joined',
    input: [sub('hostile-public'), { event: 'client-spoof', channel: 'hostile-public', data: {} }],
    expect: [
      { succeeded: 'hostile-public' },
      { error: /^client-spoof was not relayed: client events are allowed only on private and presence channels .*"hostile-public" is public/ },
    ],
  },
  {
    category: 'frame', kind: 'pusher', name: 'a client event forged onto the good client\'s channel',
    input: (c) => ({ event: 'client-tick', channel: c.steadyChannel, data: { n: 999_999 } }),
    expect: (c) => ({ error: new RegExp(`^client-tick was not relayed: client events are allowed only on private and presence channels .*"${c.steadyChannel}" is public`) }),
  },
  {
    category: 'frame', kind: 'pusher', name: 'a client event on a private channel not joined',
    input: { event: 'client-x', channel: 'private-not-joined', data: {} },
    expect: { error: /^client-x was not relayed: .*it has not joined "private-not-joined"/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'a client event on an encrypted channel',
    input: { event: 'client-x', channel: 'private-encrypted-x', data: {} },
    expect: { error: /^client-x was not relayed: client events are allowed only on private and presence channels .*is encrypted/ },
  },
  { category: 'frame', kind: 'pusher', name: 'a client event without a channel', input: { event: 'client-x', data: {} }, expect: { error: /^invalid client-x: a client event needs a string "channel"/ } },
  {
    category: 'frame', kind: 'pusher', name: 'a client event on an invalid channel name',
    input: { event: 'client-x', channel: 'bad name', data: {} }, expect: { error: /^client-x on "bad name": the channel name contains ' '/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'a client event with a 201-character name',
    input: { event: `client-${'e'.repeat(194)}`, channel: 'private-x', data: {} }, expect: { error: /^the event name is 201 bytes; the limit is 200/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'a client event with 12 KB of data',
    input: { event: 'client-big', channel: 'private-x', data: 'd'.repeat(12 * 1024) }, expect: { error: /^client-big: the data is 12288 bytes; the limit is 10240/ },
  },
  {
    category: 'frame', kind: 'pusher', name: '11 client events in one second (over client_events_per_second = 10)',
    input: Array.from({ length: 11 }, (_, i) => ({ event: 'client-flood', channel: 'private-flood', data: { i } })),
    expect: [
      ...Array.from({ length: 10 }, () => ({ error: /it has not joined "private-flood"/ })),
      { close: 4301, error: /^more than 10 client events in one second from this connection; slow down/ },
    ],
  },
  {
    category: 'frame', kind: 'pusher', name: 'subscribe to 101 channels (over max_channels_per_connection = 100)',
    input: Array.from({ length: 101 }, (_, i) => sub(`hostile-many-${i}`)),
    expect: [
      ...Array.from({ length: 100 }, (_, i) => ({ succeeded: `hostile-many-${i}` })),
      { subscriptionError: { status: 400, type: 'LimitReached', error: /this connection has joined 100 channels, the most allowed/ } },
    ],
  },
  { category: 'frame', kind: 'pusher', name: 'unsubscribe from a channel never joined (no reply)', input: { event: 'pusher:unsubscribe', data: { channel: 'never-joined' } }, expect: [] },
  { category: 'frame', kind: 'pusher', name: 'unsubscribe from an invalid name (no reply)', input: { event: 'pusher:unsubscribe', data: { channel: 'bad name é' } }, expect: [] },
  { category: 'frame', kind: 'pusher', name: 'signin without data', input: { event: 'pusher:signin' }, expect: { error: /^invalid pusher:signin: "data" is missing/ } },
  {
    category: 'frame', kind: 'pusher', name: 'signin with a bad signature',
    input: (c) => ({ event: 'pusher:signin', data: { auth: `${c.main.key}:${'0'.repeat(64)}`, user_data: '{"id":"7"}' } }),
    expect: { close: 4009, error: /^pusher:signin refused: the auth signature does not match the user_data for socket \d+\.\d+/ },
  },
  {
    category: 'frame', kind: 'pusher', name: 'a client Close frame (4000) is answered with a Close frame',
    // RFC 6455 §5.5.1: an endpoint that receives a Close frame MUST send a Close frame in response.
    input: { closeWith: 4000 }, expect: { closeFrame: 4000 },
  },
  {
    category: 'frame', kind: 'v1', name: 'Poussr v1: not JSON',
    input: 'subscribe me', expect: { v1error: /^the frame must be a JSON object with a string "event": / },
  },
  {
    category: 'frame', kind: 'v1', name: 'Poussr v1: subscribe to a private channel',
    input: { event: 'poussr:subscribe', data: '{"channel":"private-orders"}' }, expect: { v1error: /"private-orders" is a private channel; Poussr v1 clients subscribe to public channels only/ },
  },
  {
    category: 'frame', kind: 'v1', name: 'Poussr v1: a Pusher event on a v1 socket',
    input: { event: 'pusher:subscribe', data: { channel: 'x' } }, expect: { v1error: /^unknown event "pusher:subscribe"; send poussr:subscribe or poussr:unsubscribe/ },
  },

  // ===== WebSocket handshakes ==============================================================================
  { category: 'handshake', kind: 'ws', name: 'an unknown app key', input: { url: (hub) => pusherUrl(hub, { key: 'not-a-key' }) }, expect: { close: 4001, error: /^no app has the key "not-a-key"/ } },
  { category: 'handshake', kind: 'ws', name: 'a disabled app\'s key', input: { url: (hub) => pusherUrl(hub, { key: DISABLED.key }) }, expect: { close: 4003, error: /^the app with key "[0-9a-f]+" is disabled/ } },
  { category: 'handshake', kind: 'ws', name: 'no protocol= in the URL', input: { url: (hub) => pusherUrl(hub, { query: 'client=js&version=8.4.0' }) }, expect: { close: 4008, error: /^no protocol version in the URL; add \?protocol=7/ } },
  { category: 'handshake', kind: 'ws', name: 'protocol=abc', input: { url: (hub) => pusherUrl(hub, { query: 'protocol=abc' }) }, expect: { close: 4006, error: /^protocol version "abc" is not a number/ } },
  { category: 'handshake', kind: 'ws', name: 'protocol= (empty)', input: { url: (hub) => pusherUrl(hub, { query: 'protocol=' }) }, expect: { close: 4006, error: /^protocol version "" is not a number/ } },
  { category: 'handshake', kind: 'ws', name: 'protocol=-7', input: { url: (hub) => pusherUrl(hub, { query: 'protocol=-7' }) }, expect: { close: 4006, error: /^protocol version "-7" is not a number/ } },
  { category: 'handshake', kind: 'ws', name: 'protocol=99', input: { url: (hub) => pusherUrl(hub, { query: 'protocol=99' }) }, expect: { close: 4007, error: /^protocol version 99 is not supported; use 5 to 7/ } },
  { category: 'handshake', kind: 'ws', name: 'protocol=4294967296 (over u32)', input: { url: (hub) => pusherUrl(hub, { query: 'protocol=4294967296' }) }, expect: { close: 4006, error: /^protocol version "4294967296" is not a number/ } },
  { category: 'handshake', kind: 'ws', name: 'a path that is not an endpoint', input: { url: (hub) => `${hub.wsUrl}/socket.io/?EIO=4` }, expect: { close: 4005, error: /^no WebSocket endpoint at \/socket\.io\/; Pusher clients use \/app\/\{key\}/ } },
  { category: 'handshake', kind: 'ws', name: '/app/{key}/extra', input: { url: (hub) => `${hub.wsUrl}/app/${hub.key}/extra?protocol=7` }, expect: { close: 4005, error: /^no WebSocket endpoint at \/app\/[0-9a-f]+\/extra/ } },
  {
    category: 'handshake', kind: 'ws', name: 'an Origin not in allowed_origins',
    input: { url: (hub) => pusherUrl(hub), headers: { Origin: 'http://evil.example' } }, expect: { status: 403 },
  },
  {
    category: 'handshake', kind: 'ws', name: 'the allowed Origin is admitted (so the 403s mean something)',
    input: { url: (hub) => pusherUrl(hub), headers: { Origin: ALLOWED_ORIGIN } }, expect: { established: true },
  },
  {
    category: 'handshake', kind: 'http', name: 'an Origin not in allowed_origins (the JSON answer)',
    input: (c) => ({ method: 'GET', path: `/app/${c.main.key}?protocol=7`, headers: { ...upgradeHeaders(), Origin: 'http://evil.example' } }),
    expect: { status: 403, error: /^WebSocket connections from pages of origin "http:\/\/evil\.example" are not allowed/ },
  },
  {
    category: 'handshake', kind: 'http', name: 'Origin: null on /v1/ws',
    input: () => ({ method: 'GET', path: '/v1/ws', headers: { ...upgradeHeaders(), Origin: 'null' } }),
    expect: { status: 403, error: /^WebSocket connections from pages of origin "null" are not allowed/ },
  },
  {
    category: 'handshake', kind: 'http', name: 'a plain GET (no upgrade) to /app/{key}',
    input: (c) => ({ method: 'GET', path: `/app/${c.main.key}?protocol=7` }), expect: { status: 400, error: /^\/app\/\{key\} is a WebSocket endpoint: connect with a WebSocket client/ },
  },
  {
    category: 'handshake', kind: 'http', name: 'an upgrade without Sec-WebSocket-Key',
    input: (c) => ({ method: 'GET', path: `/app/${c.main.key}?protocol=7`, headers: { ...upgradeHeaders(), 'Sec-WebSocket-Key': undefined } }),
    expect: { status: 400, error: /WebSocket/ },
  },
  {
    category: 'handshake', kind: 'http', name: 'Sec-WebSocket-Version: 12',
    // RFC 6455 §4.2.2 and §4.4: refuse, and name the versions understood in Sec-WebSocket-Version.
    input: (c) => ({ method: 'GET', path: `/app/${c.main.key}?protocol=7`, headers: { ...upgradeHeaders(), 'Sec-WebSocket-Version': '12' } }),
    expect: { status: 426, headers: { 'sec-websocket-version': '13' }, error: /WebSocket version 13/ },
  },
  {
    category: 'handshake', kind: 'tcp', name: 'a 1 MB request header',
    input: { send: `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(1024 * 1024)}\r\n\r\n` },
    expect: { status: 431, reason: /Request Header Fields Too Large/ },
  },
  {
    category: 'handshake', kind: 'tcp', name: '200 request headers',
    input: { send: `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n${Array.from({ length: 200 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n` },
    expect: { status: 431, reason: /Request Header Fields Too Large/ },
  },
  { category: 'handshake', kind: 'tcp', name: 'a request line that is not HTTP', input: { send: 'HELLO HUB\r\n\r\n' }, expect: { status: 400, reason: /Bad Request/ } },
  {
    category: 'handshake', kind: 'tcp', name: 'slow-loris: headers trickled a line every 250 ms',
    input: { send: `GET /app/KEY?protocol=7 HTTP/1.1\r\n`, trickle: 'X-Slow: 1\r\n', every: 250 },
    // handshake_timeout_secs = 2: closed without an answer.
    expect: { silentCloseWithinMs: [1500, 4500] },
  },

  // ===== HTTP requests ==================================================================================
  { category: 'http', kind: 'http', name: 'an unsigned publish', input: (c) => ({ method: 'POST', path: `/apps/${c.main.appId}/events`, body: eventBody() }), expect: { status: 401, error: /^the query parameter auth_key is missing/ } },
  { category: 'http', kind: 'http', name: 'a signature made with the wrong secret', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody(), { secret: 'wrong' }), expect: { status: 401, error: /^invalid signature: auth_signature does not match/ } },
  {
    category: 'http', kind: 'http', name: 'auth_signature missing',
    input: (c) => {
      const r = signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody());
      return { ...r, path: r.path.replace(/&auth_signature=[0-9a-f]+/, '') };
    },
    expect: { status: 401, error: /^the query parameter auth_signature is missing/ },
  },
  {
    category: 'http', kind: 'http', name: 'signed by the second app for the first app\'s path',
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody(), { key: SECOND.key, secret: SECOND.secret }),
    expect: { status: 401, error: /^auth_key does not match this app's key/ },
  },
  {
    category: 'http', kind: 'http', name: 'a stale auth_timestamp (700 s old)',
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody(), { timestamp: Math.floor(Date.now() / 1000) - 700 }),
    expect: { status: 401, error: /^auth_timestamp is 7\d\d s away from the server's clock \(the limit is 600 s\)/ },
  },
  {
    category: 'http', kind: 'http', name: 'an auth_timestamp 700 s in the future',
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody(), { timestamp: Math.floor(Date.now() / 1000) + 700 }),
    expect: { status: 401, error: /^auth_timestamp is \d+ s away from the server's clock/ },
  },
  {
    category: 'http', kind: 'http', name: 'auth_timestamp not a number',
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody(), { timestamp: 'yesterday' }),
    expect: { status: 401, error: /^auth_timestamp "yesterday" is not a Unix time in seconds/ },
  },
  {
    category: 'http', kind: 'http', name: 'auth_version=2.0',
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody(), { params: { auth_version: '2.0' } }),
    expect: { status: 401, error: /^auth_version "2.0" is not supported; use 1.0/ },
  },
  {
    category: 'http', kind: 'http', name: 'a wrong body_md5 (body changed after signing)',
    input: (c) => ({ ...signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ data: '{"amount":1}' })), body: eventBody({ data: '{"amount":1000}' }) }),
    expect: { status: 401, error: /^body_md5 does not match the body received/ },
  },
  {
    category: 'http', kind: 'http', name: 'a body without body_md5',
    input: (c) => ({ method: 'POST', path: signedPath(c.hub, 'POST', `/apps/${c.main.appId}/events`, undefined), body: eventBody() }),
    expect: { status: 401, error: /^body_md5 is missing for a request with a body/ },
  },
  { category: 'http', kind: 'http', name: 'an unknown app id', input: (c) => signedPost(c.hub, '/apps/999999999999/events', eventBody()), expect: { status: 404, error: /^no app has the id "999999999999"/ } },
  {
    category: 'http', kind: 'http', name: 'a disabled app',
    input: (c) => signedPost(c.hub, `/apps/${DISABLED.appId}/events`, eventBody(), { key: DISABLED.key, secret: DISABLED.secret }),
    expect: { status: 403, error: /^the app "\d+" is disabled/ },
  },
  { category: 'http', kind: 'http', name: 'a body that is not JSON', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, 'name=e&channel=x'), expect: { status: 400, error: /^the body is not the expected JSON: / } },
  {
    category: 'http', kind: 'http', name: 'a JSON array body shaped like an event (6 elements, not an object)',
    // docs/protocol.md §3: the body is an object {"name","data","channel"...}; nothing must reach the probe.
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, '["e","{}","hostile-probe",null,null,null]'),
    expect: { status: 400, error: /^the body is not the expected JSON: /, nothingOn: 'hostile-probe' },
  },
  { category: 'http', kind: 'http', name: 'event data over 10 KB', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ data: 'x'.repeat(11 * 1024) })), expect: { status: 413, error: /^the event data is 11264 bytes; the limit is 10240 bytes/ } },
  {
    category: 'http', kind: 'http', name: `a body over max_body_bytes (${LIMITS.max_body_bytes}) with Content-Length`,
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ pad: 'p'.repeat(80 * 1024) })),
    expect: { status: 413, error: new RegExp(`^the request body is over the ${LIMITS.max_body_bytes}-byte limit`) },
  },
  {
    category: 'http', kind: 'http', name: 'a chunked body over max_body_bytes',
    input: (c) => ({ ...signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ pad: 'p'.repeat(80 * 1024) })), chunked: true }),
    expect: { status: 413, error: new RegExp(`^the request body is over the ${LIMITS.max_body_bytes}-byte limit`) },
  },
  {
    category: 'http', kind: 'http', name: '101 channels in one event',
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ channel: undefined, channels: Array.from({ length: 101 }, (_, i) => `c${i}`) })),
    expect: { status: 400, error: /^101 channels in one event; the limit is 100/ },
  },
  { category: 'http', kind: 'http', name: '"channel" and "channels" both', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ channels: ['a'] })), expect: { status: 400, error: /^give either "channel" or "channels", not both/ } },
  { category: 'http', kind: 'http', name: '"channels" empty', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ channel: undefined, channels: [] })), expect: { status: 400, error: /^"channels" is empty/ } },
  { category: 'http', kind: 'http', name: 'an invalid channel name', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ channel: 'bad name!' })), expect: { status: 400, error: /^invalid channel "bad name!": the channel name contains ' '/ } },
  { category: 'http', kind: 'http', name: 'an empty event name', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ name: '' })), expect: { status: 400, error: /^"name" \(the event name\) is missing/ } },
  { category: 'http', kind: 'http', name: 'a 201-character event name', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ name: 'n'.repeat(201) })), expect: { status: 400, error: /^the event name is 201 characters long; the limit is 200/ } },
  { category: 'http', kind: 'http', name: 'data null', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ data: null })), expect: { status: 400, error: /^"data" is missing/ } },
  { category: 'http', kind: 'http', name: 'socket_id not a socket id', input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ socket_id: '1.2; DROP' })), expect: { status: 400, error: /^socket_id "1.2; DROP" is not a socket id/ } },
  {
    category: 'http', kind: 'http', name: 'info=user_count on a public channel (publish)',
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/events`, eventBody({ info: 'user_count' })),
    expect: { status: 400, error: /^info=user_count is only available for presence channels, and "hostile-http" is not one/ },
  },
  {
    category: 'http', kind: 'http', name: 'info=user_count on a public channel (query)',
    input: (c) => ({ method: 'GET', path: signedPath(c.hub, 'GET', `/apps/${c.main.appId}/channels/orders`, undefined, { params: { info: 'user_count' } }) }),
    expect: { status: 400, error: /^info=user_count is only available for presence channels, and "orders" is not one/ },
  },
  {
    category: 'http', kind: 'http', name: 'an unknown info attribute',
    input: (c) => ({ method: 'GET', path: signedPath(c.hub, 'GET', `/apps/${c.main.appId}/channels`, undefined, { params: { info: 'secret_key' } }) }),
    expect: { status: 400, error: /^unknown info attribute "secret_key"/ },
  },
  {
    category: 'http', kind: 'http', name: 'the users of a public channel',
    input: (c) => ({ method: 'GET', path: signedPath(c.hub, 'GET', `/apps/${c.main.appId}/channels/orders/users`, undefined) }),
    expect: { status: 400, error: /^"orders" is not a presence channel; only presence channels have users/ },
  },
  {
    category: 'http', kind: 'http', name: 'a batch of 11 events',
    input: (c) => signedPost(c.hub, `/apps/${c.main.appId}/batch_events`, JSON.stringify({ batch: Array.from({ length: 11 }, () => ({ channel: 'hostile-probe', name: 'e', data: '{}' })) })),
    expect: { status: 400, error: /^11 events in one batch; the limit is 10/, nothingOn: 'hostile-probe' },
  },
  {
    category: 'http', kind: 'http', name: 'a batch whose 4th event is invalid (none is sent)',
    input: (c) =>
      signedPost(
        c.hub,
        `/apps/${c.main.appId}/batch_events`,
        JSON.stringify({ batch: [0, 1, 2].map((i) => ({ channel: 'hostile-probe', name: 'e', data: `${i}` })).concat([{ channel: 'no good', name: 'e', data: '3' }]) }),
      ),
    expect: { status: 400, error: /^batch\[3\]: invalid channel "no good"/, nothingOn: 'hostile-probe' },
  },
  { category: 'http', kind: 'http', name: 'GET on the publish endpoint', input: (c) => ({ method: 'GET', path: `/apps/${c.main.appId}/events` }), expect: { status: 405, error: /^GET is not allowed on \/apps\/\d+\/events/ } },
  { category: 'http', kind: 'http', name: 'DELETE /health', input: () => ({ method: 'DELETE', path: '/health' }), expect: { status: 405, error: /^DELETE is not allowed on \/health/ } },
  { category: 'http', kind: 'http', name: 'an unknown path', input: () => ({ method: 'GET', path: '/../../etc/passwd' }), expect: { status: 404, error: /^nothing at / } },
  { category: 'http', kind: 'http', name: 'Poussr v1 publish without ?name', input: () => ({ method: 'POST', path: '/v1/channels/users/events', body: '{}' }), expect: { status: 400, error: /^the event name is missing: POST \/v1\/channels\/users\/events\?name=<event name>/ } },
  {
    category: 'http', kind: 'http', name: 'Poussr v1 publish with a body that is not UTF-8',
    input: () => ({ method: 'POST', path: '/v1/channels/hostile-probe/events?name=e', body: Buffer.from([0x7b, 0xc3, 0x28, 0xff, 0x7d]) }),
    expect: { status: 400, error: /^the body is not valid UTF-8 text/, nothingOn: 'hostile-probe' },
  },
  { category: 'http', kind: 'http', name: 'Poussr v1 publish to an invalid channel', input: () => ({ method: 'POST', path: '/v1/channels/bad%20name/events?name=e', body: '{}' }), expect: { status: 400, error: /^invalid channel "bad name": the channel name contains ' '/ } },
  { category: 'http', kind: 'http', name: 'Poussr v1 publish over 10 KB', input: () => ({ method: 'POST', path: '/v1/channels/users/events?name=e', body: 'x'.repeat(11 * 1024) }), expect: { status: 413, error: /^the event data is over the 10240-byte limit/ } },
  {
    category: 'http', kind: 'tcp', name: 'a request whose body never arrives',
    input: { send: `POST /v1/channels/users/events?name=e HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"par` },
    // http_request_timeout_secs = 2.
    expect: { status: 408, error: /^the request was not received and answered within 2 s/, headers: { connection: 'close' }, minMs: 1500 },
  },
  {
    category: 'http', kind: 'burst', name: 'publishing faster than max_publish_per_second (second app)',
    input: (c) =>
      // 60 batches of 10 = 600 events at once; the bucket holds 200 and refills at 200 a second.
      Array.from({ length: 60 }, () =>
        signedPost(
          c.hub,
          `/apps/${SECOND.appId}/batch_events`,
          JSON.stringify({ batch: Array.from({ length: 10 }, (_, i) => ({ channel: 'hostile-rate', name: 'e', data: `${i}` })) }),
          { key: SECOND.key, secret: SECOND.secret },
        ),
      ),
    expect: {
      status: 429,
      error: new RegExp(`^the app "${SECOND.appId}" may publish ${LIMITS.max_publish_per_second} events per second and has used them up; retry in \\d+ ms`),
      headers: { 'retry-after': '1' },
      othersStatus: 200,
    },
  },

  // ===== Auth payloads ====================================================================================
  {
    category: 'auth', kind: 'pusher', name: 'channel auth truncated by one hex digit',
    input: (c) => sub('private-orders', { auth: channelAuth(c.socketId, 'private-orders', undefined, c.main).slice(0, -1) }),
    expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'channel auth truncated to its first 32 bytes',
    input: (c) => sub('private-orders', { auth: channelAuth(c.socketId, 'private-orders', undefined, c.main).slice(0, c.main.key.length + 1 + 64 - 32) }),
    expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'channel auth with an empty signature ("key:")',
    input: (c) => sub('private-orders', { auth: `${c.main.key}:` }), expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'channel auth "" (empty)',
    input: sub('private-orders', { auth: '' }), expect: { subscriptionError: { status: 401, type: 'AuthError', error: /none was sent/ } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'channel auth without a colon',
    input: (c) => sub('private-orders', { auth: hmac(c.main.secret, `${c.socketId}:private-orders`) }), expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'channel auth with a trailing ":x"',
    input: (c) => sub('private-orders', { auth: `${channelAuth(c.socketId, 'private-orders', undefined, c.main)}:x` }), expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'the right signature in upper-case hex (the same MAC: accepted)',
    input: (c) => {
      const [key, sig] = channelAuth(c.socketId, 'private-orders', undefined, c.main).split(':');
      return sub('private-orders', { auth: `${key}:${sig.toUpperCase()}` });
    },
    expect: { succeeded: 'private-orders' },
  },
  {
    category: 'auth', kind: 'pusher', name: 'channel auth signed for another socket id',
    input: (c) => sub('private-orders', { auth: channelAuth('1234.5678', 'private-orders', undefined, c.main) }), expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'channel auth signed for another channel',
    input: (c) => sub('private-orders', { auth: channelAuth(c.socketId, 'private-public-notes', undefined, c.main) }), expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'channel auth from another app (its key and secret)',
    input: (c) => sub('private-orders', { auth: channelAuth(c.socketId, 'private-orders', undefined, SECOND) }), expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'this app\'s key with another app\'s signature',
    input: (c) => sub('private-orders', { auth: `${c.main.key}:${hmac(SECOND.secret, `${c.socketId}:private-orders`)}` }), expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'presence signed for user 7, channel_data changed to user 1',
    input: (c) => sub('presence-room', { auth: channelAuth(c.socketId, 'presence-room', '{"user_id":"7"}', c.main), channel_data: '{"user_id":"1"}' }),
    expect: { subscriptionError: { status: 401, type: 'AuthError', error: BAD_AUTH } },
  },
  {
    category: 'auth', kind: 'pusher', name: 'signin with user_data that is not JSON (validly signed)',
    input: (c) => signin(c.socketId, 'id=7', c.main), expect: { close: 4009, error: /^pusher:signin refused: user_data is not valid JSON/ },
  },
  {
    category: 'auth', kind: 'pusher', name: 'signin with user_data without an id (validly signed)',
    input: (c) => signin(c.socketId, '{"name":"Mallory"}', c.main), expect: { close: 4009, error: /^pusher:signin refused: user_data must be a JSON object with a non-empty string "id"/ },
  },
  {
    category: 'auth', kind: 'pusher', name: 'signin with a user id that would break the channel name (validly signed)',
    input: (c) => signin(c.socketId, '{"id":"7 #server-to-user-1"}', c.main), expect: { close: 4009, error: /^pusher:signin refused: the user id "7 #server-to-user-1" may hold only/ },
  },
  {
    category: 'auth', kind: 'pusher', name: 'signin signed for another socket id',
    input: (c) => signin('1234.5678', '{"id":"7"}', c.main),
    expect: { close: 4009, error: /^pusher:signin refused: the auth signature does not match the user_data/ },
  },
  {
    category: 'auth', kind: 'pusher', name: 'a second signin as another user, then another user\'s channel',
    input: (c) => [signin(c.socketId, '{"id":"7"}', c.main), signin(c.socketId, '{"id":"8"}', c.main), sub('#server-to-user-8')],
    expect: [
      { signedIn: '{"id":"7"}' },
      { error: /^pusher:signin refused: this connection is already signed in as "7"/ },
      { subscriptionError: { status: 403, type: 'AuthError', error: /signed in \(pusher:signin\) as user "8"/ } },
    ],
  },
];

/** The request headers of a WebSocket handshake. */
function upgradeHeaders() {
  return {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
  };
}

// --- raw HTTP over TCP ---------------------------------------------------------------------------------------

/** Parses an HTTP/1.1 response from bytes; null until the head (and a Content-Length body) is complete. */
function parseResponse(bytes) {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(head[0]);
  if (!match) return { status: NaN, reason: head[0], headers: {}, body: '' };
  const headers = {};
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = bytes.subarray(end + 4);
  const length = headers['content-length'] === undefined ? null : Number(headers['content-length']);
  if (length !== null && body.length < length) return null;
  return { status: Number(match[1]), reason: match[2], headers, body: body.subarray(0, length ?? body.length).toString('utf8') };
}

/**
 * Opens a TCP connection to the hub, writes `send`, optionally trickles `trickle` every `every` ms, and
 * resolves with what came back: the parsed response (or null), every byte received, and how long it took.
 */
function tcpExchange(port, { send, trickle, every = 250 }, { timeout = 6000 } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let settled = false;
    let trickler;
    const finish = (why) => {
      if (settled) return;
      settled = true;
      clearInterval(trickler);
      clearTimeout(timer);
      socket.destroy();
      resolve({ response: parseResponse(received), bytes: received, ms: Date.now() - started, why });
    };
    const timer = setTimeout(() => finish('timeout'), timeout);
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (parseResponse(received)) finish('response');
    });
    socket.on('error', () => finish('error'));
    socket.on('close', () => finish('closed'));
    socket.on('connect', () => {
      socket.write(send, () => {});
      if (trickle) {
        trickler = setInterval(() => {
          if (!socket.destroyed && socket.writable) socket.write(trickle, () => {});
        }, every);
      }
    });
  });
}

/** An HTTP/1.1 request as bytes: `Connection: close`, Content-Length (or chunked), headers left out when undefined. */
function requestBytes(port, { method = 'GET', path, headers = {}, body, chunked = false }) {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`];
  const all = { Connection: 'close', ...headers };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) lines.push(`${k}: ${v}`);
  let payload = Buffer.alloc(0);
  if (body !== undefined) {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    if (chunked) {
      lines.push('Transfer-Encoding: chunked');
      const parts = [];
      for (let i = 0; i < bytes.length; i += 8192) {
        const chunk = bytes.subarray(i, i + 8192);
        parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from('0\r\n\r\n'));
      payload = Buffer.concat(parts);
    } else {
      lines.push(`Content-Length: ${bytes.length}`);
      payload = bytes;
    }
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

/** Asserts `res` (from tcpExchange) answers `expect`: status, JSON `{error}` matching, reason, headers. */
function assertHttpAnswer(result, expect, what) {
  const res = result.response;
  assert.ok(res, `${what}: an HTTP answer (got ${result.why} after ${result.ms} ms, bytes: ${JSON.stringify(result.bytes.toString('latin1').slice(0, 300))})`);
  assert.equal(res.status, expect.status, `${what}: status (${res.status} ${res.reason}; body: ${res.body.slice(0, 500)})`);
  if (expect.reason) assert.match(res.reason, expect.reason, `${what}: reason phrase`);
  for (const [name, value] of Object.entries(expect.headers ?? {})) {
    const got = res.headers[name];
    if (value instanceof RegExp) assert.match(got ?? '', value, `${what}: header ${name} (headers: ${JSON.stringify(res.headers)})`);
    else assert.equal(got, value, `${what}: header ${name} (headers: ${JSON.stringify(res.headers)}; body: ${res.body.slice(0, 300)})`);
  }
  if (expect.error) {
    assert.match(res.headers['content-type'] ?? '', /application\/json/, `${what}: content type (body: ${res.body.slice(0, 300)})`);
    let body;
    try {
      body = JSON.parse(res.body);
    } catch {
      assert.fail(`${what}: the error body is not JSON: ${res.body.slice(0, 300)}`);
    }
    assert.equal(typeof body.error, 'string', `${what}: body.error (body: ${res.body.slice(0, 300)})`);
    assert.match(body.error, expect.error, `${what}: the error says what is wrong`);
  }
  if (expect.minMs !== undefined) assert.ok(result.ms >= expect.minMs, `${what}: answered after ${result.ms} ms, not before ${expect.minMs}`);
}

// --- the suite -----------------------------------------------------------------------------------------------

describe('hostile input, while a good client keeps receiving', () => {
  let hub;
  let steady;
  let ticks;
  let ticker;
  let steadyChannel;
  const sockets = new Set();

  before(async () => {
    hub = await startHub(hubOptions);
    steady = await connectPusher(hub);
    steadyChannel = uniqueName('steady');
    ticks = inboxOf(await subscribe(steady, steadyChannel), 'tick');
    // A new connection per trigger: the stream may idle longer than this hub's 2 s keep-alive cut-off while a
    // timeout row runs, and a request sent on a pooled connection as the hub closes it is reset.
    const noKeepAlive = new http.Agent({ keepAlive: false });
    ticker = startTicker(serverSdk(hub, { agent: noKeepAlive }), steadyChannel, ticks, { onBeat: true });
    ticker.beat();
    // The stream is live before the first hostile input arrives.
    await eventually(() => ticks.all.length > 0, { what: 'the first event of the stream' });
  });
  after(async () => {
    await ticker?.stop();
    for (const socket of sockets) socket.close();
    steady?.disconnect();
    await hub?.close();
  });
  // One stream event per test, triggered as the test begins: it is on its way while the bad input arrives.
  beforeEach(() => ticker.beat());

  const context = (socketId) => ({
    hub,
    socketId,
    steadyChannel,
    main: { appId: hub.appId, key: hub.key, secret: hub.secret },
  });
  const resolve = (value, c) => (typeof value === 'function' ? value(c) : value);
  const steps = (value) => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

  /** A socket closed when the test ends (and at the latest in `after`). */
  function track(t, socket) {
    sockets.add(socket);
    t.after(() => {
      socket.close();
      sockets.delete(socket);
    });
    return socket;
  }

  function sendFrame(socket, frame) {
    if (typeof frame === 'string') socket.send(frame);
    else if (frame.binary) socket.ws.send(frame.binary, { binary: true });
    else if (frame.badUtf8Text) socket.ws.send(frame.badUtf8Text, { binary: false });
    else if (frame.closeWith) socket.ws.close(frame.closeWith, 'bye');
    else socket.send(frame);
  }

  /** A raw socket subscribed to `channel`, to show that nothing is published there. */
  async function probe(t, channel) {
    const socket = track(t, await openPusherSocket(hub));
    socket.send(sub(channel));
    const ok = await socket.next();
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', `probe on ${channel}: ${JSON.stringify(ok)}`);
    return socket;
  }

  /**
   * A ping gets a pong as the very next frame: the socket is open and nothing else was sent to it. The pong is
   * written as the ping is read, ahead of events still queued for the socket; so with `channel`, an event
   * published there first must be the very next frame: the hub writes what it queued for a connection in
   * order, so anything it had published to the socket before would come first.
   */
  async function assertStillServed(socket, what, channel) {
    if (channel !== undefined) {
      await assertNextIsSentinel(serverSdk(hub), channel, [[what, socket]]);
    }
    socket.send({ event: 'pusher:ping', data: {} });
    const pong = await socket.next(3000);
    assert.equal(pong.event, 'pusher:pong', `${what}: a ping gets a pong as the next frame, got ${JSON.stringify(pong)}`);
    assert.ok(socket.isOpen, `${what}: the socket is still open`);
  }

  async function runPusherRow(t, row) {
    const socket = track(t, await openPusherSocket(hub));
    const c = context(socket.socketId);
    const frames = steps(resolve(row.input, c));
    let lastChannel;
    for (const frame of frames) {
      if (frame?.event === 'pusher:subscribe') lastChannel = frame.data?.channel;
      sendFrame(socket, frame);
    }
    let closed = false;
    const expected = steps(resolve(row.expect, c));
    // The channel a subscription_error names is that of the last subscribe sent.
    for (const [i, step] of expected.entries()) {
      const what = `step ${i + 1} of ${expected.length}`;
      if (step.closeFrame !== undefined) {
        const end = await socket.waitClosed(5000);
        assert.deepEqual(socket.frames.items, [], `${what}: no frame before the close (close: ${JSON.stringify(end)})`);
        assert.equal(end.code, step.closeFrame, `${what}: close code (1006 means the hub dropped the TCP connection without a close frame): ${JSON.stringify(end)}`);
        closed = true;
        continue;
      }
      // A frame, or the close if the hub closes the socket first (so a missing frame fails at once).
      const frame = await Promise.race([socket.next(5000), socket.closed.then((end) => ({ closedInstead: end }))]);
      if (frame.closedInstead) {
        const wanted = JSON.stringify(step, (_, v) => (v instanceof RegExp ? String(v) : v));
        assert.fail(`${what}: the socket closed (${JSON.stringify(frame.closedInstead)}; 1006: without a close frame) instead of sending ${wanted}`);
      }
      const shown = JSON.stringify(frame).slice(0, 400);
      if (step.close !== undefined) {
        assert.equal(frame.event, 'pusher:error', `${what}: ${shown}`);
        assert.equal(frame.data?.code, step.close, `${what}: code: ${shown}`);
        assert.match(frame.data.message, step.error, `${what}: message`);
        const end = await socket.waitClosed(5000);
        assert.equal(end.code, step.close, `${what}: close code: ${JSON.stringify(end)}`);
        closed = true;
      } else if (step.error) {
        assert.equal(frame.event, 'pusher:error', `${what}: ${shown}`);
        assert.equal(frame.data?.code, null, `${what}: code null (the connection stays open): ${shown}`);
        assert.match(frame.data.message, step.error, `${what}: message`);
      } else if (step.subscriptionError) {
        const want = step.subscriptionError;
        assert.equal(frame.event, 'pusher:subscription_error', `${what}: ${shown}`);
        assert.equal(frame.channel, want.channel ?? lastChannel, `${what}: channel`);
        assert.equal(frame.data?.status, want.status, `${what}: status: ${shown}`);
        assert.equal(frame.data.type, want.type, `${what}: type: ${shown}`);
        assert.match(frame.data.error, want.error, `${what}: error`);
      } else if (step.succeeded) {
        assert.equal(frame.event, 'pusher_internal:subscription_succeeded', `${what}: ${shown}`);
        assert.equal(frame.channel, step.succeeded, `${what}: channel`);
      } else if (step.signedIn) {
        assert.equal(frame.event, 'pusher:signin_success', `${what}: ${shown}`);
        assert.equal(JSON.parse(frame.data).user_data, step.signedIn, `${what}: user_data`);
      } else {
        assert.fail(`unknown step ${JSON.stringify(step)}`);
      }
    }
    if (!closed) await assertStillServed(socket, `after ${row.name}`);
  }

  async function runV1Row(t, row) {
    const socket = track(t, await RawSocket.open(`${hub.wsUrl}/v1/ws`));
    for (const frame of steps(resolve(row.input, context()))) sendFrame(socket, frame);
    const frame = await socket.next(5000);
    const shown = JSON.stringify(frame).slice(0, 400);
    assert.equal(frame.event, 'poussr:error', shown);
    assert.equal(frame.data?.code, 4000, `code: ${shown}`);
    assert.match(frame.data.message, row.expect.v1error, 'message');
    // Still served: a good subscribe is answered next.
    socket.send({ event: 'poussr:subscribe', data: { channel: 'hostile-v1' } });
    const ok = await socket.next(3000);
    assert.deepEqual(ok, { event: 'poussr:subscription_succeeded', channel: 'hostile-v1' }, 'a good subscribe still works');
  }

  async function runWsRow(t, row) {
    const { url, headers } = row.input;
    const socket = track(t, new RawSocket(url(hub), headers ? { headers } : {}));
    if (row.expect.established) {
      await withTimeout(socket.opened, 5000, 'the handshake');
      const hello = await socket.next();
      assert.equal(hello.event, 'pusher:connection_established', JSON.stringify(hello));
      await assertStillServed(socket, row.name);
      return;
    }
    if (row.expect.status !== undefined) {
      const status = await withTimeout(
        new Promise((resolveStatus) => socket.ws.on('unexpected-response', (_req, res) => resolveStatus(res.statusCode))),
        5000,
        'the refusal of the handshake',
      );
      assert.equal(status, row.expect.status, 'HTTP status of the refused handshake');
      return;
    }
    const end = await socket.waitClosed(5000);
    const frames = socket.frames.all;
    assert.equal(frames.length, 1, `one pusher:error before the close, got ${JSON.stringify(frames)} (close ${JSON.stringify(end)})`);
    assert.equal(frames[0].event, 'pusher:error', JSON.stringify(frames[0]));
    assert.equal(frames[0].data?.code, row.expect.close, `error code: ${JSON.stringify(frames[0])}`);
    assert.match(frames[0].data.message, row.expect.error, 'message');
    assert.equal(end.code, row.expect.close, `close code: ${JSON.stringify(end)}`);
  }

  async function runHttpRow(t, row) {
    const request = resolve(row.input, context());
    const watch = row.expect.nothingOn ? await probe(t, row.expect.nothingOn) : null;
    const result = await tcpExchange(hub.port, { send: requestBytes(hub.port, request) });
    assertHttpAnswer(result, row.expect, row.name);
    if (watch) await assertStillServed(watch, `nothing was published on ${row.expect.nothingOn}`, row.expect.nothingOn);
  }

  async function runTcpRow(row) {
    const result = await tcpExchange(hub.port, row.input, { timeout: 8000 });
    if (row.expect.silentCloseWithinMs) {
      const [min, max] = row.expect.silentCloseWithinMs;
      assert.equal(result.bytes.length, 0, `closed without an answer, got ${JSON.stringify(result.bytes.toString('latin1').slice(0, 200))}`);
      assert.notEqual(result.why, 'timeout', `the hub closed the connection (after ${result.ms} ms: ${result.why})`);
      assert.ok(result.ms >= min && result.ms <= max, `closed after ${result.ms} ms, expected ${min}–${max} ms`);
      return;
    }
    assertHttpAnswer(result, row.expect, row.name);
  }

  async function runBurstRow(row) {
    const requests = resolve(row.input, context());
    const results = await Promise.all(requests.map((r) => tcpExchange(hub.port, { send: requestBytes(hub.port, r) })));
    const statuses = results.map((r) => r.response?.status);
    const refused = results.filter((r) => r.response?.status === row.expect.status);
    assert.ok(refused.length > 0, `some requests are refused with ${row.expect.status} (statuses: ${statuses.join(',')})`);
    assert.ok(
      results.every((r) => r.response?.status === row.expect.status || r.response?.status === row.expect.othersStatus),
      `every other request is ${row.expect.othersStatus} (statuses: ${statuses.join(',')})`,
    );
    for (const r of refused) assertHttpAnswer(r, row.expect, row.name);
  }

  for (const row of ROWS) {
    test(`${row.category}: ${row.name}`, async (t) => {
      switch (row.kind) {
        case 'pusher':
          return runPusherRow(t, row);
        case 'v1':
          return runV1Row(t, row);
        case 'ws':
          return runWsRow(t, row);
        case 'http':
          return runHttpRow(t, row);
        case 'tcp':
          return runTcpRow(row);
        case 'burst':
          return runBurstRow(row);
        default:
          throw new Error(`unknown kind ${row.kind}`);
      }
    });
  }

  test('the table has at least 60 rows, in every category', () => {
    const counts = {};
    for (const row of ROWS) counts[row.category] = (counts[row.category] ?? 0) + 1;
    assert.ok(ROWS.length >= 60, `${ROWS.length} rows`);
    for (const category of ['frame', 'handshake', 'http', 'auth']) assert.ok(counts[category] >= 5, `${category}: ${counts[category]}`);
  });

  test('through all of it, the good client received every event once, in order, and the hub is healthy', async () => {
    // Anything extra the hub had queued for the good client (a duplicate, a forged tick) fails this too.
    await ticker.finish(steady.channel(steadyChannel), { atLeast: 20 });
    assert.equal(steady.connection.state, 'connected');
    // pusher-js may report 'connecting' before connectPusher binds; after 'connected' nothing else came.
    const states = [...steady.states];
    assert.deepEqual(states.slice(states.indexOf('connected')), ['connected'], `the good client never lost its connection (states: ${states})`);
    const health = await fetch(`${hub.httpUrl}/health`);
    assert.equal(health.status, 200);
    const body = await health.json();
    assert.equal(body.status, 'ok', JSON.stringify(body));
    assert.equal(hub.exitCode, undefined, `the hub is still running\n${hub.output()}`);
    assert.doesNotMatch(hub.stderr, /panicked/, `the hub did not panic\n${hub.output()}`);
  });
});
