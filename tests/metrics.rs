//! `/metrics`: the figures after real traffic, and who may read them.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use poussr::http::Frontend;
use poussr::{Config, Hub};
use serde_json::json;

fn get(path: &str, host: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().uri(path).header("host", host);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

/// The value of the sample `name` (with its labels, as written) in an OpenMetrics text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_connections_events_closes_and_api_latency() {
    let hub = TestHub::with(|c| c.limits.max_publish_per_second = 3).await;
    let (mut sub, _) = hub.subscriber("news").await;
    for i in 0..3 {
        hub.trigger("news", "tick", &i.to_string()).await;
        assert_eq!(next_json(&mut sub).await["data"], i.to_string());
    }
    let body = json!({"name": "tick", "channel": "news", "data": "x"}).to_string();
    let (status, _) = hub.api("POST", &format!("/apps/{}/events", hub.app.id), &[], &body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A wrong key: refused with 4001.
    let mut wrong = hub.ws("/app/nosuchkey?protocol=7").await;
    assert_eq!(read_until_close(&mut wrong).await.1, Some(4001));

    let (status, _, text) = hub.request(get("/metrics", "127.0.0.1", None)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(sample(&text, "poussr_connections"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "poussr_channels"), Some(1.0));
    assert_eq!(sample(&text, "poussr_events_published_total"), Some(3.0));
    assert_eq!(sample(&text, "poussr_deliveries_total"), Some(3.0));
    assert_eq!(sample(&text, "poussr_connection_closes_total{code=\"4001\"}"), Some(1.0), "{text}");
    assert!(sample(&text, "poussr_sent_bytes_total").unwrap() > 0.0);
    assert!(sample(&text, "poussr_messages_received_total").unwrap() >= 1.0);
    let ok = "poussr_http_api_request_duration_seconds_count{route=\"/apps/{app_id}/events\",status=\"200\"}";
    let limited = "poussr_http_api_request_duration_seconds_count{route=\"/apps/{app_id}/events\",status=\"429\"}";
    assert_eq!(sample(&text, ok), Some(3.0), "{text}");
    assert_eq!(sample(&text, limited), Some(1.0));
    assert_eq!(sample(&text, "poussr_webhook_queue_depth"), Some(0.0));
    assert!(text.trim_end().ends_with("# EOF"));
    hub.stop().await;
}

#[tokio::test]
async fn a_hub_listening_beyond_loopback_guards_metrics_like_the_admin_api() {
    // Not announced over mDNS: tests never multicast on the machine's interfaces.
    let config = Config {
        apps: vec![test_app()],
        admin_token: Some("sesame-sesame-open".into()),
        mdns: false,
        ..Config::default()
    };
    let hub = Hub::alone(&config).unwrap();
    let frontend = Frontend::new(&config);
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(poussr::server::run(listener, hub.clone(), frontend.clone(), async move {
        let _ = stopped.await;
    }));
    let local: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let remote: SocketAddr = "192.0.2.7:50000".parse().unwrap();

    let (status, json, _) = route(&hub, &frontend, local, get("/metrics", "127.0.0.1", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(json["error"].as_str().unwrap().contains("admin token is missing"));
    let (status, _, _) = route(&hub, &frontend, local, get("/metrics", "127.0.0.1", Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) =
        route(&hub, &frontend, local, get("/metrics", "evil.example", Some("sesame-sesame-open"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = route(&hub, &frontend, remote, get("/metrics", "127.0.0.1", Some("sesame-sesame-open"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, text) =
        route(&hub, &frontend, local, get("/metrics", "127.0.0.1", Some("sesame-sesame-open"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sample(&text, "poussr_connections"), Some(0.0));

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_loopback_hub_still_refuses_a_foreign_host_header() {
    let hub = TestHub::start().await;
    let (status, _, _) = hub.request(get("/metrics", "rebound.example", None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    hub.stop().await;
}
