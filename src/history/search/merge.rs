//! The search's walk over the store without an index on time: a merge of the channels.
//!
//! The store's key is (channel, serial), and within a channel the times only grow with the serial (the
//! history gives each event `max(now, the channel's last time)`). So each channel, read backwards along the
//! key, is already newest first, and the newest matches of the whole store are a merge of those lanes:
//! a heap holds each lane under the newest key it may still hold, and only the lane on top is read, a
//! range of its serials at a time (16, then twice as many each time).
//!
//! Seeding a lane costs a few lookups by the key, whatever the channel holds: its newest and oldest rows,
//! and for a time bound (`to_ms` or the cursor of the page before, `from_ms`) a binary search over its
//! serials. Past that, a page reads the rows of the channels it shows and little else. A filter on the
//! event's name or data is tested by SQLite on the range read, which answers only the rows that match; only
//! the rows a page shows are read whole.
//!
//! The walk is done in slices ([`Merge::step`]), each a short run on the writer thread between the
//! history's commits, so a search that must scan much of the store does not hold up a publish. Between
//! slices events are added (a lane never reads past where it started, and channels made after the search
//! began are not searched) and evicted (a row gone is skipped). A channel whose events all expired is
//! forgotten, and its id may go to a new channel: the new channel's events are newer than anything its lane
//! may still give, so they are left out by their time.

use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::{Before, Found, Page, Search};
use crate::history::store::{Store, StoreError};

/// The range of channel ids seeded per query: it reads at most that many channel rows, however few of
/// them have events or match the filters.
const SEED_CHUNK: i64 = 64;
/// The serials a lane's first read scans; each further read scans twice as many, up to [`SCAN_MAX`]. A page
/// often shows a few rows of many channels.
const SCAN_FIRST: u64 = 16;
/// The most serials one read scans.
const SCAN_MAX: u64 = 4096;

/// One channel's rows still to be merged.
struct Lane {
    channel: i64,
    app: String,
    name: String,
    /// Rows read that match, newest first: (serial, at_ms).
    found: VecDeque<(u64, u64)>,
    /// The rows still to read have serials below this...
    below: u64,
    /// ... and at or above this (the first one within `from_ms`).
    floor: u64,
    /// ... and times at or before this.
    bound: u64,
    /// How many rows the next read scans.
    scan: u64,
    /// Nothing is left to read.
    exhausted: bool,
}

impl Lane {
    /// The newest key (time, channel, serial) the lane may still give: exact when it holds a row read,
    /// else a bound over what is left to read.
    fn key(&self) -> (u64, i64, u64) {
        match self.found.front() {
            Some(&(serial, at_ms)) => (at_ms, self.channel, serial),
            None => (self.bound, self.channel, self.below.saturating_sub(1)),
        }
    }

    fn spent(&self) -> bool {
        self.found.is_empty() && self.exhausted
    }
}

impl PartialEq for Lane {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Lane {}

impl PartialOrd for Lane {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Lane {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// A search under way: what is left to seed, the lanes, and the page so far. Moved to the writer thread
/// for each slice and back.
pub(super) struct Merge {
    search: Search,
    /// Channels above this id are still to be seeded; `None` once all are.
    seed_after: Option<i64>,
    /// The highest channel id when seeding began: channels made after the search began are not searched.
    seed_last: Option<i64>,
    lanes: BinaryHeap<Lane>,
    page: Vec<Found>,
    /// The latest time a match may have: `to_ms` or the cursor's time.
    ceiling: u64,
    seed_sql: String,
    seed_args: Vec<Sql>,
    scan_sql: String,
    scan_args: Vec<Sql>,
}

/// A time or count as SQLite stores it.
fn big(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

impl Merge {
    pub(super) fn new(search: Search) -> Merge {
        // CROSS JOIN: the channels in the range are the outer loop, each then one lookup of its newest event
        // (SQLite would rather walk every event of the range's channels).
        let mut seed_sql = String::from(
            "SELECT c.id, c.app, c.name, e.serial, e.at_ms FROM channels c CROSS JOIN events e
             ON e.channel = c.id AND e.serial = (SELECT max(serial) FROM events WHERE channel = c.id)
             WHERE c.id > ?1 AND c.id <= ?2",
        );
        let mut seed_args = Vec::new();
        if let Some(app) = search.app.as_deref().filter(|a| !a.is_empty()) {
            // `+`: the range of ids, not the index on (app, name), is what bounds the read.
            seed_sql.push_str(" AND +c.app = ?");
            seed_args.push(Sql::Text(app.into()));
        }
        if let Some(part) = search.channel.as_deref().filter(|p| !p.is_empty()) {
            seed_sql.push_str(" AND c.name LIKE ? ESCAPE '\\'");
            seed_args.push(Sql::Text(crate::monitor::journal::like_contains(part)));
        }

        // A read: the matching rows of a range of a channel's serials.
        let mut test = String::new();
        let mut scan_args = Vec::new();
        for (column, part) in [("event", &search.event), ("data", &search.text)] {
            if let Some(part) = part.as_deref().filter(|p| !p.is_empty()) {
                test.push_str(&format!(" AND {column} LIKE ?{} ESCAPE '\\'", 4 + scan_args.len()));
                scan_args.push(Sql::Text(crate::monitor::journal::like_contains(part)));
            }
        }
        match search.client_events {
            // Exactly as the hub tells a client event: by its name's prefix, in this case.
            Some(true) => test.push_str(" AND substr(event, 1, 7) = 'client-'"),
            Some(false) => test.push_str(" AND substr(event, 1, 7) <> 'client-'"),
            None => {}
        }
        let scan_sql = format!(
            "SELECT serial, at_ms FROM events WHERE channel = ?1 AND serial >= ?2 AND serial < ?3{test}
             ORDER BY serial DESC"
        );
        let ceiling = search.to_ms.unwrap_or(u64::MAX).min(search.before.map_or(u64::MAX, |b| b.at_ms));
        Merge {
            search,
            seed_after: Some(0),
            seed_last: None,
            lanes: BinaryHeap::new(),
            page: Vec::new(),
            ceiling,
            seed_sql,
            seed_args,
            scan_sql,
            scan_args,
        }
    }

    /// Goes on with the search for about `slice`, and at least one step. `Some` once the page is complete.
    pub(super) fn step(&mut self, store: &Store, slice: Duration) -> Result<Option<Page>, StoreError> {
        let started = Instant::now();
        let sql = |e| store.error(e);
        while let Some(after) = self.seed_after {
            self.seed_after = self.seed(store, after).map_err(sql)?;
            if started.elapsed() >= slice {
                return Ok(None);
            }
        }
        let want = self.search.limit + 1;
        while self.page.len() < want {
            let Some(mut lane) = self.lanes.pop() else { break };
            if let Some((serial, at_ms)) = lane.found.pop_front() {
                if let Some(found) = self.read_whole(store, &lane, serial, at_ms).map_err(sql)? {
                    self.page.push(found);
                }
            } else {
                self.scan(store, &mut lane).map_err(sql)?;
            }
            if !lane.spent() {
                self.lanes.push(lane);
            }
            if started.elapsed() >= slice && self.page.len() < want && !self.lanes.is_empty() {
                return Ok(None);
            }
        }
        let mut events = std::mem::take(&mut self.page);
        let mut next = None;
        if events.len() > self.search.limit {
            events.truncate(self.search.limit);
            next = events.last().map(|e| e.position);
        }
        Ok(Some(Page { events, next }))
    }

    /// Seeds the lanes of the next range of channel ids after `after`; the id to go on from, or `None` at the end.
    fn seed(&mut self, store: &Store, after: i64) -> Result<Option<i64>, rusqlite::Error> {
        let conn = store.conn();
        let last = match self.seed_last {
            Some(last) => last,
            None => {
                let last = conn.query_row("SELECT coalesce(max(id), 0) FROM channels", [], |r| r.get::<_, i64>(0))?;
                *self.seed_last.insert(last)
            }
        };
        let upto = after.saturating_add(SEED_CHUNK);
        let mut args = vec![Sql::Integer(after), Sql::Integer(upto)];
        args.extend(self.seed_args.iter().cloned());
        let heads: Vec<(i64, String, String, u64, u64)> = conn
            .prepare_cached(&self.seed_sql)?
            .query_map(params_from_iter(args), |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)?.max(0) as u64,
                    r.get::<_, i64>(4)?.max(0) as u64,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let from = self.search.from_ms.unwrap_or(0);
        for (channel, app, name, newest, newest_at) in heads {
            if newest_at < from {
                continue; // every event of the channel is older than the range
            }
            let Some((oldest, oldest_at)) = first_from(store, channel, 0)? else { continue };
            if oldest_at > self.ceiling {
                continue; // every event of the channel is newer than the range
            }
            let below = if newest_at <= self.ceiling {
                newest + 1
            } else {
                first_past(store, channel, oldest, newest, self.ceiling)?
            };
            let floor = if oldest_at >= from { oldest } else { first_past(store, channel, oldest, newest, from - 1)? };
            if floor >= below {
                continue;
            }
            let bound = newest_at.min(self.ceiling);
            self.lanes.push(Lane {
                channel,
                app,
                name,
                found: VecDeque::new(),
                below,
                floor,
                bound,
                scan: SCAN_FIRST,
                exhausted: false,
            });
        }
        Ok((upto < last).then_some(upto))
    }

    /// Reads the next range of a lane's serials, keeping the rows that match.
    fn scan(&self, store: &Store, lane: &mut Lane) -> Result<(), rusqlite::Error> {
        let low = lane.below.saturating_sub(lane.scan).max(lane.floor);
        let mut args = vec![Sql::Integer(lane.channel), Sql::Integer(big(low)), Sql::Integer(big(lane.below))];
        args.extend(self.scan_args.iter().cloned());
        let mut select = store.conn().prepare_cached(&self.scan_sql)?;
        let mut rows = select.query(params_from_iter(args))?;
        while let Some(row) = rows.next()? {
            let serial = row.get::<_, i64>(0)?.max(0) as u64;
            let at_ms = row.get::<_, i64>(1)?.max(0) as u64;
            if at_ms > lane.bound {
                continue; // a new channel's under a forgotten channel's id: not the lane's
            }
            let before = self.search.before.is_some_and(|b| match b.key {
                Some((channel, s)) => (at_ms, lane.channel, serial) >= (b.at_ms, channel, s),
                None => at_ms >= b.at_ms,
            });
            if !before && self.search.to_ms.is_none_or(|to| at_ms <= to) {
                lane.found.push_back((serial, at_ms));
            }
        }
        lane.below = low;
        lane.scan = (lane.scan * 2).min(SCAN_MAX);
        if low <= lane.floor {
            lane.exhausted = true;
        } else {
            // What is left is no newer than the row the range ended at.
            match first_from(store, lane.channel, low)? {
                Some((_, at_ms)) => lane.bound = lane.bound.min(at_ms),
                None => lane.exhausted = true, // evicted since
            }
        }
        Ok(())
    }

    /// A matching row read whole, for the page; `None` if it was evicted since it was scanned.
    fn read_whole(
        &self,
        store: &Store,
        lane: &Lane,
        serial: u64,
        at_ms: u64,
    ) -> Result<Option<Found>, rusqlite::Error> {
        store
            .conn()
            // The time too: the row may be gone since the scan and the channel's id taken by a new channel,
            // whose events are all newer.
            .prepare_cached(
                "SELECT event, data, except_socket FROM events WHERE channel = ?1 AND serial = ?2 AND at_ms = ?3",
            )?
            .query_row(params![lane.channel, big(serial), big(at_ms)], |r| {
                Ok(Found {
                    app_id: lane.app.clone(),
                    channel: lane.name.clone(),
                    serial,
                    at_ms,
                    event: r.get(0)?,
                    data: r.get(1)?,
                    except: r.get(2)?,
                    position: Before { at_ms, key: Some((lane.channel, serial)) },
                })
            })
            .optional()
    }
}

/// The first row of `channel` at or after `serial`: its serial and time.
fn first_from(store: &Store, channel: i64, serial: u64) -> Result<Option<(u64, u64)>, rusqlite::Error> {
    store
        .conn()
        .prepare_cached("SELECT serial, at_ms FROM events WHERE channel = ?1 AND serial >= ?2 ORDER BY serial LIMIT 1")?
        .query_row(params![channel, big(serial)], |r| {
            Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?.max(0) as u64))
        })
        .optional()
}

/// The first serial of `channel` whose row is later than `time`, by a binary search over the key: the row
/// at `oldest` is not later, the one at `newest` is.
fn first_past(store: &Store, channel: i64, oldest: u64, newest: u64, time: u64) -> Result<u64, rusqlite::Error> {
    // The first row at `lo` or after is not later than `time`; the first one at `hi` or after is.
    let (mut lo, mut hi) = (oldest, newest);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match first_from(store, channel, mid)? {
            Some((_, at_ms)) if at_ms <= time => lo = mid,
            _ => hi = mid,
        }
    }
    Ok(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::Dir;

    fn channel(store: &Store, name: &str, rows: &[(u64, u64, &str)]) -> i64 {
        let conn = store.conn();
        conn.execute(
            "INSERT INTO channels (app, name, epoch, last_serial, last_at_ms) VALUES ('1', ?1, 'e', 0, 0)",
            [name],
        )
        .unwrap();
        let id = conn.last_insert_rowid();
        for &(serial, at_ms, data) in rows {
            conn.execute(
                "INSERT INTO events (channel, serial, at_ms, size, event, data) VALUES (?1, ?2, ?3, 1, 'e', ?4)",
                params![id, serial as i64, at_ms as i64, data],
            )
            .unwrap();
        }
        id
    }

    fn finish(merge: &mut Merge, store: &Store) -> Page {
        loop {
            if let Some(page) = merge.step(store, Duration::ZERO).unwrap() {
                return page;
            }
        }
    }

    /// A lane holds rows it has scanned when its channel is forgotten and a new channel gets its id: the
    /// new channel's rows, at the same serials, are not shown under the old name.
    #[test]
    fn a_forgotten_channels_id_taken_by_a_new_channel_does_not_lend_it_rows() {
        let dir = Dir::new("merge-reuse");
        let (store, _) = Store::open(&dir.0, crate::config::SyncPolicy::Normal).unwrap();
        channel(&store, "kept", &[(1, 100, "k1"), (2, 101, "k2")]);
        let old = channel(&store, "forgotten", &[(1, 110, "f1"), (2, 111, "f2"), (3, 112, "f3")]);
        let mut merge = Merge::new(Search { limit: 10, ..Search::default() });
        // Seeding, then the lane on top (the forgotten channel's) scanned: its three rows wait in the lane.
        assert!(merge.step(&store, Duration::ZERO).unwrap().is_none());
        assert!(merge.step(&store, Duration::ZERO).unwrap().is_none());
        assert_eq!(merge.lanes.peek().map(|l| (l.channel, l.found.len())), Some((old, 3)));
        // Its events expire and it is forgotten; a new channel takes its id, at the same serials.
        store.conn().execute("DELETE FROM events WHERE channel = ?1", [old]).unwrap();
        store.conn().execute("DELETE FROM channels WHERE id = ?1", [old]).unwrap();
        let new = channel(&store, "new", &[(1, 500, "n1"), (2, 501, "n2"), (3, 502, "n3")]);
        assert_eq!(new, old, "SQLite gives the freed highest id again");
        let page = finish(&mut merge, &store);
        let shown: Vec<(&str, &str)> = page.events.iter().map(|e| (e.channel.as_str(), e.data.as_str())).collect();
        assert_eq!(shown, [("kept", "k2"), ("kept", "k1")]);
    }

    /// Channels with no events, many of them, cost a seeding query a bounded range of ids each, and are
    /// never lanes.
    #[test]
    fn channels_without_events_are_seeded_a_range_of_ids_at_a_time() {
        let dir = Dir::new("merge-empty");
        let (store, _) = Store::open(&dir.0, crate::config::SyncPolicy::Normal).unwrap();
        for i in 0..300 {
            channel(&store, &format!("empty-{i}"), &[]);
        }
        channel(&store, "last", &[(1, 100, "x")]);
        let mut merge = Merge::new(Search { limit: 10, app: Some("1".into()), ..Search::default() });
        let mut seeded = 0;
        while merge.seed_after.is_some() {
            assert!(merge.step(&store, Duration::ZERO).unwrap().is_none());
            seeded += 1;
        }
        assert_eq!(seeded, 301usize.div_ceil(SEED_CHUNK as usize), "one query per range of ids");
        assert_eq!(merge.lanes.len(), 1);
        assert_eq!(finish(&mut merge, &store).events.len(), 1);
    }
}
