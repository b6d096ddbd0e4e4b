//! `make soak`: a hub under steady churn for half an hour. A fixed number of Pusher clients stay connected,
//! but every second some of the oldest leave (most with a close frame, some by dropping the TCP
//! connection) and as many new ones arrive and subscribe: to public, private and presence channels, the
//! private ones also sending a client event. Events are published through the signed HTTP API at a steady
//! rate, and the channel list is queried. Each minute, once the hub counts exactly the steady number of
//! clients again, its resident memory and open file descriptors are sampled. After the warm-up, neither
//! may grow by 5 % or more.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

use crate::load::Target;
use crate::scenarios::{Server, health};
use crate::sign::{channel_auth, signed_query};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Length of the run.
    pub duration: Duration,
    /// The first part of the run, not judged: buffers and caches reach their working size.
    pub warmup: Duration,
    /// Time between samples.
    pub sample_every: Duration,
    /// Clients connected at any time.
    pub connections: usize,
    /// Clients replaced each second.
    pub churn_per_sec: usize,
    /// Events published per second.
    pub publish_per_sec: u32,
    /// Channels of each kind.
    pub channels: usize,
}

impl SoakConfig {
    /// The recorded run: 30 minutes, 5 of warm-up, 1,000 clients, 50 replaced and 100 events a second.
    pub fn full() -> Self {
        SoakConfig {
            duration: Duration::from_secs(30 * 60),
            warmup: Duration::from_secs(5 * 60),
            sample_every: Duration::from_secs(60),
            connections: 1000,
            churn_per_sec: 50,
            publish_per_sec: 100,
            channels: 50,
        }
    }
}

/// One reading of the hub.
#[derive(Debug, Clone, Copy)]
pub struct SoakSample {
    /// Seconds since the start.
    pub at_secs: u64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Connections the hub counted.
    pub connections: u64,
    /// Clients opened so far.
    pub opened: u64,
    /// Events published so far.
    pub published: u64,
    /// Events received by clients so far.
    pub received: u64,
}

/// Counters shared by the client tasks.
#[derive(Debug, Default)]
struct Counts {
    opened: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    published: AtomicU64,
    publish_errors: AtomicU64,
}

/// A connected client: dropping `leave` (or sending on it) makes it go.
struct Client {
    leave: oneshot::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn channel(kind: usize, i: usize) -> String {
    match kind {
        0 => format!("soak-{i}"),
        1 => format!("private-soak-{i}"),
        _ => format!("presence-soak-{i}"),
    }
}

async fn next_text(ws: &mut Ws, what: &str) -> Result<String, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => return Err(format!("waiting for {what}: {other:?}")),
            Err(_) => return Err(format!("no {what} within 10 s")),
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects client number `n` and subscribes it; returns it reading until told to leave.
async fn join(target: &Target, n: u64, channels: usize, counts: Arc<Counts>) -> Result<Client, String> {
    let Target::Hub { addr, key, secret, .. } = target else { return Err("the soak runs against a hub".into()) };
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1 + (n % 8) as u8), 0)))
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(*addr).await.map_err(|e| format!("connect: {e}"))?;
    let url = format!("ws://{addr}/app/{key}?protocol=7&client=poussr-soak");
    let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let hello: serde_json::Value =
        serde_json::from_str(&next_text(&mut ws, "connection_established").await?).map_err(|e| e.to_string())?;
    let data: serde_json::Value =
        serde_json::from_str(hello["data"].as_str().unwrap_or("{}")).map_err(|e| e.to_string())?;
    let socket_id = data["socket_id"].as_str().ok_or("no socket_id")?.to_owned();
    let kind = (n % 3) as usize;
    let name = channel(kind, (n as usize / 3) % channels);
    let mut subscribe = serde_json::json!({"channel": name});
    match kind {
        1 => subscribe["auth"] = channel_auth(key, secret, &socket_id, &name, None).into(),
        2 => {
            let member = serde_json::json!({"user_id": format!("user-{}", n % 500), "user_info": {"n": n}}).to_string();
            subscribe["auth"] = channel_auth(key, secret, &socket_id, &name, Some(&member)).into();
            subscribe["channel_data"] = member.into();
        }
        _ => {}
    }
    let frame = serde_json::json!({"event": "pusher:subscribe", "data": subscribe}).to_string();
    ws.send(Message::text(frame)).await.map_err(|e| e.to_string())?;
    let answer = next_text(&mut ws, "subscription_succeeded").await?;
    if !answer.contains("subscription_succeeded") {
        return Err(format!("subscription refused: {answer}"));
    }
    if kind == 1 {
        let whisper = serde_json::json!({"event": "client-hello", "channel": name, "data": {"from": n}}).to_string();
        ws.send(Message::text(whisper)).await.map_err(|e| e.to_string())?;
    }
    counts.opened.fetch_add(1, Relaxed);
    let (leave, mut told) = oneshot::channel::<bool>();
    let task = tokio::spawn(async move {
        let graceful = loop {
            tokio::select! {
                message = ws.next() => match message {
                    Some(Ok(Message::Text(t))) => {
                        if t.contains("\"event\":\"tick\"") {
                            counts.received.fetch_add(1, Relaxed);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                graceful = &mut told => break graceful.unwrap_or(true),
            }
        };
        if graceful {
            // A close frame, then wait for the hub's answer.
            let _ = ws.send(Message::Close(None)).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = ws.next().await {} })
                .await;
        }
        // Otherwise the socket is dropped as it is: the hub finds out from the TCP connection.
    });
    Ok(Client { leave, task })
}

/// Publishes `per_sec` events a second to random channels until `stop` resolves.
async fn publish(target: Target, per_sec: u32, channels: usize, counts: Arc<Counts>, mut stop: oneshot::Receiver<()>) {
    let Target::Hub { addr, app_id, key, secret } = target else { return };
    crate::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_sec.max(1))));
    let mut i = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        i += 1;
        let name = channel((i % 3) as usize, (i as usize / 3) % channels);
        let body =
            serde_json::json!({"name": "tick", "channel": name, "data": format!("{{\"soak\":{i}}}")}).to_string();
        let path = format!("/apps/{app_id}/events");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let query = signed_query(&key, &secret, "POST", &path, body.as_bytes(), now);
        let sent = http
            .post(format!("http://{addr}{path}?{query}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => counts.published.fetch_add(1, Relaxed),
            _ => counts.publish_errors.fetch_add(1, Relaxed),
        };
        if i.is_multiple_of(u64::from(per_sec.max(1))) {
            // Once a second, the channel list with counts (the dashboard and SDKs ask for it).
            let path = format!("/apps/{app_id}/channels");
            let query = signed_query(&key, &secret, "GET", &path, b"", now);
            let _ = http.get(format!("http://{addr}{path}?{query}&info=subscription_count")).send().await;
        }
    }
}

/// Waits until the hub counts `n` connections (at most 5 s); returns its count.
async fn settle(target: &Target, n: usize) -> u64 {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let count = health(target).await.and_then(|h| h["connections"].as_u64()).unwrap_or(0);
        if count == n as u64 || Instant::now() > until {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The verdict: growth of the largest reading after the warm-up over the reading that ends it.
pub fn growth(samples: &[SoakSample], warmup: Duration, of: impl Fn(&SoakSample) -> u64) -> Option<f64> {
    let base = samples.iter().filter(|s| s.at_secs >= warmup.as_secs()).map(&of).next()?;
    let max = samples.iter().filter(|s| s.at_secs >= warmup.as_secs()).map(&of).max()?;
    Some((max as f64 - base as f64) / (base as f64).max(1.0) * 100.0)
}

/// Runs the soak against a fresh hub from `hub_bin`; returns the Markdown section and whether it passed.
pub async fn run(hub_bin: &Path, config: &SoakConfig) -> std::io::Result<(String, bool)> {
    let server = Server::hub(hub_bin).await?;
    let target = server.target.clone();
    let counts = Arc::new(Counts::default());
    let mut clients = std::collections::VecDeque::new();
    let mut n = 0u64;
    while clients.len() < config.connections {
        match join(&target, n, config.channels, counts.clone()).await {
            Ok(c) => clients.push_back(c),
            Err(_) => {
                counts.failed.fetch_add(1, Relaxed);
            }
        }
        n += 1;
    }
    let (stop_publishing, stopped) = oneshot::channel();
    let publisher =
        tokio::spawn(publish(target.clone(), config.publish_per_sec, config.channels, counts.clone(), stopped));
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < config.duration + Duration::from_secs(1) {
        tick.tick().await;
        for k in 0..config.churn_per_sec {
            if let Some(old) = clients.pop_front() {
                // One in five leaves without a close frame.
                let _ = old.leave.send(k % 5 != 0);
                drop(old.task);
            }
        }
        let joining: Vec<_> = (0..config.churn_per_sec)
            .map(|k| {
                let (target, counts) = (target.clone(), counts.clone());
                let (id, channels) = (n + k as u64, config.channels);
                tokio::spawn(async move { join(&target, id, channels, counts).await })
            })
            .collect();
        n += config.churn_per_sec as u64;
        for handle in joining {
            match handle.await {
                Ok(Ok(c)) => clients.push_back(c),
                _ => {
                    counts.failed.fetch_add(1, Relaxed);
                }
            }
        }
        if started.elapsed() >= next_sample {
            let connections = settle(&target, clients.len()).await;
            let s = server.sample();
            let sample = SoakSample {
                at_secs: started.elapsed().as_secs(),
                rss_kib: s.rss_kib,
                fds: s.fds,
                connections,
                opened: counts.opened.load(Relaxed),
                published: counts.published.load(Relaxed),
                received: counts.received.load(Relaxed),
            };
            eprintln!(
                "soak: {:>5} s  RSS {:>7} KiB  fds {:>5}  connections {:>5}  opened {:>7}  published {:>7}",
                sample.at_secs, sample.rss_kib, sample.fds, sample.connections, sample.opened, sample.published
            );
            samples.push(sample);
            next_sample += config.sample_every;
        }
    }
    let _ = stop_publishing.send(());
    let _ = publisher.await;
    for c in clients {
        let _ = c.leave.send(true);
        let _ = c.task.await;
    }
    let final_health = health(&target).await;
    server.stop().await;
    Ok(report(config, &samples, &counts, final_health))
}

fn report(
    config: &SoakConfig,
    samples: &[SoakSample],
    counts: &Counts,
    final_health: Option<serde_json::Value>,
) -> (String, bool) {
    use std::fmt::Write;
    let rss = growth(samples, config.warmup, |s| s.rss_kib);
    let fds = growth(samples, config.warmup, |s| s.fds);
    let failed = counts.failed.load(Relaxed);
    let publish_errors = counts.publish_errors.load(Relaxed);
    let passed = rss.is_some_and(|g| g < 5.0) && fds.is_some_and(|g| g < 5.0) && failed == 0 && publish_errors == 0;
    let pct = |g: Option<f64>| g.map(|g| format!("{g:+.1} %")).unwrap_or_else(|| "—".into());
    let mut out = String::new();
    let _ = writeln!(out, "<!-- soak:begin (written by make soak) -->");
    let _ = writeln!(out, "## Soak: {} minutes of churn", config.duration.as_secs() / 60);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Written by `make soak` on {}: a release hub on 127.0.0.1 holding {} Pusher clients while {} a second \
         leave (one in five without a close frame) and {} arrive, on public, private (with a client event) and \
         presence channels ({} of each kind); {} events a second through the signed HTTP API, and the channel \
         list queried each second. A sample each {} s once the hub counts exactly {} clients; the first {} \
         minutes are warm-up. Growth is that of the largest reading after the warm-up over the reading that \
         ends it.",
        today(),
        config.connections,
        config.churn_per_sec,
        config.churn_per_sec,
        config.channels,
        config.publish_per_sec,
        config.sample_every.as_secs(),
        config.connections,
        config.warmup.as_secs() / 60,
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| minute | RSS (MiB) | open files | connections | clients so far | events published | events received |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for s in samples {
        let _ = writeln!(
            out,
            "| {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            s.at_secs as f64 / 60.0,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.connections,
            s.opened,
            s.published,
            s.received
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "**Growth after warm-up: RSS {}, open files {} (limit 5 %). Failed joins: {failed}; refused publishes: \
         {publish_errors}. Verdict: {}.**",
        pct(rss),
        pct(fds),
        if passed { "passed" } else { "FAILED" }
    );
    if let Some(h) = final_health {
        let _ = writeln!(
            out,
            "\nAt the end the hub counted {} connections opened in all and {} slow-consumer closes.",
            h["connections_total"].as_u64().map_or_else(|| "?".into(), |v| v.to_string()),
            h["slow_consumer_closes"]
        );
    }
    let _ = writeln!(out, "<!-- soak:end -->");
    (out, passed)
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_secs: u64, rss_kib: u64) -> SoakSample {
        SoakSample { at_secs, rss_kib, fds: 10, connections: 0, opened: 0, published: 0, received: 0 }
    }

    #[test]
    fn growth_is_measured_from_the_end_of_the_warm_up() {
        let samples = [s(0, 50), s(60, 100), s(120, 103), s(180, 101)];
        let g = growth(&samples, Duration::from_secs(60), |x| x.rss_kib).unwrap();
        assert!((g - 3.0).abs() < 1e-9, "{g}");
        assert_eq!(growth(&samples, Duration::from_secs(600), |x| x.rss_kib), None);
    }
}
