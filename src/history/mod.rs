//! The history of events: every event published on a channel of an app that keeps history gets a
//! position (the channel's epoch and a serial that grows by one per event) and is kept on disk, within
//! the app's bounds, for clients that reconnect and for the history API.
//!
//! A hub alone keeps its history in an embedded store. Hubs of a cluster share one, kept by the cluster's
//! server ([`Remote`]): positions are then given by the cluster as events are published (see the Redis
//! adapter), and this module only reads it.
//!
//! It knows no socket, no HTTP and no hub. The hub hands it each event with what to do once the event is
//! durable ([`History::append`]); one writer thread commits everything queued meanwhile in one transaction
//! (group commit), then runs those completions in the order the events were queued, which is the order
//! of their serials. So a channel's events reach its subscribers in serial order, and only once they are
//! on disk: after a crash, every event anyone received, and every event whose publish was answered, is
//! still there.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | positions, the queue, the writer thread, the handle the hub holds |
//! | `writer.rs` | the writer thread: group commits, evictions, completions in order, reads between commits |
//! | [`store`] | the embedded store (SQLite through rusqlite): schema, commits, eviction, reads, a damaged file moved aside |

mod evict;
pub mod search;
pub mod store;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::config::{AppConfig, HistoryConfig, HistoryStore};
use store::Store;
use writer::Writer;

/// Where an event is in its channel's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Names the channel's history generation: it changes when the history that gave the serials is gone
    /// (a new store, a damaged one moved aside, a channel forgotten after all its events expired).
    pub epoch: Arc<str>,
    /// 1 for the first event of the epoch, then one more per event. 0: no event yet.
    pub serial: u64,
}

/// An event to keep.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The app's id.
    pub app: Arc<str>,
    /// The channel's name.
    pub channel: Arc<str>,
    /// The event name.
    pub event: Arc<str>,
    /// The data string, exactly as published.
    pub data: Arc<str>,
    /// The sender's user id (client events on presence channels).
    pub user_id: Option<Arc<str>>,
    /// The socket id the event was not for (`socket_id` on the API; the sender of a client event).
    pub except: Option<Arc<str>>,
}

/// An event read back from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stored {
    /// Its serial in the channel's epoch.
    pub serial: u64,
    /// When it was published, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The event name.
    pub event: String,
    /// The data string.
    pub data: String,
    /// The sender's user id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The socket id the event was not for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub except: Option<String>,
}

/// Why the events after a position cannot all be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// The channel's history is another generation than the position's (or the channel has none).
    EpochChanged {
        /// The channel's epoch now, if it has one.
        epoch: Option<Arc<str>>,
    },
    /// Some of the events after the position were evicted (count, age or size bounds, or cleared).
    Evicted {
        /// The oldest serial still kept after the position, if any.
        oldest: Option<u64>,
    },
    /// The position is past the channel's last event: it was not given by this history.
    Unknown,
}

impl Gap {
    /// The reason's name on the wire (`docs/protocol.md`).
    pub fn reason(&self) -> &'static str {
        match self {
            Gap::EpochChanged { .. } => "epoch_changed",
            Gap::Evicted { .. } => "evicted",
            Gap::Unknown => "unknown_position",
        }
    }
}

/// What the history could not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The store failed to write or read; the detail is the store's message.
    #[error("the history store failed: {0}")]
    Store(String),
    /// The history was shut down before the request was handled.
    #[error("the history store is closed")]
    Closed,
    /// The cluster's history cannot be reached (its link is down); the detail says why.
    #[error("the cluster's history cannot be reached: {0}")]
    Unreachable(String),
}

/// What to do once an appended event is durable (or could not be made so): runs on the writer thread,
/// in the order the events were appended.
pub type Done = Box<dyn FnOnce(Result<Position, HistoryError>) + Send>;

/// The figures `/health`, `/metrics` and the window show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HistoryStats {
    /// The store's file and its write-ahead log, in bytes.
    pub bytes_on_disk: u64,
    /// Events kept, over every app.
    pub events: u64,
    /// Channels that keep at least one event.
    pub channels: u64,
    /// Events evicted since the hub started (count, age or size bounds).
    pub evicted: u64,
    /// Commits that failed since the hub started (their publishes were refused).
    pub write_errors: u64,
    /// Events committed since the hub started.
    pub written: u64,
    /// Commits since the hub started (each carries every event queued meanwhile).
    pub commits: u64,
}

/// A channel's head: its epoch, the serial its last event got, and that event's time. Times never go
/// backwards within a channel (a clock set back stamps events with the last time until it catches up), so
/// that a channel's expired events are always its oldest: the age bound removes a run from its start.
#[derive(Debug, Clone)]
struct Head {
    epoch: Arc<str>,
    last: u64,
    last_at: u64,
}

/// Work for the writer thread, in the order it was queued.
enum Job {
    Append {
        entry: Entry,
        serial: u64,
        epoch: Arc<str>,
        at_ms: u64,
        done: Done,
    },
    /// Makes sure a channel's head is on disk (a client learned its epoch before any event).
    Head {
        app: Arc<str>,
        channel: Arc<str>,
        epoch: Arc<str>,
    },
    Read {
        app: Arc<str>,
        channel: Arc<str>,
        after: u64,
        upto: u64,
        limit: u64,
        reply: tokio::sync::oneshot::Sender<ReadResult>,
    },
    Clear {
        reply: tokio::sync::oneshot::Sender<Result<(), HistoryError>>,
    },
    Recent {
        limit: u64,
        reply: tokio::sync::oneshot::Sender<Result<Vec<Recent>, HistoryError>>,
    },
    /// A read run on the store between commits (the console's search, `search.rs`).
    Query(Box<dyn FnOnce(&mut Store) + Send>),
}

/// A kept event with its app and channel, for the window's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recent {
    /// The app's id.
    pub app_id: Arc<str>,
    /// The channel.
    pub channel: Arc<str>,
    /// The event.
    #[serde(flatten)]
    pub event: Stored,
}

type ReadResult = Result<Vec<Stored>, HistoryError>;

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    heads: HashMap<(Arc<str>, Arc<str>), Head>,
    closed: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
    apps: HashMap<Arc<str>, HistoryConfig>,
    path: std::path::PathBuf,
    notice: Option<String>,
    counters: Counters,
    /// Events kept per channel, for the window.
    counts: Mutex<HashMap<store::ChannelKey, u64>>,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    evicted: AtomicU64,
    write_errors: AtomicU64,
    written: AtomicU64,
    commits: AtomicU64,
}

/// Closes the history when the hub lets go of it: the writer commits what is queued, then ends.
struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        lock(&self.0.queue).closed = true;
        self.0.wake.notify_all();
    }
}

/// The history: a cheap `Clone` handle.
#[derive(Clone)]
pub struct History(Kind);

#[derive(Clone)]
enum Kind {
    /// This hub's own store.
    Local(Arc<Guard>),
    /// The cluster's.
    Shared(Arc<Shared>),
}

/// A history kept by the cluster's server, which gives positions as events are published.
struct Shared {
    apps: HashMap<Arc<str>, HistoryConfig>,
    remote: Box<dyn Remote>,
}

/// A future of the history.
pub type Pending<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A history kept outside the hub (by a cluster's server): what the hub reads of it.
pub trait Remote: Send + Sync {
    /// The kept events of `channel` with serials in `after+1 ..= upto`, oldest first, at most `limit`, none
    /// older than `max_age_secs`.
    fn read(
        &self,
        app: &str,
        channel: &str,
        after: u64,
        upto: u64,
        limit: u64,
        max_age_secs: u64,
    ) -> Pending<ReadResult>;
    /// Deletes every kept event of every channel.
    fn clear(&self) -> Pending<Result<(), HistoryError>>;
    /// Where it is, for people (`/health`).
    fn location(&self) -> String;
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("location", &self.location()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A new epoch: 16 random hexadecimal digits.
fn new_epoch() -> Arc<str> {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    Arc::from(format!("{n:016x}"))
}

/// How often expired events are looked for when nothing is written.
const AGE_PASS_EVERY: Duration = Duration::from_secs(5);

impl History {
    /// Opens (or creates) the store in `settings.dir` for `apps`. A damaged store file is moved aside and a
    /// new one started: [`History::notice`] then says so. Errors are what stops the store from being used
    /// at all (the folder cannot be made or written, or another running hub uses the store).
    pub fn open(settings: &HistoryStore, apps: &[AppConfig]) -> Result<Option<History>, String> {
        let Some(dir) = &settings.dir else { return Ok(None) };
        let apps: HashMap<Arc<str>, HistoryConfig> =
            apps.iter().filter(|a| a.history.enabled).map(|a| (Arc::from(a.id.as_str()), a.history.clone())).collect();
        if apps.is_empty() {
            return Ok(None);
        }
        let (mut store, notice) = Store::open(dir, settings.sync).map_err(|e| e.to_string())?;
        if let Some(notice) = &notice {
            tracing::warn!("{notice}");
        }
        let loaded = store.load().map_err(|e| e.to_string())?;
        let mut queue = Queue::default();
        for store::StoredHead { app, channel, epoch, last, last_at } in loaded.heads {
            queue.heads.insert((app, channel), Head { epoch, last, last_at });
        }
        let inner = Arc::new(Inner {
            queue: Mutex::new(queue),
            wake: Condvar::new(),
            apps,
            path: store.path().to_path_buf(),
            notice,
            counters: Counters::default(),
            counts: Mutex::new(loaded.counts),
        });
        inner.counters.events.store(loaded.events, Relaxed);
        let writer = Writer::new(inner.clone(), store, loaded.app_bytes);
        std::thread::Builder::new()
            .name("poussr-history".into())
            .spawn(move || writer.run())
            .map_err(|e| format!("the history writer thread: {e}"))?;
        Ok(Some(History(Kind::Local(Arc::new(Guard(inner))))))
    }

    /// The history of a cluster, kept by its server (`remote`), for the apps of `apps` that keep one.
    /// `None` when no app keeps history.
    pub fn shared(apps: &[AppConfig], remote: Box<dyn Remote>) -> Option<History> {
        let apps: HashMap<Arc<str>, HistoryConfig> =
            apps.iter().filter(|a| a.history.enabled).map(|a| (Arc::from(a.id.as_str()), a.history.clone())).collect();
        (!apps.is_empty()).then(|| History(Kind::Shared(Arc::new(Shared { apps, remote }))))
    }

    /// This hub's store, if the history is not the cluster's.
    fn local(&self) -> Option<&Inner> {
        match &self.0 {
            Kind::Local(guard) => Some(&guard.0),
            Kind::Shared(_) => None,
        }
    }

    fn inner(&self) -> &Inner {
        // Only the local store's operations call it, each after checking the kind.
        self.local().expect("the local history store")
    }

    /// Whether the cluster's server keeps this history (positions come with the cluster's events).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Kind::Shared(_))
    }

    fn apps(&self) -> &HashMap<Arc<str>, HistoryConfig> {
        match &self.0 {
            Kind::Local(guard) => &guard.0.apps,
            Kind::Shared(shared) => &shared.apps,
        }
    }

    /// Whether the app keeps history; with `client`, whether it keeps client events.
    pub fn keeps(&self, app: &str, client: bool) -> bool {
        self.apps().get(app).is_some_and(|c| !client || c.client_events)
    }

    /// What the app keeps, if it keeps history.
    pub fn settings(&self, app: &str) -> Option<&HistoryConfig> {
        self.apps().get(app)
    }

    /// The store's file, for this hub's own store.
    pub fn path(&self) -> Option<&Path> {
        self.local().map(|i| i.path.as_path())
    }

    /// Where the history is, for people: the store's file, or the cluster's server.
    pub fn location(&self) -> String {
        match &self.0 {
            Kind::Local(guard) => guard.0.path.display().to_string(),
            Kind::Shared(shared) => shared.remote.location(),
        }
    }

    /// What happened to a damaged store at start, if anything.
    pub fn notice(&self) -> Option<&str> {
        self.local().and_then(|i| i.notice.as_deref())
    }

    /// Gives `entry` the next position of its channel and queues it; `done` runs on the writer thread
    /// once it is durable (or failed), after the completions of everything appended before. A shared
    /// history gives positions as the cluster orders events, not here: it refuses.
    pub fn append(&self, entry: Entry, done: Done) {
        if self.is_shared() {
            done(Err(HistoryError::Store("the cluster gives positions as it orders events".into())));
            return;
        }
        let inner = self.inner();
        let mut q = lock(&inner.queue);
        if q.closed {
            drop(q);
            done(Err(HistoryError::Closed));
            return;
        }
        let head = q.heads.entry((entry.app.clone(), entry.channel.clone())).or_insert_with(|| Head {
            epoch: new_epoch(),
            last: 0,
            last_at: 0,
        });
        head.last += 1;
        head.last_at = head.last_at.max(now_ms());
        let (serial, epoch, at_ms) = (head.last, head.epoch.clone(), head.last_at);
        q.jobs.push(Job::Append { entry, serial, epoch, at_ms, done });
        drop(q);
        inner.wake.notify_one();
    }

    /// The channel's head: its epoch and its last serial given out. A channel without one gets one (an
    /// epoch with no event yet, kept on disk), so that a client can learn the epoch before any event.
    /// `None` for a shared history: the cluster gives heads in its order of events.
    pub fn head(&self, app: &Arc<str>, channel: &Arc<str>) -> Option<Position> {
        let inner = self.local()?;
        let mut q = lock(&inner.queue);
        if let Some(h) = q.heads.get(&(app.clone(), channel.clone())) {
            return Some(Position { epoch: h.epoch.clone(), serial: h.last });
        }
        let epoch = new_epoch();
        q.heads.insert((app.clone(), channel.clone()), Head { epoch: epoch.clone(), last: 0, last_at: 0 });
        if !q.closed {
            q.jobs.push(Job::Head { app: app.clone(), channel: channel.clone(), epoch: epoch.clone() });
            drop(q);
            inner.wake.notify_one();
        }
        Some(Position { epoch, serial: 0 })
    }

    /// Every channel head of `app`: its epoch and last serial given out. Once the store is open and
    /// before anything is appended, that is the last event kept.
    pub fn heads(&self, app: &str) -> Vec<(Arc<str>, Position)> {
        let Some(inner) = self.local() else { return Vec::new() };
        let q = lock(&inner.queue);
        q.heads
            .iter()
            .filter(|((a, _), _)| &**a == app)
            .map(|((_, c), h)| (c.clone(), Position { epoch: h.epoch.clone(), serial: h.last }))
            .collect()
    }

    /// The channel's head, if it has one (without making one).
    pub fn peek_head(&self, app: &str, channel: &str) -> Option<Position> {
        // One lookup, not a walk over every channel under the lock that appends take.
        let key: store::ChannelKey = (Arc::from(app), Arc::from(channel));
        let q = lock(&self.local()?.queue);
        q.heads.get(&key).map(|h| Position { epoch: h.epoch.clone(), serial: h.last })
    }

    /// The events of `channel` after `from` and up to `head` (the last delivered here), oldest first, if
    /// there are at most `max` of them (the most a channel keeps); or why they cannot all be given. Every
    /// event up to `head` must have been committed (the caller read it from what was delivered).
    pub async fn after(
        &self,
        app: &Arc<str>,
        channel: &Arc<str>,
        from: &Position,
        head: &Position,
        max: u64,
    ) -> Result<Result<Vec<Stored>, Gap>, HistoryError> {
        let upto = head.serial;
        // The store's head for this hub's own; for the cluster's, the head it gave with its last event.
        let epoch =
            if self.is_shared() { Some(head.epoch.clone()) } else { self.peek_head(app, channel).map(|h| h.epoch) };
        if epoch.as_deref() != Some(&*from.epoch) {
            return Ok(Err(Gap::EpochChanged { epoch }));
        }
        if from.serial > upto {
            return Ok(Err(Gap::Unknown));
        }
        if from.serial == upto {
            return Ok(Ok(Vec::new()));
        }
        let missed = upto - from.serial;
        // A channel never keeps more than `max` events: beyond that, the oldest missed are gone for sure,
        // and reading the newest `max` says which is the oldest left.
        let after = from.serial.max(upto.saturating_sub(max));
        let events = self.read(app, channel, after, upto, max).await?;
        // Eviction only ever removes a channel's oldest events, so what is kept after `from` is one run
        // ending at `upto`: whole, or missing its start.
        if events.len() as u64 == missed && events.first().is_some_and(|e| e.serial == from.serial + 1) {
            Ok(Ok(events))
        } else {
            Ok(Err(Gap::Evicted { oldest: events.first().map(|e| e.serial) }))
        }
    }

    /// The kept events of `channel` with serials in `after+1 ..= upto`, oldest first, at most `limit`.
    pub async fn read(&self, app: &Arc<str>, channel: &Arc<str>, after: u64, upto: u64, limit: u64) -> ReadResult {
        if let Kind::Shared(shared) = &self.0 {
            let max_age = shared.apps.get(app).map_or(u64::MAX, |c| c.max_age_secs);
            return shared.remote.read(app, channel, after, upto, limit, max_age).await;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.push(Job::Read { app: app.clone(), channel: channel.clone(), after, upto, limit, reply })?;
        answer.await.map_err(|_| HistoryError::Closed)?
    }

    /// Deletes every kept event and gives the disk space back. Positions go on from where they were, so a
    /// client that had events from before is told they were evicted.
    pub async fn clear(&self) -> Result<(), HistoryError> {
        if let Kind::Shared(shared) = &self.0 {
            return shared.remote.clear().await;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.push(Job::Clear { reply })?;
        answer.await.map_err(|_| HistoryError::Closed)?
    }

    /// The `limit` most recent kept events over every channel, newest first (this hub's own store only:
    /// none for the cluster's).
    pub async fn recent(&self, limit: u64) -> Result<Vec<Recent>, HistoryError> {
        if self.is_shared() {
            return Ok(Vec::new());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.push(Job::Recent { limit, reply })?;
        answer.await.map_err(|_| HistoryError::Closed)?
    }

    fn push(&self, job: Job) -> Result<(), HistoryError> {
        let inner = self.local().ok_or(HistoryError::Closed)?;
        let mut q = lock(&inner.queue);
        if q.closed {
            return Err(HistoryError::Closed);
        }
        q.jobs.push(job);
        drop(q);
        inner.wake.notify_one();
        Ok(())
    }

    /// How many events each channel of `app` keeps (channels keeping none are left out).
    pub fn kept_counts(&self, app: &str) -> HashMap<Arc<str>, u64> {
        let Some(inner) = self.local() else { return HashMap::new() };
        lock(&inner.counts).iter().filter(|((a, _), _)| &**a == app).map(|((_, c), &n)| (c.clone(), n)).collect()
    }

    /// The figures of `/health`, `/metrics` and the window.
    pub fn stats(&self) -> HistoryStats {
        let Some(inner) = self.local() else { return HistoryStats::default() };
        let c = &inner.counters;
        let channels = lock(&inner.counts).len() as u64;
        HistoryStats {
            bytes_on_disk: store::size_on_disk(&inner.path),
            events: c.events.load(Relaxed),
            channels,
            evicted: c.evicted.load(Relaxed),
            write_errors: c.write_errors.load(Relaxed),
            written: c.written.load(Relaxed),
            commits: c.commits.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;
