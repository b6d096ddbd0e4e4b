//! The hub's state: apps → channels → subscribers, a record per connection, users, and counters. It knows
//! no transport: sessions, the HTTP layer and the cluster adapter call into it; it calls none of them.
//!
//! [`Hub`] is a cheap `Clone` handle over shared state. The locks are `std::sync::Mutex`es held for a few
//! map operations and never across an `.await`: every operation here is synchronous and short, so an async
//! lock would only add overhead. Lock order, to rule out deadlocks: an app's channel map, then one
//! channel's state, then one connection's channel set (or the app's cache), then one channel's ring;
//! nothing takes them the other way round.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | the handle, the shared state, construction, settings and shutdown |
//! | [`app`] | an app: its channels, cache, users, webhooks and publishing allowance |
//! | `budget.rs` | the token bucket behind `max_publish_per_second` |
//! | `cache.rs` | the last event of each cache channel, with its expiry |
//! | [`connection`] | the registry of connections: open (quotas), close, look up, kick |
//! | [`channel`] | subscriptions and presence: join, leave, members, channel listings |
//! | [`fanout`] | publishing: one frame per channel, appended to its ring; client events |
//! | `ring.rs` | a channel's frames not yet taken by all its subscribers, and who waits for the next |
//! | [`user`] | signed-in users: sign-in, `terminate_connections` |
//! | [`stats`] | counters and the figures of `/health`, `/metrics` and the dashboard |
//! | [`cluster`] | the [`Adapter`] seam and the cluster-wide views built on it |
//!
//! Fan-out serializes each event once into a shared frame and appends it to the channel's ring (`ring.rs`):
//! one step whatever the number of subscribers. Each session takes from the rings of its channels what it
//! has not yet written. A subscriber a whole ring (`send_queue_frames`) behind is closed with 4100: never
//! silently skipped, never allowed to grow memory, never allowed to slow the others.

pub mod app;
mod budget;
mod cache;
pub mod channel;
pub mod cluster;
pub mod connection;
pub mod fanout;
mod ring;
pub mod stats;
pub mod user;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use tokio::sync::watch;

use crate::config::{AdapterKind, Config, ConfigError, Limits};
use crate::history::History;
use crate::monitor::Monitor;
use crate::monitor::journal::{self, Journal};
use crate::protocol::CloseCode;

pub use app::App;
pub use cache::Cached;
pub use channel::{ChannelInfo, Joined, Member, SubscribeError};
pub use cluster::{
    Adapter, Alone, AppSnapshot, ClusterChannel, ClusterNode, ClusterStatus, LinkState, RemoteMembers, Route,
};
pub use connection::{Connection, ConnectionInfo, OpenError};
pub use fanout::{ClientEventError, Delivery, Publish};
pub use stats::{HistoryStatus, Stats};
pub use user::SigninError;

/// A frame ready to send: a whole WebSocket text frame whose bytes are shared by every subscriber it is
/// queued to.
pub use crate::protocol::Frame;

/// Locks a mutex, going on with the data if a thread panicked while holding it: every critical section
/// here leaves the maps consistent at each step, so the data is still good.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Shared {
    /// By id, for the HTTP API, which names apps by id.
    apps_by_id: HashMap<String, Arc<App>>,
    /// By key, for WebSocket URLs, which name apps by key.
    apps_by_key: HashMap<String, Arc<App>>,
    /// In configuration order; the first is the default app that Poussr v1 uses.
    apps: Vec<Arc<App>>,
    /// The limits every check reads.
    limits: Limits,
    /// Whether Poussr v1 publishing is open to other machines without a token.
    allow_anonymous_publish: bool,
    /// Whether the check page may publish its test event.
    allow_check_publish: bool,
    /// Every open connection and the quotas on them.
    registry: connection::Registry,
    /// Hub-wide counters.
    counters: stats::Counters,
    /// What the dashboard watches.
    monitor: Monitor,
    /// The other hubs, if this one is part of a cluster.
    adapter: Box<dyn Adapter>,
    /// When the hub was made, for its uptime.
    started: Instant,
    /// Set by [`Hub::begin_shutdown`]: no new connections or subscriptions.
    shutting_down: AtomicBool,
    /// The address the server listens on, set once when serving starts; the cluster heartbeat names the
    /// hub by it.
    local_addr: OnceLock<SocketAddr>,
    /// The history of events, when the configuration names a store and an app keeps history.
    history: Option<History>,
    /// Why the configured store could not be used, if it could not (the hub then keeps no history).
    history_error: Option<String>,
    /// The console journal beside the history, or why there is none.
    journal: Result<Journal, String>,
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

impl Hub {
    /// A hub for `config`, which must hold at least one app (see [`Config::validate`]), sharing its traffic
    /// through `adapter` (see `crate::adapter::build`, which makes the one the configuration names).
    pub fn new(config: &Config, adapter: Box<dyn Adapter>) -> Result<Self, ConfigError> {
        config.validate()?;
        Hub::with_history(config, adapter, History::open(&config.history, &config.apps))
    }

    /// [`Hub::new`] with a history opened by the caller (`History::open`), which may outlive this hub:
    /// the desktop app keeps one store open while it replaces the hub on new settings. An error is why the
    /// store cannot be used; the hub then keeps no history and says so.
    pub fn with_history(
        config: &Config,
        adapter: Box<dyn Adapter>,
        history: Result<Option<History>, String>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let (history, history_error) = match history {
            Ok(history) => (history, None),
            Err(e) => {
                tracing::error!("the history store cannot be used, so no history is kept: {e}");
                (None, Some(e))
            }
        };
        let apps: Vec<Arc<App>> =
            config.apps.iter().map(|a| Arc::new(App::new(a, &config.limits, config.tls.ca.as_deref()))).collect();
        if let Some(history) = &history {
            // What the store holds was delivered before: joins count from there.
            for app in &apps {
                let mut delivered = lock(&app.delivered);
                for (channel, position) in history.heads(&app.id) {
                    if let Ok(name) = crate::protocol::ChannelName::parse(&channel) {
                        delivered.insert(name, position);
                    }
                }
            }
        }
        let monitor = Monitor::default();
        let journal = open_journal(config, &monitor);
        Ok(Hub {
            shared: Arc::new(Shared {
                apps_by_id: apps.iter().map(|a| (a.config.id.clone(), a.clone())).collect(),
                apps_by_key: apps.iter().map(|a| (a.config.key.clone(), a.clone())).collect(),
                apps,
                limits: config.limits.clone(),
                allow_anonymous_publish: config.allow_anonymous_publish,
                allow_check_publish: config.allow_check_publish,
                registry: connection::Registry::default(),
                counters: stats::Counters::default(),
                monitor,
                adapter,
                started: Instant::now(),
                shutting_down: AtomicBool::new(false),
                local_addr: OnceLock::new(),
                history,
                history_error,
                journal,
            }),
        })
    }

    /// A hub on its own, for a configuration that asks for no cluster (`adapter = "local"`).
    pub fn alone(config: &Config) -> Result<Self, ConfigError> {
        if config.adapter != AdapterKind::Local {
            return Err(ConfigError::Invalid(format!(
                "this configuration asks for the {:?} adapter; build it with poussr::adapter::build and Hub::new",
                config.adapter
            )));
        }
        Hub::new(config, Box::new(Alone))
    }

    /// Starts the hub's background work on the current tokio runtime: the webhook senders and the
    /// cluster link. Called when serving starts; calling it again does nothing.
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

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
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
        self.shared.registry.watch()
    }

    /// The apps, the default one first.
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.shared.apps.clone()
    }

    /// Whether Poussr v1 publishing is open to other machines without a token.
    pub fn allow_anonymous_publish(&self) -> bool {
        self.shared.allow_anonymous_publish
    }

    /// Whether the check page (`/check`) may publish its test event.
    pub fn allow_check_publish(&self) -> bool {
        self.shared.allow_check_publish
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
        // `Config::validate`, which `Hub::new` calls, refuses a configuration without apps.
        self.shared.apps[0].clone()
    }

    /// The history of events, if one is kept.
    pub fn history(&self) -> Option<&History> {
        self.shared.history.as_ref()
    }

    /// Why the configured history store could not be used, if it could not.
    pub fn history_error(&self) -> Option<&str> {
        self.shared.history_error.as_deref()
    }

    /// The console journal, if one is kept (it is beside the history, in `history.dir`).
    pub fn journal(&self) -> Option<&Journal> {
        self.shared.journal.as_ref().ok()
    }

    /// Why no console journal is kept, when none is.
    pub fn journal_error(&self) -> Option<&str> {
        self.shared.journal.as_ref().err().map(String::as_str)
    }

    /// The monitor feed.
    pub fn monitor(&self) -> &Monitor {
        &self.shared.monitor
    }

    /// Time since the hub was created.
    pub fn uptime(&self) -> std::time::Duration {
        self.shared.started.elapsed()
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

/// Opens the console journal in the history folder and attaches it to `monitor`; or says why there is none.
fn open_journal(config: &Config, monitor: &Monitor) -> Result<Journal, String> {
    let Some(dir) = &config.history.dir else {
        return Err("no journal is kept: the hub has no history folder (history.dir)".into());
    };
    let bounds = journal::Bounds {
        max_entries: config.history.journal_max_entries,
        max_age_secs: config.history.journal_max_age_secs,
    };
    let (journal, tx) = Journal::open(dir, bounds).map_err(|e| {
        tracing::warn!("the console journal cannot be used, so the console searches no journal: {e}");
        format!("the console journal cannot be used: {e}")
    })?;
    monitor.attach_journal(tx);
    Ok(journal)
}

#[cfg(test)]
mod tests;
