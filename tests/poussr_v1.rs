//! Poussr v1: the original subscribe and delivery frames over a real WebSocket, and REST publishing.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{Value, json};

fn publish(channel: &str, query: &str, body: &str) -> Request<Body> {
    Request::post(format!("/v1/channels/{channel}/events{query}")).body(Body::from(body.to_owned())).unwrap()
}

async fn v1_subscriber(hub: &TestHub, path: &str, subscribe: &str) -> Ws {
    let mut ws = hub.ws(path).await;
    send_text(&mut ws, subscribe).await;
    assert_eq!(next_text(&mut ws).await, r#"{"event":"poussr:subscription_succeeded","channel":"users"}"#);
    ws
}

#[tokio::test]
async fn the_original_client_frames_work_on_both_paths() {
    let hub = TestHub::start().await;
    // data as a JSON string, as the original client sends it, on `/`;
    let mut a = v1_subscriber(&hub, "/", r#"{"event":"poussr:subscribe","data":"{\"channel\":\"users\"}"}"#).await;
    // data as an object, as the original README shows it, on `/v1/ws`.
    let mut b = v1_subscriber(&hub, "/v1/ws", r#"{"event":"poussr:subscribe","data":{"channel":"users"}}"#).await;
    let (status, _, body) = hub.request(publish("users", "?name=newuser", "{'name': 'Fred'}")).await;
    assert_eq!((status, body.as_str()), (StatusCode::CREATED, ""));
    for ws in [&mut a, &mut b] {
        let frame = next_json(ws).await;
        assert_eq!(frame, json!({"channel":"users","event":"newuser","data":"{'name': 'Fred'}"}));
    }
    hub.stop().await;
}

#[tokio::test]
async fn unsubscribe_and_the_misspelled_alias_stop_delivery() {
    let hub = TestHub::start().await;
    for event in ["poussr:unsubscribe", "poussr::unsusbscribe"] {
        let mut ws = v1_subscriber(&hub, "/v1/ws", r#"{"event":"poussr:subscribe","data":{"channel":"users"}}"#).await;
        send_json(&mut ws, json!({"event":"poussr:subscribe","data":{"channel":"other"}})).await;
        assert_eq!(next_json(&mut ws).await["channel"], "other");
        send_json(&mut ws, json!({"event":event,"data":{"channel":"users"}})).await;
        // v1 has no reply to an unsubscribe; the hub handles a connection's frames in order, so the reply to
        // a subscribe sent after it shows it has been handled.
        send_json(&mut ws, json!({"event":"poussr:subscribe","data":{"channel":"marker"}})).await;
        assert_eq!(next_text(&mut ws).await, r#"{"event":"poussr:subscription_succeeded","channel":"marker"}"#);
        assert_eq!(hub.request(publish("users", "?name=gone", "1")).await.0, StatusCode::CREATED);
        assert_eq!(hub.request(publish("other", "?name=kept", "2")).await.0, StatusCode::CREATED);
        // Both were queued before this one is read: `gone` would have come first.
        assert_eq!(next_json(&mut ws).await["event"], "kept", "{event}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn pusher_and_v1_clients_share_the_default_app() {
    let hub = TestHub::start().await;
    let mut v1 = v1_subscriber(&hub, "/v1/ws", r#"{"event":"poussr:subscribe","data":{"channel":"users"}}"#).await;
    let (mut pusher, _) = hub.subscriber("users").await;
    hub.trigger("users", "from-api", "a").await;
    hub.request(publish("users", "?name=from-v1", "b")).await;
    for ws in [&mut v1, &mut pusher] {
        assert_eq!(next_json(ws).await["event"], "from-api");
        assert_eq!(next_json(ws).await["event"], "from-v1");
    }
    hub.stop().await;
}

#[tokio::test]
async fn bad_v1_frames_get_poussr_error_and_the_socket_stays_open() {
    let hub = TestHub::start().await;
    let mut ws = hub.ws("/v1/ws").await;
    for bad in [
        "nope",
        r#"{"event":"poussr:publish"}"#,
        r#"{"event":"poussr:subscribe","data":"users"}"#,
        r#"{"event":"poussr:subscribe","data":{"channel":"bad name"}}"#,
        r#"{"event":"poussr:subscribe","data":{"channel":"private-x"}}"#,
    ] {
        send_text(&mut ws, bad).await;
        let err: Value = next_json(&mut ws).await;
        assert_eq!(err["event"], "poussr:error", "{bad}");
        assert_eq!(err["data"]["code"], 4000);
        assert!(!err["data"]["message"].as_str().unwrap().is_empty());
    }
    send_json(&mut ws, json!({"event":"poussr:subscribe","data":{"channel":"users"}})).await;
    assert_eq!(next_json(&mut ws).await["event"], "poussr:subscription_succeeded");
    hub.stop().await;
}

#[tokio::test]
async fn publish_errors_are_json_with_the_right_status() {
    let hub = TestHub::start().await;
    let cases = [
        (publish("users", "", "x"), StatusCode::BAD_REQUEST, "name"),
        (publish("users", "?name=", "x"), StatusCode::BAD_REQUEST, "name"),
        (publish("bad%20name", "?name=e", "x"), StatusCode::BAD_REQUEST, "channel"),
        (publish("users", "?name=e", &"x".repeat(10 * 1024 + 1)), StatusCode::PAYLOAD_TOO_LARGE, "limit"),
        (
            Request::post("/v1/channels/users/events?name=e").body(Body::from(vec![0xff, 0xfe])).unwrap(),
            StatusCode::BAD_REQUEST,
            "UTF-8",
        ),
    ];
    for (req, want, mention) in cases {
        let (status, json, _) = hub.request(req).await;
        assert_eq!(status, want, "{json}");
        assert!(json["error"].as_str().unwrap().contains(mention), "{json}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn publishing_from_another_machine_needs_the_secret() {
    let hub = TestHub::start().await;
    let lan = "192.168.1.50:40000".parse().unwrap();
    let (status, json, _) = hub.request_from(lan, publish("users", "?name=e", "x")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(json["error"].as_str().unwrap().contains("Authorization: Bearer"));
    let mut req = publish("users", "?name=e", "x");
    req.headers_mut().insert("authorization", "Bearer wrong".parse().unwrap());
    assert_eq!(hub.request_from(lan, req).await.0, StatusCode::UNAUTHORIZED);
    let mut req = publish("users", "?name=e", "x");
    req.headers_mut().insert("authorization", "Bearer testsecret".parse().unwrap());
    assert_eq!(hub.request_from(lan, req).await.0, StatusCode::CREATED);
    // IPv6 loopback and IPv4-mapped loopback count as this machine.
    for local in ["[::1]:40000", "[::ffff:127.0.0.1]:40000"] {
        assert_eq!(
            hub.request_from(local.parse().unwrap(), publish("users", "?name=e", "x")).await.0,
            StatusCode::CREATED
        );
    }
    hub.stop().await;

    let hub = TestHub::with(|c| c.allow_anonymous_publish = true).await;
    assert_eq!(hub.request_from(lan, publish("users", "?name=e", "x")).await.0, StatusCode::CREATED);
    hub.stop().await;
}
