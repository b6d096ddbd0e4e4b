//! The hub's state: apps → channels → subscribers, a record per connection, and counters.
//!
//! [`Hub`] is a cheap `Clone` handle over shared state. The locks are `std::sync::Mutex`es held for a few
//! map operations and never across an `.await`: every operation here is synchronous and short, so an async
//! lock would only add overhead. Lock order, to rule out deadlocks: an app's channel map, then one channel's
//! subscribers, then one connection's channel set; nothing takes them the other way round.
//!
//! Fan-out serializes each event once into a shared frame and pushes a clone of the handle (a reference
//! count) into each subscriber's bounded queue. A subscriber whose queue is full is closed with 4100: never
//! silently skipped, never allowed to grow memory, never allowed to slow the others.

pub mod monitor;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};

use crate::adapter::Adapter;
use crate::config::{AppConfig, Config, Limits};
use crate::protocol::{ChannelKind, ChannelName, CloseCode, pusher};
pub use monitor::{EventSource, Monitor, MonitorEvent, now_ms};

/// A frame ready to send: JSON text whose bytes are shared by every subscriber it is queued to.
pub type Frame = Utf8Bytes;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Pusher Channels protocol 7, at `/app/{key}`.
    Pusher,
    /// The original Poussr v1 protocol, at `/` and `/v1/ws`.
    PoussrV1,
}

/// Locks a mutex, going on with the data if a thread panicked while holding it: every critical section
/// here leaves the maps consistent at each step, so the data is still good.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An app and its channels.
#[derive(Debug)]
pub struct App {
    /// The credentials and switches.
    pub config: AppConfig,
    /// Its id, shared cheaply with monitor events.
    pub id: Arc<str>,
    /// Occupied channels only: a channel is removed when its last subscriber leaves, so the map never
    /// grows with names nobody uses any more.
    channels: Mutex<HashMap<ChannelName, Arc<Channel>>>,
}

/// One occupied channel.
#[derive(Debug)]
struct Channel {
    name: ChannelName,
    /// Keyed by the connection's number, which is unique within this hub.
    subscribers: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Events published to it while it existed.
    events: AtomicU64,
    /// Frames queued to its subscribers.
    deliveries: AtomicU64,
    /// When the last event was published, in ms since the epoch (0: never).
    last_event_ms: AtomicU64,
}

/// The record of one WebSocket connection, shared by its session, the channels it joined and the
/// dashboard.
#[derive(Debug)]
pub struct Connection {
    /// Unique per connection, `^\d+\.\d+$`.
    pub socket_id: Arc<str>,
    /// The number part of the socket id: the key in channel maps.
    number: u64,
    /// The app it belongs to.
    pub app: Arc<App>,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The peer's `User-Agent`.
    pub user_agent: Option<Arc<str>>,
    /// Pusher or Poussr v1.
    pub protocol: Protocol,
    /// When it connected.
    pub connected_at: SystemTime,
    /// The channels it has joined, for the dashboard and for cleaning up when it closes.
    channels: Mutex<BTreeSet<ChannelName>>,
    /// Frames for this connection; bounded so that a slow reader costs a known amount of memory.
    outbound: mpsc::Sender<Frame>,
    /// The close code the hub wants this connection closed with: 0 for none yet, else its index + 1.
    kick_code: AtomicU8,
    /// Wakes the session when `kick_code` is set.
    kick: Notify,
    /// Frames received from the client.
    pub messages_in: AtomicU64,
    /// Frames sent to the client.
    pub messages_out: AtomicU64,
    /// Bytes received from the client.
    pub bytes_in: AtomicU64,
    /// Bytes sent to the client.
    pub bytes_out: AtomicU64,
}

impl Connection {
    /// Asks the session to close with `code`. The first reason wins; later ones are ignored.
    pub fn kick(&self, code: CloseCode) {
        if self.kick_code.compare_exchange(0, code.index() + 1, Relaxed, Relaxed).is_ok() {
            self.kick.notify_one();
        }
    }

    /// Resolves when the connection has been asked to close, with the code.
    pub async fn kicked(&self) -> CloseCode {
        loop {
            if let Some(code) = self.pending_kick() {
                return code;
            }
            self.kick.notified().await;
        }
    }

    /// The close the hub has asked for, if any.
    pub fn pending_kick(&self) -> Option<CloseCode> {
        self.kick_code.load(Relaxed).checked_sub(1).and_then(CloseCode::from_index)
    }

    /// Queues a frame for this connection alone (used for replies that must keep their order with
    /// deliveries). A full queue closes the connection with 4100, as for any delivery.
    pub fn send(&self, frame: Frame) -> bool {
        match self.outbound.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kick(CloseCode::OverCapacity);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// The channels it has joined.
    pub fn channels(&self) -> Vec<ChannelName> {
        lock(&self.channels).iter().cloned().collect()
    }

    /// Whether it has joined `channel`.
    pub fn is_subscribed(&self, channel: &ChannelName) -> bool {
        lock(&self.channels).contains(channel)
    }

    /// A snapshot for the dashboard and the admin API.
    pub fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            socket_id: self.socket_id.to_string(),
            app_id: self.app.id.to_string(),
            remote: self.remote.to_string(),
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            protocol: self.protocol,
            connected_at_ms: self
                .connected_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            channels: self.channels().iter().map(|c| c.to_string()).collect(),
            messages_in: self.messages_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
        }
    }
}

/// A connection as the dashboard shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Socket id.
    pub socket_id: String,
    /// App id.
    pub app_id: String,
    /// Peer address.
    pub remote: String,
    /// Peer user agent.
    pub user_agent: Option<String>,
    /// Pusher or Poussr v1.
    pub protocol: Protocol,
    /// Connected since, ms since the epoch.
    pub connected_at_ms: u64,
    /// Joined channels.
    pub channels: Vec<String>,
    /// Frames received.
    pub messages_in: u64,
    /// Frames sent.
    pub messages_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// A channel as the API and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The name.
    pub name: String,
    /// Its kind, from the prefix.
    pub kind: ChannelKind,
    /// Connections subscribed on this hub.
    pub subscription_count: usize,
    /// Events published to it while occupied.
    pub events: u64,
    /// Frames queued to its subscribers.
    pub deliveries: u64,
    /// When the last event was published (ms since the epoch), if ever.
    pub last_event_ms: Option<u64>,
}

/// Hub-wide counters.
#[derive(Debug, Default)]
struct Counters {
    connections_total: AtomicU64,
    events_published: AtomicU64,
    deliveries: AtomicU64,
    slow_consumer_closes: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Hub-wide figures for `/health` and the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Occupied channels, over all apps.
    pub channels: usize,
    /// Events published since start (one per channel).
    pub events_published: u64,
    /// Frames queued to subscribers since start.
    pub deliveries: u64,
    /// Connections closed with 4100 because they did not read fast enough.
    pub slow_consumer_closes: u64,
    /// Frames received from clients.
    pub messages_in: u64,
    /// Frames sent to clients.
    pub messages_out: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
}

/// An event to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The channels (each gets its own frame, since the frame names the channel).
    pub channels: Vec<ChannelName>,
    /// The event name.
    pub event: Arc<str>,
    /// The data string, exactly as published.
    pub data: Arc<str>,
    /// A connection that must not receive it (`socket_id` on the API; the sender of a client event).
    pub except: Option<Arc<str>>,
    /// Who published it.
    pub source: EventSource,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The connection has joined as many channels as allowed.
    #[error("this connection has joined {0} channels, the most allowed")]
    TooManyChannels(usize),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Too many connections (4004).
    OverQuota,
    /// The hub is shutting down (4200).
    ShuttingDown,
}

impl OpenError {
    /// The close code to answer with.
    pub fn close_code(self) -> CloseCode {
        match self {
            OpenError::OverQuota => CloseCode::OverQuota,
            OpenError::ShuttingDown => CloseCode::Restarting,
        }
    }
}

#[derive(Debug)]
struct Shared {
    /// By id and by key; the first configured app is the default one for Poussr v1.
    apps_by_id: HashMap<String, Arc<App>>,
    apps_by_key: HashMap<String, Arc<App>>,
    default_app: Arc<App>,
    /// In configuration order.
    apps: Vec<Arc<App>>,
    limits: Limits,
    allow_anonymous_publish: bool,
    /// Every open connection, by number.
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Kept apart from the map so the quota check does not take the lock.
    connection_count: AtomicUsize,
    /// The first part of every socket id: random per process, so ids from two hubs (or two runs) differ.
    socket_prefix: u32,
    next_connection: AtomicU64,
    counters: Counters,
    monitor: Monitor,
    adapter: Adapter,
    started: Instant,
    shutting_down: AtomicBool,
    /// The token the admin API needs.
    admin_token: String,
    allow_remote_dashboard: bool,
    /// The address the server listens on, set once by [`crate::server::run`].
    local_addr: std::sync::OnceLock<SocketAddr>,
    /// The number of open connections, for watchers such as the desktop tray's tooltip.
    connections_watch: watch::Sender<usize>,
}

/// The hub: a cheap `Clone` handle over the shared state.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl Hub {
    /// A hub for `config`, which must hold at least one app (see [`Config::validate`]).
    pub fn new(config: &Config) -> Result<Self, crate::config::ConfigError> {
        config.validate()?;
        let apps: Vec<Arc<App>> = config
            .apps
            .iter()
            .map(|a| Arc::new(App { config: a.clone(), id: Arc::from(a.id.as_str()), channels: Mutex::default() }))
            .collect();
        Ok(Hub {
            shared: Arc::new(Shared {
                apps_by_id: apps.iter().map(|a| (a.config.id.clone(), a.clone())).collect(),
                apps_by_key: apps.iter().map(|a| (a.config.key.clone(), a.clone())).collect(),
                default_app: apps[0].clone(),
                apps: apps.clone(),
                limits: config.limits.clone(),
                allow_anonymous_publish: config.allow_anonymous_publish,
                connections: Mutex::default(),
                connection_count: AtomicUsize::new(0),
                socket_prefix: rand::random_range(1..1_000_000_000),
                next_connection: AtomicU64::new(1),
                counters: Counters::default(),
                monitor: Monitor::default(),
                adapter: Adapter::Local,
                started: Instant::now(),
                shutting_down: AtomicBool::new(false),
                admin_token: config.admin_token.clone().unwrap_or_else(crate::config::random_token),
                allow_remote_dashboard: config.allow_remote_dashboard,
                local_addr: std::sync::OnceLock::new(),
                connections_watch: watch::Sender::new(0),
            }),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// The token the admin API and the dashboard need.
    pub fn admin_token(&self) -> &str {
        &self.shared.admin_token
    }

    /// Whether the admin API answers other machines than this one.
    pub fn allow_remote_dashboard(&self) -> bool {
        self.shared.allow_remote_dashboard
    }

    /// Records the address the server listens on (the first call wins).
    pub fn set_local_addr(&self, addr: SocketAddr) {
        let _ = self.shared.local_addr.set(addr);
    }

    /// The address the server listens on, once serving.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }

    /// Follows the number of open connections; changes are pushed, nothing polls.
    pub fn watch_connections(&self) -> watch::Receiver<usize> {
        self.shared.connections_watch.subscribe()
    }

    /// The apps, the default one first.
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.shared.apps.clone()
    }

    /// Whether Poussr v1 publishing is open to other machines without a token.
    pub fn allow_anonymous_publish(&self) -> bool {
        self.shared.allow_anonymous_publish
    }

    /// The app with this key (WebSocket URLs name apps by key).
    pub fn app_by_key(&self, key: &str) -> Option<Arc<App>> {
        self.shared.apps_by_key.get(key).cloned()
    }

    /// The app with this id (the HTTP API names apps by id).
    pub fn app_by_id(&self, id: &str) -> Option<Arc<App>> {
        self.shared.apps_by_id.get(id).cloned()
    }

    /// The app Poussr v1 clients and publishers use: the first configured one.
    pub fn default_app(&self) -> Arc<App> {
        self.shared.default_app.clone()
    }

    /// The monitor feed.
    pub fn monitor(&self) -> &Monitor {
        &self.shared.monitor
    }

    /// Time since the hub was created.
    pub fn uptime(&self) -> std::time::Duration {
        self.shared.started.elapsed()
    }

    /// Registers a new connection. Returns its record and the receiving end of its send queue.
    pub fn open(
        &self,
        app: Arc<App>,
        remote: SocketAddr,
        user_agent: Option<&str>,
        protocol: Protocol,
    ) -> Result<(Arc<Connection>, mpsc::Receiver<Frame>), OpenError> {
        let s = &self.shared;
        if s.shutting_down.load(Relaxed) {
            return Err(OpenError::ShuttingDown);
        }
        // Reserve a place first, so that two racing connections cannot both take the last one.
        if s.connection_count.fetch_add(1, Relaxed) >= s.limits.max_connections {
            s.connection_count.fetch_sub(1, Relaxed);
            return Err(OpenError::OverQuota);
        }
        let number = s.next_connection.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::channel(s.limits.send_queue_frames);
        let conn = Arc::new(Connection {
            socket_id: Arc::from(format!("{}.{}", s.socket_prefix, number)),
            number,
            app,
            remote,
            user_agent: user_agent.map(Arc::from),
            protocol,
            connected_at: SystemTime::now(),
            channels: Mutex::default(),
            outbound: tx,
            kick_code: AtomicU8::new(0),
            kick: Notify::new(),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        });
        lock(&s.connections).insert(number, conn.clone());
        s.counters.connections_total.fetch_add(1, Relaxed);
        s.connections_watch.send_replace(s.connection_count.load(Relaxed));
        s.monitor.emit(|| MonitorEvent::ConnectionOpened {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            app_id: conn.app.id.clone(),
            remote: remote.to_string(),
            user_agent: conn.user_agent.clone(),
            protocol,
        });
        Ok((conn, rx))
    }

    /// Removes a connection from every channel and from the registry. Idempotent.
    pub fn close(&self, conn: &Connection, code: Option<u16>, reason: &str) {
        let channels = std::mem::take(&mut *lock(&conn.channels));
        for channel in &channels {
            self.remove_subscriber(conn, channel);
        }
        if lock(&self.shared.connections).remove(&conn.number).is_some() {
            self.shared.connection_count.fetch_sub(1, Relaxed);
            self.shared.connections_watch.send_replace(self.shared.connection_count.load(Relaxed));
            if code == Some(CloseCode::OverCapacity.code()) {
                self.shared.counters.slow_consumer_closes.fetch_add(1, Relaxed);
            }
            self.shared.monitor.emit(|| MonitorEvent::ConnectionClosed {
                at_ms: now_ms(),
                socket_id: conn.socket_id.clone(),
                code,
                reason: reason.to_owned(),
            });
        }
    }

    /// Adds `conn` to `channel`. Returns `Ok(false)` if it had already joined (which is harmless).
    pub fn subscribe(&self, conn: &Arc<Connection>, channel: &ChannelName) -> Result<bool, SubscribeError> {
        if self.shared.shutting_down.load(Relaxed) {
            return Err(SubscribeError::ShuttingDown);
        }
        {
            let joined = lock(&conn.channels);
            if joined.contains(channel) {
                return Ok(false);
            }
            let max = self.shared.limits.max_channels_per_connection;
            if joined.len() >= max {
                return Err(SubscribeError::TooManyChannels(max));
            }
        }
        let mut map = lock(&conn.app.channels);
        let ch = map.entry(channel.clone()).or_insert_with(|| {
            Arc::new(Channel {
                name: channel.clone(),
                subscribers: Mutex::default(),
                events: AtomicU64::new(0),
                deliveries: AtomicU64::new(0),
                last_event_ms: AtomicU64::new(0),
            })
        });
        lock(&ch.subscribers).insert(conn.number, conn.clone());
        lock(&conn.channels).insert(channel.clone());
        drop(map);
        self.shared.monitor.emit(|| MonitorEvent::Subscribed {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            channel: channel.clone(),
        });
        Ok(true)
    }

    /// Removes `conn` from `channel`. Returns whether it had joined it; leaving twice is harmless.
    pub fn unsubscribe(&self, conn: &Connection, channel: &ChannelName) -> bool {
        if !lock(&conn.channels).remove(channel) {
            return false;
        }
        self.remove_subscriber(conn, channel);
        true
    }

    fn remove_subscriber(&self, conn: &Connection, channel: &ChannelName) {
        let mut map = lock(&conn.app.channels);
        if let Some(ch) = map.get(channel) {
            let mut subs = lock(&ch.subscribers);
            subs.remove(&conn.number);
            let empty = subs.is_empty();
            drop(subs);
            if empty {
                map.remove(channel);
            }
        }
        drop(map);
        self.shared.monitor.emit(|| MonitorEvent::Unsubscribed {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            channel: channel.clone(),
        });
    }

    /// Publishes an event through the adapter. Returns when it is queued to every local subscriber, with
    /// how many connections it was queued to.
    pub fn publish(&self, app: &App, event: &Publish) -> usize {
        self.shared.adapter.publish(self, app, event)
    }

    /// Delivers an event to this hub's subscribers: the path every adapter ends in.
    pub(crate) fn deliver_local(&self, app: &App, event: &Publish) -> usize {
        let s = &self.shared;
        let mut total = 0;
        for name in &event.channels {
            let ch = lock(&app.channels).get(name).cloned();
            let mut delivered = 0;
            if let Some(ch) = &ch {
                // Serialized once; each subscriber's queue gets a reference-counted handle to it.
                let frame: Frame = pusher::event(&event.event, name.as_str(), &event.data, None).into();
                let subs = lock(&ch.subscribers);
                for conn in subs.values() {
                    if event.except.as_deref().is_some_and(|x| *x == *conn.socket_id) {
                        continue;
                    }
                    if conn.send(frame.clone()) {
                        delivered += 1;
                    }
                }
                drop(subs);
                ch.events.fetch_add(1, Relaxed);
                ch.deliveries.fetch_add(delivered as u64, Relaxed);
                ch.last_event_ms.store(now_ms(), Relaxed);
            }
            s.counters.events_published.fetch_add(1, Relaxed);
            s.counters.deliveries.fetch_add(delivered as u64, Relaxed);
            s.monitor.emit(|| MonitorEvent::EventPublished {
                at_ms: now_ms(),
                app_id: app.id.clone(),
                channel: name.clone(),
                event: event.event.clone(),
                data: event.data.clone(),
                source: event.source,
                socket_id: event.except.clone(),
                delivered,
            });
            total += delivered;
        }
        total
    }

    /// The occupied channels of `app`, sorted by name.
    pub fn channels(&self, app: &App) -> Vec<ChannelInfo> {
        let chans: Vec<Arc<Channel>> = lock(&app.channels).values().cloned().collect();
        let mut out: Vec<ChannelInfo> = chans.iter().map(|c| channel_info(c)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One channel of `app`, if occupied.
    pub fn channel(&self, app: &App, name: &ChannelName) -> Option<ChannelInfo> {
        let ch = lock(&app.channels).get(name).cloned();
        ch.map(|c| channel_info(&c))
    }

    /// Every open connection, oldest first.
    pub fn connections(&self) -> Vec<Arc<Connection>> {
        let mut all: Vec<Arc<Connection>> = lock(&self.shared.connections).values().cloned().collect();
        all.sort_by_key(|c| c.number);
        all
    }

    /// The open connection with this socket id.
    pub fn connection(&self, socket_id: &str) -> Option<Arc<Connection>> {
        let (_, number) = socket_id.split_once('.')?;
        let conn = lock(&self.shared.connections).get(&number.parse().ok()?).cloned()?;
        (*conn.socket_id == *socket_id).then_some(conn)
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.shared.connection_count.load(Relaxed)
    }

    /// Counts a frame received from a client.
    pub fn count_in(&self, conn: &Connection, bytes: usize) {
        conn.messages_in.fetch_add(1, Relaxed);
        conn.bytes_in.fetch_add(bytes as u64, Relaxed);
        self.shared.counters.messages_in.fetch_add(1, Relaxed);
        self.shared.counters.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    /// Counts frames sent to a client.
    pub fn count_out(&self, conn: &Connection, frames: u64, bytes: u64) {
        conn.messages_out.fetch_add(frames, Relaxed);
        conn.bytes_out.fetch_add(bytes, Relaxed);
        self.shared.counters.messages_out.fetch_add(frames, Relaxed);
        self.shared.counters.bytes_out.fetch_add(bytes, Relaxed);
    }

    /// Hub-wide figures.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            connections: self.connection_count(),
            connections_total: c.connections_total.load(Relaxed),
            channels: self.shared.apps_by_id.values().map(|a| lock(&a.channels).len()).sum(),
            events_published: c.events_published.load(Relaxed),
            deliveries: c.deliveries.load(Relaxed),
            slow_consumer_closes: c.slow_consumer_closes.load(Relaxed),
            messages_in: c.messages_in.load(Relaxed),
            messages_out: c.messages_out.load(Relaxed),
            bytes_in: c.bytes_in.load(Relaxed),
            bytes_out: c.bytes_out.load(Relaxed),
        }
    }

    /// Starts shutting down: refuses new connections and subscriptions and asks every open connection to
    /// close with 4200, which tells Pusher clients to reconnect at once (to this hub once it is back, or to
    /// another behind the same address).
    pub fn begin_shutdown(&self) {
        self.shared.shutting_down.store(true, Relaxed);
        for conn in self.connections() {
            conn.kick(CloseCode::Restarting);
        }
    }

    /// Whether [`Hub::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Relaxed)
    }
}

fn channel_info(ch: &Channel) -> ChannelInfo {
    let last = ch.last_event_ms.load(Relaxed);
    ChannelInfo {
        name: ch.name.to_string(),
        kind: ch.name.kind(),
        subscription_count: lock(&ch.subscribers).len(),
        events: ch.events.load(Relaxed),
        deliveries: ch.deliveries.load(Relaxed),
        last_event_ms: (last != 0).then_some(last),
    }
}

#[cfg(test)]
mod tests;
