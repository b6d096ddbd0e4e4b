//! What the monitor feed carries: one [`MonitorEvent`] per thing that happened, its [`Kind`] (the console's
//! chip), and the clipping of what a client sent.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::{ChannelName, ClosedBy, Protocol};

/// Where a published event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// The signed Pusher HTTP API.
    Api,
    /// A Poussr v1 REST publish.
    V1,
    /// A `client-*` event from a connected client.
    Client,
    /// The dashboard's publish form.
    Dashboard,
    /// The check page's test event (`/check`).
    Check,
    /// A recording played again (`poussr replay`, or the dashboard's Replay).
    Replay,
}

/// One thing that happened in the hub.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorEvent {
    /// A WebSocket connection was accepted.
    ConnectionOpened {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The connection's socket id.
        socket_id: Arc<str>,
        /// The app it connected to.
        app_id: Arc<str>,
        /// The peer's address.
        remote: String,
        /// The peer's `User-Agent`, if it sent one.
        user_agent: Option<Arc<str>>,
        /// Pusher or Poussr v1.
        protocol: Protocol,
    },
    /// A connection ended.
    ConnectionClosed {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The connection's socket id.
        socket_id: Arc<str>,
        /// Who closed it and with which code; on the wire, the code (`null` when no close frame had one).
        #[serde(serialize_with = "close_code")]
        code: ClosedBy,
        /// Why, in words.
        reason: String,
    },
    /// A connection was refused before or as it started: a page of a foreign origin, a key that belongs to
    /// no app, the connection limit, a hub shutting down.
    ConnectionRefused {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The peer's address.
        remote: String,
        /// The key the client asked for, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        app_key: Option<String>,
        /// The page's origin, if a browser sent one.
        #[serde(skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
        /// The close code, or the HTTP status when the handshake itself was refused.
        code: u16,
        /// Why, in words.
        reason: String,
        /// What usually causes it, when the hub can tell.
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    /// A connection joined a channel.
    Subscribed {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Who.
        socket_id: Arc<str>,
        /// Which channel.
        channel: ChannelName,
    },
    /// A subscription was refused: a bad name, a missing or wrong auth signature, a full presence channel.
    SubscriptionRefused {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Who asked.
        socket_id: Arc<str>,
        /// The app.
        app_id: Arc<str>,
        /// The channel asked for, as sent (it may not be a valid name).
        channel: String,
        /// The status sent with `pusher:subscription_error` (401, 403, 400…).
        status: u16,
        /// Why, in words.
        reason: String,
    },
    /// A connection left a channel.
    Unsubscribed {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Who.
        socket_id: Arc<str>,
        /// Which channel.
        channel: ChannelName,
    },
    /// A user got their first connection in a presence channel.
    MemberAdded {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The connection that brought the user in.
        socket_id: Arc<str>,
        /// The presence channel.
        channel: ChannelName,
        /// The user.
        user_id: Arc<str>,
    },
    /// A user's last connection left a presence channel.
    MemberRemoved {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The connection that left last.
        socket_id: Arc<str>,
        /// The presence channel.
        channel: ChannelName,
        /// The user.
        user_id: Arc<str>,
    },
    /// A connection signed in as a user (`pusher:signin`).
    SignedIn {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The connection.
        socket_id: Arc<str>,
        /// The user.
        user_id: Arc<str>,
    },
    /// An event was published to a channel.
    EventPublished {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The app.
        app_id: Arc<str>,
        /// The channel.
        channel: ChannelName,
        /// The event name.
        event: Arc<str>,
        /// The data string as published.
        data: Arc<str>,
        /// Who published it.
        source: EventSource,
        /// The publishing connection, for client events; the excluded one, for API events.
        socket_id: Option<Arc<str>>,
        /// How many local connections it was queued to.
        delivered: usize,
        /// A likely mistake this event shows (see [`Monitor::publish_hint`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<Arc<str>>,
    },
    /// One attempt to deliver a batch of webhooks.
    Webhook {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The app.
        app_id: Arc<str>,
        /// The target.
        url: Arc<str>,
        /// The webhook events in the batch, by name and channel (`channel_occupied presence-room`).
        events: Vec<String>,
        /// Which attempt this was, from 1.
        attempt: u32,
        /// How many attempts are made at most.
        attempts: u32,
        /// The HTTP status the target answered, if it answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// What became of the batch after this attempt.
        outcome: WebhookOutcome,
        /// Why the attempt failed, in words.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An HTTP request was refused: the Pusher HTTP API, a Poussr v1 publish, a handshake.
    HttpRefused {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The peer's address.
        remote: String,
        /// `POST`, `GET`…
        method: String,
        /// The path, without the query (signatures are not logged).
        path: String,
        /// The HTTP status answered.
        status: u16,
        /// The error message answered.
        reason: String,
    },
    /// A client's message was refused, or a limit reached (client-event rate, frame size, channels).
    Error {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The connection concerned, if any.
        socket_id: Option<Arc<str>>,
        /// The Pusher code, if any.
        code: Option<u16>,
        /// What happened.
        message: String,
    },
}

fn close_code<S: serde::Serializer>(closed: &ClosedBy, s: S) -> Result<S::Ok, S::Error> {
    closed.code().serialize(s)
}

/// What became of a batch of webhooks after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// The target answered 2xx.
    Delivered,
    /// The attempt failed; another follows.
    Retrying,
    /// The last attempt failed; the batch is dropped.
    Failed,
}

/// The kinds the console shows and filters by, one chip each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Connections opened, closed and signed in.
    Connection,
    /// Subscriptions: succeeded, refused, left.
    Subscription,
    /// Events published by the HTTP API, Poussr v1, the dashboard, a replay.
    Event,
    /// `client-*` events.
    ClientEvent,
    /// Presence members joining and leaving.
    Presence,
    /// Webhook deliveries.
    Webhook,
    /// HTTP API and Poussr v1 requests refused.
    Http,
    /// Connections refused (origin, key, limit) and client messages refused (limits, bad frames).
    Refusal,
}

impl Kind {
    /// Every kind, in the order the console shows them.
    pub const ALL: [Kind; 8] = [
        Kind::Connection,
        Kind::Subscription,
        Kind::Event,
        Kind::ClientEvent,
        Kind::Presence,
        Kind::Webhook,
        Kind::Http,
        Kind::Refusal,
    ];

    /// The name used in URLs and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connection => "connection",
            Kind::Subscription => "subscription",
            Kind::Event => "event",
            Kind::ClientEvent => "client_event",
            Kind::Presence => "presence",
            Kind::Webhook => "webhook",
            Kind::Http => "http",
            Kind::Refusal => "refusal",
        }
    }

    /// The kind named `name` (as [`Kind::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the journal keeps this kind: every kind but published events, which the history keeps.
    pub fn journaled(self) -> bool {
        !matches!(self, Kind::Event | Kind::ClientEvent)
    }
}

impl MonitorEvent {
    /// Which chip shows it.
    pub fn kind(&self) -> Kind {
        use MonitorEvent as M;
        match self {
            M::ConnectionOpened { .. } | M::ConnectionClosed { .. } | M::SignedIn { .. } => Kind::Connection,
            M::Subscribed { .. } | M::Unsubscribed { .. } | M::SubscriptionRefused { .. } => Kind::Subscription,
            M::EventPublished { source: EventSource::Client, .. } => Kind::ClientEvent,
            M::EventPublished { .. } => Kind::Event,
            M::MemberAdded { .. } | M::MemberRemoved { .. } => Kind::Presence,
            M::Webhook { .. } => Kind::Webhook,
            M::HttpRefused { .. } => Kind::Http,
            M::ConnectionRefused { .. } | M::Error { .. } => Kind::Refusal,
        }
    }

    /// When it happened, in milliseconds since the Unix epoch.
    pub fn at_ms(&self) -> u64 {
        use MonitorEvent as M;
        match self {
            M::ConnectionOpened { at_ms, .. }
            | M::ConnectionClosed { at_ms, .. }
            | M::ConnectionRefused { at_ms, .. }
            | M::Subscribed { at_ms, .. }
            | M::SubscriptionRefused { at_ms, .. }
            | M::Unsubscribed { at_ms, .. }
            | M::MemberAdded { at_ms, .. }
            | M::MemberRemoved { at_ms, .. }
            | M::SignedIn { at_ms, .. }
            | M::EventPublished { at_ms, .. }
            | M::Webhook { at_ms, .. }
            | M::HttpRefused { at_ms, .. }
            | M::Error { at_ms, .. } => *at_ms,
        }
    }

    /// The channel it concerns, if one.
    pub fn channel(&self) -> Option<&str> {
        use MonitorEvent as M;
        match self {
            M::Subscribed { channel, .. }
            | M::Unsubscribed { channel, .. }
            | M::MemberAdded { channel, .. }
            | M::MemberRemoved { channel, .. }
            | M::EventPublished { channel, .. } => Some(channel.as_str()),
            M::SubscriptionRefused { channel, .. } => Some(channel),
            _ => None,
        }
    }

    /// The connection it concerns, if one.
    pub fn socket_id(&self) -> Option<&str> {
        use MonitorEvent as M;
        match self {
            M::ConnectionOpened { socket_id, .. }
            | M::ConnectionClosed { socket_id, .. }
            | M::Subscribed { socket_id, .. }
            | M::SubscriptionRefused { socket_id, .. }
            | M::Unsubscribed { socket_id, .. }
            | M::MemberAdded { socket_id, .. }
            | M::MemberRemoved { socket_id, .. }
            | M::SignedIn { socket_id, .. } => Some(socket_id),
            M::EventPublished { socket_id, .. } | M::Error { socket_id, .. } => socket_id.as_deref(),
            _ => None,
        }
    }
}

/// The longest text a monitor event keeps from what a client sent (a key, an origin, a path, a reason that
/// quotes them); longer texts are cut and end with `…`. It bounds what one entry costs the journal's disk
/// and a viewer's memory, whatever a hostile client sends.
pub const MAX_TEXT: usize = 512;
/// The same for names: a key, an origin, a channel, a path, a method.
pub const MAX_NAME: usize = 200;

/// Cuts `text` to at most `max` bytes (on a character boundary), marked with `…`.
fn clip(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

impl MonitorEvent {
    /// Cuts what a client controls to [`MAX_NAME`] or [`MAX_TEXT`]. A published event's data is not cut:
    /// the feed bounds its batches by bytes, and the journal does not keep published events.
    pub fn clip(&mut self) {
        use MonitorEvent as M;
        match self {
            M::ConnectionRefused { remote, app_key, origin, reason, hint, .. } => {
                clip(remote, MAX_NAME);
                app_key.iter_mut().chain(origin.iter_mut()).for_each(|t| clip(t, MAX_NAME));
                clip(reason, MAX_TEXT);
                hint.iter_mut().for_each(|t| clip(t, MAX_TEXT));
            }
            M::SubscriptionRefused { channel, reason, .. } => {
                clip(channel, MAX_NAME);
                clip(reason, MAX_TEXT);
            }
            M::HttpRefused { method, path, reason, .. } => {
                clip(method, MAX_NAME);
                clip(path, MAX_NAME);
                clip(reason, MAX_TEXT);
            }
            M::ConnectionClosed { reason, .. } => clip(reason, MAX_TEXT),
            M::Webhook { reason, .. } => reason.iter_mut().for_each(|t| clip(t, MAX_TEXT)),
            M::Error { message, .. } => clip(message, MAX_TEXT),
            _ => {}
        }
    }
}
