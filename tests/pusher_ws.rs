//! Pusher protocol 7 over a real WebSocket, asserting the exact JSON on the wire.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connection_established_carries_socket_id_and_activity_timeout() {
    let hub = TestHub::start().await;
    let mut ws = hub.ws("/app/testkey?protocol=7&client=js&version=8.4.0").await;
    let text = next_text(&mut ws).await;
    let frame: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(frame["event"], "pusher:connection_established");
    // `data` is a JSON string (double encoding), as every Pusher client expects.
    let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["activity_timeout"], 120);
    let id = data["socket_id"].as_str().unwrap();
    let (a, b) = id.split_once('.').unwrap();
    assert!(a.chars().all(|c| c.is_ascii_digit()) && b.chars().all(|c| c.is_ascii_digit()), "{id}");
    assert_eq!(
        text,
        format!(
            r#"{{"event":"pusher:connection_established","data":"{{\"socket_id\":\"{id}\",\"activity_timeout\":120}}"}}"#
        )
    );
    hub.stop().await;
}

#[tokio::test]
async fn socket_ids_are_unique() {
    let hub = TestHub::start().await;
    let (_a, id_a) = hub.pusher().await;
    let (_b, id_b) = hub.pusher().await;
    assert_ne!(id_a, id_b);
    hub.stop().await;
}

#[tokio::test]
async fn subscribe_then_receive_an_api_event_in_canonical_form() {
    let hub = TestHub::start().await;
    let (mut ws, _) = hub.pusher().await;
    send_text(&mut ws, r#"{"event":"pusher:subscribe","data":{"channel":"orders"}}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"orders","data":"{}"}"#
    );
    hub.trigger("orders", "order-created", r#"{"id":7}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"event":"order-created","channel":"orders","data":"{\"id\":7}"}"#);
    hub.stop().await;
}

#[tokio::test]
async fn ping_gets_pong() {
    let hub = TestHub::start().await;
    let (mut ws, _) = hub.pusher().await;
    send_text(&mut ws, r#"{"event":"pusher:ping","data":{}}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"event":"pusher:pong","data":{}}"#);
    hub.stop().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_is_harmless_twice() {
    let hub = TestHub::start().await;
    let (mut ws, _) = hub.subscriber("a").await;
    send_json(&mut ws, json!({"event":"pusher:subscribe","data":{"channel":"b"}})).await;
    assert_eq!(next_json(&mut ws).await["channel"], "b");
    for _ in 0..2 {
        send_json(&mut ws, json!({"event":"pusher:unsubscribe","data":{"channel":"a"}})).await;
    }
    // A ping round trip proves the unsubscribes were handled before the events below.
    send_text(&mut ws, r#"{"event":"pusher:ping","data":{}}"#).await;
    assert_eq!(next_json(&mut ws).await["event"], "pusher:pong");
    hub.trigger("a", "gone", "1").await;
    hub.trigger("b", "kept", "2").await;
    let next = next_json(&mut ws).await;
    assert_eq!((next["channel"].as_str(), next["event"].as_str()), (Some("b"), Some("kept")));
    assert!(hub.hub.channel(&hub.hub.default_app(), &poussr::protocol::ChannelName::parse("a").unwrap()).is_none());
    hub.stop().await;
}

#[tokio::test]
async fn socket_id_exclusion_skips_only_that_connection() {
    let hub = TestHub::start().await;
    let (mut a, id_a) = hub.subscriber("room").await;
    let (mut b, _) = hub.subscriber("room").await;
    let body = json!({"name":"e","channel":"room","data":"x","socket_id":id_a}).to_string();
    let (status, _) = hub.api("POST", "/apps/4242/events", &[], &body).await;
    assert_eq!(status, 200);
    hub.trigger("room", "after", "y").await;
    assert_eq!(next_json(&mut b).await["event"], "e");
    assert_eq!(next_json(&mut b).await["event"], "after");
    // `a` gets only the second event: the first was excluded.
    assert_eq!(next_json(&mut a).await["event"], "after");
    hub.stop().await;
}

#[tokio::test]
async fn one_event_to_several_channels_reaches_each() {
    let hub = TestHub::start().await;
    let (mut a, _) = hub.subscriber("a").await;
    let (mut b, _) = hub.subscriber("b").await;
    let body = json!({"name":"multi","channels":["a","b"],"data":"d"}).to_string();
    let (status, json) = hub.api("POST", "/apps/4242/events", &[], &body).await;
    assert_eq!((status.as_u16(), json), (200, json!({})));
    assert_eq!(next_json(&mut a).await, json!({"event":"multi","channel":"a","data":"d"}));
    assert_eq!(next_json(&mut b).await, json!({"event":"multi","channel":"b","data":"d"}));
    hub.stop().await;
}

async fn refused_with(hub: &TestHub, path: &str) -> (Value, Option<u16>) {
    let mut ws = hub.ws(path).await;
    let (frames, code) = read_until_close(&mut ws).await;
    assert_eq!(frames.len(), 1, "one error frame before the close: {frames:?}");
    (frames[0].clone(), code)
}

#[tokio::test]
async fn handshake_errors_send_pusher_error_then_close_with_the_same_code() {
    let hub = TestHub::start().await;
    for (path, code) in [
        ("/app/wrongkey?protocol=7", 4001),
        ("/nope", 4005),
        ("/app/testkey/extra?protocol=7", 4005),
        ("/app/testkey?protocol=abc", 4006),
        ("/app/testkey?protocol=3", 4007),
        ("/app/testkey?protocol=8", 4007),
        ("/app/testkey", 4008),
    ] {
        let (frame, close) = refused_with(&hub, path).await;
        assert_eq!(frame["event"], "pusher:error", "{path}");
        assert_eq!(frame["data"]["code"], code, "{path}: {frame}");
        assert!(!frame["data"]["message"].as_str().unwrap().is_empty());
        assert_eq!(close, Some(code), "{path}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_disabled_app_is_refused_with_4003() {
    let hub = TestHub::with(|c| c.apps[0].enabled = false).await;
    let (frame, close) = refused_with(&hub, "/app/testkey?protocol=7").await;
    assert_eq!((frame["data"]["code"].as_u64(), close), (Some(4003), Some(4003)));
    hub.stop().await;
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_connection_stays_open() {
    let hub = TestHub::start().await;
    let (mut ws, _) = hub.pusher().await;
    for bad in [
        "{not json",
        "[1,2,3]",
        r#"{"event":"pusher:foo","data":{}}"#,
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"x","data":"{}"}"#,
        r#"{"event":"pusher:subscribe","data":{}}"#,
        r#"{"event":"something-else"}"#,
        r#"{"event":"client-x","channel":"public","data":{}}"#,
    ] {
        send_text(&mut ws, bad).await;
        let err = next_json(&mut ws).await;
        assert_eq!(err["event"], "pusher:error", "{bad}");
        assert!(err["data"]["code"].is_null(), "a non-fatal error has no close code: {err}");
        assert!(!err["data"]["message"].as_str().unwrap().is_empty());
    }
    ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["event"], "pusher:error");
    send_text(&mut ws, r#"{"event":"pusher:ping","data":{}}"#).await;
    assert_eq!(next_json(&mut ws).await["event"], "pusher:pong");
    hub.stop().await;
}

#[tokio::test]
async fn invalid_channel_names_get_a_subscription_error_400() {
    let hub = TestHub::start().await;
    let (mut ws, _) = hub.pusher().await;
    for name in ["bad name!", &"a".repeat(165), ""] {
        send_json(&mut ws, json!({"event":"pusher:subscribe","data":{"channel":name}})).await;
        let err = next_json(&mut ws).await;
        assert_eq!(err["event"], "pusher:subscription_error");
        assert_eq!(err["channel"], name);
        assert_eq!(err["data"]["status"], 400);
        assert!(!err["data"]["error"].as_str().unwrap().is_empty());
    }
    hub.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_after_an_error() {
    let hub = TestHub::with(|c| c.limits.max_message_bytes = 1024).await;
    let (mut ws, _) = hub.pusher().await;
    send_text(&mut ws, &format!(r#"{{"event":"client-x","channel":"c","data":"{}"}}"#, "x".repeat(2000))).await;
    let (frames, code) = read_until_close(&mut ws).await;
    assert_eq!(frames[0]["event"], "pusher:error");
    assert_eq!(frames[0]["data"]["code"], 1009);
    assert_eq!(code, Some(1009));
    hub.stop().await;
}

/// A client frame header (masked, with a zero mask so the payload goes as it is) for `len` bytes.
fn client_header(opcode: u8, len: usize) -> Vec<u8> {
    let mut h = vec![0x80 | opcode, 0x80 | 127];
    h.extend_from_slice(&(len as u64).to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// Reads one server frame (unmasked) from a raw socket: its opcode and payload.
async fn server_frame(tcp: &mut tokio::net::TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await?;
    let len = match head[1] & 0x7f {
        126 => u64::from(tcp.read_u16().await?),
        127 => tcp.read_u64().await?,
        n => u64::from(n),
    };
    let mut payload = vec![0; len as usize];
    tcp.read_exact(&mut payload).await?;
    Ok((head[0] & 0x0f, payload))
}

#[tokio::test]
async fn a_client_still_sending_a_refused_frame_gets_the_close_and_an_orderly_end() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = TestHub::start().await;
    let mut tcp = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let handshake = format!(
        "GET /app/{}?protocol=7 HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        hub.app.key, hub.addr
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        answer.push(tcp.read_u8().await.unwrap());
    }
    assert!(answer.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&answer));
    let (_, hello) = server_frame(&mut tcp).await.unwrap();
    assert!(String::from_utf8_lossy(&hello).contains("pusher:connection_established"));

    // A 2 MB frame, over the WebSocket layer's own 1 MiB limit: its header and the first 100 KB of it.
    let total = 2 * 1024 * 1024;
    let first = 100 * 1024;
    tcp.write_all(&client_header(1, total)).await.unwrap();
    tcp.write_all(&vec![b'x'; first]).await.unwrap();
    // The hub refuses it from its header: the error, then the close frame, with 1009 and the reason.
    let (opcode, error) = tokio::time::timeout(WAIT, server_frame(&mut tcp)).await.unwrap().unwrap();
    let error: Value = serde_json::from_slice(&error).unwrap();
    assert_eq!((opcode, error["data"]["code"].as_u64()), (1, Some(1009)), "{error}");
    assert!(error["data"]["message"].as_str().unwrap().contains("too large"), "{error}");
    let (opcode, close) = tokio::time::timeout(WAIT, server_frame(&mut tcp)).await.unwrap().unwrap();
    assert_eq!((opcode, u16::from_be_bytes([close[0], close[1]])), (8, 1009));
    // The client had not stopped sending: the rest of the frame goes, then its own close frame. The hub
    // reads it all, and only then ends the connection, in order: the end of the stream, not a reset.
    tcp.write_all(&vec![b'x'; total - first]).await.expect("the hub still reads after its close frame");
    let mut close = client_header(8, 2);
    close.extend_from_slice(&1009u16.to_be_bytes());
    tcp.write_all(&close).await.unwrap();
    let mut rest = Vec::new();
    let end = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await.expect("the hub ends the connection");
    assert!(end.is_ok() && rest.is_empty(), "an orderly end, not a reset: {end:?} after {} more bytes", rest.len());
    hub.stop().await;
}

#[tokio::test]
async fn over_the_connection_limit_is_refused_with_4004() {
    let hub = TestHub::with(|c| c.limits.max_connections = 2).await;
    let (_a, _) = hub.pusher().await;
    let (_b, _) = hub.pusher().await;
    let (frame, close) = refused_with(&hub, "/app/testkey?protocol=7").await;
    assert_eq!((frame["data"]["code"].as_u64(), close), (Some(4004), Some(4004)));
    assert_eq!(hub.hub.connection_count(), 2);
    hub.stop().await;
}

#[tokio::test]
async fn too_many_channels_on_one_connection_is_a_subscription_error() {
    let hub = TestHub::with(|c| c.limits.max_channels_per_connection = 2).await;
    let (mut ws, _) = hub.pusher().await;
    for (name, event) in [
        ("a", "pusher_internal:subscription_succeeded"),
        ("b", "pusher_internal:subscription_succeeded"),
        ("c", "pusher:subscription_error"),
    ] {
        send_json(&mut ws, json!({"event":"pusher:subscribe","data":{"channel":name}})).await;
        assert_eq!(next_json(&mut ws).await["event"], event, "{name}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn shutdown_closes_clients_with_4200_so_they_reconnect() {
    let hub = TestHub::start().await;
    let (mut ws, _) = hub.subscriber("a").await;
    let stopping = tokio::spawn(hub.stop());
    let (frames, code) = read_until_close(&mut ws).await;
    assert_eq!(code, Some(4200));
    assert_eq!(frames.last().unwrap()["data"]["code"], 4200);
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed_with_4201() {
    let hub = TestHub::with(|c| {
        c.limits.activity_timeout_secs = 1;
        c.limits.pong_timeout_secs = 1;
    })
    .await;
    let (mut ws, _) = hub.pusher().await;
    assert_eq!(next_text(&mut ws).await, r#"{"event":"pusher:ping","data":{}}"#);
    let (frames, code) = read_until_close(&mut ws).await;
    assert_eq!(code, Some(4201), "{frames:?}");
    hub.stop().await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let hub = TestHub::with(|c| {
        c.limits.activity_timeout_secs = 1;
        // Time for this client to be scheduled on a busy machine: it answers as soon as it runs. (Without
        // the answers, no second ping would come: the connection would be closed with 4201 instead.)
        c.limits.pong_timeout_secs = 4;
    })
    .await;
    let (mut ws, _) = hub.pusher().await;
    for _ in 0..3 {
        assert_eq!(next_json(&mut ws).await["event"], "pusher:ping");
        send_text(&mut ws, r#"{"event":"pusher:pong","data":{}}"#).await;
    }
    assert_eq!(hub.hub.connection_count(), 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_closed_with_4100_and_does_not_delay_others() {
    let hub = TestHub::with(|c| c.limits.send_queue_frames = 64).await;
    // The stalled client subscribes, then never reads again.
    let (_stalled, stalled_id) = hub.subscriber("feed").await;
    let (mut healthy, _) = hub.subscriber("feed").await;
    let data: std::sync::Arc<str> = std::sync::Arc::from("x".repeat(8 * 1024));
    let events = 2000;
    // The healthy reader keeps up, as a real subscriber on a LAN would: the events are published no more
    // than half its queue ahead of what it has read, so its queue never fills, however the threads run.
    // The stalled one falls behind without bound.
    let ahead = 32;
    let (read, mut progress) = tokio::sync::watch::channel(0);
    let reader = tokio::spawn(async move {
        for i in 0..events {
            let frame = next_json(&mut healthy).await;
            assert_eq!(frame["event"], format!("e{i}"), "in order, none lost");
            read.send_replace(i + 1);
        }
    });
    for i in 0..events {
        let caught_up = tokio::time::timeout(WAIT, progress.wait_for(|&read| i < read + ahead))
            .await
            .unwrap_or_else(|_| panic!("the healthy reader is held up: it has not read e{} in {WAIT:?}", i - ahead));
        if caught_up.is_err() {
            break; // The reader has stopped: its failure is reported below.
        }
        hub.publish_direct("feed", &format!("e{i}"), &data);
    }
    tokio::time::timeout(Duration::from_secs(20), reader).await.expect("the healthy reader is not delayed").unwrap();
    // The stalled one was closed as a slow consumer, and only it.
    eventually("the hub to close the stalled reader", || hub.hub.connection(&stalled_id).is_none()).await;
    assert_eq!(hub.hub.stats().slow_consumer_closes, 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_accepts_nothing_for_the_write_timeout_is_closed_as_a_slow_consumer() {
    // A queue far larger than what is published: only the write deadline can end this connection.
    let hub = TestHub::with(|c| {
        c.limits.send_queue_frames = 100_000;
        c.limits.write_timeout_secs = 1;
        c.limits.max_event_data_bytes = 64 * 1024;
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let (_stalled, stalled_id) = hub.subscriber_over(socket, "feed").await;
    let (mut healthy, _) = hub.subscriber("feed").await;
    let data: std::sync::Arc<str> = std::sync::Arc::from("z".repeat(64 * 1024));
    // 16 MB: more than the socket buffers between the hub and the stalled reader can hold, so the hub's
    // writes to it stop making progress; the healthy reader takes each event before the next is sent.
    let events = 250;
    for i in 0..events {
        hub.publish_direct("feed", &format!("e{i}"), &data);
        assert_eq!(next_json(&mut healthy).await["event"], format!("e{i}"));
    }
    eventually("the write deadline to close the stalled reader", || hub.hub.connection(&stalled_id).is_none()).await;
    let stats = hub.hub.stats();
    assert_eq!(stats.slow_consumer_closes, 1, "counted as a slow consumer");
    assert_eq!(hub.hub.closes_by_code().get(&4100), Some(&1));
    // The healthy reader was not held up and is still served.
    let sentinel = hub.sentinel_on("feed");
    assert_next_is_sentinel(&mut healthy, &sentinel).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_that_catches_up_sees_4100() {
    let hub = TestHub::with(|c| {
        c.limits.send_queue_frames = 8;
        c.limits.max_event_data_bytes = 64 * 1024;
    })
    .await;
    // A reader with a small receive buffer: what is in flight when the hub gives up on it stays small, so
    // that once it catches up it reaches the close frame at once, however busy the machine is (the hub
    // waits only so long for a slow reader to take its close frame).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let (mut slow, _) = hub.subscriber_over(socket, "feed").await;
    let data: std::sync::Arc<str> = std::sync::Arc::from("y".repeat(64 * 1024));
    // Events until the queue overflows: the first one the hub cannot queue closes the connection with 4100.
    // Within 300 of them (about 20 MB, more than the socket buffers and the queue hold).
    let mut queued = 0;
    while hub.publish_direct("feed", &format!("e{queued}"), &data) == 1 {
        queued += 1;
        assert!(queued < 300, "the queue did not overflow: the socket buffers took {queued} events of 64 KB");
    }
    // The client catches up as soon as that happens: the hub waits for its close frame to be taken for a
    // while (2 s), not for ever.
    let (frames, code) = read_until_close(&mut slow).await;
    let (last, events) = frames.split_last().expect("frames before the close");
    assert_eq!((last["event"].as_str(), last["data"]["code"].as_u64()), (Some("pusher:error"), Some(4100)));
    assert_eq!(code, Some(4100));
    // Not everything was delivered (the event refused at the overflow was not); what was came in order.
    assert!(events.len() <= queued, "{} events delivered, {queued} queued", events.len());
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["event"], format!("e{i}"), "in order, none lost before the close");
    }
    hub.stop().await;
}
