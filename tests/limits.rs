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
    let stream = socket.connect(hub.addr).await.unwrap();
    let url = hub.url(&format!("/app/{}?protocol=7", hub.app.key));
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds");
    ws
}

/// Reads from `stream` until the hub closes it; returns what it sent and how long that took.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await.expect("the hub closes the connection in time")
        {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&received).into_owned(), started.elapsed()),
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
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
    let deadline = Instant::now() + WAIT;
    while hub.hub.connection_count() > 2 {
        assert!(Instant::now() < deadline, "the closed connection is released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = pusher_from(&hub, [127, 0, 0, 1]).await;
    assert_eq!(next_json(&mut again).await["event"], "pusher:connection_established");
    assert_eq!(hub.hub.closes_by_code().get(&4100), Some(&1));
    hub.stop().await;
}

#[tokio::test]
async fn a_handshake_sent_byte_by_byte_is_cut_off_at_the_handshake_timeout() {
    let hub = TestHub::with(|c| c.limits.handshake_timeout_secs = 1).await;
    // A slow-loris client: a header line every 300 ms, never the blank line that ends them.
    let mut slow = TcpStream::connect(hub.addr).await.unwrap();
    slow.write_all(b"GET /app/testkey?protocol=7 HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let trickle = async {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).await.is_err() {
                return Instant::now();
            }
        }
        Instant::now()
    };
    let started = Instant::now();
    let cut = tokio::time::timeout(Duration::from_secs(10), trickle).await.expect("bounded");
    let elapsed = cut - started;
    assert!(elapsed >= Duration::from_millis(900), "cut off after {elapsed:?}, before the timeout");
    assert!(elapsed < Duration::from_secs(4), "still open after {elapsed:?}");

    // A connection that sends nothing at all is closed too, and the hub still answers others.
    let mut silent = TcpStream::connect(hub.addr).await.unwrap();
    let (_, waited) = read_to_close(&mut silent, Duration::from_secs(5)).await;
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(3), "{waited:?}");
    let (mut ws, _) = hub.pusher().await;
    send_json(&mut ws, json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(next_json(&mut ws).await["event"], "pusher:pong");
    hub.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_handshake_timeout() {
    let hub = TestHub::with(|c| c.limits.handshake_timeout_secs = 1).await;
    let mut conn = TcpStream::connect(hub.addr).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (received, waited) = read_to_close(&mut conn, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(waited < Duration::from_secs(3), "the idle connection stayed open {waited:?}");
    hub.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_gets_408() {
    let hub = TestHub::with(|c| c.limits.http_request_timeout_secs = 1).await;
    let mut conn = TcpStream::connect(hub.addr).await.unwrap();
    let head = "POST /v1/channels/news/events?name=e HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(b"{\"partial\":").await.unwrap();
    let (received, waited) = read_to_close(&mut conn, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains("not received and answered within 1 s"), "{received}");
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(3), "{waited:?}");
    hub.stop().await;
}

#[tokio::test]
async fn publishing_faster_than_the_app_may_gets_429_with_retry_after() {
    // Two a second: a refill takes 500 ms, far longer than the requests below.
    let hub = TestHub::with(|c| c.limits.max_publish_per_second = 2).await;
    let (mut sub, _) = hub.subscriber("news").await;
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
    let mut conn = TcpStream::connect(hub.addr).await.unwrap();
    conn.write_all(
        b"POST /v1/channels/news/events?name=e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await
    .unwrap();
    let (received, _) = read_to_close(&mut conn, WAIT).await;
    assert!(received.starts_with("HTTP/1.1 429"), "{received}");
    assert!(received.to_ascii_lowercase().contains("retry-after: 1\r\n"), "{received}");

    // Refused events are not delivered: the subscriber sees exactly the two accepted ones.
    for i in 0..2 {
        assert_eq!(next_json(&mut sub).await["data"], i.to_string());
    }
    assert_silent(&mut sub, Duration::from_millis(200)).await;

    // A batch larger than a second's allowance can never pass; after a second, a single event does.
    let batch: Vec<_> = (0..3).map(|i| json!({"name": "tick", "channel": "news", "data": format!("b{i}")})).collect();
    let batch_path = format!("/apps/{}/batch_events", hub.app.id);
    let batch_body = json!({ "batch": batch }).to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = hub.api("POST", &batch_path, &[], &batch_body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, json) = hub.api("POST", &path, &[], &body(3)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
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
