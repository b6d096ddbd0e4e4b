//! The limits that protect the hub from its clients, each crossed over real sockets: connections per
//! address, the handshake (slow-loris) and request timeouts, the publishing rate and the origin allowlist.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A Pusher handshake from the local address `from`.
async fn pusher_from(hub: &TestHub, from: [u8; 4]) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    hub.ws_over(socket, &format!("/app/{}?protocol=7", hub.app.key)).await
}

/// Far longer than the 1 s timeouts the tests below configure, and far shorter than the defaults (10 s to
/// send a request's headers, 30 s to send the rest and be answered): a connection the hub closes within it
/// was closed by the configured timeout, not by the default one.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(6);

/// Reads from `stream` until the hub closes it, at most until [`CUT_OFF_WITHIN`] after `since`; returns
/// what the hub sent and how long after `since` it closed.
///
/// Take `since` before connecting: the hub's timers start once it has accepted the connection, so the time
/// measured from then is never shorter than the timeout, however late this task gets to run.
async fn read_to_close(stream: &mut TcpStream, since: Instant) -> (String, Duration) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return since.elapsed(),
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed_after = tokio::time::timeout_at((since + CUT_OFF_WITHIN).into(), read)
        .await
        .unwrap_or_else(|_| panic!("the hub did not close the connection within {CUT_OFF_WITHIN:?}"));
    (String::from_utf8_lossy(&received).into_owned(), closed_after)
}

#[tokio::test]
async fn connections_per_address_are_limited_and_the_extra_one_is_told_to_retry_later() {
    let hub = TestHub::with(|c| c.limits.max_connections_per_address = 2).await;
    let mut first = pusher_from(&hub, [127, 0, 0, 1]).await;
    assert_eq!(next_json(&mut first).await["event"], "pusher:connection_established");
    let mut second = pusher_from(&hub, [127, 0, 0, 1]).await;
    assert_eq!(next_json(&mut second).await["event"], "pusher:connection_established");

    let mut third = pusher_from(&hub, [127, 0, 0, 1]).await;
    let (frames, code) = read_until_close(&mut third).await;
    assert_eq!(code, Some(4100));
    assert_eq!(frames[0]["event"], "pusher:error");
    assert_eq!(frames[0]["data"]["code"], 4100);
    let message = frames[0]["data"]["message"].as_str().unwrap();
    assert!(message.contains("127.0.0.1") && message.contains("2 connections"), "{message}");

    // Another address is not concerned, and a place freed is a place again.
    let mut other = pusher_from(&hub, [127, 0, 0, 2]).await;
    assert_eq!(next_json(&mut other).await["event"], "pusher:connection_established");
    drop(first);
    eventually("the hub to release the closed connection's place", || hub.hub.connection_count() == 2).await;
    let mut again = pusher_from(&hub, [127, 0, 0, 1]).await;
    assert_eq!(next_json(&mut again).await["event"], "pusher:connection_established");
    assert_eq!(hub.hub.closes_by_code().get(&4100), Some(&1));
    hub.stop().await;
}

#[tokio::test]
async fn a_handshake_sent_byte_by_byte_is_cut_off_at_the_handshake_timeout() {
    let hub = TestHub::with(|c| c.limits.handshake_timeout_secs = 1).await;
    // A slow-loris client: a header line every 300 ms, never the blank line that ends them, until the hub
    // ends the connection. The pauses are the behaviour under test: a client this slow is cut off even
    // though it never stops sending.
    let started = Instant::now();
    let mut slow = TcpStream::connect(hub.addr).await.unwrap();
    let (mut from_hub, mut to_hub) = slow.split();
    to_hub.write_all(b"GET /app/testkey?protocol=7 HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut trickle = tokio::time::interval(Duration::from_millis(300));
    let mut buf = [0u8; 1024];
    let mut line = 0;
    let cut = async {
        loop {
            tokio::select! {
                // The end of the stream (or a reset) from the hub is the cut, whatever it sent before it.
                read = from_hub.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) {
                    return started.elapsed();
                },
                _ = trickle.tick() => {
                    // A write may fail once the hub has gone; the read above sees that.
                    let _ = to_hub.write_all(format!("X-Slow-{line}: y\r\n").as_bytes()).await;
                    line += 1;
                }
            }
        }
    };
    let elapsed = tokio::time::timeout_at((started + CUT_OFF_WITHIN).into(), cut)
        .await
        .unwrap_or_else(|_| panic!("the slow handshake was still open after {CUT_OFF_WITHIN:?}"));
    assert!(elapsed >= Duration::from_millis(900), "cut off after {elapsed:?}, before the timeout");

    // A connection that sends nothing at all is closed too, and the hub still answers others.
    let started = Instant::now();
    let mut silent = TcpStream::connect(hub.addr).await.unwrap();
    let (_, waited) = read_to_close(&mut silent, started).await;
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}, before the timeout");
    let (mut ws, _) = hub.pusher().await;
    send_json(&mut ws, json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(next_json(&mut ws).await["event"], "pusher:pong");
    hub.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_handshake_timeout() {
    let hub = TestHub::with(|c| c.limits.handshake_timeout_secs = 1).await;
    let started = Instant::now();
    let mut conn = TcpStream::connect(hub.addr).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // Answered, then closed by the configured timeout (within CUT_OFF_WITHIN), not the default one.
    let (received, waited) = read_to_close(&mut conn, started).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(
        waited >= Duration::from_millis(900),
        "the idle connection was closed after {waited:?}, before the timeout"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_gets_408() {
    let hub = TestHub::with(|c| c.limits.http_request_timeout_secs = 1).await;
    let started = Instant::now();
    let mut conn = TcpStream::connect(hub.addr).await.unwrap();
    let head = "POST /v1/channels/news/events?name=e HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(b"{\"partial\":").await.unwrap();
    let (received, waited) = read_to_close(&mut conn, started).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains("not received and answered within 1 s"), "{received}");
    assert!(waited >= Duration::from_millis(900), "answered after {waited:?}, before the timeout");
    hub.stop().await;
}

#[tokio::test]
async fn publishing_faster_than_the_app_may_gets_429_with_retry_after() {
    // Two a second: a refill takes 500 ms, far longer than the requests below.
    let hub = TestHub::with(|c| c.limits.max_publish_per_second = 2).await;
    let (mut sub, _) = hub.subscriber("news").await;
    // Connected before the allowance is spent, so that only the request itself has to go within those 500 ms.
    let mut conn = TcpStream::connect(hub.addr).await.unwrap();
    let path = format!("/apps/{}/events", hub.app.id);
    let body = |i: usize| json!({"name": "tick", "channel": "news", "data": i.to_string()}).to_string();
    for i in 0..2 {
        let (status, json) = hub.api("POST", &path, &[], &body(i)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }
    let (status, json) = hub.api("POST", &path, &[], &body(2)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("2 events per second"), "{error}");

    // The Retry-After header, over a real socket, on Poussr v1 publishing (which shares the allowance).
    let asked = Instant::now();
    conn.write_all(
        b"POST /v1/channels/news/events?name=e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await
    .unwrap();
    let (received, _) = read_to_close(&mut conn, asked).await;
    assert!(received.starts_with("HTTP/1.1 429"), "{received}");
    assert!(received.to_ascii_lowercase().contains("retry-after: 1\r\n"), "{received}");

    // Refused events are not delivered: the subscriber sees exactly the two accepted ones.
    for i in 0..2 {
        assert_eq!(next_json(&mut sub).await["data"], i.to_string());
    }
    let sentinel = hub.sentinel_on("news");
    assert_next_is_sentinel(&mut sub, &sentinel).await;

    // A batch larger than a second's allowance can never pass; after a second, a single event does.
    let batch: Vec<_> = (0..3).map(|i| json!({"name": "tick", "channel": "news", "data": format!("b{i}")})).collect();
    let batch_path = format!("/apps/{}/batch_events", hub.app.id);
    let batch_body = json!({ "batch": batch }).to_string();
    // Time must pass here: the allowance comes back at two events a second, and after 1.1 s it is whole.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = hub.api("POST", &batch_path, &[], &batch_body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, json) = hub.api("POST", &path, &[], &body(3)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // The next frame: the refused batch queued nothing before it.
    assert_eq!(next_json(&mut sub).await["data"], "3");
    hub.stop().await;
}

#[tokio::test]
async fn origins_outside_the_allowlist_get_403_before_the_upgrade() {
    let hub = TestHub::with(|c| {
        c.allowed_origins = vec!["http://dashboard.lan:8080".into(), "https://*.plant.example".into()]
    })
    .await;
    let handshake = |origin: Option<&'static str>| {
        let url = hub.url(&format!("/app/{}?protocol=7", hub.app.key));
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut request = url.into_client_request().unwrap();
            if let Some(origin) = origin {
                request.headers_mut().insert("origin", origin.parse().unwrap());
            }
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await.expect("answered in time")
        }
    };
    for origin in ["http://evil.example", "http://dashboard.lan", "https://plant.example", "null"] {
        match handshake(Some(origin)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
                let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
                assert!(body.contains("allowed_origins") && body.contains(origin), "{body}");
            }
            other => panic!("{origin} was not refused: {other:?}"),
        }
    }
    for origin in [Some("http://dashboard.lan:8080"), Some("https://line2.plant.example"), None] {
        let (mut ws, _) = handshake(origin).await.unwrap_or_else(|e| panic!("{origin:?} refused: {e}"));
        assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    }
    // The HTTP API does not depend on the page's origin: it is signed.
    let req = Request::builder().uri("/health").header("origin", "http://evil.example").body(Body::empty()).unwrap();
    assert_eq!(hub.request(req).await.0, StatusCode::OK);
    hub.stop().await;
}

#[tokio::test]
async fn a_malformed_origin_rule_is_refused_at_start_with_the_reason() {
    let config = poussr::Config {
        apps: vec![test_app()],
        allowed_origins: vec!["intranet.lan".into()],
        ..poussr::Config::default()
    };
    let error = poussr::adapter::hub(&config).unwrap_err().to_string();
    assert!(error.contains("intranet.lan") && error.contains("needs a scheme"), "{error}");
}
