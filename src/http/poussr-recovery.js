/*
 * poussr-recovery.js: recovery of missed events for pusher-js 8 (and laravel-echo 2, which runs on it),
 * served by the hub at /poussr-recovery.js. The wire extension it uses is docs/protocol.md, section 7.
 *
 * One line of setup, after making the client:
 *
 *     var pusher = new Pusher(key, { wsHost: '192.168.1.20', wsPort: 6001, forceTLS: false, ... });
 *     PoussrRecovery.attach(pusher);
 *
 *     // laravel-echo: PoussrRecovery.attach(echo.connector.pusher);
 *
 * From then on, each subscription counts where it is in the channel's history. When pusher-js subscribes
 * again (after a dropped connection, a hub restart, a Wi-Fi outage), it asks the hub for what it missed:
 * those events arrive through the normal bind() / listen() callbacks, in order and once each, before the
 * live ones. When they cannot all be given (evicted, or the hub's history is another one), the channel gets
 * a `poussr:not_recovered` event whose data says why, then live events flow again:
 *
 *     channel.bind('poussr:not_recovered', function (why) { reloadEverything(why.reason); });
 *     // laravel-echo: echo.channel('orders').listen('.poussr:not_recovered', ...)
 *
 * Positions are kept in memory, per client, for the page's lifetime. With `{ storage: sessionStorage }`
 * (or localStorage) as the second argument, they also survive a reload of the page.
 *
 * Plain ES5, no modules and no build step; it also loads in Node (module.exports) for tests and services.
 */
(function (root, factory) {
  'use strict';
  if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.PoussrRecovery = factory();
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  // The socket ids sent with a resume: events published "to everyone but" one of them are not sent again.
  var SOCKET_IDS_KEPT = 8;
  var STORAGE_KEY = 'poussr-recovery';

  function startsWith(s, prefix) {
    return typeof s === 'string' && s.slice(0, prefix.length) === prefix;
  }

  function parse(data) {
    if (typeof data !== 'string') {
      return data || {};
    }
    try {
      return JSON.parse(data);
    } catch (e) {
      return {};
    }
  }

  /**
   * Makes `pusher` (a pusher-js 8 client) resume its subscriptions from where each one was.
   * @param {object} pusher
   * @param {object} [options] `{ storage: sessionStorage }` to keep positions across page reloads
   * @returns {object} `{ position(channel), detach() }`
   */
  function attach(pusher, options) {
    if (!pusher || typeof pusher.send_event !== 'function' || !pusher.connection) {
      throw new Error('PoussrRecovery.attach needs a pusher-js client (new Pusher(...)); for laravel-echo, ' +
        'pass echo.connector.pusher');
    }
    if (pusher.__poussrRecovery) {
      return pusher.__poussrRecovery;
    }
    options = options || {};
    var storage = options.storage || null;
    // channel -> { epoch, serial, clientEvents, counting }
    var positions = {};
    var socketIds = [];

    if (storage) {
      try {
        var saved = JSON.parse(storage.getItem(STORAGE_KEY) || '{}');
        for (var name in saved) {
          if (Object.prototype.hasOwnProperty.call(saved, name) && saved[name] && saved[name].epoch) {
            positions[name] = { epoch: saved[name].epoch, serial: saved[name].serial, counting: false };
          }
        }
        socketIds = saved.__socket_ids__ || [];
      } catch (e) {
        positions = {};
      }
    }

    function save() {
      if (!storage) {
        return;
      }
      var out = { __socket_ids__: socketIds };
      for (var name in positions) {
        if (Object.prototype.hasOwnProperty.call(positions, name) && positions[name].epoch) {
          out[name] = { epoch: positions[name].epoch, serial: positions[name].serial };
        }
      }
      try {
        storage.setItem(STORAGE_KEY, JSON.stringify(out));
      } catch (e) {
        // A full or refused storage only costs recovery across reloads.
      }
    }

    function rememberSocket() {
      var id = pusher.connection.socket_id;
      if (id && socketIds[socketIds.length - 1] !== id) {
        socketIds.push(id);
        if (socketIds.length > SOCKET_IDS_KEPT) {
          socketIds.shift();
        }
        save();
      }
    }

    // Every subscribe carries the channel's position; counting pauses until the hub says where it starts.
    var sendEvent = pusher.send_event;
    pusher.send_event = function (name, data, channel) {
      if (name === 'pusher:subscribe' && data && typeof data.channel === 'string') {
        rememberSocket();
        var p = positions[data.channel];
        var resume = {};
        if (p && p.epoch) {
          resume.epoch = p.epoch;
          resume.serial = p.serial;
          resume.socket_ids = socketIds.slice();
          p.counting = false;
        }
        var copy = {};
        for (var k in data) {
          if (Object.prototype.hasOwnProperty.call(data, k)) {
            copy[k] = data[k];
          }
        }
        copy.poussr_resume = resume;
        data = copy;
      } else if (name === 'pusher:unsubscribe' && data && typeof data.channel === 'string') {
        // The page left the channel: a later subscription starts from now, not from before.
        delete positions[data.channel];
        save();
      }
      return sendEvent.call(pusher, name, data, channel);
    };

    // Counted as each message arrives, before pusher-js hands it to the page's callbacks, so that a
    // callback that throws does not leave the count behind.
    var manager = pusher.connection;
    var emit = manager.emit;
    manager.emit = function (event, message) {
      if (event === 'message' && message && typeof message.channel === 'string') {
        count(message);
      } else if (event === 'connected') {
        rememberSocket();
      }
      return emit.apply(manager, arguments);
    };

    function count(message) {
      var name = message.channel;
      var event = message.event;
      if (event === 'pusher_internal:poussr_position') {
        var d = parse(message.data);
        var p = positions[name];
        if (d.client_events !== undefined) {
          // Where counting starts: after a subscription, before what it recovered.
          positions[name] = { epoch: d.epoch, serial: d.serial, clientEvents: !!d.client_events, counting: true };
        } else if (p && p.counting && p.epoch === d.epoch) {
          // An event that was not for this client: its position only.
          p.serial = d.serial;
        }
        save();
        return;
      }
      if (startsWith(event, 'pusher:') || startsWith(event, 'pusher_internal:') || startsWith(event, 'poussr:')) {
        return;
      }
      var q = positions[name];
      if (!q || !q.counting) {
        return;
      }
      if (startsWith(event, 'client-') && !q.clientEvents) {
        return;
      }
      q.serial += 1;
      save();
    }

    var handle = {
      /** Where `channel` is: `{epoch, serial}`, or null before the hub has said. */
      position: function (channel) {
        var p = positions[channel];
        return p && p.epoch ? { epoch: p.epoch, serial: p.serial } : null;
      },
      /** Stops adding positions to subscriptions (the ones made already keep theirs). */
      detach: function () {
        pusher.send_event = sendEvent;
        manager.emit = emit;
        delete pusher.__poussrRecovery;
      }
    };
    pusher.__poussrRecovery = handle;
    return handle;
  }

  return { attach: attach, version: 1 };
});
