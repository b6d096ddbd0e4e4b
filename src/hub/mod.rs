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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};

use crate::adapter::Adapter;
use crate::config::{AppConfig, Config, Limits, WebhookKind};
use crate::protocol::{ChannelKind, ChannelName, CloseCode, pusher};
use crate::webhook::{WebhookEvent, WebhookStats, Webhooks};
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
    /// The last event of each cache channel, kept whether or not the channel is occupied.
    cache: Mutex<Cache>,
    /// Signed-in users and their connections, for `#server-to-user-` channels and `terminate_connections`.
    users: Mutex<HashMap<Arc<str>, ConnectionsByNumber>>,
    /// Where this app's webhooks go.
    pub webhooks: Webhooks,
    /// What is left of this second's publishing allowance (`max_publish_per_second`).
    publish_budget: Mutex<Budget>,
}

/// A token bucket: `rate` tokens a second, holding at most one second's worth.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn full(rate: u32) -> Self {
        Budget { tokens: f64::from(rate), at: Instant::now() }
    }

    /// Takes `n` tokens, or says how long until there are enough.
    fn take(&mut self, n: usize, rate: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(rate);
        self.tokens = (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        let n = n as f64;
        if n <= self.tokens {
            self.tokens -= n;
            Ok(())
        } else {
            // A request larger than the whole bucket can never pass; say when a full bucket would come.
            Err(Duration::from_secs_f64((n.min(rate) - self.tokens) / rate))
        }
    }
}

impl App {
    /// Queues a webhook event about `channel` (and `user_id`), if a target wants its kind.
    fn webhook(&self, kind: WebhookKind, channel: &ChannelName, user_id: Option<&Arc<str>>) {
        self.webhook_with(kind, || WebhookEvent { user_id: user_id.cloned(), ..WebhookEvent::new(kind, channel) });
    }

    /// Queues the webhook event `make` builds, if a target wants `kind`; nothing is built otherwise.
    fn webhook_with(&self, kind: WebhookKind, make: impl FnOnce() -> WebhookEvent) {
        if self.webhooks.wants(kind) {
            self.webhooks.emit(make());
        }
    }
}

/// Connections keyed by their number.
type ConnectionsByNumber = HashMap<u64, Arc<Connection>>;

/// The last events of an app's cache channels.
#[derive(Debug, Default)]
struct Cache {
    events: HashMap<ChannelName, (Frame, Instant)>,
    /// When expired entries were last removed.
    swept: Option<Instant>,
}

/// How often a cache is swept of expired events (a lookup never returns one in any case).
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One occupied channel.
#[derive(Debug)]
struct Channel {
    name: ChannelName,
    /// Its subscribers and, for a presence channel, its members, under one lock so that the two always
    /// agree.
    state: Mutex<ChannelState>,
    /// Events published to it while it existed.
    events: AtomicU64,
    /// Frames queued to its subscribers.
    deliveries: AtomicU64,
    /// When the last event was published, in ms since the epoch (0: never).
    last_event_ms: AtomicU64,
}

impl Channel {
    fn new(name: &ChannelName) -> Self {
        Channel {
            name: name.clone(),
            state: Mutex::default(),
            events: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            last_event_ms: AtomicU64::new(0),
        }
    }
}

#[derive(Debug, Default)]
struct ChannelState {
    /// Keyed by the connection's number, which is unique within this hub.
    subscribers: HashMap<u64, Subscriber>,
    /// Presence channels: the users, sorted by id, each with its info and number of connections here.
    members: BTreeMap<Arc<str>, MemberState>,
}

#[derive(Debug)]
struct Subscriber {
    conn: Arc<Connection>,
    /// On a presence channel, the user this connection joined as.
    user_id: Option<Arc<str>>,
}

#[derive(Debug)]
struct MemberState {
    info: serde_json::Value,
    connections: usize,
}

/// Who a connection joins a presence channel as (from the signed `channel_data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The user's id.
    pub user_id: Arc<str>,
    /// What other members learn about the user (`null` when not given).
    pub user_info: serde_json::Value,
}

/// What a new subscriber gets from a cache channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The last event, as a frame ready to send.
    Hit(Frame),
    /// Nothing cached (or expired): the client gets `pusher:cache_miss`.
    Miss,
}

/// The outcome of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// False when the connection had already joined (a harmless repeat).
    pub newly: bool,
    /// The `subscription_succeeded` data of a presence channel, encoded.
    pub presence: Option<String>,
    /// For a newly joined cache channel: the last event or a miss.
    pub cached: Option<Cached>,
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
    /// The user it signed in as (`pusher:signin`), once it has.
    user_id: OnceLock<Arc<str>>,
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

    /// The user it signed in as, if it has.
    pub fn user_id(&self) -> Option<&Arc<str>> {
        self.user_id.get()
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
            user_id: self.user_id().map(|u| u.to_string()),
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
    /// The user it signed in as.
    pub user_id: Option<String>,
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
    /// Presence channels: the number of distinct users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_count: Option<usize>,
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
    /// Webhooks over all apps: delivered, failed, dropped, queued.
    pub webhooks: WebhookStats,
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
    /// The sender's user id, for client events on presence channels.
    pub user_id: Option<Arc<str>>,
}

impl Publish {
    /// An event from the API, Poussr v1 or the dashboard: no sender user.
    pub fn new(channels: Vec<ChannelName>, event: &str, data: &str, except: Option<&str>, source: EventSource) -> Self {
        Publish {
            channels,
            event: Arc::from(event),
            data: Arc::from(data),
            except: except.map(Arc::from),
            source,
            user_id: None,
        }
    }
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
    /// A presence channel has as many members as allowed.
    #[error("this presence channel has {0} members, the most allowed")]
    PresenceFull(usize),
}

/// Why a client event was refused (answered with a `pusher:error`; the connection stays open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientEventError {
    /// The app has client events turned off.
    #[error("client events are turned off for this app")]
    Disabled,
    /// Not a private or presence channel.
    #[error(
        "client events are allowed only on private and presence channels (not public or encrypted ones); {0:?} is {1}"
    )]
    WrongKind(String, &'static str),
    /// The connection has not joined the channel.
    #[error("client events can be sent only on channels this connection has joined; it has not joined {0:?}")]
    NotJoined(String),
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigninError {
    /// The connection signed in before, as someone else.
    #[error("this connection is already signed in as {0:?}")]
    AlreadySignedIn(String),
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Too many connections (4004).
    OverQuota,
    /// Too many connections from this IP address (4100: retry later).
    TooManyFromAddress,
    /// The hub is shutting down (4200).
    ShuttingDown,
}

impl OpenError {
    /// The close code to answer with.
    pub fn close_code(self) -> CloseCode {
        match self {
            OpenError::OverQuota => CloseCode::OverQuota,
            OpenError::TooManyFromAddress => CloseCode::OverCapacity,
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
    /// Open connections per remote IP address (for `max_connections_per_address`).
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Connections closed or refused, by close code, since start.
    closes_by_code: Mutex<BTreeMap<u16, u64>>,
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
    /// `allowed_origins`, normalized; empty admits every origin.
    allowed_origins: Vec<String>,
    /// The HTTP API's latency histogram, for `/metrics`.
    api_latency: crate::http::ApiLatency,
    /// The address the server listens on, set once by [`crate::server::run`].
    local_addr: std::sync::OnceLock<SocketAddr>,
    /// The number of open connections, for watchers such as the desktop tray's tooltip.
    connections_watch: watch::Sender<usize>,
}

/// The adapter `config` asks for.
fn adapter(config: &Config) -> Result<Adapter, crate::config::ConfigError> {
    match config.adapter {
        crate::config::AdapterKind::Local => Ok(Adapter::Local),
        #[cfg(feature = "redis")]
        crate::config::AdapterKind::Redis => {
            let node = format!("{:016x}", rand::random::<u64>());
            crate::adapter::redis::Cluster::new(
                config.redis_url.trim(),
                &config.redis_prefix,
                node,
                Duration::from_millis(config.node_timeout_ms),
            )
            .map(|c| Adapter::Redis(Box::new(c)))
            .map_err(crate::config::ConfigError::Invalid)
        }
        #[cfg(not(feature = "redis"))]
        crate::config::AdapterKind::Redis => {
            Err(crate::config::ConfigError::Invalid("this build of Poussr has no Redis adapter".into()))
        }
    }
}

/// The hub: a cheap `Clone` handle over the shared state.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

/// A handle that does not keep the hub alive (for background tasks the hub itself owns).
#[derive(Debug, Clone)]
pub struct WeakHub(std::sync::Weak<Shared>);

impl WeakHub {
    /// The hub, if it still exists.
    pub fn upgrade(&self) -> Option<Hub> {
        self.0.upgrade().map(|shared| Hub { shared })
    }
}

/// What one hub holds of an app, as the cluster heartbeat shares it: occupied channels with their
/// subscription counts, and the members of presence channels.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct AppSnapshot {
    /// Occupied channels and their subscriptions.
    pub channels: BTreeMap<String, usize>,
    /// Presence channels: user id → user info.
    pub presence: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// A channel as the whole cluster has it (the HTTP API's answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterChannel {
    /// The name.
    pub name: String,
    /// Subscriptions on every hub.
    pub subscription_count: usize,
    /// Presence channels: distinct users over every hub.
    pub user_count: Option<usize>,
}

/// Another hub of the cluster, as its heartbeat describes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterNode {
    /// Its node id.
    pub id: String,
    /// Its host name and port.
    pub name: String,
    /// Its open connections.
    pub connections: usize,
}

/// The cluster as this hub sees it (`/health`, the dashboard).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterStatus {
    /// `redis`.
    pub adapter: &'static str,
    /// This hub's node id.
    pub node: String,
    /// The key prefix of the cluster.
    pub prefix: String,
    /// `up` when every Redis connection works, else `down`.
    pub link: &'static str,
    /// The last failure, while the link is down.
    pub error: Option<String>,
    /// The other hubs.
    pub others: Vec<ClusterNode>,
    /// Messages sent to the other hubs.
    pub published: u64,
    /// Messages received from them.
    pub received: u64,
    /// Messages dropped because the link was down too long (the outbox was full).
    pub dropped: u64,
}

impl Hub {
    /// A hub for `config`, which must hold at least one app (see [`Config::validate`]).
    pub fn new(config: &Config) -> Result<Self, crate::config::ConfigError> {
        config.validate()?;
        let apps: Vec<Arc<App>> = config
            .apps
            .iter()
            .map(|a| {
                Arc::new(App {
                    config: a.clone(),
                    id: Arc::from(a.id.as_str()),
                    channels: Mutex::default(),
                    cache: Mutex::default(),
                    users: Mutex::default(),
                    webhooks: Webhooks::new(a, &config.limits),
                    publish_budget: Mutex::new(Budget::full(config.limits.max_publish_per_second)),
                })
            })
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
                per_address: Mutex::default(),
                closes_by_code: Mutex::default(),
                socket_prefix: rand::random_range(1..1_000_000_000),
                next_connection: AtomicU64::new(1),
                counters: Counters::default(),
                monitor: Monitor::default(),
                adapter: adapter(config)?,
                started: Instant::now(),
                shutting_down: AtomicBool::new(false),
                admin_token: config.admin_token.clone().unwrap_or_else(crate::config::random_token),
                allow_remote_dashboard: config.allow_remote_dashboard,
                allowed_origins: config
                    .allowed_origins
                    .iter()
                    .filter_map(|o| crate::net::normalize_origin_rule(o).ok())
                    .collect(),
                api_latency: crate::http::ApiLatency::default(),
                local_addr: std::sync::OnceLock::new(),
                connections_watch: watch::Sender::new(0),
            }),
        })
    }

    /// Starts the hub's background work on the current tokio runtime: the webhook senders and the
    /// cluster link. Called by [`crate::server::run`]; calling it again does nothing.
    pub fn start_background(&self) {
        for app in &self.shared.apps {
            app.webhooks.start(&app.config, &self.shared.limits, &self.shared.monitor);
        }
        self.shared.adapter.start(self);
    }

    /// A handle that does not keep the hub alive.
    pub fn downgrade(&self) -> WeakHub {
        WeakHub(Arc::downgrade(&self.shared))
    }

    /// The cluster this hub belongs to, if any.
    pub fn cluster_status(&self) -> Option<ClusterStatus> {
        self.shared.adapter.status()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// The token the admin API and the dashboard need.
    pub fn admin_token(&self) -> &str {
        &self.shared.admin_token
    }

    /// The HTTP API's latency histogram.
    pub(crate) fn api_latency(&self) -> &crate::http::ApiLatency {
        &self.shared.api_latency
    }

    /// Whether a WebSocket handshake from a page of `origin` (its `Origin` header) is admitted.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        crate::net::origin_allowed(&self.shared.allowed_origins, origin)
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

    /// Counts a connection closed or refused with `code`, for `/metrics`.
    pub fn record_close(&self, code: u16) {
        *lock(&self.shared.closes_by_code).entry(code).or_insert(0) += 1;
    }

    /// How many connections were closed or refused with each close code since start.
    pub fn closes_by_code(&self) -> BTreeMap<u16, u64> {
        lock(&self.shared.closes_by_code).clone()
    }

    /// Takes `events` from `app`'s publishing allowance (`max_publish_per_second`); when it is spent, says
    /// how long until it allows that many again.
    pub fn take_publish_budget(&self, app: &App, events: usize) -> Result<(), Duration> {
        lock(&app.publish_budget).take(events, self.shared.limits.max_publish_per_second, Instant::now())
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
        {
            let mut per_address = lock(&s.per_address);
            let from_here = per_address.entry(remote.ip().to_canonical()).or_insert(0);
            if *from_here >= s.limits.max_connections_per_address {
                drop(per_address);
                s.connection_count.fetch_sub(1, Relaxed);
                return Err(OpenError::TooManyFromAddress);
            }
            *from_here += 1;
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
            user_id: OnceLock::new(),
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
        if let Some(user) = conn.user_id() {
            let mut users = lock(&conn.app.users);
            if let Some(conns) = users.get_mut(user) {
                conns.remove(&conn.number);
                if conns.is_empty() {
                    users.remove(user);
                }
            }
        }
        if lock(&self.shared.connections).remove(&conn.number).is_some() {
            self.shared.connection_count.fetch_sub(1, Relaxed);
            {
                let mut per_address = lock(&self.shared.per_address);
                let ip = conn.remote.ip().to_canonical();
                if let Some(from_here) = per_address.get_mut(&ip) {
                    *from_here -= 1;
                    if *from_here == 0 {
                        per_address.remove(&ip);
                    }
                }
            }
            if let Some(code) = code {
                self.record_close(code);
            }
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

    /// Adds `conn` to `channel`, as `member` on a presence channel (the caller has checked the signature).
    /// Joining again is harmless and answers as the first time, without a cached event.
    ///
    /// The other members learn of a user only when the user's first connection joins. A cache channel's
    /// last event is read under the same locks that delivery takes, so a new subscriber gets each event
    /// exactly once: from the cache or live, never both and never neither.
    pub fn subscribe(
        &self,
        conn: &Arc<Connection>,
        channel: &ChannelName,
        member: Option<Member>,
    ) -> Result<Joined, SubscribeError> {
        let s = &self.shared;
        if s.shutting_down.load(Relaxed) {
            return Err(SubscribeError::ShuttingDown);
        }
        let again = {
            let joined = lock(&conn.channels);
            let max = s.limits.max_channels_per_connection;
            if !joined.contains(channel) && joined.len() >= max {
                return Err(SubscribeError::TooManyChannels(max));
            }
            joined.contains(channel)
        };
        let app = &conn.app;
        let presence = channel.kind() == ChannelKind::Presence;
        // The members on the other hubs of a cluster (empty for a hub alone), read before the locks.
        let remote =
            if presence { s.adapter.remote_members(&app.config.id, channel.as_str()) } else { BTreeMap::new() };
        let mut map = lock(&app.channels);
        let mut created = false;
        let ch = map
            .entry(channel.clone())
            .or_insert_with(|| {
                created = true;
                Arc::new(Channel::new(channel))
            })
            .clone();
        let mut state = lock(&ch.state);
        if again {
            let presence = presence.then(|| presence_data(&state, &remote));
            return Ok(Joined { newly: false, presence, cached: None });
        }
        let mut added = None;
        let mut first_here = None;
        if let Some(m) = member.as_ref().filter(|_| presence) {
            let max = s.limits.max_presence_members;
            let members =
                state.members.len() + remote.keys().filter(|u| !state.members.contains_key(u.as_str())).count();
            let known = state.members.contains_key(&m.user_id) || remote.contains_key(&*m.user_id);
            if !known && members >= max {
                let empty = state.subscribers.is_empty();
                drop(state);
                if empty {
                    map.remove(channel);
                }
                return Err(SubscribeError::PresenceFull(max));
            }
            let entry = state
                .members
                .entry(m.user_id.clone())
                .or_insert_with(|| MemberState { info: m.user_info.clone(), connections: 0 });
            entry.connections += 1;
            if entry.connections == 1 {
                first_here = Some((m.user_id.clone(), m.user_info.clone()));
                // A user already present on another hub is already known to everyone.
                if !remote.contains_key(&*m.user_id) {
                    let frame: Frame = pusher::member_added(channel.as_str(), &m.user_id, &m.user_info).into();
                    for sub in state.subscribers.values() {
                        sub.conn.send(frame.clone());
                    }
                    added = Some(m.user_id.clone());
                }
            }
        }
        let user_id = member.filter(|_| presence).map(|m| m.user_id);
        state.subscribers.insert(conn.number, Subscriber { conn: conn.clone(), user_id });
        let presence = presence.then(|| presence_data(&state, &remote));
        let cached = channel.is_cache().then(|| self.cached(app, channel));
        lock(&conn.channels).insert(channel.clone());
        drop(state);
        drop(map);

        if let Some((user_id, user_info)) = first_here {
            s.adapter.member_added(app, channel.as_str(), &user_id, &user_info);
        }
        if created && !s.adapter.remote_occupied(&app.config.id, channel.as_str()) {
            app.webhook(WebhookKind::ChannelOccupied, channel, None);
        }
        s.monitor.emit(|| MonitorEvent::Subscribed {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            channel: channel.clone(),
        });
        if let Some(user_id) = added {
            app.webhook(WebhookKind::MemberAdded, channel, Some(&user_id));
            s.monitor.emit(|| MonitorEvent::MemberAdded {
                at_ms: now_ms(),
                socket_id: conn.socket_id.clone(),
                channel: channel.clone(),
                user_id,
            });
        }
        if cached == Some(Cached::Miss) {
            app.webhook(WebhookKind::CacheMiss, channel, None);
        }
        Ok(Joined { newly: true, presence, cached })
    }

    /// The cached event of `channel`, if it has one that has not expired.
    fn cached(&self, app: &App, channel: &ChannelName) -> Cached {
        let ttl = Duration::from_secs(self.shared.limits.cache_ttl_secs);
        let mut cache = lock(&app.cache);
        match cache.events.get(channel) {
            Some((frame, at)) if at.elapsed() < ttl => Cached::Hit(frame.clone()),
            Some(_) => {
                cache.events.remove(channel);
                Cached::Miss
            }
            None => Cached::Miss,
        }
    }

    /// Keeps `frame` as the last event of a cache channel, and now and then forgets expired ones.
    fn store_cached(&self, app: &App, channel: &ChannelName, frame: Frame) {
        let ttl = Duration::from_secs(self.shared.limits.cache_ttl_secs);
        let mut cache = lock(&app.cache);
        let now = Instant::now();
        if cache.swept.is_none_or(|at| now.duration_since(at) >= CACHE_SWEEP_EVERY) {
            cache.events.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            cache.swept = Some(now);
        }
        cache.events.insert(channel.clone(), (frame, now));
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
        let app = &conn.app;
        let s = &self.shared;
        let remote = if channel.kind() == ChannelKind::Presence {
            s.adapter.remote_members(&app.config.id, channel.as_str())
        } else {
            BTreeMap::new()
        };
        let mut map = lock(&app.channels);
        let Some(ch) = map.get(channel).cloned() else { return };
        let mut state = lock(&ch.state);
        let Some(sub) = state.subscribers.remove(&conn.number) else { return };
        let mut removed = None;
        let mut last_here = None;
        if let Some(user_id) = sub.user_id
            && let Some(member) = state.members.get_mut(&user_id)
        {
            member.connections -= 1;
            if member.connections == 0 {
                state.members.remove(&user_id);
                // A user still present on another hub stays a member for everyone.
                if !remote.contains_key(&*user_id) {
                    let frame: Frame = pusher::member_removed(channel.as_str(), &user_id).into();
                    for other in state.subscribers.values() {
                        other.conn.send(frame.clone());
                    }
                    removed = Some(user_id.clone());
                }
                last_here = Some(user_id);
            }
        }
        let vacated = state.subscribers.is_empty();
        drop(state);
        if vacated {
            map.remove(channel);
        }
        drop(map);

        if let Some(user_id) = last_here {
            s.adapter.member_removed(app, channel.as_str(), &user_id);
        }
        s.monitor.emit(|| MonitorEvent::Unsubscribed {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            channel: channel.clone(),
        });
        if let Some(user_id) = removed {
            app.webhook(WebhookKind::MemberRemoved, channel, Some(&user_id));
            s.monitor.emit(|| MonitorEvent::MemberRemoved {
                at_ms: now_ms(),
                socket_id: conn.socket_id.clone(),
                channel: channel.clone(),
                user_id,
            });
        }
        if vacated && !s.adapter.remote_occupied(&app.config.id, channel.as_str()) {
            app.webhook(WebhookKind::ChannelVacated, channel, None);
        }
    }

    #[cfg(feature = "redis")]
    /// A member of presence channel `channel` of app `app_id` appeared on another hub (`Some(info)`) or
    /// is gone from every other hub (`None`): this hub's subscribers learn it, unless the user is also a
    /// member here (they know already, and still do).
    pub(crate) fn remote_presence_changed(
        &self,
        app_id: &str,
        channel: &str,
        user_id: &str,
        info: Option<&serde_json::Value>,
    ) {
        let Some(app) = self.app_by_id(app_id) else { return };
        let Ok(name) = ChannelName::parse(channel) else { return };
        let Some(ch) = lock(&app.channels).get(&name).cloned() else { return };
        let state = lock(&ch.state);
        if state.members.contains_key(user_id) {
            return;
        }
        let frame: Frame = match info {
            Some(info) => pusher::member_added(channel, user_id, info).into(),
            None => pusher::member_removed(channel, user_id).into(),
        };
        for sub in state.subscribers.values() {
            sub.conn.send(frame.clone());
        }
    }

    /// Relays a `client-*` event from `conn` to the other subscribers of `channel` (the caller has checked
    /// the name and the rate). On a presence channel the frame names the sender's `user_id`.
    pub fn client_event(
        &self,
        conn: &Connection,
        channel: &ChannelName,
        event: &str,
        data: &str,
    ) -> Result<usize, ClientEventError> {
        if !conn.app.config.client_events {
            return Err(ClientEventError::Disabled);
        }
        match channel.kind() {
            ChannelKind::Private | ChannelKind::Presence => {}
            kind => return Err(ClientEventError::WrongKind(channel.to_string(), kind.as_str())),
        }
        let user_id = {
            let ch = lock(&conn.app.channels).get(channel).cloned();
            let state = ch.as_ref().map(|c| lock(&c.state));
            match state.as_ref().and_then(|st| st.subscribers.get(&conn.number)) {
                Some(sub) => sub.user_id.clone(),
                None => return Err(ClientEventError::NotJoined(channel.to_string())),
            }
        };
        let event = Publish {
            channels: vec![channel.clone()],
            event: Arc::from(event),
            data: Arc::from(data),
            except: Some(conn.socket_id.clone()),
            source: EventSource::Client,
            user_id,
        };
        let delivered = self.publish(&conn.app, &event);
        conn.app.webhook_with(WebhookKind::ClientEvent, || WebhookEvent {
            name: WebhookKind::ClientEvent,
            channel: channel.clone(),
            user_id: event.user_id.clone(),
            event: Some(event.event.clone()),
            data: Some(event.data.clone()),
            socket_id: Some(conn.socket_id.clone()),
        });
        Ok(delivered)
    }

    /// Records that `conn` signed in as `user_id` (the caller has checked the signature). Signing in again
    /// as the same user is harmless.
    pub fn sign_in(&self, conn: &Arc<Connection>, user_id: &str) -> Result<(), SigninError> {
        let user: Arc<str> = Arc::from(user_id);
        let current = conn.user_id.get_or_init(|| user.clone());
        if **current != *user_id {
            return Err(SigninError::AlreadySignedIn(current.to_string()));
        }
        lock(&conn.app.users).entry(user.clone()).or_default().insert(conn.number, conn.clone());
        self.shared.monitor.emit(|| MonitorEvent::SignedIn {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            user_id: user,
        });
        Ok(())
    }

    /// Closes every connection signed in as `user_id` with 4009, on every hub of the cluster. Returns how
    /// many there were on this hub.
    pub fn terminate_user(&self, app: &App, user_id: &str) -> usize {
        self.shared.adapter.terminate_user(app, user_id);
        self.terminate_local_user(app, user_id)
    }

    /// Closes `user_id`'s connections on this hub only; returns how many.
    pub(crate) fn terminate_local_user(&self, app: &App, user_id: &str) -> usize {
        let conns: Vec<Arc<Connection>> =
            lock(&app.users).get(user_id).map(|c| c.values().cloned().collect()).unwrap_or_default();
        for conn in &conns {
            conn.kick(CloseCode::Terminated);
        }
        conns.len()
    }

    /// The users of a presence channel, sorted by id (empty when nobody is in it).
    pub fn channel_users(&self, app: &App, channel: &ChannelName) -> Vec<Arc<str>> {
        let ch = lock(&app.channels).get(channel).cloned();
        ch.map(|c| lock(&c.state).members.keys().cloned().collect()).unwrap_or_default()
    }

    #[cfg(feature = "redis")]
    /// What this hub holds, by app id, for the cluster heartbeat.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, AppSnapshot> {
        let mut out = BTreeMap::new();
        for app in &self.shared.apps {
            let chans: Vec<Arc<Channel>> = lock(&app.channels).values().cloned().collect();
            let mut snap = AppSnapshot::default();
            for ch in chans {
                let state = lock(&ch.state);
                if state.subscribers.is_empty() {
                    continue;
                }
                snap.channels.insert(ch.name.to_string(), state.subscribers.len());
                if ch.name.kind() == ChannelKind::Presence {
                    let members = state.members.iter().map(|(id, m)| (id.to_string(), m.info.clone())).collect();
                    snap.presence.insert(ch.name.to_string(), members);
                }
            }
            out.insert(app.config.id.clone(), snap);
        }
        out
    }

    /// The occupied channels of `app` on every hub of the cluster, sorted by name.
    pub fn cluster_channels(&self, app: &App) -> Vec<ClusterChannel> {
        let remote = self.shared.adapter.remote(&app.config.id);
        // Subscriptions by channel name: this hub's, then every other hub's added.
        let mut subscriptions: BTreeMap<String, usize> =
            self.channels(app).into_iter().map(|c| (c.name, c.subscription_count)).collect();
        for snap in &remote {
            for (name, count) in &snap.channels {
                *subscriptions.entry(name.clone()).or_default() += count;
            }
        }
        subscriptions
            .into_iter()
            .filter_map(|(n, count)| Some((ChannelName::parse(&n).ok()?, count)))
            .filter_map(|(n, count)| self.cluster_channel_with(app, &n, count, &remote))
            .collect()
    }

    /// One channel of `app` over the cluster, if occupied anywhere.
    pub fn cluster_channel(&self, app: &App, name: &ChannelName) -> Option<ClusterChannel> {
        let remote = self.shared.adapter.remote(&app.config.id);
        let local = self.channel(app, name).map_or(0, |c| c.subscription_count);
        let subscriptions = local + remote.iter().filter_map(|s| s.channels.get(name.as_str())).sum::<usize>();
        self.cluster_channel_with(app, name, subscriptions, &remote)
    }

    /// `name` with `subscription_count` subscriptions over the cluster, if any.
    fn cluster_channel_with(
        &self,
        app: &App,
        name: &ChannelName,
        subscription_count: usize,
        remote: &[AppSnapshot],
    ) -> Option<ClusterChannel> {
        if subscription_count == 0 {
            return None;
        }
        let user_count =
            (name.kind() == ChannelKind::Presence).then(|| self.cluster_users_with(app, name, remote).len());
        Some(ClusterChannel { name: name.to_string(), subscription_count, user_count })
    }

    /// The users of a presence channel over the cluster, sorted by id: a user on two hubs is one user.
    pub fn cluster_channel_users(&self, app: &App, name: &ChannelName) -> Vec<Arc<str>> {
        self.cluster_users_with(app, name, &self.shared.adapter.remote(&app.config.id))
    }

    fn cluster_users_with(&self, app: &App, name: &ChannelName, remote: &[AppSnapshot]) -> Vec<Arc<str>> {
        let mut users: BTreeSet<Arc<str>> = self.channel_users(app, name).into_iter().collect();
        for snap in remote {
            if let Some(members) = snap.presence.get(name.as_str()) {
                users.extend(members.keys().map(|k| Arc::from(k.as_str())));
            }
        }
        users.into_iter().collect()
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
            let make_frame = || -> Frame {
                pusher::event(&event.event, name.as_str(), &event.data, event.user_id.as_deref()).into()
            };
            // Events from the backend are what a cache channel keeps; client events are not.
            let caching = name.is_cache() && event.source != EventSource::Client;
            let map = lock(&app.channels);
            let mut frame = None;
            if caching {
                let f = make_frame();
                self.store_cached(app, name, f.clone());
                frame = Some(f);
            }
            let ch = map.get(name).cloned();
            // For a cache channel the channel map stays locked until the subscribers are (see `subscribe`).
            let map = if caching {
                Some(map)
            } else {
                drop(map);
                None
            };
            let mut delivered = 0;
            if let Some(ch) = &ch {
                // Serialized once; each subscriber's queue gets a reference-counted handle to it.
                let frame = frame.unwrap_or_else(make_frame);
                let state = lock(&ch.state);
                drop(map);
                for sub in state.subscribers.values() {
                    if event.except.as_deref().is_some_and(|x| *x == *sub.conn.socket_id) {
                        continue;
                    }
                    if sub.conn.send(frame.clone()) {
                        delivered += 1;
                    }
                }
                drop(state);
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
            webhooks: self.webhook_stats(),
        }
    }

    /// Waits until every webhook event queued so far has been sent or given up on, at most `timeout`;
    /// returns how many are left. Used before the process exits.
    pub async fn flush_webhooks(&self, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = self.webhook_stats().queued;
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Webhook figures summed over every app.
    pub fn webhook_stats(&self) -> WebhookStats {
        let mut total = WebhookStats::default();
        for app in &self.shared.apps {
            total += app.webhooks.stats();
        }
        total
    }

    /// Starts shutting down: refuses new connections and subscriptions and asks every open connection to
    /// close with 4200, which tells Pusher clients to reconnect at once (to this hub once it is back, or to
    /// another behind the same address).
    pub fn begin_shutdown(&self) {
        self.shared.shutting_down.store(true, Relaxed);
        self.shared.adapter.stop();
        for conn in self.connections() {
            conn.kick(CloseCode::Restarting);
        }
    }

    /// Whether [`Hub::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Relaxed)
    }
}

/// The `subscription_succeeded` data of a presence channel: its members here and, in a cluster, on the
/// other hubs (this hub's copy of a user's info wins).
fn presence_data(state: &ChannelState, remote: &BTreeMap<String, serde_json::Value>) -> String {
    let local = state.members.iter().map(|(id, m)| (&**id, &m.info));
    let others =
        remote.iter().filter(|(id, _)| !state.members.contains_key(id.as_str())).map(|(id, info)| (id.as_str(), info));
    pusher::presence_data(local.chain(others))
}

fn channel_info(ch: &Channel) -> ChannelInfo {
    let last = ch.last_event_ms.load(Relaxed);
    let (subscription_count, user_count) = {
        let state = lock(&ch.state);
        (state.subscribers.len(), (ch.name.kind() == ChannelKind::Presence).then_some(state.members.len()))
    };
    ChannelInfo {
        name: ch.name.to_string(),
        kind: ch.name.kind(),
        subscription_count,
        user_count,
        events: ch.events.load(Relaxed),
        deliveries: ch.deliveries.load(Relaxed),
        last_event_ms: (last != 0).then_some(last),
    }
}

#[cfg(test)]
mod tests;
