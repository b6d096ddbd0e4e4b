//! Webhooks from a real hub to a small HTTP receiver: signed bodies, batching, the events of a shutdown
//! sent before the process would exit, and a target that fails being retried.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use poussr::config::{WebhookConfig, WebhookKind};
use poussr::protocol::signature::verify;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as received: headers (lower-cased names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// An HTTP receiver on 127.0.0.1 that answers the first `fail` requests with 500, then 200.
async fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        let mut answered = 0;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            // One request per connection is enough here: read the head, then Content-Length bytes.
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            // The header fields follow the request line.
            let fields = head.split_once("\r\n").map(|(_request_line, rest)| rest).unwrap_or("");
            let headers: Vec<(String, String)> = fields
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize =
                headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
            while buf.len() < head_end + length {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            answered += 1;
            let status = if answered <= fail { "500 Internal Server Error" } else { "200 OK" };
            if answered > fail {
                seen.lock().unwrap().push(Received { headers, body: buf[head_end..].to_vec() });
            }
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (url, got)
}

fn events(got: &Arc<Mutex<Vec<Received>>>) -> Vec<Value> {
    got.lock()
        .unwrap()
        .iter()
        .flat_map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["events"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_still_sends_the_last_webhooks_signed() {
    let (url, got) = receiver(0).await;
    let hub = TestHub::with(|c| c.apps[0].webhooks = vec![WebhookConfig { url, events: Vec::new() }]).await;
    let (ws, _) = hub.subscriber("room").await;
    let inner = hub.hub.clone();
    // Stopping the hub closes the client, which vacates the channel; the flush sends that too.
    hub.stop().await;
    drop(ws);
    assert_eq!(inner.flush_webhooks(Duration::from_secs(5)).await, 0);
    let received = got.lock().unwrap().clone();
    assert!(!received.is_empty());
    for r in &received {
        assert_eq!(r.header("x-pusher-key"), Some("testkey"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let signature = r.header("x-pusher-signature").unwrap();
        assert!(verify("testsecret", &r.body, signature), "the body is signed with the app secret");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body["time_ms"].as_u64().unwrap() > 1_600_000_000_000);
    }
    let names: Vec<Value> = events(&got).into_iter().map(|e| json!([e["name"], e["channel"]])).collect();
    assert_eq!(names, [json!(["channel_occupied", "room"]), json!(["channel_vacated", "room"])]);
    assert_eq!(inner.webhook_stats().sent, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_is_retried_and_a_filter_is_applied() {
    let (url, got) = receiver(2).await;
    let hub = TestHub::with(|c| {
        c.apps[0].webhooks = vec![WebhookConfig { url, events: vec![WebhookKind::ChannelOccupied] }];
    })
    .await;
    let (ws, _) = hub.subscriber("retried").await;
    drop(ws);
    // Two 500s, then a 200: the pauses are 0.5 s and 1 s.
    assert_eq!(hub.hub.flush_webhooks(Duration::from_secs(10)).await, 0);
    let stats = hub.hub.webhook_stats();
    assert_eq!((stats.sent, stats.failed_attempts, stats.failed, stats.dropped), (1, 2, 0, 0));
    let names: Vec<Value> = events(&got).into_iter().map(|e| e["name"].clone()).collect();
    assert_eq!(names, [json!("channel_occupied")], "channel_vacated is filtered out");
    hub.stop().await;
}
