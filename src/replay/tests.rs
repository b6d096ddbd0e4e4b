use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;

/// A recording with a header and one line per entry (given as JSON text).
fn recording(entries: &[String]) -> String {
    let mut text = header(1_700_000_000_000, json!({"channel": "orders"}));
    for e in entries {
        text.push('\n');
        text.push_str(e);
    }
    text.push('\n');
    text
}

fn published(at_ms: u64, channel: &str, event: &str, data: &str) -> String {
    json!({
        "type": "event_published", "at_ms": at_ms, "app_id": "1", "channel": channel, "event": event,
        "data": data, "source": "api", "socket_id": null, "delivered": 1,
    })
    .to_string()
}

fn refusal(text: &str) -> String {
    parse(text).expect_err("refused").to_string()
}

#[test]
fn the_header_written_is_the_header_read() {
    let text = header(42, json!({"q": "orders"}));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        json!({"format": "poussr-recording", "version": 1, "recorded_at_ms": 42, "filter": {"q": "orders"}})
    );
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed, Recording { recorded_at_ms: 42, events: vec![], skipped: 0 });
    assert!(!header(1, Value::Null).contains("filter"));
}

#[test]
fn a_recording_gives_its_published_events_and_counts_the_other_entries() {
    let text = recording(&[
        json!({"type": "connection_opened", "at_ms": 5, "socket_id": "1.2"}).to_string(),
        published(1000, "orders", "created", r#"{"id":1}"#),
        String::new(),
        "   ".into(),
        json!({"type": "webhook", "at_ms": 1, "url": "http://x"}).to_string(),
        json!({"type": "event_published", "at_ms": 1000, "channel": "private-b", "event": "e", "data": ""}).to_string(),
    ]);
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed.recorded_at_ms, 1_700_000_000_000);
    assert_eq!(parsed.skipped, 2);
    assert_eq!(
        parsed.events,
        vec![
            Event {
                line: 3,
                at_ms: 1000,
                app_id: Some("1".into()),
                channel: ChannelName::parse("orders").unwrap(),
                event: "created".into(),
                data: r#"{"id":1}"#.into(),
            },
            Event {
                line: 7,
                at_ms: 1000,
                app_id: None,
                channel: ChannelName::parse("private-b").unwrap(),
                event: "e".into(),
                data: String::new(),
            },
        ]
    );
}

#[test]
fn a_header_alone_is_a_recording_of_no_events_and_crlf_and_a_bom_are_read() {
    assert_eq!(parse(&header(1, Value::Null)).unwrap().events.len(), 0);
    let text = format!("\u{feff}{}\r\n{}\r\n", header(1, Value::Null), published(3, "a", "e", "d"));
    assert_eq!(parse(&text).unwrap().events[0].line, 2);
}

#[test]
fn what_is_not_a_recording_is_refused_on_line_1() {
    let not = "line 1: not a Poussr recording (the first line must be the header \
               {\"format\":\"poussr-recording\",\"version\":1,...})";
    assert_eq!(refusal(""), not);
    assert_eq!(refusal("\n"), not);
    assert_eq!(refusal("hello"), not);
    assert_eq!(refusal(r#"{"format":"other","version":1,"recorded_at_ms":1}"#), not);
    assert_eq!(refusal(&published(1, "a", "e", "d")), not);
    assert_eq!(
        refusal(r#"{"format":"poussr-recording","version":2,"recorded_at_ms":1}"#),
        "line 1: this is a Poussr recording of version 2; this Poussr reads version 1"
    );
    assert_eq!(
        refusal(r#"{"format":"poussr-recording","version":"1","recorded_at_ms":1}"#),
        "line 1: the header's \"version\" must be a whole number (this Poussr reads 1)"
    );
    assert_eq!(
        refusal(r#"{"format":"poussr-recording","version":1}"#),
        "line 1: the header's \"recorded_at_ms\" must be a whole number of milliseconds"
    );
}

#[test]
fn each_bad_entry_is_refused_with_its_line() {
    let good = published(10, "orders", "e", "d");
    let bad_at = |line: usize, entry: String| {
        let mut entries = vec![good.clone(); line - 2];
        entries.push(entry);
        entries.push(good.replace("10", "99"));
        refusal(&recording(&entries))
    };
    assert_eq!(bad_at(12, "{\"type\": ".into()), "line 12: not JSON: EOF while parsing a value (column 9)");
    assert_eq!(bad_at(3, "[1, 2]".into()), "line 3: an entry must be a JSON object");
    assert_eq!(
        bad_at(4, json!({"at_ms": 1}).to_string()),
        "line 4: \"type\" must be a string (each entry names its type, e.g. \"event_published\")"
    );
    let with = |field: &str, value: Value| {
        let mut entry: Value = serde_json::from_str(&good).unwrap();
        entry[field] = value;
        entry.to_string()
    };
    assert_eq!(bad_at(7, with("data", json!({"id": 1}))), "line 7: \"data\" must be a string");
    assert_eq!(bad_at(5, with("event", json!(null))), "line 5: \"event\" must be a string");
    assert_eq!(bad_at(5, with("event", json!(""))), "line 5: \"event\" (the event name) is empty");
    assert_eq!(bad_at(6, with("channel", json!(3))), "line 6: \"channel\" must be a string");
    assert_eq!(
        bad_at(6, with("channel", json!("a b"))),
        "line 6: invalid channel \"a b\": the channel name contains ' '; allowed are A-Z a-z 0-9 and _ - = @ , . ;"
    );
    assert_eq!(
        bad_at(8, with("at_ms", json!(-1))),
        "line 8: \"at_ms\" must be a whole number of milliseconds since the Unix epoch"
    );
    assert_eq!(bad_at(2, with("app_id", json!(1))), "line 2: \"app_id\" must be a string");
    assert_eq!(bad_at(30, with("at_ms", json!(9))), "line 30: at_ms goes back in time (9 < 10, the event of line 29)");
}

#[test]
fn entries_of_other_types_are_not_checked_beyond_their_type() {
    let text = recording(&[
        published(10, "a", "e", "d"),
        json!({"type": "webhook", "at_ms": 1, "channel": "not a channel"}).to_string(),
        published(10, "a", "e", "d"),
    ]);
    assert_eq!(parse(&text).unwrap().skipped, 1);
}

#[test]
fn the_speed_is_between_half_and_ten() {
    assert_eq!(check_speed(0.5), Ok(0.5));
    assert_eq!(check_speed(10.0), Ok(10.0));
    assert_eq!(Options::with_speed(2.0).unwrap().speed, 2.0);
    for bad in [0.49, 10.01, 0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = check_speed(bad).unwrap_err();
        assert_eq!(e.line, 0);
        assert!(e.to_string().starts_with("the speed must be between 0.5 and 10 (×), not "), "{e}");
    }
}

#[test]
fn the_channel_map_moves_events_and_the_app_id_replaces_the_recorded_one() {
    let parsed = parse(&recording(&[published(1, "orders", "a", "1"), published(2, "users", "b", "2")])).unwrap();
    let mut options = Options::default();
    options.map_pair("orders=test-orders").unwrap();
    options.map_pair(" users = presence-u ").unwrap();
    options.app_id = Some("7".into());
    let events = options.apply(&parsed);
    assert_eq!(events.iter().map(|e| e.channel.as_str()).collect::<Vec<_>>(), ["test-orders", "presence-u"]);
    assert!(events.iter().all(|e| e.app_id.as_deref() == Some("7")));
    assert_eq!(Options::default().apply(&parsed), parsed.events, "no options change nothing");

    let err = |pair: &str| options.clone().map_pair(pair).unwrap_err().to_string();
    assert_eq!(err("orders"), "a channel map is written FROM=TO (orders=test-orders), not \"orders\"");
    assert_eq!(err("orders=x"), "the channel map names \"orders\" twice");
    assert_eq!(
        err("a=b c"),
        "the channel map: invalid channel \"b c\": the channel name contains ' '; allowed are A-Z a-z 0-9 and _ - = @ , . ;"
    );
    assert_eq!(err("=b"), "the channel map: invalid channel \"\": the channel name is empty");
}

fn events(at_ms: &[u64]) -> Vec<Event> {
    at_ms
        .iter()
        .enumerate()
        .map(|(i, &at_ms)| Event {
            line: i + 2,
            at_ms,
            app_id: None,
            channel: ChannelName::parse("c").unwrap(),
            event: format!("e{i}"),
            data: String::new(),
        })
        .collect()
}

/// A publish function that reports each event's line and when it was published, after `delay`; the line
/// `fail` is refused.
fn recorder(delay: Duration, fail: usize) -> (PublishFn, mpsc::UnboundedReceiver<(usize, Instant)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let publish: PublishFn = Box::new(move |event: &Event| {
        let tx = tx.clone();
        let line = event.line;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if line == fail {
                return Err("the hub answered 413: too large".to_owned());
            }
            let _ = tx.send((line, Instant::now()));
            Ok(())
        })
    });
    (publish, rx)
}

async fn times(rx: &mut mpsc::UnboundedReceiver<(usize, Instant)>, start: Instant, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (_, at) = rx.recv().await.expect("an event was published");
        out.push(at.duration_since(start).as_micros() as u64);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn at_twice_the_speed_every_gap_is_exactly_halved() {
    let (publish, mut rx) = recorder(Duration::ZERO, 0);
    let start = Instant::now();
    // (Tokio's timers fire on whole milliseconds: these gaps halve to whole milliseconds.)
    let player = Player::start(events(&[1000, 1100, 1102, 1350, 3000, 3000, 3008]), 4, 2.0, publish);
    let at = times(&mut rx, start, 7).await;
    assert_eq!(at, [0, 50_000, 51_000, 175_000, 1_000_000, 1_000_000, 1_004_000]);
    let progress = player.finished().await;
    assert_eq!(
        progress,
        Progress {
            state: State::Done,
            sent: 7,
            total: 7,
            skipped: 4,
            failed: 0,
            speed: 2.0,
            elapsed_ms: 1004,
            duration_ms: 1004,
            error: None
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_publish_does_not_delay_the_events_after_it() {
    // Each publish takes 80 ms: the second event (due at 50) goes out late, the third still at 200.
    let (publish, mut rx) = recorder(Duration::from_millis(80), 0);
    let start = Instant::now();
    let _player = Player::start(events(&[0, 50, 200, 210]), 0, 1.0, publish);
    assert_eq!(times(&mut rx, start, 4).await, [80_000, 160_000, 280_000, 360_000]);
}

#[tokio::test(start_paused = true)]
async fn time_spent_paused_does_not_count_and_nothing_is_published_while_paused() {
    let (publish, mut rx) = recorder(Duration::ZERO, 0);
    let start = Instant::now();
    let player = Player::start(events(&[0, 100, 200, 300]), 0, 1.0, publish);
    assert_eq!(times(&mut rx, start, 2).await, [0, 100_000]);
    tokio::time::sleep_until(start + Duration::from_millis(120)).await;
    let paused = player.pause().await.unwrap();
    assert_eq!((paused.state, paused.sent, paused.elapsed_ms), (State::Paused, 2, 120));
    assert_eq!(player.pause().await.unwrap_err(), "nothing is playing (the replay is paused)");

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(rx.try_recv().is_err(), "nothing was published while paused");
    assert_eq!(player.progress(), paused, "the progress does not move while paused");

    let resumed = player.resume().await.unwrap();
    assert_eq!((resumed.state, resumed.elapsed_ms), (State::Playing, 120));
    assert_eq!(player.resume().await.unwrap_err(), "nothing is paused (the replay is playing)");
    assert_eq!(times(&mut rx, start, 2).await, [5_200_000, 5_300_000]);
    let done = player.finished().await;
    assert_eq!((done.state, done.sent, done.elapsed_ms), (State::Done, 4, 300));
    assert_eq!(player.stop().await.unwrap_err(), "nothing is playing or paused (the replay is done)");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_replay_publishes_nothing_more() {
    let (publish, mut rx) = recorder(Duration::ZERO, 0);
    let start = Instant::now();
    let player = Player::start(events(&[0, 100, 200]), 0, 1.0, publish);
    assert_eq!(times(&mut rx, start, 1).await, [0]);
    let stopped = player.stop().await.unwrap();
    assert_eq!((stopped.state, stopped.sent, stopped.total), (State::Stopped, 1, 3));
    assert_eq!(player.finished().await.state, State::Stopped);
    // The task has ended and dropped the publish function: nothing more can come.
    assert_eq!(rx.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_paused_replay_can_be_stopped_and_a_dropped_player_stops() {
    let (publish, mut rx) = recorder(Duration::ZERO, 0);
    let player = Player::start(events(&[0, 100]), 0, 1.0, publish);
    rx.recv().await.unwrap();
    player.pause().await.unwrap();
    assert_eq!(player.stop().await.unwrap().state, State::Stopped);

    let (publish, mut rx) = recorder(Duration::ZERO, 0);
    drop(Player::start(events(&[0, 100]), 0, 1.0, publish));
    // Whether the first event went out before the drop is a race; after it, nothing more.
    while rx.recv().await.is_some() {}
}

#[tokio::test(start_paused = true)]
async fn a_publish_error_stops_the_replay_and_names_the_line() {
    let (publish, mut rx) = recorder(Duration::ZERO, 3);
    let player = Player::start(events(&[0, 10, 20]), 0, 1.0, publish);
    let failed = player.finished().await;
    assert_eq!((failed.state, failed.sent, failed.failed), (State::Failed, 1, 1));
    assert_eq!(
        failed.error.as_deref(),
        Some("line 3: the event \"e1\" on c was not published: the hub answered 413: too large")
    );
    assert_eq!(rx.recv().await.map(|(line, _)| line), Some(2));
    assert_eq!(rx.recv().await, None, "nothing after the failed event");
}

#[tokio::test(start_paused = true)]
async fn an_empty_recording_is_done_at_once() {
    let (publish, _rx) = recorder(Duration::ZERO, 0);
    let progress = Player::start(Vec::new(), 2, 3.0, publish).finished().await;
    assert_eq!((progress.state, progress.total, progress.skipped, progress.duration_ms), (State::Done, 0, 2, 0));
}

#[test]
fn the_duration_is_the_span_at_the_speed() {
    assert_eq!(duration(&events(&[1000, 4000]), 2.0), Duration::from_millis(1500));
    assert_eq!(duration(&events(&[5]), 0.5), Duration::ZERO);
    assert_eq!(player::offset(3, 2.0), Duration::from_micros(1500));
}
