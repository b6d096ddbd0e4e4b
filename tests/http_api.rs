//! The signed Pusher HTTP API and `/health`, through the router, with WebSocket subscribers on a real
//! socket where delivery matters.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use poussr::protocol::signature::{md5_hex, sign};
use serde_json::json;

fn post(uri: String, body: &str) -> Request<Body> {
    Request::builder().method("POST").uri(uri).body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn a_correctly_signed_trigger_is_accepted() {
    let hub = TestHub::start().await;
    let (mut ws, _) = hub.subscriber("orders").await;
    let body = json!({"name":"e","channel":"orders","data":"{\"a\":1}"}).to_string();
    let (status, json) = hub.api("POST", "/apps/4242/events", &[], &body).await;
    assert_eq!((status, json), (StatusCode::OK, json!({})));
    assert_eq!(next_json(&mut ws).await, json!({"event":"e","channel":"orders","data":"{\"a\":1}"}));
    hub.stop().await;
}

/// Builds the signed query for `body` by hand, following the documented algorithm.
fn signed_query(path: &str, body: &str, timestamp: u64, key: &str, secret: &str) -> String {
    let q = format!("auth_key={key}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={}", md5_hex(body.as_bytes()));
    let sig = sign(secret, format!("POST\n{path}\n{q}").as_bytes());
    format!("{q}&auth_signature={sig}")
}

#[tokio::test]
async fn signature_failures_are_401_with_a_reason() {
    let hub = TestHub::start().await;
    let (mut ws, _) = hub.subscriber("orders").await;
    let path = "/apps/4242/events";
    let body = json!({"name":"e","channel":"orders","data":"x"}).to_string();
    let tampered = json!({"name":"e","channel":"orders","data":"evil"}).to_string();
    let cases = [
        ("unsigned", path.to_string(), body.clone(), "auth_key"),
        (
            "tampered body",
            format!("{path}?{}", signed_query(path, &body, now(), "testkey", "testsecret")),
            tampered,
            "body_md5",
        ),
        (
            "stale timestamp",
            format!("{path}?{}", signed_query(path, &body, now() - 700, "testkey", "testsecret")),
            body.clone(),
            "600",
        ),
        (
            "wrong key",
            format!("{path}?{}", signed_query(path, &body, now(), "otherkey", "testsecret")),
            body.clone(),
            "auth_key",
        ),
        (
            "wrong secret",
            format!("{path}?{}", signed_query(path, &body, now(), "testkey", "othersecret")),
            body.clone(),
            "signature",
        ),
    ];
    for (what, uri, body, mention) in cases {
        let (status, json, _) = hub.request(post(uri, &body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        let error = json["error"].as_str().unwrap_or_else(|| panic!("{what}: JSON error body"));
        assert!(error.contains(mention), "{what}: {error}");
    }
    // The hand-built signature itself is right: the same request, untampered, passes.
    let uri = format!("{path}?{}", signed_query(path, &body, now(), "testkey", "testsecret"));
    assert_eq!(hub.request(post(uri, &body)).await.0, StatusCode::OK);
    // Only that one event was delivered: the refused requests queued nothing before a later event.
    assert_eq!(next_json(&mut ws).await["data"], "x");
    let sentinel = hub.sentinel_on("orders");
    assert_next_is_sentinel(&mut ws, &sentinel).await;
    hub.stop().await;
}

#[tokio::test]
async fn unknown_and_disabled_apps() {
    let hub = TestHub::start().await;
    let (status, json) = hub.api("POST", "/apps/999/events", &[], "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json["error"].as_str().unwrap().contains("999"));
    hub.stop().await;
    let hub = TestHub::with(|c| c.apps[0].enabled = false).await;
    let (status, _) = hub.api("POST", "/apps/4242/events", &[], "{}").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    hub.stop().await;
}

#[tokio::test]
async fn bad_event_bodies_are_refused_with_the_right_status() {
    let hub = TestHub::start().await;
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let cases = [
        ("not json", "nope".to_owned(), 400),
        ("no name", json!({"channel":"a","data":"x"}).to_string(), 400),
        ("no data", json!({"name":"e","channel":"a"}).to_string(), 400),
        ("no channel", json!({"name":"e","data":"x"}).to_string(), 400),
        ("empty channels", json!({"name":"e","channels":[],"data":"x"}).to_string(), 400),
        ("101 channels", json!({"name":"e","channels":many,"data":"x"}).to_string(), 400),
        ("bad channel", json!({"name":"e","channel":"a b","data":"x"}).to_string(), 400),
        ("long name", json!({"name":"e".repeat(201),"channel":"a","data":"x"}).to_string(), 400),
        ("bad socket_id", json!({"name":"e","channel":"a","data":"x","socket_id":"abc"}).to_string(), 400),
        ("data over 10 KB", json!({"name":"e","channel":"a","data":"x".repeat(10 * 1024 + 1)}).to_string(), 413),
        ("unknown info", json!({"name":"e","channel":"a","data":"x","info":"foo"}).to_string(), 400),
        ("user_count on public", json!({"name":"e","channel":"a","data":"x","info":"user_count"}).to_string(), 400),
    ];
    for (what, body, want) in cases {
        let (status, json) = hub.api("POST", "/apps/4242/events", &[], &body).await;
        assert_eq!(status.as_u16(), want, "{what}: {json}");
        assert!(!json["error"].as_str().unwrap_or("").is_empty(), "{what}: {json}");
    }
    let body = "x".repeat(300 * 1024);
    let (status, json) = hub.api("POST", "/apps/4242/events", &[], &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    hub.stop().await;
}

#[tokio::test]
async fn trigger_with_info_returns_subscription_counts() {
    let hub = TestHub::start().await;
    let (_a1, _) = hub.subscriber("a").await;
    let (_a2, _) = hub.subscriber("a").await;
    let body = json!({"name":"e","channels":["a","b"],"data":"x","info":"subscription_count"}).to_string();
    let (status, json) = hub.api("POST", "/apps/4242/events", &[], &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, json!({"channels":{"a":{"subscription_count":2},"b":{"subscription_count":0}}}));
    hub.stop().await;
}

#[tokio::test]
async fn batch_events_are_all_checked_then_all_delivered() {
    let hub = TestHub::start().await;
    let (mut a, _) = hub.subscriber("a").await;
    let (mut b, _) = hub.subscriber("b").await;
    let body = json!({"batch":[
        {"channel":"a","name":"one","data":"1"},
        {"channel":"b","name":"two","data":"2","info":"subscription_count"},
    ]})
    .to_string();
    let (status, json) = hub.api("POST", "/apps/4242/batch_events", &[], &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, json!({"batch":[{}, {"subscription_count":1}]}));
    assert_eq!(next_json(&mut a).await, json!({"event":"one","channel":"a","data":"1"}));
    assert_eq!(next_json(&mut b).await, json!({"event":"two","channel":"b","data":"2"}));

    // One bad event refuses the whole batch: nothing is delivered.
    let body = json!({"batch":[{"channel":"a","name":"ok","data":"1"},{"channel":"a b","name":"bad","data":"2"}]});
    let (status, json) = hub.api("POST", "/apps/4242/batch_events", &[], &body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["error"].as_str().unwrap().starts_with("batch[1]"), "{json}");
    let eleven: Vec<_> = (0..11).map(|i| json!({"channel":"a","name":"e","data":i.to_string()})).collect();
    let (status, _) = hub.api("POST", "/apps/4242/batch_events", &[], &json!({ "batch": eleven }).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = hub.api("POST", "/apps/4242/batch_events", &[], r#"{"batch":[]}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The refused batches queued nothing before a later event, on either channel.
    for (ws, channel) in [(&mut a, "a"), (&mut b, "b")] {
        let sentinel = hub.sentinel_on(channel);
        assert_next_is_sentinel(ws, &sentinel).await;
    }
    hub.stop().await;
}

#[tokio::test]
async fn channel_list_and_filter_by_prefix() {
    let hub = TestHub::start().await;
    let (_x, _) = hub.subscriber("orders-1").await;
    let (_y, _) = hub.subscriber("orders-2").await;
    let (_z, _) = hub.subscriber("news").await;
    let (status, json) = hub.api("GET", "/apps/4242/channels", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, json!({"channels":{"news":{},"orders-1":{},"orders-2":{}}}));
    let (_, json) = hub.api("GET", "/apps/4242/channels", &[("filter_by_prefix", "orders-")], "").await;
    assert_eq!(json, json!({"channels":{"orders-1":{},"orders-2":{}}}));
    let (status, _) = hub.api("GET", "/apps/4242/channels", &[("info", "user_count")], "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    hub.stop().await;
}

#[tokio::test]
async fn channel_info_reports_occupancy() {
    let hub = TestHub::start().await;
    let (_a, _) = hub.subscriber("a").await;
    let (_b, _) = hub.subscriber("a").await;
    let (status, json) = hub.api("GET", "/apps/4242/channels/a", &[("info", "subscription_count")], "").await;
    assert_eq!((status, json), (StatusCode::OK, json!({"occupied":true,"subscription_count":2})));
    let (_, json) = hub.api("GET", "/apps/4242/channels/empty", &[], "").await;
    assert_eq!(json, json!({"occupied":false}));
    let (status, _) = hub.api("GET", "/apps/4242/channels/a%20b", &[], "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = hub.api("GET", "/apps/4242/channels/a/users", &[], "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    hub.stop().await;
}

#[tokio::test]
async fn health_reports_status_version_uptime_and_connections() {
    let hub = TestHub::start().await;
    let (_a, _) = hub.subscriber("a").await;
    let (status, json, _) = hub.request(Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "ok");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["connections"], 1);
    assert!(json["uptime_secs"].is_u64());
    hub.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let hub = TestHub::start().await;
    let (status, json, _) = hub.request(Request::get("/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json["error"].is_string());
    let (status, json, _) = hub.request(Request::delete("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(json["error"].is_string());
    let (status, json, _) = hub.request(Request::get("/app/testkey").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a plain GET on the WebSocket endpoint");
    assert!(json["error"].as_str().unwrap().contains("WebSocket"));
    hub.stop().await;
}

#[tokio::test]
async fn poussr_js_is_served_as_javascript() {
    let hub = TestHub::start().await;
    let req = Request::get("/poussr.js").body(Body::empty()).unwrap();
    let (sessions, _) = tokio::sync::mpsc::channel(1);
    use tower::ServiceExt;
    let router = poussr::http::router(hub.hub.clone(), hub.frontend.clone(), sessions)
        .layer(axum::extract::connect_info::MockConnectInfo(hub.addr));
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let (_, _, text) = hub.request(Request::get("/poussr.js").body(Body::empty()).unwrap()).await;
    assert!(text.contains("Poussr"));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_subscriber_of_several_channels_in_the_order_their_triggers_were_answered() {
    let hub = TestHub::start().await;
    let channels = ["orders", "payments", "audit"];
    let (mut ws, _) = hub.subscriber(channels[0]).await;
    subscribed(&mut ws, channels[1]).await;
    subscribed(&mut ws, channels[2]).await;
    // Each trigger is answered before the next is sent, while the session is writing the earlier ones.
    let sent: Vec<(String, String)> =
        (0..90).map(|i| (channels[(i * 7 + i / 5) % 3].to_owned(), format!("e{i}"))).collect();
    for (channel, event) in &sent {
        hub.trigger(channel, event, "{}").await;
    }
    for (channel, event) in &sent {
        let frame = next_json(&mut ws).await;
        assert_eq!(
            (frame["channel"].as_str(), frame["event"].as_str()),
            (Some(channel.as_str()), Some(event.as_str()))
        );
    }
    hub.stop().await;
}
