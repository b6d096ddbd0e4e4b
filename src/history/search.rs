//! The console's search over the kept events: by app, a part of the channel's name, of the event's name or
//! of its data, and time, newest first, a page at a time. It runs on the writer thread, between commits,
//! like every read of this hub's store. A cluster's history (in Redis) cannot be searched.

use rusqlite::types::Value as Sql;

use super::store::{Store, StoreError};
use super::{History, HistoryError, Job};

/// What a search asks for. `None` or empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// The app, exactly.
    pub app: Option<String>,
    /// A part of the channel's name, any case.
    pub channel: Option<String>,
    /// A part of the event's name, any case.
    pub event: Option<String>,
    /// A part of the data, any case.
    pub text: Option<String>,
    /// `Some(true)`: only `client-` events; `Some(false)`: none of them.
    pub client_events: Option<bool>,
    /// The earliest time, in milliseconds since the Unix epoch, included.
    pub from_ms: Option<u64>,
    /// The latest time, included.
    pub to_ms: Option<u64>,
    /// Only events strictly older than this position (the `next` of the page before).
    pub before: Option<Before>,
    /// Most events in the page.
    pub limit: usize,
}

/// A position in the search's order (newest first: by time, then by channel and serial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before {
    /// Events before this time, or at it and before `key` when it is given.
    pub at_ms: u64,
    /// The event's channel (the store's number for it) and serial; `None`: nothing at `at_ms` itself.
    pub key: Option<(i64, u64)>,
}

/// A kept event that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The app's id.
    pub app_id: String,
    /// The channel.
    pub channel: String,
    /// Its serial in the channel's epoch.
    pub serial: u64,
    /// When it was published.
    pub at_ms: u64,
    /// The event's name.
    pub event: String,
    /// The data string.
    pub data: String,
    /// The socket id it was not for (the sender of a client event), if any.
    pub except: Option<String>,
    /// Where it is in the search's order.
    pub position: Before,
}

/// A page of a search, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The events.
    pub events: Vec<Found>,
    /// Where the next (older) page starts, if there are more matches.
    pub next: Option<Before>,
}

/// Why a search failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The history is the cluster's.
    #[error("search is not available for a cluster's history in Redis")]
    Shared,
    /// The search ran longer than [`SEARCH_BUDGET`] and was stopped, so that commits do not wait for it.
    #[error(
        "the search of the history took longer than {} ms and was stopped (the history's commits wait for it); \
         narrow it by channel, event or time range",
        SEARCH_BUDGET.as_millis()
    )]
    TooSlow,
    /// The store failed or is closed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// The longest a search of the history may run. It runs between the history's commits, so a publish that
/// is kept may wait that long behind it.
pub const SEARCH_BUDGET: std::time::Duration = std::time::Duration::from_millis(300);

impl History {
    /// The kept events that match `search`, newest first, a page of at most `search.limit`. A cluster's
    /// history refuses ([`SearchError::Shared`]).
    pub async fn search(&self, search: Search) -> Result<Page, SearchError> {
        if self.is_shared() {
            return Err(SearchError::Shared);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.push(Job::Query(Box::new(move |store: &mut Store| {
            let _ = reply.send(within_budget(store, &search));
        })))?;
        answer.await.map_err(|_| HistoryError::Closed)?
    }
}

/// [`run`], interrupted by a watchdog once it has taken [`SEARCH_BUDGET`].
fn within_budget(store: &Store, search: &Search) -> Result<Page, SearchError> {
    budgeted(store, SEARCH_BUDGET, |store| run(store, search))
}

/// `query` on `store`, interrupted by a watchdog once it has taken `budget`.
fn budgeted<T>(
    store: &Store,
    budget: std::time::Duration,
    query: impl FnOnce(&Store) -> Result<T, StoreError>,
) -> Result<T, SearchError> {
    let interrupt = store.conn().get_interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(budget) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            // A no-op if the query has just finished: SQLite interrupts running statements only.
            interrupt.interrupt();
        }
    });
    let found = query(store);
    let _ = done.send(());
    // Joined before the writer runs another statement, so that a late interrupt cannot reach it.
    let _ = watchdog.join();
    found.map_err(|e| match e {
        StoreError::Sqlite { source, .. }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
        {
            SearchError::TooSlow
        }
        e => SearchError::History(HistoryError::Store(e.to_string())),
    })
}

/// A time or count as SQLite stores it.
fn big(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

fn run(store: &Store, q: &Search) -> Result<Page, StoreError> {
    let mut sql = String::from(
        "SELECT c.app, c.name, e.channel, e.serial, e.at_ms, e.event, e.data, e.except_socket
         FROM events e JOIN channels c ON c.id = e.channel WHERE e.at_ms >= ?",
    );
    let mut args = vec![Sql::Integer(big(q.from_ms.unwrap_or(0)))];
    if let Some(app) = q.app.as_deref().filter(|a| !a.is_empty()) {
        sql.push_str(" AND c.app = ?");
        args.push(Sql::Text(app.into()));
    }
    for (column, part) in [("c.name", &q.channel), ("e.event", &q.event), ("e.data", &q.text)] {
        if let Some(part) = part.as_deref().filter(|p| !p.is_empty()) {
            sql.push_str(&format!(" AND {column} LIKE ? ESCAPE '\\'"));
            args.push(Sql::Text(crate::monitor::journal::like_contains(part)));
        }
    }
    match q.client_events {
        // Exactly as the hub tells a client event: by its name's prefix, in this case.
        Some(true) => sql.push_str(" AND substr(e.event, 1, 7) = 'client-'"),
        Some(false) => sql.push_str(" AND substr(e.event, 1, 7) <> 'client-'"),
        None => {}
    }
    if let Some(to) = q.to_ms {
        sql.push_str(" AND e.at_ms <= ?");
        args.push(Sql::Integer(big(to)));
    }
    match q.before {
        Some(Before { at_ms, key: Some((channel, serial)) }) => {
            sql.push_str(" AND (e.at_ms, e.channel, e.serial) < (?, ?, ?)");
            args.extend([Sql::Integer(big(at_ms)), Sql::Integer(channel), Sql::Integer(big(serial))]);
        }
        Some(Before { at_ms, key: None }) => {
            sql.push_str(" AND e.at_ms < ?");
            args.push(Sql::Integer(big(at_ms)));
        }
        None => {}
    }
    sql.push_str(" ORDER BY e.at_ms DESC, e.channel DESC, e.serial DESC LIMIT ?");
    args.push(Sql::Integer(big(q.limit as u64 + 1)));
    let read = || -> Result<Vec<Found>, rusqlite::Error> {
        let mut select = store.conn().prepare(&sql)?;
        select
            .query_map(rusqlite::params_from_iter(args), |r| {
                let (row, serial, at_ms) =
                    (r.get::<_, i64>(2)?, r.get::<_, i64>(3)?.max(0) as u64, r.get::<_, i64>(4)?);
                let at_ms = at_ms.max(0) as u64;
                Ok(Found {
                    app_id: r.get(0)?,
                    channel: r.get(1)?,
                    serial,
                    at_ms,
                    event: r.get(5)?,
                    data: r.get(6)?,
                    except: r.get(7)?,
                    position: Before { at_ms, key: Some((row, serial)) },
                })
            })?
            .collect()
    };
    let mut events = read().map_err(|e| store.error(e))?;
    let mut next = None;
    if events.len() > q.limit {
        events.truncate(q.limit);
        next = events.last().map(|e| e.position);
    }
    Ok(Page { events, next })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Entry;
    use super::*;
    use crate::config::{AppConfig, HistoryConfig, HistoryStore, SyncPolicy};

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open(tag: &str) -> (Dir, History) {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = Dir(std::env::temp_dir().join(format!("poussr-search-{tag}-{}-{nanos}", std::process::id())));
        let settings = HistoryStore { dir: Some(dir.0.clone()), sync: SyncPolicy::Normal, ..HistoryStore::default() };
        let apps = ["1", "2"].map(|id| AppConfig {
            history: HistoryConfig { client_events: true, ..HistoryConfig::default() },
            ..AppConfig::new(id, format!("key-{id}"), "secret")
        });
        (dir, History::open(&settings, &apps).unwrap().unwrap())
    }

    async fn keep(history: &History, app: &str, channel: &str, event: &str, data: &str) {
        let (done, kept) = tokio::sync::oneshot::channel();
        let entry = Entry {
            app: Arc::from(app),
            channel: Arc::from(channel),
            event: Arc::from(event),
            data: Arc::from(data),
            user_id: None,
            except: None,
        };
        history.append(entry, Box::new(move |r| drop(done.send(r))));
        kept.await.unwrap().unwrap();
    }

    fn names(page: &Page) -> Vec<&str> {
        page.events.iter().map(|e| e.data.as_str()).collect()
    }

    #[tokio::test]
    async fn filters_escape_like_wildcards_and_match_any_case() {
        let (_dir, history) = open("filters");
        keep(&history, "1", "private-Orders", "order.created", r#"{"off":"50%"}"#).await;
        keep(&history, "1", "news", "client-typing", r#"{"who":"a_b"}"#).await;
        keep(&history, "2", "news", "Order.Shipped", r#"{"off":"50"}"#).await;
        let find = |adjust: &dyn Fn(&mut Search)| {
            let mut search = Search { limit: 10, ..Search::default() };
            adjust(&mut search);
            let history = history.clone();
            async move { history.search(search).await.unwrap() }
        };
        let page = find(&|_| {}).await;
        assert_eq!(names(&page), [r#"{"off":"50"}"#, r#"{"who":"a_b"}"#, r#"{"off":"50%"}"#]);
        assert_eq!(page.next, None);
        let first = &page.events[2];
        assert_eq!((first.app_id.as_str(), first.channel.as_str(), first.serial), ("1", "private-Orders", 1));
        assert_eq!(names(&find(&|s| s.text = Some("50%".into())).await), [r#"{"off":"50%"}"#], "% is itself");
        assert_eq!(names(&find(&|s| s.text = Some("A_B".into())).await), [r#"{"who":"a_b"}"#], "_ is itself");
        assert!(find(&|s| s.text = Some("a%b".into())).await.events.is_empty());
        assert_eq!(find(&|s| s.channel = Some("ORDERS".into())).await.events.len(), 1);
        assert_eq!(find(&|s| s.event = Some("order.".into())).await.events.len(), 2);
        assert_eq!(find(&|s| s.app = Some("2".into())).await.events.len(), 1);
        assert_eq!(find(&|s| s.client_events = Some(true)).await.events[0].event, "client-typing");
        assert_eq!(find(&|s| s.client_events = Some(false)).await.events.len(), 2);
        assert_eq!(find(&|s| s.channel = Some(String::new())).await.events.len(), 3, "empty: no filter");
    }

    #[tokio::test]
    async fn pages_follow_each_other_without_gap_or_duplicate() {
        let (_dir, history) = open("paging");
        for i in 0..23 {
            keep(&history, "1", &format!("c{}", i % 3), "e", &format!("n{i}")).await;
        }
        let mut seen = Vec::new();
        let mut search = Search { limit: 5, ..Search::default() };
        loop {
            let page = history.search(search.clone()).await.unwrap();
            seen.extend(page.events.iter().map(|e| e.data.clone()));
            match page.next {
                Some(next) => search.before = Some(next),
                None => break,
            }
        }
        let mut expected: Vec<String> = (0..23).map(|i| format!("n{i}")).collect();
        let mut sorted = seen.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected, "every event once");
    }

    #[test]
    fn a_query_over_its_budget_is_stopped_and_the_store_still_answers() {
        let dir = std::env::temp_dir().join(format!("poussr-budget-{}", std::process::id()));
        let (store, _) = Store::open(&dir, crate::config::SyncPolicy::Normal).unwrap();
        // Counts for ever: only the watchdog ends it.
        let endless = |store: &Store| {
            store
                .conn()
                .query_row(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| store.error(e))
        };
        assert!(matches!(budgeted(&store, std::time::Duration::from_millis(50), endless), Err(SearchError::TooSlow)));
        let quick =
            |store: &Store| store.conn().query_row("SELECT 7", [], |r| r.get::<_, i64>(0)).map_err(|e| store.error(e));
        assert_eq!(budgeted(&store, std::time::Duration::from_millis(50), quick).unwrap(), 7);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
