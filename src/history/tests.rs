use std::path::PathBuf;
use std::sync::mpsc;

use super::store::Store;
use super::*;
use crate::config::SyncPolicy;

/// A folder of its own under the system's temporary folder, removed at the end (also for the search's tests).
pub(super) struct Dir(pub(super) PathBuf);

impl Dir {
    pub(super) fn new(tag: &str) -> Dir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("poussr-history-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn app(id: &str, history: HistoryConfig) -> AppConfig {
    AppConfig { history, ..AppConfig::new(id, format!("key-{id}"), "secret") }
}

fn open(dir: &Dir, history: HistoryConfig) -> History {
    let settings = HistoryStore { dir: Some(dir.0.clone()), sync: SyncPolicy::Full, ..HistoryStore::default() };
    History::open(&settings, &[app("1", history)]).unwrap().unwrap()
}

fn entry(channel: &str, data: &str) -> Entry {
    Entry {
        app: Arc::from("1"),
        channel: Arc::from(channel),
        event: Arc::from("e"),
        data: Arc::from(data),
        user_id: None,
        except: None,
    }
}

/// Appends and waits for each append's completion; returns the positions in the order they completed.
fn append_all(h: &History, entries: Vec<Entry>) -> Vec<Result<Position, HistoryError>> {
    let (tx, rx) = mpsc::channel();
    let n = entries.len();
    for e in entries {
        let tx = tx.clone();
        h.append(e, Box::new(move |r| tx.send(r).unwrap()));
    }
    (0..n).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn serials_grow_by_one_per_channel_and_survive_a_reopen() {
    let dir = Dir::new("serials");
    let h = open(&dir, HistoryConfig::default());
    let done = append_all(&h, vec![entry("a", "1"), entry("b", "1"), entry("a", "2"), entry("a", "3")]);
    let serials: Vec<u64> = done.iter().map(|r| r.as_ref().unwrap().serial).collect();
    assert_eq!(serials, [1, 1, 2, 3], "completions run in the order of the appends");
    let epoch_a = done[0].as_ref().unwrap().epoch.clone();
    assert_ne!(epoch_a, done[1].as_ref().unwrap().epoch, "each channel has its own epoch");
    drop(h);
    // Reopening waits for the first writer to let go of the store.
    let h = open(&dir, HistoryConfig::default());
    let a = h.peek_head("1", "a").unwrap();
    assert_eq!(a, Position { epoch: epoch_a.clone(), serial: 3 });
    let next = append_all(&h, vec![entry("a", "4")]);
    assert_eq!(next[0].as_ref().unwrap(), &Position { epoch: epoch_a.clone(), serial: 4 });
    let (app, ch) = (Arc::from("1"), Arc::from("a"));
    let got = rt()
        .block_on(h.after(
            &app,
            &ch,
            &Position { epoch: epoch_a.clone(), serial: 1 },
            &Position { epoch: epoch_a, serial: 4 },
            100,
        ))
        .unwrap()
        .unwrap();
    assert_eq!(got.iter().map(|e| (e.serial, e.data.as_str())).collect::<Vec<_>>(), [(2, "2"), (3, "3"), (4, "4")]);
}

#[test]
fn a_position_outside_what_is_kept_is_a_gap_with_its_reason() {
    let dir = Dir::new("gaps");
    let h = open(&dir, HistoryConfig { max_events_per_channel: 3, ..HistoryConfig::default() });
    let done = append_all(&h, (1..=5).map(|i| entry("c", &i.to_string())).collect());
    let epoch = done[0].as_ref().unwrap().epoch.clone();
    let (app, ch) = (Arc::from("1"), Arc::from("c"));
    let after = |serial: u64, epoch: &Arc<str>, max: u64| {
        rt().block_on(h.after(
            &app,
            &ch,
            &Position { epoch: epoch.clone(), serial },
            &Position { epoch: epoch.clone(), serial: 5 },
            max,
        ))
        .unwrap()
    };
    // Only 3..=5 are kept.
    assert_eq!(after(1, &epoch, 100), Err(Gap::Evicted { oldest: Some(3) }));
    assert_eq!(after(2, &epoch, 100).unwrap().len(), 3);
    assert_eq!(after(5, &epoch, 100), Ok(Vec::new()));
    assert_eq!(after(6, &epoch, 100), Err(Gap::Unknown));
    assert_eq!(after(1, &epoch, 3), Err(Gap::Evicted { oldest: Some(3) }), "more missed than a channel keeps");
    let other: Arc<str> = Arc::from("0000000000000000");
    assert_eq!(after(2, &other, 100), Err(Gap::EpochChanged { epoch: Some(epoch.clone()) }));
    assert_eq!(h.stats().events, 3);
    assert_eq!(h.stats().evicted, 2);
}

#[test]
fn an_app_over_its_byte_bound_loses_its_oldest_events_first() {
    let dir = Dir::new("bytes");
    // Each event counts 1 + 100 bytes. Over 505, the oldest go until 1/32 below the bound (490): 4 are left.
    let h = open(&dir, HistoryConfig { max_bytes: 505, ..HistoryConfig::default() });
    let data = "x".repeat(100);
    append_all(&h, (0..5).map(|i| entry(if i % 2 == 0 { "a" } else { "b" }, &data)).collect());
    assert_eq!(h.stats().events, 5, "at the bound, nothing goes");
    append_all(&h, vec![entry("b", &data)]);
    assert_eq!(h.stats().events, 4);
    let (app, a, b) = (Arc::from("1"), Arc::from("a"), Arc::from("b"));
    let kept = |ch: &Arc<str>| -> Vec<u64> {
        rt().block_on(h.read(&app, ch, 0, 10, 100)).unwrap().iter().map(|e| e.serial).collect()
    };
    // a1 and b1 were the oldest.
    assert_eq!((kept(&a), kept(&b)), (vec![2, 3], vec![2, 3]));
    append_all(&h, vec![entry("b", &data), entry("b", &data)]);
    assert_eq!((kept(&a), kept(&b)), (vec![3], vec![3, 4, 5]));
    // A channel whose every event went keeps its position on disk.
    append_all(&h, (0..4).map(|_| entry("b", &data)).collect());
    assert_eq!(kept(&a), Vec::<u64>::new());
    let epoch_a = h.peek_head("1", "a").unwrap().epoch;
    drop(h);
    let h = open(&dir, HistoryConfig { max_bytes: 505, ..HistoryConfig::default() });
    assert_eq!(h.peek_head("1", "a"), Some(Position { epoch: epoch_a, serial: 3 }));
}

#[test]
fn expired_events_go_from_each_channels_oldest_and_a_channel_left_empty_is_forgotten() {
    let dir = Dir::new("age");
    let apps: HashMap<Arc<str>, HistoryConfig> = [(Arc::from("1"), HistoryConfig::default())].into();
    let (mut store, _) = Store::open(&dir.0, SyncPolicy::Full).unwrap();
    let epoch: Arc<str> = Arc::from("00000000000000aa");
    let row = |channel: &str, serial: u64, at_ms: u64| store::Row {
        entry: entry(channel, "d"),
        serial,
        epoch: epoch.clone(),
        at_ms,
    };
    let rows = [row("a", 1, 100), row("a", 2, 200), row("a", 3, 300), row("b", 1, 150)];
    let mut bytes = HashMap::new();
    store.commit(&rows, &[], &apps, &mut bytes, &[]).unwrap();
    let evicted = store.commit(&[], &[], &apps, &mut bytes, &[(Arc::from("1"), 250)]).unwrap();
    let (a, b): (store::ChannelKey, store::ChannelKey) =
        ((Arc::from("1"), Arc::from("a")), (Arc::from("1"), Arc::from("b")));
    assert_eq!((evicted.get(&a), evicted.get(&b)), (Some(&2), Some(&1)));
    assert_eq!(store.read("1", "a", 0, 10, 10).unwrap().iter().map(|e| e.serial).collect::<Vec<_>>(), [3]);
    assert_eq!(bytes.get("1"), Some(&2), "one event of 2 bytes left");
    let loaded = store.load().unwrap();
    let heads: Vec<(&str, u64)> = loaded.heads.iter().map(|h| (&*h.channel, h.last)).collect();
    assert_eq!(heads, [("a", 3)], "b, with nothing left and nothing newer than the cut-off, is forgotten");
}

#[test]
fn a_store_of_schema_1_is_read_and_upgraded() {
    let dir = Dir::new("schema1");
    {
        let c = rusqlite::Connection::open(dir.0.join(store::FILE)).unwrap();
        c.execute_batch(
            "CREATE TABLE channels (id INTEGER PRIMARY KEY, app TEXT NOT NULL, name TEXT NOT NULL,
                 epoch TEXT NOT NULL, last_serial INTEGER NOT NULL, last_at_ms INTEGER NOT NULL, UNIQUE (app, name));
             CREATE TABLE events (channel INTEGER NOT NULL, serial INTEGER NOT NULL, at_ms INTEGER NOT NULL,
                 size INTEGER NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL, user_id TEXT, except_socket TEXT,
                 PRIMARY KEY (channel, serial)) WITHOUT ROWID;
             CREATE INDEX events_by_age ON events (at_ms);
             INSERT INTO channels VALUES (1, '1', 'old', '00000000000000bb', 7, 1000);
             INSERT INTO events VALUES (1, 6, 900, 2, 'e', 'x', NULL, NULL), (1, 7, 1000, 2, 'e', 'y', NULL, NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let h = open(&dir, HistoryConfig::default());
    assert_eq!(h.peek_head("1", "old"), Some(Position { epoch: Arc::from("00000000000000bb"), serial: 7 }));
    let next = append_all(&h, vec![entry("old", "z")]);
    assert_eq!(next[0].as_ref().unwrap().serial, 8);
    drop(h);
    let c = rusqlite::Connection::open(dir.0.join(store::FILE)).unwrap();
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    let index: i64 =
        c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'events_by_age'", [], |r| r.get(0)).unwrap();
    assert_eq!((version, index), (2, 0));
}

#[test]
fn clearing_keeps_the_positions_going_and_reports_the_gap() {
    let dir = Dir::new("clear");
    let h = open(&dir, HistoryConfig::default());
    let done = append_all(&h, vec![entry("c", "1"), entry("c", "2")]);
    let epoch = done[0].as_ref().unwrap().epoch.clone();
    rt().block_on(h.clear()).unwrap();
    assert_eq!(h.stats().events, 0);
    let next = append_all(&h, vec![entry("c", "3")]);
    assert_eq!(next[0].as_ref().unwrap().serial, 3);
    let (app, ch) = (Arc::from("1"), Arc::from("c"));
    let gap = rt()
        .block_on(h.after(
            &app,
            &ch,
            &Position { epoch: epoch.clone(), serial: 1 },
            &Position { epoch: epoch.clone(), serial: 3 },
            100,
        ))
        .unwrap();
    assert_eq!(gap, Err(Gap::Evicted { oldest: Some(3) }));
    rt().block_on(h.clear()).unwrap();
    drop(h);
    // The position survives a restart with nothing kept.
    let h = open(&dir, HistoryConfig::default());
    assert_eq!(h.peek_head("1", "c"), Some(Position { epoch, serial: 3 }));
}

#[test]
fn a_head_asked_for_before_any_event_keeps_its_epoch_for_the_first_event_and_on_disk() {
    let dir = Dir::new("head");
    let h = open(&dir, HistoryConfig::default());
    let (app, ch) = (Arc::from("1"), Arc::from("quiet"));
    let head = h.head(&app, &ch).expect("a head of this hub's store");
    assert_eq!(head.serial, 0);
    // Reading goes through the writer after the head's job, so the head is on disk once this returns.
    assert_eq!(rt().block_on(h.read(&app, &ch, 0, 10, 100)).unwrap(), []);
    drop(h);
    let h = open(&dir, HistoryConfig::default());
    assert_eq!(h.peek_head("1", "quiet"), Some(head.clone()));
    let first = append_all(&h, vec![entry("quiet", "1")]);
    assert_eq!(first[0].as_ref().unwrap(), &Position { epoch: head.epoch, serial: 1 });
}

#[test]
fn a_damaged_store_is_moved_aside_and_a_new_one_started() {
    let dir = Dir::new("damaged");
    std::fs::write(dir.0.join(store::FILE), b"this is not a database, it is a text file ".repeat(200)).unwrap();
    let h = open(&dir, HistoryConfig::default());
    let notice = h.notice().unwrap().to_owned();
    assert!(notice.contains("damaged") && notice.contains("moved aside"), "{notice}");
    let aside: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("history.sqlite.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept beside, for the operator");
    assert_eq!(append_all(&h, vec![entry("c", "1")])[0].as_ref().unwrap().serial, 1);
}

#[test]
fn a_second_hub_on_the_same_store_gets_a_clear_error() {
    let dir = Dir::new("inuse");
    let _first = open(&dir, HistoryConfig::default());
    let settings = HistoryStore { dir: Some(dir.0.clone()), sync: SyncPolicy::Full, ..HistoryStore::default() };
    let err = History::open(&settings, &[app("1", HistoryConfig::default())]).unwrap_err();
    assert!(err.contains("another running Poussr"), "{err}");
}

#[test]
fn apps_that_keep_nothing_have_no_history() {
    let dir = Dir::new("off");
    let settings = HistoryStore { dir: Some(dir.0.clone()), sync: SyncPolicy::Full, ..HistoryStore::default() };
    let off = HistoryConfig { enabled: false, ..HistoryConfig::default() };
    assert!(History::open(&settings, &[app("1", off)]).unwrap().is_none());
    assert!(History::open(&HistoryStore::default(), &[app("1", HistoryConfig::default())]).unwrap().is_none());
    let on = open(&dir, HistoryConfig::default());
    assert!(on.keeps("1", false));
    assert!(!on.keeps("1", true), "client events are not kept by default");
    assert!(!on.keeps("2", false));
}

#[test]
fn counts_per_channel_and_the_most_recent_events_follow_writes_and_evictions() {
    let dir = Dir::new("counts");
    let h = open(&dir, HistoryConfig { max_events_per_channel: 2, ..HistoryConfig::default() });
    append_all(&h, vec![entry("a", "1"), entry("b", "1"), entry("a", "2"), entry("a", "3")]);
    let counts = h.kept_counts("1");
    assert_eq!((counts.get("a").copied(), counts.get("b").copied()), (Some(2), Some(1)), "a keeps its 2 newest");
    assert_eq!(h.stats().channels, 2);
    let recent = rt().block_on(h.recent(2)).unwrap();
    assert_eq!(
        recent.iter().map(|r| (&*r.channel, r.event.serial, r.event.data.as_str())).collect::<Vec<_>>(),
        [("a", 3, "3"), ("a", 2, "2")],
        "newest first"
    );
    drop(h);
    // Counted again from the store when it opens.
    let h = open(&dir, HistoryConfig { max_events_per_channel: 2, ..HistoryConfig::default() });
    assert_eq!(h.kept_counts("1").get("a").copied(), Some(2));
    rt().block_on(h.clear()).unwrap();
    assert!(h.kept_counts("1").is_empty());
}
