//! The console's search over the kept events: by app, a part of the channel's name, of the event's name or
//! of its data, and time, newest first, a page at a time. It runs on the writer thread like every read of
//! this hub's store, in slices between the commits ([`merge`]). A cluster's history (in Redis) cannot be
//! searched.

mod merge;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

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
    /// The search ran longer than [`SEARCH_LIMIT`] in all.
    #[error(
        "the search of the history took longer than {} s and was stopped; narrow it by channel, event or time range",
        SEARCH_LIMIT.as_secs()
    )]
    TooSlow,
    /// One slice of the search ran longer than [`SLICE_BUDGET`] (a slice reads a bounded number of rows: the
    /// store's disk or the machine is that slow).
    #[error(
        "a step of the search of the history took longer than {} ms and was stopped, so that publishing could go on \
         (is the disk of the history very slow?)",
        SLICE_BUDGET.as_millis()
    )]
    Stalled,
    /// The store failed or is closed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// How long a search of the history may run in all. It runs in slices between the history's commits, so
/// publishing goes on meanwhile.
pub const SEARCH_LIMIT: Duration = Duration::from_secs(10);

/// How long one slice of a search runs on the writer thread before the commits waiting behind it go first.
const SLICE: Duration = Duration::from_millis(10);

/// The longest one slice may run: a watchdog stops a statement running past this. A slice runs a bounded
/// number of statements over a bounded number of rows, so only a very slow disk or machine meets this.
pub const SLICE_BUDGET: Duration = Duration::from_millis(300);

impl History {
    /// The kept events that match `search`, newest first, a page of at most `search.limit`. A cluster's
    /// history refuses ([`SearchError::Shared`]).
    pub async fn search(&self, search: Search) -> Result<Page, SearchError> {
        self.search_in_slices(search, SLICE, SEARCH_LIMIT).await
    }

    /// [`History::search`], its slices on the writer thread about `slice` long, stopped after `limit`.
    pub(crate) async fn search_in_slices(
        &self,
        search: Search,
        slice: Duration,
        limit: Duration,
    ) -> Result<Page, SearchError> {
        if self.is_shared() {
            return Err(SearchError::Shared);
        }
        let started = Instant::now();
        let mut merge = merge::Merge::new(search);
        loop {
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.push(Job::Query(Box::new(move |store: &mut Store| {
                let step = budgeted(store, SLICE_BUDGET, |store| merge.step(store, slice));
                let _ = reply.send((merge, step));
            })))?;
            let (back, step) = answer.await.map_err(|_| HistoryError::Closed)?;
            if let Some(page) = step? {
                return Ok(page);
            }
            if started.elapsed() >= limit {
                return Err(SearchError::TooSlow);
            }
            merge = back;
        }
    }
}

/// `query` on `store`, interrupted by a watchdog once it has taken `budget`.
fn budgeted<T>(
    store: &Store,
    budget: Duration,
    query: impl FnOnce(&Store) -> Result<T, StoreError>,
) -> Result<T, SearchError> {
    let interrupt = store.conn().get_interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    // A thread the system refuses leaves the query unwatched rather than failing the writer.
    let watchdog = std::thread::Builder::new()
        .name("poussr-search-watchdog".into())
        .spawn(move || {
            if finished.recv_timeout(budget) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                // A no-op if the query has just finished: SQLite interrupts running statements only.
                interrupt.interrupt();
            }
        })
        .ok();
    let found = query(store);
    let _ = done.send(());
    // Joined before the writer runs another statement, so that a late interrupt cannot reach it.
    if let Some(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    found.map_err(|e| match e {
        StoreError::Sqlite { source, .. }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
        {
            SearchError::Stalled
        }
        e => SearchError::History(HistoryError::Store(e.to_string())),
    })
}
