//! The embedded store: one SQLite file, `history.sqlite`, through rusqlite (SQLite compiled in).
//!
//! Why SQLite: its commits are atomic and durable across a killed process and a power cut (write-ahead
//! log, `synchronous = FULL`), which is the promise this store makes; it detects a damaged file and says so;
//! one file holds everything, with a schema version; a range of a channel's events is one scan of the
//! table's own key (channel, serial); and
//! it is among the most tested libraries there are. It is compiled into the binary, so nothing is needed on
//! the machine.
//!
//! The hub's writer thread owns the only connection, in exclusive locking mode: a second hub started on
//! the same data folder waits a few seconds for the first to let go, then gets a clear error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::evict::{expire, shed};
use super::{Entry, Stored};
use crate::config::{HistoryConfig, SyncPolicy};

/// The store's file name in its folder.
pub const FILE: &str = "history.sqlite";

/// The schema this version writes. 2: no index on the events' time (the age and byte bounds walk each
/// channel from its oldest event instead), and a channel's row holds its last serial only once its events
/// are gone (while it has some, the newest one says it): a commit then writes the pages its events touch and
/// little else. A schema 1 file is read and becomes schema 2.
const SCHEMA_VERSION: i64 = 2;

/// How long opening waits for another hub to let go of the store.
const BUSY_WAIT: Duration = Duration::from_secs(3);

/// An app over its byte bound loses its oldest events until it is this fraction of the bound below it
/// (1/32), so that the walk over its channels runs once per that many bytes written, not once per commit.
const BYTES_SLACK: u64 = 32;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite's own error.
    #[error("{path}: {source}")]
    Sqlite {
        /// The store's file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The folder or a file could not be made, read or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another running hub holds the store.
    #[error("{0}: another running Poussr uses this history store (a second hub on the same data folder?)")]
    InUse(PathBuf),
    /// The file was written by a newer Poussr.
    #[error(
        "{0}: this history store was written by a newer version of Poussr (schema {1}; this one reads {SCHEMA_VERSION})"
    )]
    Newer(PathBuf, i64),
    /// The file is damaged.
    #[error("{0}: the file is damaged ({1})")]
    Damaged(PathBuf, String),
}

/// An event to write, with its position and time.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) entry: Entry,
    pub(super) serial: u64,
    pub(super) epoch: Arc<str>,
    pub(super) at_ms: u64,
}

/// A channel's head as stored.
#[derive(Debug)]
pub(super) struct StoredHead {
    pub(super) app: Arc<str>,
    pub(super) channel: Arc<str>,
    pub(super) epoch: Arc<str>,
    /// The serial of its last event.
    pub(super) last: u64,
    /// The time of its last event.
    pub(super) last_at: u64,
}

/// What is on disk when the store opens.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    /// Each channel's head.
    pub(super) heads: Vec<StoredHead>,
    /// Events kept.
    pub(super) events: u64,
    /// Events kept per channel.
    pub(super) counts: HashMap<ChannelKey, u64>,
    /// Bytes kept per app.
    pub(super) app_bytes: HashMap<Arc<str>, u64>,
}

/// The open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Channel row ids, by app and name.
    ids: HashMap<(Arc<str>, Arc<str>), i64>,
    /// The app and name of each channel row id (the other way round).
    names: HashMap<i64, (Arc<str>, Arc<str>)>,
}

/// A channel: its app and name.
pub(super) type ChannelKey = (Arc<str>, Arc<str>);

/// The bytes an event counts for against `max_bytes`.
fn size_of(e: &Entry) -> u64 {
    (e.event.len()
        + e.data.len()
        + e.user_id.as_ref().map_or(0, |u| u.len())
        + e.except.as_ref().map_or(0, |x| x.len())) as u64
}

/// The store's file and its write-ahead log, in bytes.
pub fn size_on_disk(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path.to_path_buf(), PathBuf::from(wal)].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

impl Store {
    /// Opens the store in `dir`, making the folder and the file if needed. A damaged file is renamed
    /// `history.sqlite.damaged-<time>` and a new one made; the second value then says so.
    pub fn open(dir: &Path, sync: SyncPolicy) -> Result<(Store, Option<String>), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.into(), source })?;
        let path = dir.join(FILE);
        match Store::open_file(&path, sync) {
            Err(StoreError::Damaged(_, why)) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let aside = dir.join(format!("{FILE}.damaged-{stamp}"));
                std::fs::rename(&path, &aside).map_err(|source| StoreError::Io { path: path.clone(), source })?;
                for suffix in ["-wal", "-shm"] {
                    let mut from = path.as_os_str().to_owned();
                    from.push(suffix);
                    let mut to = aside.as_os_str().to_owned();
                    to.push(suffix);
                    let _ = std::fs::rename(&from, &to);
                }
                let store = Store::open_file(&path, sync)?;
                let notice = format!(
                    "the history store {} was damaged ({why}); it was moved aside to {} and a new, empty store \
                     was started: events published before cannot be recovered",
                    path.display(),
                    aside.display()
                );
                Ok((store, Some(notice)))
            }
            other => other.map(|s| (s, None)),
        }
    }

    fn open_file(path: &Path, sync: SyncPolicy) -> Result<Store, StoreError> {
        let sql = |source: rusqlite::Error| {
            if is_damage(&source) {
                StoreError::Damaged(path.into(), source.to_string())
            } else if source.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) {
                StoreError::InUse(path.into())
            } else {
                StoreError::Sqlite { path: path.into(), source }
            }
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(BUSY_WAIT).map_err(sql)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE").map_err(sql)?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Damaged(path.into(), format!("the journal mode stays {mode:?}")));
        }
        let synchronous = match sync {
            SyncPolicy::Full => "FULL",
            SyncPolicy::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous).map_err(sql)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Newer(path.into(), version));
        }
        let check: String = conn.pragma_query_value(None, "quick_check", |r| r.get(0)).map_err(sql)?;
        if check != "ok" {
            return Err(StoreError::Damaged(path.into(), check));
        }
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS channels (
                 id INTEGER PRIMARY KEY,
                 app TEXT NOT NULL,
                 name TEXT NOT NULL,
                 epoch TEXT NOT NULL,
                 last_serial INTEGER NOT NULL,
                 last_at_ms INTEGER NOT NULL,
                 UNIQUE (app, name)
             );
             CREATE TABLE IF NOT EXISTS events (
                 channel INTEGER NOT NULL,
                 serial INTEGER NOT NULL,
                 at_ms INTEGER NOT NULL,
                 size INTEGER NOT NULL,
                 event TEXT NOT NULL,
                 data TEXT NOT NULL,
                 user_id TEXT,
                 except_socket TEXT,
                 PRIMARY KEY (channel, serial)
             ) WITHOUT ROWID;
             DROP INDEX IF EXISTS events_by_age;
             PRAGMA user_version = 2;
             COMMIT;",
        )
        .map_err(sql)?;
        Ok(Store { conn, path: path.into(), ids: HashMap::new(), names: HashMap::new() })
    }

    pub(super) fn error(&self, source: rusqlite::Error) -> StoreError {
        if is_damage(&source) {
            StoreError::Damaged(self.path.clone(), source.to_string())
        } else {
            StoreError::Sqlite { path: self.path.clone(), source }
        }
    }

    /// The connection, for reads made elsewhere in the history (the console's search).
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the heads and the totals.
    pub(super) fn load(&mut self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        let mut apps: HashMap<String, Arc<str>> = HashMap::new();
        {
            let mut heads = self
                .conn
                .prepare(
                    "SELECT c.id, c.app, c.name, c.epoch,
                         max(c.last_serial, coalesce(e.serial, 0)), max(c.last_at_ms, coalesce(e.at_ms, 0))
                     FROM channels c LEFT JOIN events e ON e.channel = c.id
                         AND e.serial = (SELECT max(serial) FROM events WHERE channel = c.id)",
                )
                .map_err(|e| self.error(e))?;
            let rows = heads
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(|e| self.error(e))?;
            for row in rows {
                let (id, app, name, epoch, last, last_at) = row.map_err(|e| self.error(e))?;
                let app = apps.entry(app.clone()).or_insert_with(|| Arc::from(app.as_str())).clone();
                let name: Arc<str> = Arc::from(name.as_str());
                self.ids.insert((app.clone(), name.clone()), id);
                self.names.insert(id, (app.clone(), name.clone()));
                loaded.heads.push(StoredHead {
                    app,
                    channel: name,
                    epoch: Arc::from(epoch.as_str()),
                    last: last.max(0) as u64,
                    last_at: last_at.max(0) as u64,
                });
            }
        }
        {
            let mut counts = self
                .conn
                .prepare("SELECT channel, COUNT(*) FROM events GROUP BY channel")
                .map_err(|e| self.error(e))?;
            let rows =
                counts.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).map_err(|e| self.error(e))?;
            for row in rows {
                let (id, n) = row.map_err(|e| self.error(e))?;
                if let Some(key) = self.names.get(&id) {
                    loaded.counts.insert(key.clone(), n.max(0) as u64);
                }
            }
        }
        let mut totals = self
            .conn
            .prepare(
                "SELECT c.app, COUNT(*), SUM(e.size) FROM events e JOIN channels c ON c.id = e.channel GROUP BY c.app",
            )
            .map_err(|e| self.error(e))?;
        let rows = totals
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
            .map_err(|e| self.error(e))?;
        for row in rows {
            let (app, count, bytes) = row.map_err(|e| self.error(e))?;
            loaded.events += count.max(0) as u64;
            loaded.app_bytes.insert(Arc::from(app.as_str()), bytes.max(0) as u64);
        }
        Ok(loaded)
    }

    /// Writes `rows` and `heads` and evicts what the bounds say, in one transaction; returns the number
    /// of events evicted from each channel. `app_bytes` is updated only if the transaction commits. `ages` names the apps
    /// whose expired events to delete now, each with its cut-off time.
    pub(super) fn commit(
        &mut self,
        rows: &[Row],
        heads: &[(Arc<str>, Arc<str>, Arc<str>)],
        apps: &HashMap<Arc<str>, HistoryConfig>,
        app_bytes: &mut HashMap<Arc<str>, u64>,
        ages: &[(Arc<str>, u64)],
    ) -> Result<HashMap<ChannelKey, u64>, StoreError> {
        let mut bytes = app_bytes.clone();
        let result = self.transaction(rows, heads, apps, &mut bytes, ages);
        match result {
            Ok(evicted) => {
                *app_bytes = bytes;
                Ok(evicted)
            }
            Err(e) => {
                // Row ids made in the failed transaction do not exist.
                self.ids.clear();
                self.names.clear();
                Err(self.error(e))
            }
        }
    }

    fn transaction(
        &mut self,
        rows: &[Row],
        heads: &[(Arc<str>, Arc<str>, Arc<str>)],
        apps: &HashMap<Arc<str>, HistoryConfig>,
        bytes: &mut HashMap<Arc<str>, u64>,
        ages: &[(Arc<str>, u64)],
    ) -> Result<HashMap<ChannelKey, u64>, rusqlite::Error> {
        let tx = self.conn.transaction()?;
        // Events evicted, per channel row id.
        let mut evicted: HashMap<i64, u64> = HashMap::new();
        // A head with no event yet counts as used now, so that it lasts as long as an event would.
        let now = super::now_ms();
        for (app, channel, epoch) in heads {
            channel_id(&tx, &mut self.ids, &mut self.names, app, channel, epoch, now)?;
        }
        // Per channel: its app and last serial.
        let mut touched: HashMap<i64, (Arc<str>, u64)> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (channel, serial, at_ms, size, event, data, user_id, except_socket)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for row in rows {
                let e = &row.entry;
                let id = channel_id(&tx, &mut self.ids, &mut self.names, &e.app, &e.channel, &row.epoch, row.at_ms)?;
                let size = size_of(e);
                insert.execute(params![
                    id,
                    row.serial as i64,
                    row.at_ms as i64,
                    size as i64,
                    &*e.event,
                    &*e.data,
                    e.user_id.as_deref(),
                    e.except.as_deref()
                ])?;
                *bytes.entry(e.app.clone()).or_default() += size;
                touched.insert(id, (e.app.clone(), row.serial));
            }
        }
        let mut freed: HashMap<Arc<str>, u64> = HashMap::new();
        // The count bound keeps at least one event, the newest, which holds the channel's last serial: the
        // channel's row need not be written.
        for (&id, (app, last)) in &touched {
            let Some(config) = apps.get(app) else { continue };
            if *last > config.max_events_per_channel {
                let below = (*last - config.max_events_per_channel) as i64;
                let mut delete =
                    tx.prepare_cached("DELETE FROM events WHERE channel = ?1 AND serial <= ?2 RETURNING size")?;
                let sizes = delete.query_map(params![id, below], |r| r.get::<_, i64>(0))?;
                for size in sizes {
                    *freed.entry(app.clone()).or_default() += size?.max(0) as u64;
                    *evicted.entry(id).or_default() += 1;
                }
            }
        }
        for (app, cutoff) in ages {
            for (id, size) in expire(&tx, app, *cutoff)? {
                *freed.entry(app.clone()).or_default() += size;
                *evicted.entry(id).or_default() += 1;
            }
            // A channel whose every event expired is forgotten on disk (its next event, in this run of the
            // hub, goes on with the same epoch and serials).
            let mut forget = tx.prepare_cached(
                "DELETE FROM channels WHERE app = ?1 AND last_at_ms < ?2
                 AND NOT EXISTS (SELECT 1 FROM events WHERE channel = channels.id) RETURNING id",
            )?;
            let forgotten = forget.query_map(params![&**app, *cutoff as i64], |r| r.get::<_, i64>(0))?;
            for id in forgotten {
                // Its name is kept in `names` until the end, for the eviction count.
                if let Some(key) = self.names.get(&id?) {
                    self.ids.remove(key);
                }
            }
        }
        for (app, size) in freed {
            let b = bytes.entry(app).or_default();
            *b = b.saturating_sub(size);
        }
        // Over its byte bound, an app loses its oldest events, whatever their channel.
        for (app, config) in apps {
            let kept = bytes.entry(app.clone()).or_default();
            if *kept > config.max_bytes {
                let target = config.max_bytes - config.max_bytes / BYTES_SLACK;
                for id in shed(&tx, app, kept, target)? {
                    *evicted.entry(id).or_default() += 1;
                }
            }
        }
        tx.commit()?;
        let by_channel =
            evicted.into_iter().filter_map(|(id, n)| self.names.get(&id).map(|k| (k.clone(), n))).collect();
        // Forget the names of the rows that are gone.
        let ids = &self.ids;
        self.names.retain(|_, key| ids.contains_key(key));
        Ok(by_channel)
    }

    /// The kept events of a channel with serials in `after+1 ..= upto`, oldest first, at most `limit`.
    pub(super) fn read(
        &mut self,
        app: &str,
        channel: &str,
        after: u64,
        upto: u64,
        limit: u64,
    ) -> Result<Vec<Stored>, StoreError> {
        let id: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM channels WHERE app = ?1 AND name = ?2")
            .and_then(|mut s| s.query_row(params![app, channel], |r| r.get(0)).optional())
            .map_err(|e| self.error(e))?;
        let Some(id) = id else { return Ok(Vec::new()) };
        let read = || -> Result<Vec<Stored>, rusqlite::Error> {
            let mut select = self.conn.prepare_cached(
                "SELECT serial, at_ms, event, data, user_id, except_socket FROM events
                 WHERE channel = ?1 AND serial > ?2 AND serial <= ?3 ORDER BY serial LIMIT ?4",
            )?;
            let big = |n: u64| n.min(i64::MAX as u64) as i64;
            select.query_map(params![id, big(after), big(upto), big(limit)], |r| stored(r, 0))?.collect()
        };
        read().map_err(|e| self.error(e))
    }

    /// The `limit` most recent kept events over every channel, newest first, with their app and channel.
    pub(super) fn recent(&mut self, limit: u64) -> Result<Vec<(ChannelKey, Stored)>, StoreError> {
        let read = || -> Result<Vec<(ChannelKey, Stored)>, rusqlite::Error> {
            let mut select = self.conn.prepare_cached(
                "SELECT c.app, c.name, e.serial, e.at_ms, e.event, e.data, e.user_id, e.except_socket
                 FROM events e JOIN channels c ON c.id = e.channel ORDER BY e.at_ms DESC, e.serial DESC LIMIT ?1",
            )?;
            select
                .query_map(params![limit.min(i64::MAX as u64) as i64], |r| {
                    let key: ChannelKey =
                        (Arc::from(r.get::<_, String>(0)?.as_str()), Arc::from(r.get::<_, String>(1)?.as_str()));
                    Ok((key, stored(r, 2)?))
                })?
                .collect()
        };
        read().map_err(|e| self.error(e))
    }

    /// Deletes every event (the channels' heads stay: their rows take the last serials) and gives the space
    /// back to the disk.
    pub(super) fn clear(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "BEGIN;
                 UPDATE channels SET
                     last_serial = max(last_serial, coalesce(
                         (SELECT serial FROM events WHERE channel = channels.id ORDER BY serial DESC LIMIT 1), 0)),
                     last_at_ms = max(last_at_ms, coalesce(
                         (SELECT at_ms FROM events WHERE channel = channels.id ORDER BY serial DESC LIMIT 1), 0));
                 DELETE FROM events;
                 COMMIT;
                 VACUUM;
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(|e| self.error(e))
    }
}

/// An event from a row whose columns from `at` on are serial, at_ms, event, data, user_id, except_socket.
fn stored(r: &rusqlite::Row<'_>, at: usize) -> Result<Stored, rusqlite::Error> {
    Ok(Stored {
        serial: r.get::<_, i64>(at)?.max(0) as u64,
        at_ms: r.get::<_, i64>(at + 1)?.max(0) as u64,
        event: r.get(at + 2)?,
        data: r.get(at + 3)?,
        user_id: r.get(at + 4)?,
        except: r.get(at + 5)?,
    })
}

/// The row id of a channel, making its row (with `epoch`) if it has none.
#[allow(clippy::too_many_arguments)]
fn channel_id(
    tx: &rusqlite::Transaction<'_>,
    ids: &mut HashMap<(Arc<str>, Arc<str>), i64>,
    names: &mut HashMap<i64, ChannelKey>,
    app: &Arc<str>,
    channel: &Arc<str>,
    epoch: &str,
    at_ms: u64,
) -> Result<i64, rusqlite::Error> {
    if let Some(&id) = ids.get(&(app.clone(), channel.clone())) {
        return Ok(id);
    }
    tx.prepare_cached(
        "INSERT INTO channels (app, name, epoch, last_serial, last_at_ms) VALUES (?1, ?2, ?3, 0, ?4)
         ON CONFLICT (app, name) DO NOTHING",
    )?
    .execute(params![&**app, &**channel, epoch, at_ms as i64])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM channels WHERE app = ?1 AND name = ?2")?
        .query_row(params![&**app, &**channel], |r| r.get(0))?;
    ids.insert((app.clone(), channel.clone()), id);
    names.insert(id, (app.clone(), channel.clone()));
    Ok(id)
}
