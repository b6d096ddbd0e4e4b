//! The search's merge against the plain query it stands for: one scan of the whole store, sorted.

use std::sync::Arc;

use rusqlite::OptionalExtension;
use rusqlite::types::Value as Sql;

use super::super::Entry;
use super::super::tests::Dir;
use super::*;
use crate::config::{AppConfig, HistoryConfig, HistoryStore, SyncPolicy};

fn open(tag: &str) -> (Dir, History) {
    let dir = Dir::new(&format!("search-{tag}"));
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
    let dir = Dir::new("search-budget");
    let (store, _) = Store::open(&dir.0, crate::config::SyncPolicy::Normal).unwrap();
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
    assert!(matches!(budgeted(&store, Duration::from_millis(50), endless), Err(SearchError::Stalled)));
    let quick =
        |store: &Store| store.conn().query_row("SELECT 7", [], |r| r.get::<_, i64>(0)).map_err(|e| store.error(e));
    assert_eq!(budgeted(&store, Duration::from_millis(50), quick).unwrap(), 7);
}

/// A search's time in all, in these tests: one step per slice on a busy machine may take seconds, and the
/// hub's own limit is tested on its own.
const NO_LIMIT: Duration = Duration::from_secs(600);

/// Runs `f` on the writer thread, between commits, and returns what it gives.
async fn on_store<T: Send + 'static>(history: &History, f: impl FnOnce(&mut Store) -> T + Send + 'static) -> T {
    let (reply, answer) = tokio::sync::oneshot::channel();
    history.push(Job::Query(Box::new(move |store: &mut Store| drop(reply.send(f(store)))))).unwrap();
    answer.await.unwrap()
}

/// What the merge stands for, as the search was written first: every row that matches, sorted by
/// (time, channel, serial), newest first. It scans the whole store.
fn oracle(store: &Store, q: &Search) -> Page {
    let mut sql = String::from(
        "SELECT c.app, c.name, e.channel, e.serial, e.at_ms, e.event, e.data, e.except_socket
         FROM events e JOIN channels c ON c.id = e.channel WHERE e.at_ms >= ?",
    );
    let mut args = vec![Sql::Integer(q.from_ms.unwrap_or(0) as i64)];
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
        Some(true) => sql.push_str(" AND substr(e.event, 1, 7) = 'client-'"),
        Some(false) => sql.push_str(" AND substr(e.event, 1, 7) <> 'client-'"),
        None => {}
    }
    if let Some(to) = q.to_ms {
        sql.push_str(" AND e.at_ms <= ?");
        args.push(Sql::Integer(to as i64));
    }
    match q.before {
        Some(Before { at_ms, key: Some((channel, serial)) }) => {
            sql.push_str(" AND (e.at_ms, e.channel, e.serial) < (?, ?, ?)");
            args.extend([Sql::Integer(at_ms as i64), Sql::Integer(channel), Sql::Integer(serial as i64)]);
        }
        Some(Before { at_ms, key: None }) => {
            sql.push_str(" AND e.at_ms < ?");
            args.push(Sql::Integer(at_ms as i64));
        }
        None => {}
    }
    sql.push_str(" ORDER BY e.at_ms DESC, e.channel DESC, e.serial DESC LIMIT ?");
    args.push(Sql::Integer(q.limit as i64 + 1));
    let mut select = store.conn().prepare(&sql).unwrap();
    let mut events: Vec<Found> = select
        .query_map(rusqlite::params_from_iter(args), |r| {
            let (channel, serial, at_ms) =
                (r.get::<_, i64>(2)?, r.get::<_, i64>(3)? as u64, r.get::<_, i64>(4)? as u64);
            Ok(Found {
                app_id: r.get(0)?,
                channel: r.get(1)?,
                serial,
                at_ms,
                event: r.get(5)?,
                data: r.get(6)?,
                except: r.get(7)?,
                position: Before { at_ms, key: Some((channel, serial)) },
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut next = None;
    if events.len() > q.limit {
        events.truncate(q.limit);
        next = events.last().map(|e| e.position);
    }
    Page { events, next }
}

/// A small deterministic generator (xorshift), so that a failure can be run again as it was.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn pick<'a, T>(&mut self, of: &'a [T]) -> &'a T {
        &of[self.roll(of.len() as u64) as usize]
    }
}

/// Writes `channels` channels straight into the store, each with times that only grow along its serials (as
/// the history gives them) but interleave and tie across channels; a few channels are long. The first
/// and last times written.
fn fill(store: &mut Store, dice: &mut Dice, channels: usize) -> (u64, u64) {
    // An hour ago: well within the apps' age bound, which the writer enforces while the test runs.
    let start = super::super::now_ms() - 3_600_000;
    let mut last = start;
    let tx = store.conn().unchecked_transaction().unwrap();
    for c in 0..channels {
        let (app, name) = match c % 3 {
            0 => ("1", format!("orders-{c}")),
            1 => ("2", format!("Private-Chat-{c}")),
            _ => ("1", format!("presence-floor-{c}")),
        };
        tx.execute(
            "INSERT INTO channels (app, name, epoch, last_serial, last_at_ms) VALUES (?1, ?2, 'e', 0, 0)",
            rusqlite::params![app, name],
        )
        .unwrap();
        let id = tx.last_insert_rowid();
        let count = match c {
            7 => 6000,
            11 => 1,
            _ => dice.roll(40),
        };
        // Evicted channels start past serial 1.
        let first = 1 + dice.roll(3) * 100;
        let mut at = start + dice.roll(400);
        // A gap now and then: the search must not count on serials following each other.
        let serials: Vec<u64> = (first..first + count).filter(|_| dice.roll(25) != 0).collect();
        for serial in serials {
            at += *dice.pick(&[0, 0, 1, 2, 7]);
            last = last.max(at);
            let event = *dice.pick(&["order.created", "client-typing", "Order.Shipped", "ping"]);
            let data = format!("{{\"n\":{serial},\"w\":\"{}\"}}", dice.pick(&["50%", "a_b", "AB", "plain"]));
            let except = (event == "client-typing").then(|| format!("1.{c}"));
            tx.execute(
                "INSERT INTO events (channel, serial, at_ms, size, event, data, except_socket)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6)",
                rusqlite::params![id, serial as i64, at as i64, event, data, except],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    (start, last)
}

#[tokio::test]
async fn the_merge_finds_exactly_what_a_scan_of_the_whole_store_finds_page_after_page() {
    let (_dir, history) = open("oracle");
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let (start, end) = {
        let mut d = Dice(dice.roll(u64::MAX) | 1);
        // More channels than one seeding query takes.
        on_store(&history, move |store| fill(store, &mut d, 600)).await
    };
    let mut pages = 0;
    for round in 0..120 {
        let mut search = Search {
            app: dice.pick(&[None, Some("1"), Some("2")]).map(str::to_owned),
            channel: dice
                .pick(&[None, None, Some("orders"), Some("CHAT-1"), Some("-7"), Some("zzz")])
                .map(str::to_owned),
            event: dice.pick(&[None, None, Some("order."), Some("client-"), Some("nothing")]).map(str::to_owned),
            text: dice.pick(&[None, None, Some("50%"), Some("A_B"), Some("miss")]).map(str::to_owned),
            client_events: *dice.pick(&[None, None, Some(true), Some(false)]),
            from_ms: (dice.roll(3) == 0).then(|| start + dice.roll(end - start + 1)),
            to_ms: (dice.roll(3) == 0).then(|| start + dice.roll(end - start + 1)),
            before: None,
            limit: *dice.pick(&[1, 7, 50, 400]),
        };
        // Half the rounds in the smallest slices there are: a step at a time, a commit possible between each.
        let slice = if round % 2 == 0 { Duration::ZERO } else { SLICE };
        for _ in 0..6 {
            let merged = history.search_in_slices(search.clone(), slice, NO_LIMIT).await.unwrap();
            let q = search.clone();
            let expected = on_store(&history, move |store| oracle(store, &q)).await;
            assert_eq!(merged.events, expected.events, "round {round}: {search:?}");
            assert_eq!(merged.next, expected.next, "round {round}: {search:?}");
            pages += 1;
            match merged.next {
                Some(next) => search.before = Some(next),
                None => break,
            }
        }
    }
    assert!(pages > 200, "the rounds went past their first page: {pages}");
}

#[tokio::test]
async fn a_cursor_without_a_key_and_a_long_channel_are_merged_like_the_scan() {
    let (_dir, history) = open("long");
    let (start, end) = on_store(&history, |store| fill(store, &mut Dice(7), 12)).await;
    for at_ms in [start, start + (end - start) / 3, end, end + 1] {
        for limit in [1, 10, 5000] {
            let search = Search { before: Some(Before { at_ms, key: None }), limit, ..Search::default() };
            let merged = history.search_in_slices(search.clone(), Duration::ZERO, NO_LIMIT).await.unwrap();
            let expected = on_store(&history, move |store| oracle(store, &search)).await;
            assert_eq!(merged.events, expected.events, "before {at_ms}, limit {limit}");
            assert_eq!(merged.next, expected.next);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn publishing_goes_on_between_the_slices_of_a_search() {
    let (_dir, history) = open("slices");
    on_store(&history, |store| fill(store, &mut Dice(11), 200)).await;
    let search = history.search_in_slices(
        Search { text: Some("nowhere".into()), limit: 10, ..Search::default() },
        Duration::ZERO,
        NO_LIMIT,
    );
    let (done, mut kept) = tokio::sync::oneshot::channel();
    let publish = async {
        // Queued once the search's first slice is: the slices after it queue behind this.
        let entry = Entry {
            app: Arc::from("1"),
            channel: Arc::from("during-the-search"),
            event: Arc::from("e"),
            data: Arc::from("{}"),
            user_id: None,
            except: None,
        };
        history.append(entry, Box::new(move |r| drop(done.send(r))));
    };
    let (page, ()) = tokio::join!(search, publish);
    assert!(page.unwrap().events.is_empty());
    let kept = kept.try_recv().expect("the publish was kept before the search's last slice ran");
    assert_eq!(kept.unwrap().serial, 1);
}

/// A change the churn below made to the store: a row written or removed, as (channel, serial, at_ms, data).
type Change = (bool, String, u64, u64, String);

/// Changes the store as the writer and its bounds do, one step of `kind`: 0 evicts a channel's oldest event,
/// 1 adds an event to a channel, 2 forgets the channel of the highest id (all its events gone) and makes a new
/// one, which SQLite gives that id again.
fn churn(store: &mut Store, kind: u64, pick: u64, n: u64) -> Vec<Change> {
    let conn = store.conn();
    let highest: i64 = conn.query_row("SELECT max(id) FROM channels", [], |r| r.get(0)).unwrap();
    let id = 1 + (pick % highest as u64) as i64;
    let row = |sql: &str, id: i64| {
        conn.query_row(sql, [id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64))
        })
        .optional()
        .unwrap()
    };
    match kind {
        0 => {
            let Some((name, serial, at)) = row(
                "SELECT c.name, e.serial, e.at_ms FROM events e JOIN channels c ON c.id = e.channel
                 WHERE e.channel = ?1 ORDER BY e.serial LIMIT 1",
                id,
            ) else {
                return Vec::new();
            };
            conn.execute("DELETE FROM events WHERE channel = ?1 AND serial = ?2", rusqlite::params![id, serial as i64])
                .unwrap();
            vec![(false, name, serial, at, String::new())]
        }
        1 => {
            let Some((name, serial, at)) = row(
                "SELECT c.name, max(e.serial), max(e.at_ms) FROM events e JOIN channels c ON c.id = e.channel
                 WHERE e.channel = ?1 GROUP BY c.name",
                id,
            ) else {
                return Vec::new();
            };
            let (serial, at, data) = (serial + 1, at + n % 3, format!("added-{n}"));
            conn.execute(
                "INSERT INTO events (channel, serial, at_ms, size, event, data) VALUES (?1, ?2, ?3, 1, 'ping', ?4)",
                rusqlite::params![id, serial as i64, at as i64, data],
            )
            .unwrap();
            vec![(true, name, serial, at, data)]
        }
        _ => {
            let mut changes: Vec<Change> = conn
                .prepare(
                    "SELECT c.name, e.serial, e.at_ms FROM events e JOIN channels c ON c.id = e.channel WHERE c.id = ?1",
                )
                .unwrap()
                .query_map([highest], |r| {
                    Ok((false, r.get(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64, String::new()))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            conn.execute("DELETE FROM events WHERE channel = ?1", [highest]).unwrap();
            conn.execute("DELETE FROM channels WHERE id = ?1", [highest]).unwrap();
            let name = format!("reborn-{n}");
            conn.execute(
                "INSERT INTO channels (app, name, epoch, last_serial, last_at_ms) VALUES ('1', ?1, 'e2', 0, 0)",
                [&name],
            )
            .unwrap();
            // Its events are newer than any before: a channel is forgotten once all its events expired.
            let at = super::super::now_ms() + 60_000 + n;
            for serial in 1..=3i64 {
                let data = format!("reborn-{n}-{serial}");
                conn.execute(
                    "INSERT INTO events (channel, serial, at_ms, size, event, data) VALUES (?1, ?2, ?3, 1, 'ping', ?4)",
                    rusqlite::params![highest, serial, at as i64, data],
                )
                .unwrap();
                changes.push((true, name.clone(), serial as u64, at, data));
            }
            changes
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_search_while_events_come_and_go_is_ordered_without_duplicates_and_misses_nothing_that_stayed() {
    use std::collections::HashMap;

    let (_dir, history) = open("churn");
    on_store(&history, |store| fill(store, &mut Dice(23), 150)).await;
    // Every row there ever was: (channel, serial) → (time, data), and whether it is still there.
    let start: Vec<(String, u64, u64, String)> = on_store(&history, |store| {
        let mut select = store
            .conn()
            .prepare("SELECT c.name, e.serial, e.at_ms, e.data FROM events e JOIN channels c ON c.id = e.channel")
            .unwrap();
        select
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    })
    .await;
    let mut ever: HashMap<(String, u64), (u64, String, bool)> =
        start.iter().map(|(c, s, at, d)| ((c.clone(), *s), (*at, d.clone(), true))).collect();

    let done = std::cell::Cell::new(false);
    let search = async {
        let page =
            history.search_in_slices(Search { limit: 100_000, ..Search::default() }, Duration::ZERO, NO_LIMIT).await;
        done.set(true);
        page
    };
    let changes = async {
        let (mut dice, mut all, mut n) = (Dice(99), Vec::new(), 0);
        // Between the search's slices: each waits for the writer, as the search does.
        while !done.get() && n < 5_000 {
            n += 1;
            // Every other change forgets the channel of the highest id: the first ones before that id is
            // seeded, so that its new channel's events, the newest, are on top of the merge when it is
            // forgotten again.
            let kind = if n % 2 == 0 { 2 } else { dice.roll(2) };
            let pick = dice.roll(u64::MAX);
            all.extend(on_store(&history, move |store| churn(store, kind, pick, n)).await);
        }
        (all, n)
    };
    let (page, (all, n)) = tokio::join!(search, changes);
    let page = page.unwrap();
    assert!(n > 20, "the store changed while the search ran ({n} changes)");
    for (written, channel, serial, at, data) in all {
        let seen = ever.entry((channel, serial)).or_insert((at, data, written));
        seen.2 = written;
    }
    let keys: Vec<_> = page.events.iter().map(|e| e.position.key.map(|(c, s)| (e.at_ms, c, s))).collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "newest first, each once");
    for e in &page.events {
        let (at, data, _) = ever.get(&(e.channel.clone(), e.serial)).unwrap_or_else(|| panic!("{e:?} never was"));
        assert_eq!((e.at_ms, e.data.as_str()), (*at, data.as_str()), "shown as it was written");
    }
    let shown: std::collections::HashSet<(&str, u64)> =
        page.events.iter().map(|e| (e.channel.as_str(), e.serial)).collect();
    let stayed: Vec<_> = start.iter().filter(|(c, s, ..)| ever[&(c.clone(), *s)].2).collect();
    assert!(stayed.len() < start.len(), "some rows went during the search");
    for (channel, serial, ..) in stayed {
        assert!(shown.contains(&(channel.as_str(), *serial)), "{channel} #{serial} was there throughout");
    }
}

#[tokio::test]
async fn a_search_past_its_time_in_all_is_stopped_and_says_how_to_narrow_it() {
    let (_dir, history) = open("limit");
    on_store(&history, |store| fill(store, &mut Dice(5), 20)).await;
    // No time at all: stopped after its first slice, which cannot finish it (seeding comes first).
    let search = Search { limit: 10, ..Search::default() };
    let stopped = history.search_in_slices(search.clone(), Duration::ZERO, Duration::ZERO).await;
    assert_eq!(stopped.unwrap_err(), SearchError::TooSlow);
    assert!(SearchError::TooSlow.to_string().contains("narrow it by channel, event or time range"));
    // The writer goes on: the same search with time finishes.
    assert_eq!(history.search(search).await.unwrap().events.len(), 10);
}
