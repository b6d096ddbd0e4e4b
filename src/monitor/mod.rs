//! The monitor feed: what happens in the hub, as events the dashboard shows live and the journal keeps.
//! The hub, the HTTP layer and the webhooks report to it, and it knows none of them.
//!
//! It is a bounded broadcast: a viewer that falls behind loses the oldest events (and is told how many)
//! rather than slowing the hub. When nobody watches and no journal is attached, events are not even built
//! ([`Monitor::is_watched`]). Published events go to viewers only: the history keeps them, and the journal
//! ([`journal`]) keeps every other kind.

pub mod journal;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

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

/// Most channels remembered as "every subscriber was refused" for [`Monitor::publish_hint`].
const REFUSED_REMEMBERED: usize = 1024;

/// The sending side of the feed. Clones share one feed, one journal and one memory of refusals.
#[derive(Debug, Clone)]
pub struct Monitor {
    tx: broadcast::Sender<MonitorEvent>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Where journaled kinds go, once a journal is attached.
    journal: OnceLock<mpsc::Sender<MonitorEvent>>,
    /// Events the journal's queue had no room for.
    journal_dropped: AtomicU64,
    /// Private and presence channels whose last subscription attempt was refused, by app and name; the
    /// publish hint reads it.
    refused: Mutex<HashMap<(Arc<str>, String), u16>>,
    any_refused: AtomicBool,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor { tx: broadcast::channel(MONITOR_CAPACITY).0, shared: Arc::default() }
    }
}

impl Monitor {
    /// Whether any viewer listens. Published events are built only then, so an unwatched hub pays one
    /// atomic load per event and nothing else.
    pub fn is_watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Whether an event of a journaled kind is wanted by anyone (a viewer or the journal).
    pub fn is_watched_or_journaled(&self) -> bool {
        self.wanted()
    }

    fn wanted(&self) -> bool {
        self.is_watched() || self.shared.journal.get().is_some()
    }

    /// Sends an event to every viewer, and to the journal if it keeps its kind; never waits. What a client
    /// sent is clipped first ([`MonitorEvent::clip`]).
    pub fn send(&self, mut event: MonitorEvent) {
        event.clip();
        if event.kind().journaled()
            && let Some(journal) = self.shared.journal.get()
            && journal.try_send(event.clone()).is_err()
        {
            self.shared.journal_dropped.fetch_add(1, Relaxed);
        }
        // An error only means nobody is watching, which is fine.
        let _ = self.tx.send(event);
    }

    /// Sends the event built by `make` if anyone wants it. For published events, which only viewers want,
    /// check [`Monitor::is_watched`] instead.
    pub fn emit(&self, make: impl FnOnce() -> MonitorEvent) {
        if self.wanted() {
            self.send(make());
        }
    }

    /// A new viewer. A viewer that lags gets `RecvError::Lagged(n)` with the number of events it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<MonitorEvent> {
        self.tx.subscribe()
    }

    /// Gives journaled kinds to `journal` from now on (once; a second journal is refused).
    pub fn attach_journal(&self, journal: mpsc::Sender<MonitorEvent>) -> bool {
        self.shared.journal.set(journal).is_ok()
    }

    /// Journaled events dropped because the journal's queue was full.
    pub fn journal_dropped(&self) -> u64 {
        self.shared.journal_dropped.load(Relaxed)
    }

    /// Remembers that a subscription to a private or presence channel was refused with `status`.
    pub fn subscription_refused(&self, app: &Arc<str>, channel: &str, status: u16) {
        let mut refused = self.shared.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.len() >= REFUSED_REMEMBERED {
            refused.clear();
        }
        refused.insert((app.clone(), channel.to_owned()), status);
        self.shared.any_refused.store(true, Relaxed);
    }

    /// Forgets a refusal once a subscription to the channel succeeds.
    pub fn subscription_succeeded(&self, app: &Arc<str>, channel: &str) {
        if self.shared.any_refused.load(Relaxed) {
            let mut refused = self.shared.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.remove(&(app.clone(), channel.to_owned()));
            self.shared.any_refused.store(!refused.is_empty(), Relaxed);
        }
    }

    /// The classic mistake a published event shows, if any: a PHP class as the event name, nobody
    /// subscribed, or a private channel whose subscribers were all refused. `excluded` is the connection the
    /// event was not for (the sender of a client event, or an API publish's `socket_id`): `delivered` does
    /// not count it.
    pub fn publish_hint(
        &self,
        app: &Arc<str>,
        channel: &str,
        event: &str,
        excluded: Option<&str>,
        delivered: usize,
    ) -> Option<Arc<str>> {
        if delivered == 0 {
            if let Some(status) = self.refused_status(app, channel) {
                return Some(Arc::from(format!(
                    "nobody received it: every subscription to {channel} was refused ({status}); check the page's \
                     auth endpoint and that it signs with this app's secret"
                )));
            }
            return Some(Arc::from(match excluded {
                Some(socket) if event.starts_with("client-") => format!(
                    "nobody else received it: its sender ({socket}) was the only connection to this hub subscribed \
                     to the channel"
                ),
                Some(socket) => format!(
                    "nobody received it: no connection to this hub but {socket} (which it was not for) was \
                     subscribed to the channel when it was published"
                ),
                None => "nobody received it: no connection to this hub was subscribed to the channel when it was \
                         published"
                    .to_owned(),
            }));
        }
        php_class_hint(event).map(Arc::from)
    }

    fn refused_status(&self, app: &Arc<str>, channel: &str) -> Option<u16> {
        if !self.shared.any_refused.load(Relaxed) {
            return None;
        }
        let refused = self.shared.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.get(&(app.clone(), channel.to_owned())).copied()
    }
}

/// The hint for an event named like a PHP class (`App\Events\OrderShipped`): what Laravel broadcasts
/// without `broadcastAs`, which laravel-echo finds only under its namespace or with a leading dot.
pub fn php_class_hint(event: &str) -> Option<String> {
    let (_, short) = event.rsplit_once('\\')?;
    if short.is_empty() {
        return None;
    }
    Some(format!(
        "{event:?} looks like a PHP class name: laravel-echo's .listen('{short}') finds it only with Echo's \
         default namespace (App\\Events); otherwise listen to '.{event}' (a leading dot means the full name), or \
         give the event a broadcastAs() name and listen to '.' followed by that name"
    ))
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_class_names_get_a_hint_and_plain_names_do_not() {
        let hint = php_class_hint(r"App\Events\OrderShipped").unwrap();
        assert!(hint.contains(".listen('OrderShipped')"), "{hint}");
        assert!(hint.contains(r"'.App\Events\OrderShipped'"), "{hint}");
        assert_eq!(php_class_hint("order.shipped"), None);
        assert_eq!(php_class_hint(r"Trailing\"), None);
    }

    #[test]
    fn a_refused_private_channel_is_named_until_a_subscription_succeeds() {
        let monitor = Monitor::default();
        let app: Arc<str> = Arc::from("1");
        let hint = monitor.publish_hint(&app, "private-a", "e", None, 0).unwrap();
        assert!(hint.contains("no connection to this hub was subscribed"), "{hint}");
        let hint = monitor.publish_hint(&app, "private-a", "client-e", Some("1.2"), 0).unwrap();
        assert!(hint.contains("its sender (1.2) was the only connection"), "{hint}");
        let hint = monitor.publish_hint(&app, "private-a", "e", Some("1.2"), 0).unwrap();
        assert!(hint.contains("but 1.2 (which it was not for)"), "{hint}");
        monitor.subscription_refused(&app, "private-a", 401);
        let hint = monitor.publish_hint(&app, "private-a", "e", None, 0).unwrap();
        assert!(hint.contains("every subscription to private-a was refused (401)"), "{hint}");
        assert!(monitor.publish_hint(&app, "private-a", "e", None, 1).is_none());
        monitor.subscription_succeeded(&app, "private-a");
        assert!(monitor.publish_hint(&app, "private-a", "e", None, 0).unwrap().contains("no connection"));
    }

    #[test]
    fn what_a_client_sent_is_clipped_on_a_character_boundary() {
        let monitor = Monitor::default();
        let mut feed = monitor.subscribe();
        let key = "é".repeat(10_000);
        monitor.send(MonitorEvent::ConnectionRefused {
            at_ms: 1,
            remote: "127.0.0.1:1".into(),
            app_key: Some(key.clone()),
            origin: None,
            code: 4001,
            reason: format!("no app has the key {key:?}"),
            hint: Some(format!("the key {key:?} belongs to no app")),
        });
        let MonitorEvent::ConnectionRefused { app_key, reason, hint, .. } = feed.try_recv().unwrap() else {
            panic!("not a refused connection")
        };
        let (app_key, hint) = (app_key.unwrap(), hint.unwrap());
        assert!(app_key.len() <= MAX_NAME + '…'.len_utf8() && app_key.ends_with("é…"), "{app_key}");
        assert!(reason.len() <= MAX_TEXT + 3 && reason.starts_with("no app has the key \"éé"), "{reason}");
        assert!(hint.len() <= MAX_TEXT + 3 && hint.ends_with('…'));
    }

    #[test]
    fn the_journal_gets_every_kind_but_published_events() {
        let monitor = Monitor::default();
        assert!(!monitor.wanted());
        let (tx, mut rx) = mpsc::channel(1);
        assert!(monitor.attach_journal(tx.clone()));
        assert!(!monitor.attach_journal(tx));
        assert!(monitor.wanted() && !monitor.is_watched());
        let error = || MonitorEvent::Error { at_ms: 1, socket_id: None, code: None, message: String::new() };
        monitor.emit(error);
        monitor.emit(error);
        assert_eq!(rx.try_recv().unwrap().kind(), Kind::Refusal);
        assert_eq!(monitor.journal_dropped(), 1, "a full queue drops and counts");
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert!(!Kind::Event.journaled() && !Kind::ClientEvent.journaled() && Kind::Webhook.journaled());
    }
}
