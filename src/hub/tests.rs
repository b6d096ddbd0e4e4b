//! The hub's state and monitor feed, without sockets or a runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use crate::config::{AppConfig, Config};
use crate::monitor::{EventSource, MonitorEvent};
use crate::protocol::{ChannelKind, ChannelName, CloseCode, ClosedBy, Protocol};

fn hub() -> Hub {
    hub_with(|_| {})
}

/// A hub with one app and the limits as `adjust` leaves them.
fn hub_with(adjust: impl FnOnce(&mut crate::config::Limits)) -> Hub {
    let mut config = Config { apps: vec![AppConfig::new("1", "k", "s")], ..Config::default() };
    adjust(&mut config.limits);
    Hub::alone(&config).unwrap()
}

fn peer() -> SocketAddr {
    "10.0.0.7:5000".parse().unwrap()
}

fn name(n: &str) -> ChannelName {
    ChannelName::parse(n).unwrap()
}

/// Takes every frame queued for `conn`, oldest first.
fn queued(conn: &Connection) -> Vec<Frame> {
    let mut out = std::collections::VecDeque::new();
    conn.take_queued(&mut out);
    out.into()
}

/// A connection of the default app speaking `protocol`, subscribed to `channel`.
fn subscriber(hub: &Hub, channel: &str, protocol: Protocol) -> Arc<Connection> {
    let conn = hub.open(hub.default_app(), peer(), None, protocol).unwrap();
    hub.subscribe(&conn, &name(channel), None).unwrap();
    conn
}

fn publish(channel: &str, event: &str) -> Publish {
    Publish::new(vec![name(channel)], event, "{\"x\":1}", None, EventSource::Api)
}

#[test]
fn a_connection_record_keeps_who_what_and_counters() {
    let hub = hub();
    let app = hub.default_app();
    let conn = hub.open(app, peer(), Some("test-agent/1"), Protocol::Pusher).unwrap();
    hub.subscribe(&conn, &name("b"), None).unwrap();
    hub.subscribe(&conn, &name("a"), None).unwrap();
    hub.count_in(&conn, 10);
    hub.count_out(&conn, 2, 30);
    let info = conn.info();
    assert_eq!(info.remote, "10.0.0.7:5000");
    assert_eq!(info.user_agent.as_deref(), Some("test-agent/1"));
    assert_eq!(info.protocol, Protocol::Pusher);
    assert_eq!(info.channels, vec!["a", "b"]);
    assert_eq!((info.messages_in, info.bytes_in, info.messages_out, info.bytes_out), (1, 10, 2, 30));
    assert!(info.connected_at_ms > 0);
    assert!(hub.connection(&info.socket_id).is_some());
    assert!(hub.connection("1.999999").is_none());
}

#[test]
fn fan_out_shares_one_frame_and_honours_exclusion() {
    let hub = hub();
    let app = hub.default_app();
    let a = subscriber(&hub, "c", Protocol::Pusher);
    let b = subscriber(&hub, "c", Protocol::PoussrV1);
    assert_eq!(hub.publish(&app, &publish("c", "e")).ready(), Some(2));
    let fa = queued(&a).pop().unwrap();
    let fb = queued(&b).pop().unwrap();
    assert_eq!(fa.payload(), br#"{"event":"e","channel":"c","data":"{\"x\":1}"}"#);
    // The same bytes, header included, not a copy: both frames point at one buffer.
    assert_eq!(fa.wire().as_ptr(), fb.wire().as_ptr());
    let mut excluding = publish("c", "e2");
    excluding.except = Some(a.socket_id.clone());
    assert_eq!(hub.publish(&app, &excluding).ready(), Some(1));
    assert!(queued(&a).is_empty());
    assert_eq!(queued(&b).len(), 1);
    // An id this hub did not give out (another hub's connection) excludes nobody here.
    let mut elsewhere = publish("c", "e3");
    let prefix: u32 = a.socket_id.split('.').next().unwrap().parse().unwrap();
    elsewhere.except = Some(format!("{}.{}", prefix + 1, a.number).into());
    assert_eq!(hub.publish(&app, &elsewhere).ready(), Some(2));
    // Nor does the number written another way: an id is compared as the string the hub gave out.
    for other in
        [format!("{prefix}.0{}", a.number), format!("{prefix}.+{}", a.number), format!("0{prefix}.{}", a.number)]
    {
        elsewhere.except = Some(other.into());
        assert_eq!(hub.publish(&app, &elsewhere).ready(), Some(2));
        assert!(hub.connection(elsewhere.except.as_deref().unwrap()).is_none());
    }
}

#[test]
fn empty_channels_are_removed() {
    let hub = hub();
    let app = hub.default_app();
    let a = hub.open(app.clone(), peer(), None, Protocol::Pusher).unwrap();
    hub.subscribe(&a, &name("c"), None).unwrap();
    assert_eq!(hub.channels(&app).len(), 1);
    assert!(hub.unsubscribe(&a, &name("c")));
    assert!(!hub.unsubscribe(&a, &name("c")), "leaving twice is harmless");
    assert!(hub.channels(&app).is_empty());
    hub.subscribe(&a, &name("d"), None).unwrap();
    hub.close(&a, ClosedBy::Client(Some(1000)), "bye");
    assert!(hub.channels(&app).is_empty());
    assert_eq!(hub.connection_count(), 0);
    hub.close(&a, ClosedBy::Client(Some(1000)), "again");
    assert_eq!(hub.connection_count(), 0, "closing twice is harmless");
}

#[test]
fn channel_stats_count_events_and_deliveries() {
    let hub = hub();
    let app = hub.default_app();
    for _ in 0..2 {
        subscriber(&hub, "c", Protocol::Pusher);
    }
    hub.publish(&app, &publish("c", "1"));
    hub.publish(&app, &publish("c", "2"));
    let info = hub.channel(&app, &name("c")).unwrap();
    assert_eq!((info.subscription_count, info.events, info.deliveries), (2, 2, 4));
    assert_eq!(info.kind, ChannelKind::Public);
    assert!(info.last_event_ms.is_some());
    let stats = hub.stats();
    assert_eq!((stats.connections, stats.channels, stats.events_published, stats.deliveries), (2, 1, 2, 4));
}

#[test]
fn a_full_queue_kicks_the_connection_with_4100() {
    let hub = hub_with(|l| l.send_queue_frames = 2);
    let app = hub.default_app();
    let a = subscriber(&hub, "c", Protocol::Pusher);
    assert_eq!(hub.publish(&app, &publish("c", "1")).ready(), Some(1));
    assert_eq!(hub.publish(&app, &publish("c", "2")).ready(), Some(1));
    assert_eq!(hub.publish(&app, &publish("c", "3")).ready(), Some(0), "not counted as delivered");
    assert_eq!(a.pending_kick(), Some(CloseCode::OverCapacity));
}

#[test]
fn the_connection_quota_is_enforced() {
    let hub = hub_with(|l| l.max_connections = 1);
    let a = hub.open(hub.default_app(), peer(), None, Protocol::Pusher).unwrap();
    assert_eq!(hub.open(hub.default_app(), peer(), None, Protocol::Pusher).err(), Some(OpenError::OverQuota));
    hub.close(&a, ClosedBy::Lost, "gone");
    assert!(hub.open(hub.default_app(), peer(), None, Protocol::Pusher).is_ok());
}

#[test]
fn shutdown_kicks_everyone_with_4200_and_refuses_newcomers() {
    let hub = hub();
    let a = hub.open(hub.default_app(), peer(), None, Protocol::Pusher).unwrap();
    hub.begin_shutdown();
    assert_eq!(a.pending_kick(), Some(CloseCode::Restarting));
    assert_eq!(hub.open(hub.default_app(), peer(), None, Protocol::Pusher).err(), Some(OpenError::ShuttingDown));
    assert_eq!(hub.subscribe(&a, &name("c"), None), Err(SubscribeError::ShuttingDown));
}

#[test]
fn the_monitor_feed_reports_the_life_of_a_connection() {
    let hub = hub();
    let app = hub.default_app();
    let mut feed = hub.monitor().subscribe();
    let a = hub.open(app.clone(), peer(), Some("ua"), Protocol::PoussrV1).unwrap();
    hub.subscribe(&a, &name("c"), None).unwrap();
    hub.publish(&app, &publish("c", "hello"));
    hub.unsubscribe(&a, &name("c"));
    hub.close(&a, ClosedBy::Hub(CloseCode::Restarting), "restart");
    let events: Vec<serde_json::Value> =
        std::iter::from_fn(|| feed.try_recv().ok()).map(|e| serde_json::to_value(e).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["connection_opened", "subscribed", "event_published", "unsubscribed", "connection_closed"]);
    assert_eq!(events[0]["protocol"], "poussr_v1");
    assert_eq!(events[0]["remote"], "10.0.0.7:5000");
    assert_eq!(events[2]["event"], "hello");
    assert_eq!(events[2]["channel"], "c");
    assert_eq!(events[2]["delivered"], 1);
    assert_eq!(events[2]["source"], "api");
    assert_eq!(events[4]["code"], 4200);
    assert_eq!(events[4]["reason"], "restart");
}

#[test]
fn an_unwatched_monitor_builds_nothing() {
    let hub = hub();
    assert!(!hub.monitor().is_watched());
    let mut built = false;
    hub.monitor().emit(|| {
        built = true;
        MonitorEvent::Error { at_ms: 0, socket_id: None, code: None, message: String::new() }
    });
    assert!(!built);
    let _viewer = hub.monitor().subscribe();
    assert!(hub.monitor().is_watched());
}

#[test]
fn a_lagging_viewer_is_told_how_many_events_it_missed() {
    let hub = hub();
    let app = hub.default_app();
    let mut feed = hub.monitor().subscribe();
    for _ in 0..(crate::monitor::MONITOR_CAPACITY + 10) {
        hub.publish(&app, &publish("c", "e"));
    }
    match feed.try_recv() {
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 10),
        other => panic!("expected Lagged, got {other:?}"),
    }
}

#[test]
fn a_closed_connection_leaves_nothing_behind() {
    // What the soak looks for over half an hour, checked exactly: after a connection has joined every kind
    // of channel, signed in, sent a client event and closed, the hub holds no reference to it and no
    // entry for its channels, user or address.
    let hub = hub();
    let app = hub.default_app();
    let stay = hub.open(app.clone(), peer(), None, Protocol::Pusher).unwrap();
    hub.subscribe(&stay, &name("private-chat"), None).unwrap();
    for round in 0..50 {
        let conn = hub.open(app.clone(), peer(), None, Protocol::Pusher).unwrap();
        let member = Member { user_id: Arc::from(format!("u{round}")), user_info: serde_json::json!({"n": round}) };
        hub.subscribe(&conn, &name("presence-room"), Some(member)).unwrap();
        hub.subscribe(&conn, &name(&format!("public-{round}")), None).unwrap();
        hub.subscribe(&conn, &name("private-chat"), None).unwrap();
        hub.sign_in(&conn, &format!("u{round}")).unwrap();
        hub.client_event(&conn, &name("private-chat"), "client-x", "{}").unwrap();
        hub.publish(&app, &publish("presence-room", "e"));
        hub.close(&conn, ClosedBy::Client(Some(1000)), "bye");
        assert_eq!(Arc::strong_count(&conn), 1, "round {round}: the hub still holds the connection");
    }
    assert_eq!(hub.connection_count(), 1);
    assert_eq!(hub.shared.registry.open_from(peer().ip()), Some(1));
    assert_eq!(lock(&app.channels).len(), 1, "only the channel still occupied is kept");
    assert!(lock(&app.users).is_empty());
    hub.close(&stay, ClosedBy::Client(Some(1000)), "bye");
    assert_eq!(hub.shared.registry.open_from(peer().ip()), None, "no entry is left for the address");
    assert!(lock(&app.channels).is_empty());
}

#[test]
fn a_subscriber_of_several_channels_gets_their_events_in_the_order_they_were_published() {
    let hub = hub();
    let app = hub.default_app();
    let a = hub.open(app.clone(), peer(), None, Protocol::Pusher).unwrap();
    for channel in ["x", "y", "z"] {
        hub.subscribe(&a, &name(channel), None).unwrap();
    }
    let order = ["z", "x", "y", "x", "z", "z", "y", "x"];
    for (i, channel) in order.iter().enumerate() {
        hub.publish(&app, &publish(channel, &format!("e{i}")));
    }
    let got: Vec<String> = queued(&a)
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(&f.to_text()).unwrap();
            format!("{}:{}", v["channel"].as_str().unwrap(), v["event"].as_str().unwrap())
        })
        .collect();
    let want: Vec<String> = order.iter().enumerate().map(|(i, c)| format!("{c}:e{i}")).collect();
    assert_eq!(got, want);
    assert!(queued(&a).is_empty(), "each frame is taken once");
}

#[test]
fn a_frame_is_let_go_once_every_subscriber_it_is_for_has_taken_it() {
    let hub = hub();
    let app = hub.default_app();
    let a = subscriber(&hub, "c", Protocol::Pusher);
    let b = subscriber(&hub, "c", Protocol::Pusher);
    let ch = lock(&app.channels).get(&name("c")).cloned().unwrap();
    hub.publish(&app, &Publish::new(vec![name("c")], "e", "{}", Some(&b.socket_id), EventSource::Api));
    hub.publish(&app, &publish("c", "f"));
    assert_eq!(lock(&ch.ring).len(), 2);
    assert_eq!(queued(&a).len(), 2);
    assert_eq!(lock(&ch.ring).len(), 1, "the first was for `a` alone");
    assert_eq!(queued(&b).len(), 1);
    assert_eq!(lock(&ch.ring).len(), 0);
    // A subscriber that leaves with frames untaken does not keep them.
    hub.publish(&app, &publish("c", "g"));
    assert_eq!(queued(&a).len(), 1);
    hub.unsubscribe(&b, &name("c"));
    assert_eq!(lock(&ch.ring).len(), 0);
}
