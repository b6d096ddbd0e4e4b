use std::sync::Arc;

use super::*;

/// A folder of its own under the system's temporary folder, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("poussr-journal-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join(FILE)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const DAY: u64 = 24 * 60 * 60;

fn bounds(max_entries: u64) -> Bounds {
    Bounds { max_entries, max_age_secs: DAY }
}

/// A writer on `dir`'s file, driven by the test itself (no thread).
fn writer(dir: &Dir, bounds: Bounds) -> Writer {
    let (conn, notice) = open_writer(&dir.file()).unwrap();
    assert_eq!(notice, None);
    Writer { conn, path: dir.file(), bounds, counters: Arc::default(), last_age_pass: None }
}

fn subscribed(at_ms: u64, socket: &str, channel: &str) -> MonitorEvent {
    MonitorEvent::Subscribed {
        at_ms,
        socket_id: Arc::from(socket),
        channel: crate::protocol::ChannelName::parse(channel).unwrap(),
    }
}

fn refused(at_ms: u64, message: &str) -> MonitorEvent {
    MonitorEvent::Error { at_ms, socket_id: None, code: Some(4301), message: message.into() }
}

fn all(limit: usize) -> Query {
    Query { limit, ..Query::default() }
}

fn find(dir: &Dir, query: &Query) -> Page {
    search(&dir.file(), query, 0).unwrap()
}

fn ids(page: &Page) -> Vec<i64> {
    page.entries.iter().map(|e| e.id).collect()
}

#[test]
fn entries_are_kept_as_the_feed_sends_them_newest_first() {
    let dir = Dir::new("insert");
    let mut w = writer(&dir, bounds(100));
    let now = now_ms();
    w.write(&[subscribed(now - 2, "1.1", "orders"), refused(now - 1, "too fast")]).unwrap();
    let page = find(&dir, &all(10));
    assert_eq!(page.next, None);
    assert_eq!(page.entries.len(), 2);
    let newest = &page.entries[0];
    assert_eq!((newest.kind, newest.at_ms), (Kind::Refusal, now - 1));
    let json: serde_json::Value = serde_json::from_str(&page.entries[1].text).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "subscribed", "at_ms": now - 2, "socket_id": "1.1", "channel": "orders"})
    );
    assert_eq!(w.counters.written.load(Relaxed), 2);
}

#[test]
fn the_count_bound_deletes_the_oldest_with_slack() {
    let dir = Dir::new("count");
    let mut w = writer(&dir, bounds(128));
    let now = now_ms();
    for i in 0..300u64 {
        w.write(&[refused(now - 1000 + i, &format!("n{i}"))]).unwrap();
        w.trim();
        let kept = find(&dir, &all(500)).entries.len();
        assert!(kept <= 128, "{kept} entries after {i}");
    }
    let page = find(&dir, &all(500));
    // 128 - 128/64 = 126 are kept by a trim, then they grow back to the bound.
    assert!((126..=128).contains(&page.entries.len()), "{}", page.entries.len());
    assert!(page.entries[0].text.contains("\"n299\""), "the newest stay");
}

#[test]
fn the_age_bound_deletes_and_hides_old_entries() {
    let dir = Dir::new("age");
    let mut w = writer(&dir, bounds(1000));
    let now = now_ms();
    w.write(&[refused(now - 2 * DAY * 1000, "old"), refused(now, "new")]).unwrap();
    let floor = now - DAY * 1000;
    // Hidden from a search at once, before any trim.
    let page = search(&dir.file(), &all(10), floor).unwrap();
    assert_eq!(page.entries.len(), 1);
    assert!(page.entries[0].text.contains("\"new\""));
    assert_eq!(find(&dir, &all(10)).entries.len(), 2);
    w.trim();
    assert_eq!(find(&dir, &all(10)).entries.len(), 1, "and deleted by the trim");
}

#[test]
fn filters_match_kind_channel_socket_text_and_time() {
    let dir = Dir::new("filters");
    let mut w = writer(&dir, bounds(1000));
    let t = now_ms() - 10_000;
    w.write(&[
        subscribed(t, "1.1", "private-Orders"),
        subscribed(t + 1, "2.2", "news"),
        refused(t + 2, "50% off_sale"),
        refused(t + 3, "50 percent"),
    ])
    .unwrap();
    let q = |adjust: &dyn Fn(&mut Query)| {
        let mut q = all(10);
        adjust(&mut q);
        find(&dir, &q).entries.iter().map(|e| e.at_ms - t).collect::<Vec<_>>()
    };
    assert_eq!(q(&|_| {}), [3, 2, 1, 0]);
    assert_eq!(q(&|q| q.kinds = vec![Kind::Subscription]), [1, 0]);
    assert_eq!(q(&|q| q.kinds = vec![Kind::Refusal, Kind::Webhook]), [3, 2]);
    assert_eq!(q(&|q| q.channel = Some("orders".into())), [0], "a part of the name, any case");
    assert_eq!(q(&|q| q.channel = Some(String::new())), [3, 2, 1, 0], "empty: no filter");
    assert_eq!(q(&|q| q.socket_id = Some("2.2".into())), [1]);
    assert_eq!(q(&|q| q.socket_id = Some("2".into())), Vec::<u64>::new(), "a socket id is exact");
    assert_eq!(q(&|q| q.text = Some("50%".into())), [2], "% is a character, not a wildcard");
    assert_eq!(q(&|q| q.text = Some("f_s".into())), [2], "_ too");
    assert_eq!(q(&|q| q.text = Some("F_SALE".into())), [2]);
    assert_eq!(q(&|q| q.text = Some("\\".into())), Vec::<u64>::new());
    assert_eq!(
        q(&|q| {
            q.from_ms = Some(t + 1);
            q.to_ms = Some(t + 2);
        }),
        [2, 1],
        "both ends included"
    );
    assert_eq!(q(&|q| q.app_id = Some("1".into())), Vec::<u64>::new(), "these entries name no app");
}

#[test]
fn pages_follow_each_other_across_equal_milliseconds() {
    let dir = Dir::new("paging");
    let mut w = writer(&dir, bounds(1000));
    let t = now_ms() - 10_000;
    // 25 entries over 5 milliseconds, 5 in each, written out of time order.
    let events: Vec<_> = (0..25u64).map(|i| refused(t + (i * 3) % 5, &format!("e{i}"))).collect();
    w.write(&events).unwrap();
    let mut seen = Vec::new();
    let mut query = all(4);
    loop {
        let page = find(&dir, &query);
        assert!(page.entries.len() <= 4);
        seen.extend(page.entries.iter().map(|e| (e.at_ms, e.id)));
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25, "no gap: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, no duplicate");
    // A cursor without an id starts before the whole millisecond.
    let page = find(&dir, &Query { before: Some(Before { at_ms: t + 4, id: None }), ..all(100) });
    assert_eq!(page.entries.len(), 20);
    assert_eq!(ids(&find(&dir, &all(1))).len(), 1);
}

#[tokio::test]
async fn the_writer_thread_writes_what_the_monitor_sends_and_ends_with_it() {
    let dir = Dir::new("thread");
    let (journal, tx) = Journal::open(&dir.0, bounds(1000)).unwrap();
    let monitor = super::super::Monitor::default();
    assert!(monitor.attach_journal(tx));
    let now = now_ms();
    monitor.emit(|| refused(now, "seen"));
    monitor.emit(|| subscribed(now, "3.3", "room"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = journal.stats().await.unwrap();
        if stats.entries == 2 {
            assert_eq!(stats.oldest_at_ms, Some(now));
            assert!(stats.bytes_on_disk > 0);
            break;
        }
        assert!(Instant::now() < deadline, "the journal still has {} entries", stats.entries);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let page = journal.search(Query { socket_id: Some("3.3".into()), ..all(10) }).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    // A second journal on the same file (a hub replacing another) reads and writes beside the first.
    let (second, tx2) = Journal::open(&dir.0, bounds(1000)).unwrap();
    drop(monitor);
    tx2.send(refused(now + 1, "second")).await.unwrap();
    drop(tx2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.stats().await.unwrap().entries != 3 {
        assert!(Instant::now() < deadline, "the second journal's entry is written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_damaged_file_is_moved_aside_and_a_new_one_started() {
    let dir = Dir::new("damaged");
    std::fs::write(dir.file(), vec![b'x'; 8192]).unwrap();
    let (journal, _tx) = Journal::open(&dir.0, bounds(10)).unwrap();
    let notice = journal.notice.clone().unwrap();
    assert!(notice.contains("was damaged") && notice.contains("moved aside"), "{notice}");
    let aside: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("journal.sqlite.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(find(&dir, &all(10)).entries.len(), 0);
}

#[test]
fn like_patterns_escape_wildcards() {
    assert_eq!(like_contains("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
    assert_eq!(like_contains(""), "%%");
}
