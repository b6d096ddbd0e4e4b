//! The console journal: every monitor event of a journaled kind (connections, subscriptions, presence,
//! webhooks, refusals) kept on disk within bounds, so that the console can search what happened after the
//! browser has forgotten it, or the hub has restarted. Published events are not here: the history keeps them.
//!
//! One SQLite file, `journal.sqlite`, beside the history store. It is a console aid, not the events'
//! durability: it is written in write-ahead-log mode with `synchronous = NORMAL`, by a thread of its own that
//! takes what the [`Monitor`](super::Monitor) queued ([`QUEUE`] entries; beyond that the monitor counts them
//! as dropped) and writes each batch in one transaction. It keeps at most `max_entries` entries and none older
//! than `max_age_secs`, trimming after inserts. Searches open their own connection and run on tokio's blocking
//! threads.
//!
//! Nothing here stops the hub: a damaged file is moved aside and a new one started, and a journal that cannot
//! be written logs a warning and lets the events go. The writer ends, closing the file, once every sender is
//! gone (the hub with its monitor). Two journals on one file in one process (the desktop app replacing its
//! hub) take turns through SQLite's locks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, ErrorCode, OpenFlags, params};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Kind, MonitorEvent, now_ms};

/// The journal's file name in the history folder.
pub const FILE: &str = "journal.sqlite";

/// How many events wait for the writer before the monitor drops (and counts) the newest.
pub const QUEUE: usize = 8192;

/// Most events written in one transaction.
const BATCH: usize = 1024;

/// The schema this version writes.
const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits for another one (an older journal on the same file) to let go.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// How often, at most, entries older than the age bound are deleted (after an insert).
const AGE_PASS_EVERY: Duration = Duration::from_secs(30);

/// Over its count bound, the journal loses its oldest entries until it is this fraction of the bound below
/// it (1/64), so that a trim runs once per that many entries rather than after every batch.
const COUNT_SLACK: u64 = 64;

/// What the journal keeps at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// Entries kept; the oldest go first.
    pub max_entries: u64,
    /// How long an entry is kept, in seconds.
    pub max_age_secs: u64,
}

/// What a search asks for. Empty or `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The kinds wanted; empty: every kind.
    pub kinds: Vec<Kind>,
    /// A part of the channel's name, any case.
    pub channel: Option<String>,
    /// The connection, exactly.
    pub socket_id: Option<String>,
    /// The app, exactly (entries that name no app, such as a closed connection, do not match).
    pub app_id: Option<String>,
    /// A part of the entry's JSON, any case.
    pub text: Option<String>,
    /// The earliest time, in milliseconds since the Unix epoch, included.
    pub from_ms: Option<u64>,
    /// The latest time, included.
    pub to_ms: Option<u64>,
    /// Only entries strictly older than this position (the `next` of the page before).
    pub before: Option<Before>,
    /// Most entries in the page.
    pub limit: usize,
}

/// A position in the journal's order (newest first: by time, then by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before {
    /// Entries before this time, or at it with a smaller id when `id` is given.
    pub at_ms: u64,
    /// The entry's id; `None`: nothing at `at_ms` itself.
    pub id: Option<i64>,
}

/// One kept entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its id, which grows with each entry written.
    pub id: i64,
    /// When it happened.
    pub at_ms: u64,
    /// Its kind.
    pub kind: Kind,
    /// The monitor event as JSON, as the live feed sends it.
    pub text: String,
}

/// A page of a search, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The entries.
    pub entries: Vec<Found>,
    /// Where the next (older) page starts, if there are more matches.
    pub next: Option<Before>,
}

/// The journal's figures.
#[derive(Debug, Clone, Serialize)]
pub struct JournalStats {
    /// The file.
    pub path: String,
    /// Entries kept.
    pub entries: u64,
    /// The file and its write-ahead log, in bytes.
    pub bytes_on_disk: u64,
    /// The time of the oldest entry kept, if any.
    pub oldest_at_ms: Option<u64>,
    /// The time of the newest entry kept, if any.
    pub newest_at_ms: Option<u64>,
    /// Entries written since the hub started.
    pub written: u64,
    /// Batches that could not be written since the hub started (their entries are lost).
    pub write_errors: u64,
    /// Whether the writer gave up (the file could not be written at all).
    pub stopped: bool,
    /// The bounds.
    pub bounds: Bounds,
    /// What happened to a damaged file at start, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    write_errors: AtomicU64,
    stopped: AtomicBool,
}

/// The open journal: a handle for searches and figures. The writer thread runs on its own.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    bounds: Bounds,
    counters: Arc<Counters>,
    notice: Option<String>,
}

fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The file and its write-ahead log, in bytes.
fn bytes_on_disk(path: &Path) -> u64 {
    ["", "-wal"].iter().filter_map(|s| std::fs::metadata(with_suffix(path, s)).ok()).map(|m| m.len()).sum()
}

/// Moves a damaged file (and its log) aside; returns where.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let aside = with_suffix(path, &format!(".damaged-{}", now_ms() / 1000));
    std::fs::rename(path, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::rename(with_suffix(path, suffix), with_suffix(&aside, suffix));
    }
    Ok(aside)
}

/// Opens (or creates) the file for writing, with its schema.
fn open_file(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_WAIT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!("the console journal {} stays in journal mode {mode:?}", path.display());
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::ToSqlConversionFailure(Box::<dyn std::error::Error + Send + Sync>::from(
            format!(
                "this console journal was written by a newer version of Poussr (schema {version}; this one reads \
             {SCHEMA_VERSION})"
            ),
        )));
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS entries (
             id INTEGER PRIMARY KEY,
             at_ms INTEGER NOT NULL,
             kind TEXT NOT NULL,
             app_id TEXT,
             channel TEXT,
             socket_id TEXT,
             text TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS entries_by_time ON entries (at_ms);
         CREATE INDEX IF NOT EXISTS entries_by_kind ON entries (kind, at_ms);
         CREATE INDEX IF NOT EXISTS entries_by_socket ON entries (socket_id, at_ms) WHERE socket_id IS NOT NULL;
         PRAGMA user_version = 1;",
    )?;
    Ok(conn)
}

/// Opens the file for writing; a damaged one is moved aside and a new one started (the second value says so).
fn open_writer(path: &Path) -> Result<(Connection, Option<String>), String> {
    match open_file(path) {
        Ok(conn) => Ok((conn, None)),
        Err(e) if is_damage(&e) => {
            let aside = move_aside(path)
                .map_err(|io| format!("{}: damaged ({e}), and not moved aside: {io}", path.display()))?;
            let conn = open_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let notice = format!(
                "the console journal {} was damaged ({e}); it was moved aside to {} and a new, empty journal was \
                 started",
                path.display(),
                aside.display()
            );
            Ok((conn, Some(notice)))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, starts its writer, and returns it with the sender to give to
    /// [`Monitor::attach_journal`](super::Monitor::attach_journal). An error says why there is no journal.
    pub fn open(dir: &Path, bounds: Bounds) -> Result<(Journal, mpsc::Sender<MonitorEvent>), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(FILE);
        let (conn, notice) = open_writer(&path)?;
        if let Some(notice) = &notice {
            tracing::warn!("{notice}");
        }
        let counters = Arc::new(Counters::default());
        let writer = Writer { conn, path: path.clone(), bounds, counters: counters.clone(), last_age_pass: None };
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("poussr-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("the console journal's writer thread: {e}"))?;
        Ok((Journal { path, bounds, counters, notice }, tx))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bounds.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Whether the writer gave up (the file could not be written at all).
    pub fn is_stopped(&self) -> bool {
        self.counters.stopped.load(Relaxed)
    }

    /// The entries that match `query`, newest first, a page of at most `query.limit`.
    pub async fn search(&self, query: Query) -> Result<Page, String> {
        let (path, floor) = (self.path.clone(), self.floor());
        tokio::task::spawn_blocking(move || search(&path, &query, floor))
            .await
            .map_err(|e| format!("the journal search failed: {e}"))?
            .map_err(|e| format!("the console journal could not be read: {e}"))
    }

    /// The oldest time an entry may have (entries past the age bound are not given, even before they are
    /// trimmed).
    fn floor(&self) -> u64 {
        now_ms().saturating_sub(self.bounds.max_age_secs.saturating_mul(1000))
    }

    /// The journal's figures.
    pub async fn stats(&self) -> Result<JournalStats, String> {
        let (path, floor) = (self.path.clone(), self.floor());
        let (entries, oldest, newest) = tokio::task::spawn_blocking(move || -> Result<_, rusqlite::Error> {
            let conn = open_reader(&path)?;
            conn.query_row(
                "SELECT count(*), min(at_ms), max(at_ms) FROM entries WHERE at_ms >= ?1",
                params![big(floor)],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, Option<i64>>(2)?)),
            )
        })
        .await
        .map_err(|e| format!("the journal's figures failed: {e}"))?
        .map_err(|e| format!("the console journal could not be read: {e}"))?;
        let c = &self.counters;
        Ok(JournalStats {
            path: self.path.display().to_string(),
            entries: entries.max(0) as u64,
            bytes_on_disk: bytes_on_disk(&self.path),
            oldest_at_ms: oldest.map(|t| t.max(0) as u64),
            newest_at_ms: newest.map(|t| t.max(0) as u64),
            written: c.written.load(Relaxed),
            write_errors: c.write_errors.load(Relaxed),
            stopped: c.stopped.load(Relaxed),
            bounds: self.bounds,
            notice: self.notice.clone(),
        })
    }
}

/// A time or count as SQLite stores it.
fn big(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// The LIKE pattern that finds `part` anywhere (with `\` as the escape character): `%` and `_` in `part`
/// are matched as themselves.
pub fn like_contains(part: &str) -> String {
    let mut pattern = String::with_capacity(part.len() + 2);
    pattern.push('%');
    for c in part.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A connection for reading (never creating the file).
fn open_reader(path: &Path) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_WAIT)?;
    Ok(conn)
}

fn search(path: &Path, q: &Query, floor: u64) -> Result<Page, rusqlite::Error> {
    let conn = open_reader(path)?;
    let mut sql = String::from("SELECT id, at_ms, kind, text FROM entries WHERE at_ms >= ?");
    let mut args: Vec<Sql> = vec![Sql::Integer(big(floor.max(q.from_ms.unwrap_or(0))))];
    if !q.kinds.is_empty() {
        sql.push_str(" AND kind IN (");
        sql.push_str(&vec!["?"; q.kinds.len()].join(", "));
        sql.push(')');
        args.extend(q.kinds.iter().map(|k| Sql::Text(k.as_str().into())));
    }
    for (column, value, exact) in [
        ("channel", &q.channel, false),
        ("text", &q.text, false),
        ("socket_id", &q.socket_id, true),
        ("app_id", &q.app_id, true),
    ] {
        match value.as_deref() {
            None | Some("") => {}
            Some(v) if exact => {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(Sql::Text(v.into()));
            }
            Some(v) => {
                sql.push_str(&format!(" AND {column} LIKE ? ESCAPE '\\'"));
                args.push(Sql::Text(like_contains(v)));
            }
        }
    }
    if let Some(to) = q.to_ms {
        sql.push_str(" AND at_ms <= ?");
        args.push(Sql::Integer(big(to)));
    }
    match q.before {
        Some(Before { at_ms, id: Some(id) }) => {
            sql.push_str(" AND (at_ms, id) < (?, ?)");
            args.extend([Sql::Integer(big(at_ms)), Sql::Integer(id)]);
        }
        Some(Before { at_ms, id: None }) => {
            sql.push_str(" AND at_ms < ?");
            args.push(Sql::Integer(big(at_ms)));
        }
        None => {}
    }
    sql.push_str(" ORDER BY at_ms DESC, id DESC LIMIT ?");
    args.push(Sql::Integer(big(q.limit as u64 + 1)));
    let mut select = conn.prepare(&sql)?;
    let rows = select.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (id, at_ms, kind, text) = row?;
        // A kind this version does not know (a newer Poussr wrote it) is shown as a refusal, not dropped.
        let kind = Kind::parse(&kind).unwrap_or(Kind::Refusal);
        entries.push(Found { id, at_ms: at_ms.max(0) as u64, kind, text });
    }
    let next = (entries.len() > q.limit).then(|| {
        entries.truncate(q.limit);
        entries.last().map(|e| Before { at_ms: e.at_ms, id: Some(e.id) })
    });
    Ok(Page { entries, next: next.flatten() })
}

/// The app an event names, if it names one.
fn app_of(event: &MonitorEvent) -> Option<&str> {
    use MonitorEvent as M;
    match event {
        M::ConnectionOpened { app_id, .. }
        | M::SubscriptionRefused { app_id, .. }
        | M::EventPublished { app_id, .. }
        | M::Webhook { app_id, .. } => Some(app_id),
        _ => None,
    }
}

/// The writer thread's own state.
struct Writer {
    conn: Connection,
    path: PathBuf,
    bounds: Bounds,
    counters: Arc<Counters>,
    last_age_pass: Option<Instant>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<MonitorEvent>) {
        // What the bounds no longer allow goes first, here rather than in `open`, which the hub calls as it
        // starts (a trim of a full journal is a large delete).
        self.trim();
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH
                && let Ok(event) = rx.try_recv()
            {
                batch.push(event);
            }
            if let Err(e) = self.write(&batch) {
                self.failed(e);
                if self.counters.stopped.load(Relaxed) {
                    return;
                }
            }
            batch.clear();
            self.trim();
        }
    }

    fn write(&mut self, batch: &[MonitorEvent]) -> Result<(), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO entries (at_ms, kind, app_id, channel, socket_id, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for event in batch {
                let Ok(text) = serde_json::to_string(event) else { continue };
                insert.execute(params![
                    big(event.at_ms()),
                    event.kind().as_str(),
                    app_of(event),
                    event.channel(),
                    event.socket_id(),
                    text
                ])?;
            }
        }
        tx.commit()?;
        self.counters.written.fetch_add(batch.len() as u64, Relaxed);
        Ok(())
    }

    /// A batch was lost: says so (the first time, then every hundredth), and starts a new file if this one
    /// is damaged; if that fails too, the writer stops and the monitor counts what follows as dropped.
    fn failed(&mut self, e: rusqlite::Error) {
        let errors = self.counters.write_errors.fetch_add(1, Relaxed) + 1;
        if errors == 1 || errors.is_multiple_of(100) {
            tracing::warn!(
                "the console journal {} could not be written ({errors} times so far): {e}",
                self.path.display()
            );
        }
        if !is_damage(&e) {
            return;
        }
        let reopened = move_aside(&self.path)
            .map_err(|io| io.to_string())
            .and_then(|aside| open_file(&self.path).map(|conn| (aside, conn)).map_err(|e| e.to_string()));
        match reopened {
            Ok((aside, conn)) => {
                tracing::warn!(
                    "the console journal {} was damaged; it was moved aside to {} and a new one started",
                    self.path.display(),
                    aside.display()
                );
                self.conn = conn;
            }
            Err(why) => {
                tracing::warn!(
                    "the console journal {} is damaged and no new one could be started ({why}): \
                                the console keeps no journal until the hub restarts",
                    self.path.display()
                );
                self.counters.stopped.store(true, Relaxed);
            }
        }
    }

    /// Deletes the oldest entries beyond the count bound (with some slack) and, now and then, those past
    /// the age bound.
    fn trim(&mut self) {
        let max = self.bounds.max_entries;
        let keep = max - max / COUNT_SLACK;
        let by_count = || -> Result<usize, rusqlite::Error> {
            let (low, high): (Option<i64>, Option<i64>) =
                self.conn.query_row("SELECT min(id), max(id) FROM entries", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let (Some(low), Some(high)) = (low, high) else { return Ok(0) };
            // Ids grow by one per entry and only the oldest are deleted, so the span is the count (or more).
            if (high - low + 1) as u64 <= max {
                return Ok(0);
            }
            self.conn.execute("DELETE FROM entries WHERE id <= ?1", params![high.saturating_sub(big(keep))])
        };
        if let Err(e) = by_count() {
            tracing::warn!("the console journal {} could not be trimmed: {e}", self.path.display());
        }
        if self.last_age_pass.is_some_and(|t| t.elapsed() < AGE_PASS_EVERY) {
            return;
        }
        self.last_age_pass = Some(Instant::now());
        let cutoff = now_ms().saturating_sub(self.bounds.max_age_secs.saturating_mul(1000));
        if let Err(e) = self.conn.execute("DELETE FROM entries WHERE at_ms < ?1", params![big(cutoff)]) {
            tracing::warn!("the console journal {} could not be trimmed: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests;
