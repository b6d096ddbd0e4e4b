//! The admin API: token, loopback-only, the Host check against DNS rebinding, and CORS for the desktop
//! window.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;

fn overview(host: &str, token: Option<&str>) -> Request<Body> {
    let mut req = Request::get("/admin/api/overview").header("host", host);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Body::empty()).unwrap()
}

const TOKEN: &str = "0123456789abcdef0123";

async fn hub() -> TestHub {
    TestHub::with(|c| c.admin_token = Some(TOKEN.into())).await
}

#[tokio::test]
async fn the_overview_needs_the_token() {
    let hub = hub().await;
    let host = hub.addr.to_string();
    let (status, json, _) = hub.request(overview(&host, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(json["error"].as_str().unwrap().contains("missing"));
    let (status, _, _) = hub.request(overview(&host, Some("wrong-token-wrong-token"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, json, _) = hub.request(overview(&host, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "running");
    assert_eq!(json["port"], hub.addr.port());
    assert_eq!(json["app"]["key"], "testkey");
    assert_eq!(json["app"]["secret"], "testsecret");
    assert_eq!(json["addresses"], serde_json::json!(["127.0.0.1"]));
    assert!(json["snippets"]["pusher_js"].as_str().unwrap().contains("new Pusher('testkey'"));
    assert_eq!(json["stats"]["connections"], 0);
    // The token may also come in the query, for links and WebSockets.
    let req = Request::get(format!("/admin/api/overview?token={TOKEN}")).header("host", &host).body(Body::empty());
    assert_eq!(hub.request(req.unwrap()).await.0, StatusCode::OK);
    hub.stop().await;
}

#[tokio::test]
async fn a_foreign_host_header_is_refused() {
    let hub = hub().await;
    for host in ["evil.example", "evil.example:6001", "203.0.113.9:6001"] {
        let (status, json, _) = hub.request(overview(host, Some(TOKEN))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
        assert!(json["error"].as_str().unwrap().contains("DNS rebinding"), "{json}");
    }
    for host in ["localhost:6001", "127.0.0.1", "[::1]:6001"] {
        assert_eq!(hub.request(overview(host, Some(TOKEN))).await.0, StatusCode::OK, "{host}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn other_machines_are_refused_unless_allowed() {
    let lan = "192.168.1.50:40000".parse().unwrap();
    let hub = hub().await;
    let (status, json, _) = hub.request_from(lan, overview("localhost", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(json["error"].as_str().unwrap().contains("--allow-remote-dashboard"));
    hub.stop().await;
    let hub = TestHub::with(|c| {
        c.admin_token = Some(TOKEN.into());
        c.allow_remote_dashboard = true;
    })
    .await;
    assert_eq!(hub.request_from(lan, overview("localhost", Some(TOKEN))).await.0, StatusCode::OK);
    assert_eq!(hub.request_from(lan, overview("localhost", None)).await.0, StatusCode::UNAUTHORIZED);
    hub.stop().await;
}

#[tokio::test]
async fn the_desktop_window_origin_gets_cors_headers() {
    let hub = hub().await;
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/admin/api/overview")
        .header("host", "127.0.0.1:6001")
        .header("origin", "tauri://localhost")
        .header("access-control-request-headers", "authorization")
        .body(Body::empty())
        .unwrap();
    let (sessions, _) = tokio::sync::mpsc::channel(1);
    use tower::ServiceExt;
    let router = poussr::http::router(hub.hub.clone(), hub.frontend.clone(), sessions)
        .layer(axum::extract::connect_info::MockConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 1))));
    let resp = router.clone().oneshot(preflight).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.headers()["access-control-allow-origin"], "tauri://localhost");
    assert!(resp.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    let get = Request::get("/admin/api/overview")
        .header("host", "127.0.0.1:6001")
        .header("origin", "tauri://localhost")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(get).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["access-control-allow-origin"], "tauri://localhost");
    // Another site's origin gets no CORS headers, so its pages cannot read the answer.
    let get = Request::get("/admin/api/overview")
        .header("host", "127.0.0.1:6001")
        .header("origin", "http://evil.example")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = router.oneshot(get).await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    hub.stop().await;
}

#[tokio::test]
async fn snapshots_publish_and_disconnect() {
    let hub = hub().await;
    let (mut ws, id) = hub.subscriber("orders").await;
    let get = |path: &str| {
        Request::get(path)
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, json, _) = hub.request(get("/admin/api/channels")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["channels"][0]["name"], "orders");
    assert_eq!(json["channels"][0]["subscription_count"], 1);
    assert_eq!(json["channels"][0]["app_id"], "4242");
    let (_, json, _) = hub.request(get("/admin/api/clients")).await;
    assert_eq!(json["clients"][0]["socket_id"], id.as_str());
    assert_eq!(json["clients"][0]["channels"], serde_json::json!(["orders"]));
    assert_eq!(json["clients"][0]["protocol"], "pusher");

    let publish = |body: serde_json::Value| {
        Request::post("/admin/api/publish")
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, json, _) =
        hub.request(publish(serde_json::json!({"channel":"orders","event":"test","data":"not json"}))).await;
    assert_eq!((status, json), (StatusCode::OK, serde_json::json!({"delivered": 1})));
    assert_eq!(next_json(&mut ws).await, serde_json::json!({"event":"test","channel":"orders","data":"not json"}));
    let (status, _, _) = hub.request(publish(serde_json::json!({"channel":"a b","event":"t","data":""}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) =
        hub.request(publish(serde_json::json!({"channel":"a","event":"t","data":"x".repeat(20_000)}))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let delete = |id: &str| {
        Request::delete(format!("/admin/api/clients/{id}"))
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(hub.request(delete("1.999999")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(hub.request(delete(&id)).await.0, StatusCode::NO_CONTENT);
    let (frames, code) = read_until_close(&mut ws).await;
    assert_eq!(code, Some(4009));
    assert_eq!(frames.last().unwrap()["data"]["code"], 4009);
    hub.stop().await;
}

#[tokio::test]
async fn the_feed_streams_batches_with_events_and_stats() {
    let hub = hub().await;
    let url = format!("ws://{}/admin/api/feed?token={TOKEN}", hub.addr);
    let (mut feed, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Unauthenticated, the feed is refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/admin/api/feed", hub.addr)).await;
    assert!(refused.is_err());
    let (_sub, _) = hub.subscriber("orders").await;
    hub.trigger("orders", "e1", "d1").await;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen.iter().any(|e: &serde_json::Value| e["type"] == "event_published") {
        assert!(tokio::time::Instant::now() < deadline, "no event_published in the feed: {seen:?}");
        let batch = next_json(&mut feed).await;
        assert!(batch["at_ms"].is_u64() && batch["skipped"].is_u64());
        assert!(batch["stats"]["connections"].is_u64());
        seen.extend(batch["events"].as_array().unwrap().iter().cloned());
    }
    let published = seen.iter().find(|e| e["type"] == "event_published").unwrap();
    assert_eq!((published["channel"].as_str(), published["data"].as_str()), (Some("orders"), Some("d1")));
    assert!(seen.iter().any(|e| e["type"] == "connection_opened"));
    assert!(seen.iter().any(|e| e["type"] == "subscribed"));
    hub.stop().await;
}

#[tokio::test]
async fn the_feed_answers_a_request_it_cannot_upgrade_as_every_websocket_endpoint_does() {
    let hub = hub().await;
    let host = hub.addr.to_string();
    let get = || Request::get(format!("/admin/api/feed?token={TOKEN}")).header("host", &host);
    let handshake = |version: &str| {
        get()
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", version)
            .body(Body::empty())
            .unwrap()
    };
    let (status, json, _) = hub.request(handshake("8")).await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED, "{json}");
    assert!(json["error"].as_str().unwrap().starts_with("/admin/api/feed: this hub speaks WebSocket version 13"));
    let (status, json, _) = hub.request(get().body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(json["error"].as_str().unwrap().starts_with("/admin/api/feed is a WebSocket endpoint"), "{json}");
    hub.stop().await;
}

#[tokio::test]
async fn the_dashboard_files_are_served_without_the_token() {
    let hub = hub().await;
    for (path, needle) in [
        ("/dashboard/", "<title>Poussr</title>"),
        ("/dashboard/app.js", "openFeed"),
        ("/dashboard/log.js", "export class Log"),
        ("/dashboard/chart.js", "export class Chart"),
        ("/dashboard/style.css", "prefers-color-scheme"),
    ] {
        let (status, _, body) = hub.request(Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains(needle), "{path}");
    }
    let (status, _, _) = hub.request(Request::get("/dashboard/secret.txt").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    hub.stop().await;
}
