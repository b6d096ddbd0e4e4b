/*
 * poussr.js: the browser client of the Poussr v1 protocol, served by the hub at /poussr.js.
 *
 * It keeps the API of the original poussr-js, so an old page keeps working once its <script> points here:
 *
 *     var p = new Poussr('192.168.1.20', 6001, 'users');
 *     p.connect();
 *     p.subscribe('newuser', function (data) { ... });  // data: JSON-parsed when it parses, else the raw string
 *     p.host(); p.port(); p.channel_name(); p.connected();
 *
 * What it adds: connected() is true only while the socket is open; a lost connection comes back by itself
 * (exponential backoff with full jitter) and subscribes its channel again; unsubscribe(event, cb); disconnect().
 * And recovery: when it subscribes again, it asks the hub for the events published while it was away, which
 * reach the callbacks in order and once each before any live one. When they cannot all be given, callbacks of
 * 'poussr:not_recovered' are called with the reason (docs/protocol.md section 7). {recover: false} turns it off.
 *
 * Plain ES5, no modules and no build step: it has to run as-is in whatever browser a lab or a factory floor
 * still has. The wire format is described in docs/protocol.md, section 1.
 */
var Poussr = (function () {
  'use strict';

  // Reconnect delays. About a second first, so a hub restart is barely noticed; capped at 30 s so a hub that
  // stays down is not hammered by every page left open on the LAN.
  var FIRST_DELAY_MS = 1000;
  var MAX_DELAY_MS = 30000;

  // WebSocket.OPEN, written out because not every implementation exposes the constants on the constructor.
  var OPEN = 1;

  /**
   * @param {string} host     the hub's address as the browser reaches it
   * @param {number} port     the hub's port (6001 by default)
   * @param {string} channel  the one channel this client listens to (one channel per socket, as in the original)
   * @param {object} [options] `{WebSocket: Impl}` to use another WebSocket class (the `ws` package in Node);
   *                           `{recover: false}` not to recover missed events after a reconnect
   */
  function Poussr(host, port, channel, options) {
    // Old pages sometimes call the constructor without `new`; answer them with an instance anyway.
    if (!(this instanceof Poussr)) {
      return new Poussr(host, port, channel, options);
    }
    options = options || {};
    this._host = String(host);
    this._port = port;
    this._channel = String(channel);
    this._WebSocket = options.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
    // event name -> array of callbacks; kept across reconnects because they belong to the page, not the socket.
    this._callbacks = {};
    // The current socket, or null. Handlers of an older socket compare against it and stay quiet once replaced.
    this._socket = null;
    // True between connect() and disconnect(): whether a lost socket should be opened again.
    this._wanted = false;
    // Connections lost since the last successful open; it sets the backoff ceiling.
    this._failures = 0;
    // The pending reconnect, so disconnect() can cancel it.
    this._timer = null;
    // Recovery: where the channel's history stands for this client ({epoch, serial, clientEvents}), once the
    // hub has said, and whether events are counted now (not between a subscribe and the hub's answer).
    this._recover = options.recover !== false;
    this._position = null;
    this._counting = false;
  }

  /** Where this client is in the channel's history: {epoch, serial}, or null before the hub has said. */
  Poussr.prototype.position = function () {
    return this._position ? { epoch: this._position.epoch, serial: this._position.serial } : null;
  };

  Poussr.prototype.host = function () {
    return this._host;
  };

  Poussr.prototype.port = function () {
    return this._port;
  };

  Poussr.prototype.channel_name = function () {
    return this._channel;
  };

  /** True only while the socket is open: a socket that is still connecting cannot deliver anything yet. */
  Poussr.prototype.connected = function () {
    return this._socket !== null && this._socket.readyState === OPEN;
  };

  /** Opens the connection, and keeps it open until disconnect(). Calling it again while connected is harmless. */
  Poussr.prototype.connect = function () {
    this._wanted = true;
    if (this._socket === null && this._timer === null) {
      this._open();
    }
    return this;
  };

  /** Closes the connection and stops reconnecting. Callbacks stay registered for a later connect(). */
  Poussr.prototype.disconnect = function () {
    var socket = this._socket;
    this._wanted = false;
    this._socket = null;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (socket !== null) {
      socket.close(1000);
    }
    return this;
  };

  /** Calls `callback(data)` for every `eventName` event published on the channel. */
  Poussr.prototype.subscribe = function (eventName, callback) {
    if (typeof callback !== 'function') {
      throw new TypeError('Poussr.subscribe: the callback must be a function');
    }
    (this._callbacks[eventName] = this._callbacks[eventName] || []).push(callback);
    return this;
  };

  /** Removes `callback` from `eventName`; without a callback, removes every callback of that event. */
  Poussr.prototype.unsubscribe = function (eventName, callback) {
    var list = this._callbacks[eventName];
    var kept = [];
    var i;
    if (!list) {
      return this;
    }
    if (callback !== undefined) {
      for (i = 0; i < list.length; i++) {
        if (list[i] !== callback) {
          kept.push(list[i]);
        }
      }
    }
    if (kept.length > 0) {
      this._callbacks[eventName] = kept;
    } else {
      delete this._callbacks[eventName];
    }
    return this;
  };

  Poussr.prototype._url = function () {
    // A page served over https may not open a plain ws:// socket (mixed content), so follow the page.
    var secure = typeof location !== 'undefined' && location.protocol === 'https:';
    var host = this._host;
    // An IPv6 literal needs brackets in a URL; operators type it bare.
    if (host.indexOf(':') !== -1 && host.charAt(0) !== '[') {
      host = '[' + host + ']';
    }
    return (secure ? 'wss://' : 'ws://') + host + ':' + this._port + '/v1/ws';
  };

  Poussr.prototype._open = function () {
    var self = this;
    var socket;
    this._timer = null;
    if (!this._WebSocket) {
      console.warn('Poussr: this environment has no WebSocket; pass {WebSocket: Impl} as the 4th argument');
      this._wanted = false;
      return;
    }
    try {
      socket = new this._WebSocket(this._url());
    } catch (e) {
      // A malformed address throws here rather than failing later; it is reported and retried like any failure,
      // so one bad moment (say, a DHCP change) does not silently end the page's updates.
      console.warn('Poussr: cannot open ' + this._url(), e);
      this._retry(0);
      return;
    }
    this._socket = socket;

    socket.onopen = function () {
      if (self._socket !== socket) {
        return;
      }
      self._failures = 0;
      // The hub forgets a socket's channel when the socket closes, so every new socket subscribes again.
      // `data` is a JSON-encoded string, exactly as the original client sent it. With recovery, it carries the
      // position reached so far (or none yet), and counting waits for the hub's answer.
      var data = { channel: self._channel };
      if (self._recover) {
        data.resume = self._position ? { epoch: self._position.epoch, serial: self._position.serial } : {};
        self._counting = false;
      }
      socket.send(JSON.stringify({
        event: 'poussr:subscribe',
        data: JSON.stringify(data)
      }));
    };

    socket.onmessage = function (message) {
      if (self._socket === socket) {
        self._receive(String(message.data));
      }
    };

    // Needed even though it does nothing: `close` always follows `error` and is where we act, but the `ws`
    // package in Node throws an unhandled `error` unless some handler is attached.
    socket.onerror = function () {};

    socket.onclose = function (event) {
      if (self._socket !== socket) {
        return; // replaced by disconnect(): its close is expected
      }
      self._socket = null;
      if (self._wanted) {
        self._retry(event && event.code);
      }
    };
  };

  Poussr.prototype._retry = function (closeCode) {
    var self = this;
    var ceiling;
    var delay;
    // 4000-4099 mean "do not come back" (unknown app, wrong path...): a retry would fail the same way forever.
    if (closeCode >= 4000 && closeCode <= 4099) {
      console.warn('Poussr: the hub refused the connection (code ' + closeCode + '); not reconnecting');
      this._wanted = false;
      return;
    }
    ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * Math.pow(2, this._failures));
    this._failures += 1;
    // Full jitter: after a hub restart every page on the LAN would otherwise come back in the same instant.
    delay = Math.random() * ceiling;
    // 4100-4199 is the hub saying it is overloaded: give it at least the first delay.
    if (closeCode >= 4100 && closeCode <= 4199) {
      delay = Math.max(delay, FIRST_DELAY_MS);
    }
    this._timer = setTimeout(function () {
      self._open();
    }, delay);
  };

  Poussr.prototype._receive = function (text) {
    var frame;
    var callbacks;
    var data;
    var i;
    try {
      frame = JSON.parse(text);
    } catch (e) {
      return; // not a frame of this protocol; nothing sensible to do with it
    }
    if (!frame || typeof frame.event !== 'string') {
      return;
    }
    if (frame.event === 'poussr:error') {
      // 42xx comes before the close of a hub restart: not a problem, the reconnect that follows handles it.
      var code = frame.data && frame.data.code;
      if (!(code >= 4200 && code < 4300)) {
        console.warn('Poussr: the hub reported an error', frame.data);
      }
      return;
    }
    if (frame.channel !== undefined && frame.channel !== this._channel) {
      return;
    }
    if (frame.event === 'poussr:position' || frame.event === 'pusher_internal:poussr_position') {
      this._positioned(decode(frame.data));
      return;
    }
    // poussr:subscription_succeeded and any later control frame: old pages never saw them, so neither do callbacks.
    // poussr:not_recovered goes to the callbacks that asked for it.
    if (frame.event.indexOf('poussr:') === 0 && frame.event !== 'poussr:not_recovered') {
      return;
    }
    this._count(frame.event);
    callbacks = this._callbacks[frame.event];
    if (!callbacks) {
      return;
    }
    data = decode(frame.data);
    // A copy, because a callback may unsubscribe itself (or others) while we loop.
    callbacks = callbacks.slice();
    for (i = 0; i < callbacks.length; i++) {
      invoke(this, callbacks[i], data);
    }
  };

  // Where counting starts (after a subscription, before what it recovered), or an event not for this client.
  Poussr.prototype._positioned = function (p) {
    if (!p || typeof p.epoch !== 'string' || typeof p.serial !== 'number') {
      return;
    }
    if (p.client_events !== undefined) {
      this._position = { epoch: p.epoch, serial: p.serial, clientEvents: !!p.client_events };
      this._counting = true;
    } else if (this._counting && this._position && this._position.epoch === p.epoch) {
      this._position.serial = p.serial;
    }
  };

  // Each kept event is the next serial: every event but the reserved names (and client- ones, unless the app
  // keeps them), counted before the callbacks run so that a throwing one cannot leave the count behind.
  Poussr.prototype._count = function (name) {
    if (!this._counting || !this._position) {
      return;
    }
    if (name.indexOf('pusher:') === 0 || name.indexOf('pusher_internal:') === 0 || name.indexOf('poussr:') === 0) {
      return;
    }
    if (name.indexOf('client-') === 0 && !this._position.clientEvents) {
      return;
    }
    this._position.serial += 1;
  };

  // The hub always sends `data` as a string (the publisher's body, verbatim). Pages expect an object when that
  // string is JSON, and the string itself otherwise, as the original client did.
  function decode(data) {
    if (typeof data !== 'string') {
      return data;
    }
    try {
      return JSON.parse(data);
    } catch (e) {
      return data;
    }
  }

  // One throwing callback must not keep the others from their event; its error still reaches the console.
  function invoke(self, callback, data) {
    try {
      callback.call(self, data);
    } catch (e) {
      setTimeout(function () {
        throw e;
      }, 0);
    }
  }

  return Poussr;
}());

// Lets Node (the client test suite) require this file; browsers have no `module` and use the global above.
if (typeof module !== 'undefined' && module.exports) {
  module.exports = Poussr;
}
