//! The console's search (docs/protocol.md §6.11): published events from the history store and every other
//! kind from the journal, found through `/admin/api/search`, paged with `before`, saved as a recording, and
//! still there after the hub restarts on the same data folder.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "0123456789abcdef0123";

/// A data folder of its own, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        Dir(std::env::temp_dir().join(format!("poussr-console-{tag}-{}-{nanos}", std::process::id())))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn hub_on(dir: &Dir) -> TestHub {
    let history = dir.0.join("history");
    TestHub::with(move |c| {
        c.admin_token = Some(TOKEN.into());
        c.history.dir = Some(history);
    })
    .await
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap()
}

/// `GET /admin/api/search?<query>`, which must answer 200.
async fn search(hub: &TestHub, query: &str) -> Value {
    let (status, json, text) = hub.request(get(&format!("/admin/api/search?{query}"))).await;
    assert_eq!(status, StatusCode::OK, "{query}: {text}");
    json
}

fn entries(page: &Value) -> &Vec<Value> {
    page["entries"].as_array().expect("entries")
}

/// Waits until a search for `query` finds at least `n` entries (the journal writes on its own thread).
async fn found(hub: &TestHub, query: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let page = search(hub, query).await;
        if entries(&page).len() >= n {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "still waiting for {n} entries of {query}: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Every entry of a search, page after page of `limit`, with the cursors it took.
async fn every_page(hub: &TestHub, query: &str, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut before = String::new();
    loop {
        let page = search(hub, &format!("{query}&limit={limit}&before={before}")).await;
        assert!(entries(&page).len() <= limit);
        all.extend(entries(&page).iter().cloned());
        match page["next"].as_str() {
            Some(next) => before = next.to_owned(),
            None => return all,
        }
    }
}

/// A connection whose subscription to `channel` was refused; kept open, so that nothing more is journaled.
async fn refused_subscription(hub: &TestHub, channel: &str) -> Ws {
    let (mut ws, _) = hub.pusher().await;
    send_json(&mut ws, json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": "testkey:00ff"}}))
        .await;
    let err = next_json(&mut ws).await;
    assert_eq!(err["event"], "pusher:subscription_error", "{err}");
    ws
}

#[tokio::test]
async fn the_search_finds_events_connections_and_refusals_and_pages_without_gaps() {
    let dir = Dir::new("search");
    let hub = hub_on(&dir).await;
    let (_ws, socket) = hub.subscriber("orders").await;
    for i in 0..12 {
        hub.trigger("orders", "order.created", &json!({"n": i}).to_string()).await;
    }
    hub.trigger("news", "story", r#"{"title":"needle-42"}"#).await;
    let _refused = refused_subscription(&hub, "private-secret").await;

    let page = found(&hub, "kinds=subscription&channel=SECRET", 1).await;
    let refusal = &entries(&page)[0];
    assert_eq!(refusal["type"], "subscription_refused", "{refusal}");
    assert_eq!((refusal["kind"].as_str(), refusal["status"].as_u64()), (Some("subscription"), Some(401)));
    assert_eq!((page["history"].as_str(), page["journal"].as_bool()), (Some("local"), Some(true)));

    let page = search(&hub, "kinds=event&channel=orders").await;
    assert_eq!(entries(&page).len(), 12);
    let newest = &entries(&page)[0];
    assert_eq!(newest["type"], "event_published");
    assert_eq!((newest["kind"].as_str(), newest["source"].as_str()), (Some("event"), Some("history")));
    assert_eq!((newest["serial"].as_u64(), newest["data"].as_str()), (Some(12), Some(r#"{"n":11}"#)));

    let page = search(&hub, "text=needle-42").await;
    assert_eq!(entries(&page).len(), 1, "{page}");
    assert_eq!(entries(&page)[0]["channel"], "news");
    let at = entries(&page)[0]["at_ms"].as_u64().unwrap();
    let window = search(&hub, &format!("kinds=event&channel=news&from_ms={at}&to_ms={at}")).await;
    assert_eq!(entries(&window).len(), 1);
    let before = search(&hub, &format!("kinds=event&channel=news&to_ms={}", at - 1)).await;
    assert!(entries(&before).is_empty());

    let page = found(&hub, &format!("kinds=connection,subscription&socket_id={socket}"), 2).await;
    let types: Vec<_> = entries(&page).iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["subscribed", "connection_opened"], "{page}");
    assert!(page["notes"].as_array().unwrap().is_empty(), "{page}");
    let page = search(&hub, &format!("socket_id={socket}")).await;
    assert!(page["notes"][0].as_str().unwrap().contains("published events have no socket id"), "{page}");

    // Page after page of 5 gives what one page of 500 gives, in the same order.
    let whole = entries(&search(&hub, "limit=500").await).clone();
    // 13 published events; two connections opened, one subscription, one refused.
    assert_eq!(whole.len(), 13 + 4, "{whole:?}");
    assert_eq!(every_page(&hub, "kinds=", 5).await, whole);
    let keys: HashSet<String> = whole.iter().map(Value::to_string).collect();
    assert_eq!(keys.len(), whole.len(), "no duplicate");
    let times: Vec<u64> = whole.iter().map(|e| e["at_ms"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // The matches as a recording, oldest first.
    let router = poussr::http::router(hub.hub.clone(), hub.frontend.clone(), tokio::sync::mpsc::channel(1).0).layer(
        axum::extract::connect_info::MockConnectInfo("127.0.0.1:50000".parse::<std::net::SocketAddr>().unwrap()),
    );
    let response =
        router.oneshot(get("/admin/api/search/recording?kinds=event,client_event&channel=orders")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment; filename=\"poussr-recording-") && disposition.ends_with(".jsonl\""));
    let body = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 13, "{body}");
    let header = &lines[0];
    assert_eq!((header["format"].as_str(), header["version"].as_u64()), (Some("poussr-recording"), Some(1)));
    assert!(header["recorded_at_ms"].as_u64().unwrap() >= at);
    assert_eq!(header["filter"], json!({"kinds": ["event", "client_event"], "channel": "orders"}));
    let serials: Vec<u64> = lines[1..].iter().map(|e| e["serial"].as_u64().unwrap()).collect();
    assert_eq!(serials, (1..=12).collect::<Vec<_>>(), "oldest first");
    hub.stop().await;
}

#[tokio::test]
async fn bad_search_parameters_are_refused_with_what_was_wrong() {
    let dir = Dir::new("bad");
    let hub = hub_on(&dir).await;
    for (query, wanted) in [
        ("kinds=event,nope", "unknown kind \"nope\""),
        ("from_ms=yesterday", "from_ms must be a whole number"),
        ("limit=501", "limit must be a whole number from 1 to 500"),
        ("before=garbage", "is not a cursor"),
    ] {
        let (status, json, _) = hub.request(get(&format!("/admin/api/search?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(json["error"].as_str().unwrap().contains(wanted), "{query}: {json}");
    }
    let (status, json, _) = hub.request(get("/admin/api/journal")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["journal"]["bounds"], json!({"max_entries": 200_000, "max_age_secs": 604_800}));
    hub.stop().await;
    let hub = TestHub::with(|c| c.admin_token = Some(TOKEN.into())).await;
    let (_, json, _) = hub.request(get("/admin/api/journal")).await;
    assert_eq!(json["journal"], Value::Null);
    assert!(json["reason"].as_str().unwrap().contains("no history folder"), "{json}");
    let page = search(&hub, "").await;
    assert_eq!((page["history"].as_str(), page["journal"].as_bool()), (Some("off"), Some(false)));
    assert_eq!(page["notes"].as_array().unwrap().len(), 2, "{page}");
    hub.stop().await;
}

#[tokio::test]
async fn what_happened_before_a_restart_is_still_found() {
    let dir = Dir::new("restart");
    let hub = hub_on(&dir).await;
    let (ws, socket) = hub.subscriber("kept").await;
    hub.trigger("kept", "before-restart", "{}").await;
    found(&hub, &format!("kinds=connection&socket_id={socket}"), 1).await;
    drop(ws);
    hub.stop().await;

    let hub = hub_on(&dir).await;
    let page = search(&hub, &format!("kinds=connection&socket_id={socket}")).await;
    let types: Vec<_> = entries(&page).iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.last(), Some(&"connection_opened"), "{page}");
    let page = search(&hub, "kinds=event&event=before-restart").await;
    assert_eq!(entries(&page).len(), 1, "{page}");
    assert_eq!(entries(&page)[0]["channel"], "kept");
    hub.stop().await;
}
