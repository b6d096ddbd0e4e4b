//! The monitor feed: what happens in the hub, as events the dashboard shows live. The hub and the
//! webhooks both report to it, and it knows neither of them.
//!
//! It is a bounded broadcast: a viewer that falls behind loses the oldest events (and is told how many)
//! rather than slowing the hub. When nobody watches, events are not even built ([`Monitor::is_watched`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::protocol::{ChannelName, ClosedBy, Protocol};

/// How many monitor events wait for a slow viewer before the oldest are skipped.
pub const MONITOR_CAPACITY: usize = 8192;

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
    /// A connection joined a channel.
    Subscribed {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Who.
        socket_id: Arc<str>,
        /// Which channel.
        channel: ChannelName,
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
    },
    /// Something went wrong with a client or a request.
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

/// The sending side of the feed.
#[derive(Debug, Clone)]
pub struct Monitor {
    tx: broadcast::Sender<MonitorEvent>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor { tx: broadcast::channel(MONITOR_CAPACITY).0 }
    }
}

impl Monitor {
    /// Whether anyone listens. Callers check this before building an event, so an unwatched hub pays
    /// one atomic load per event and nothing else.
    pub fn is_watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Sends an event to every viewer; never waits.
    pub fn send(&self, event: MonitorEvent) {
        // An error only means nobody is listening, which is fine.
        let _ = self.tx.send(event);
    }

    /// Sends the event built by `make` if anyone listens.
    pub fn emit(&self, make: impl FnOnce() -> MonitorEvent) {
        if self.is_watched() {
            self.send(make());
        }
    }

    /// A new viewer. A viewer that lags gets `RecvError::Lagged(n)` with the number of events it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<MonitorEvent> {
        self.tx.subscribe()
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
