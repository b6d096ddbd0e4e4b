//! The load generator: a fleet of WebSocket subscribers (Pusher protocol 7 or Poussr v1) spread over
//! several loopback source addresses, and publishers that send numbered, time-stamped events through the
//! signed Pusher HTTP API, Poussr v1 REST, or (for the baseline) a publishing WebSocket.
//!
//! Every event carries its send time (one process, one clock), its publisher, channel, phase and sequence
//! number, so each subscriber checks that it got every event of every publisher on every channel it
//! joined, once and in order; see [`Tracker`].

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the fleet talks to.
#[derive(Debug, Clone)]
pub enum Target {
    /// A Poussr hub with an app.
    Hub {
        /// Its address.
        addr: SocketAddr,
        /// App id, key and secret.
        app_id: String,
        /// App key.
        key: String,
        /// App secret.
        secret: String,
    },
    /// The baseline broadcast server.
    Baseline {
        /// Its address.
        addr: SocketAddr,
        /// Publishers wait for the baseline's answer to each event (as Pusher SDKs wait for the HTTP
        /// API's) instead of writing events down the WebSocket without waiting.
        acked: bool,
    },
}

impl Target {
    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::Hub { addr, .. } | Target::Baseline { addr, .. } => *addr,
        }
    }
}

/// The subscribers' protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Pusher protocol 7 at `/app/{key}`.
    Pusher,
    /// Poussr v1 at `/` (one channel per connection).
    V1,
}

/// How publishers publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The signed Pusher HTTP API (`POST /apps/{id}/events`).
    Api,
    /// Poussr v1 REST (`POST /v1/channels/{c}/events?name=e`).
    V1Rest,
}

/// The fleet's shape.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// What to connect to.
    pub target: Target,
    /// The subscribers' protocol.
    pub protocol: Protocol,
    /// How many connections.
    pub connections: usize,
    /// How many channels (`bench-0` ... ).
    pub channels: usize,
    /// Channels each connection joins (Poussr v1: 1).
    pub channels_per_connection: usize,
    /// Loopback source addresses to spread connections over (127.0.0.1 ... 127.0.0.N).
    pub sources: u8,
    /// Connections that subscribe, then stop reading (slow consumers).
    pub stalled: usize,
    /// Handshakes in flight at once.
    pub connect_concurrency: usize,
    /// Put before the channels' names: `""` for public channels, `"cache-"` for cache channels.
    pub channel_prefix: &'static str,
    /// Subscribe over `wss://` with these TLS settings (the hub's certificate must name 127.0.0.1).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// One publishing phase.
#[derive(Debug, Clone)]
pub struct PhaseConfig {
    /// Publishing tasks.
    pub publishers: usize,
    /// Events per second, over all publishers.
    pub rate: f64,
    /// How publishers publish (ignored for the baseline, which takes frames over a WebSocket).
    pub via: Via,
    /// Size of each event's data, in bytes.
    pub payload: usize,
    /// How long to publish.
    pub duration: Duration,
}

/// Percentiles of publish→deliver latency, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
    /// Samples.
    pub samples: usize,
}

impl Latency {
    /// From unsorted samples.
    pub fn of(mut samples: Vec<u32>) -> Self {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| u64::from(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        Latency { p50: at(0.50), p90: at(0.90), p99: at(0.99), max: at(1.0), samples: samples.len() }
    }
}

/// What a phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseReport {
    /// Events published (accepted by the target).
    pub published: u64,
    /// Publish requests that failed.
    pub publish_errors: u64,
    /// The publish rate reached, events/s.
    pub publish_rate: f64,
    /// Deliveries expected by subscribers that keep reading.
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// Deliveries per second, from the first publish to the last delivery (or the drain deadline).
    pub deliveries_per_sec: f64,
    /// Events some reading subscriber never got.
    pub lost: u64,
    /// Events a subscriber got twice.
    pub duplicated: u64,
    /// Events that arrived after a later one of the same publisher and channel.
    pub reordered: u64,
    /// Publish→deliver latency.
    pub latency: Latency,
}

/// What connecting measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectReport {
    /// Connections open and subscribed.
    pub connected: usize,
    /// Connections that failed (handshake or subscription).
    pub errors: usize,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// Seconds from the first connect to the last subscription.
    pub seconds: f64,
    /// Connections subscribed per second.
    pub rate: f64,
}

/// Counts what one subscriber got from each (phase, channel, publisher) stream of numbered events.
#[derive(Debug, Default)]
pub struct Tracker {
    streams: HashMap<(u32, u32, u32), Stream>,
    /// Events received.
    pub received: u64,
    /// Events received twice.
    pub duplicated: u64,
    /// Events that came after a later one.
    pub reordered: u64,
}

#[derive(Debug, Default)]
struct Stream {
    highest: u64,
    /// Sequence numbers skipped so far (lost, or late).
    missing: BTreeSet<u64>,
}

/// Gaps larger than this are counted, not remembered one by one.
const MAX_REMEMBERED_GAP: u64 = 100_000;

impl Tracker {
    /// Records event `seq` (numbered from 1) of `(phase, channel, publisher)`.
    pub fn record(&mut self, phase: u32, channel: u32, publisher: u32, seq: u64) {
        self.received += 1;
        let s = self.streams.entry((phase, channel, publisher)).or_default();
        if seq > s.highest {
            if seq - s.highest - 1 <= MAX_REMEMBERED_GAP {
                s.missing.extend(s.highest + 1..seq);
            }
            s.highest = seq;
        } else if s.missing.remove(&seq) {
            self.reordered += 1;
        } else {
            self.duplicated += 1;
        }
    }

    /// Events of `(phase, channel, publisher)` never received, given that `published` were sent.
    pub fn lost(&self, phase: u32, channel: u32, publisher: u32, published: u64) -> u64 {
        match self.streams.get(&(phase, channel, publisher)) {
            Some(s) => s.missing.len() as u64 + published.saturating_sub(s.highest),
            None => published,
        }
    }
}

/// Microseconds since the Unix epoch.
fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The number after `\"key\":` in a frame (the event data is a JSON string inside the frame, so its
/// quotes are escaped).
pub fn field(frame: &str, key: &str) -> Option<u64> {
    let pattern = format!("\\\"{key}\\\":");
    let at = frame.find(&pattern)? + pattern.len();
    let digits: &str = &frame[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The data of an event: its stamps, padded to `size` bytes.
pub fn event_data(phase: u32, channel: u32, publisher: u32, seq: u64, size: usize) -> String {
    let mut data = format!(r#"{{"t":{},"h":{phase},"c":{channel},"p":{publisher},"s":{seq},"x":""#, now_us());
    let pad = size.saturating_sub(data.len() + 2);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str("\"}");
    data
}

/// What each subscriber task hands back when the fleet closes.
#[derive(Debug, Default)]
struct SubscriberResult {
    tracker: Tracker,
    /// Latency samples by phase.
    latencies: Vec<Vec<u32>>,
    /// How the connection ended: the target's close code, or why there was none.
    ending: Ending,
}

/// How a subscriber's connection ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Still open when the fleet closed.
    #[default]
    Open,
    /// The target sent a close frame with this code.
    Closed(u16),
    /// The target closed the TCP connection without a close frame (or reset it).
    Dropped,
}

/// A connected fleet of subscribers.
pub struct Fleet {
    config: FleetConfig,
    /// Channel index → subscribers that keep reading.
    readers_per_channel: Vec<u64>,
    received: Arc<AtomicU64>,
    last_delivery_us: Arc<AtomicU64>,
    phase: u32,
    /// Per phase: published[channel][publisher].
    published: Vec<Vec<Vec<u64>>>,
    stop: watch::Sender<bool>,
    tasks: Vec<(Vec<u32>, bool, tokio::task::JoinHandle<SubscriberResult>)>,
    /// Where events are published, when not the hub the subscribers are on (another hub of a cluster).
    publish_target: Option<Target>,
    /// What connecting measured.
    pub connect: ConnectReport,
}

/// The name of channel `c` (`bench-0` ..., or `cache-bench-0` ... for a fleet on cache channels).
fn channel_name(prefix: &str, c: u32) -> String {
    format!("{prefix}bench-{c}")
}

/// The channels connection `i` joins.
fn channels_of(config: &FleetConfig, i: usize) -> Vec<u32> {
    let per = if config.protocol == Protocol::V1 { 1 } else { config.channels_per_connection.max(1) };
    (0..per).map(|k| ((i * per + k) % config.channels.max(1)) as u32).collect()
}

fn source_addr(config: &FleetConfig, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(config.sources.max(1))) as u8)
}

/// A small client buffer: the fleet holds thousands of connections.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024).write_buffer_size(0)
}

async fn open(config: &FleetConfig, i: usize) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    let source = SocketAddr::V4(SocketAddrV4::new(source_addr(config, i), 0));
    socket.bind(source).map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket.connect(config.target.addr()).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).ok();
    let addr = config.target.addr();
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    let url = match (&config.target, config.protocol) {
        (Target::Hub { key, .. }, Protocol::Pusher) => {
            format!("{scheme}://{addr}/app/{key}?protocol=7&client=poussr-bench&version=0.1.0")
        }
        (Target::Hub { .. }, Protocol::V1) => format!("{scheme}://{addr}/"),
        (Target::Baseline { .. }, _) => format!("{scheme}://{addr}/"),
    };
    let (mut ws, _) = match &config.tls {
        None => tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(client_config()))
            .await
            .map_err(|e| format!("handshake: {e}"))?,
        Some(tls) => tokio_tungstenite::client_async_tls_with_config(
            url,
            stream,
            Some(client_config()),
            Some(tokio_tungstenite::Connector::Rustls(tls.clone())),
        )
        .await
        .map_err(|e| format!("TLS or WebSocket handshake: {e}"))?,
    };
    if let Target::Hub { .. } = config.target {
        let channels = channels_of(config, i);
        if config.protocol == Protocol::Pusher {
            expect(&mut ws, "pusher:connection_established").await?;
        }
        for c in &channels {
            let frame = match config.protocol {
                Protocol::Pusher => {
                    format!(
                        r#"{{"event":"pusher:subscribe","data":{{"channel":"{}"}}}}"#,
                        channel_name(config.channel_prefix, *c)
                    )
                }
                Protocol::V1 => {
                    format!(
                        r#"{{"event":"poussr:subscribe","data":{{"channel":"{}"}}}}"#,
                        channel_name(config.channel_prefix, *c)
                    )
                }
            };
            ws.send(Message::text(frame)).await.map_err(|e| format!("subscribe: {e}"))?;
        }
        for _ in &channels {
            expect(&mut ws, "subscription_succeeded").await?;
        }
    }
    Ok(ws)
}

/// Reads frames until one contains `what`; anything else first is an error.
async fn expect(ws: &mut Ws, what: &str) -> Result<(), String> {
    let next = tokio::time::timeout(Duration::from_secs(30), ws.next()).await;
    match next {
        Ok(Some(Ok(Message::Text(t)))) if t.contains(what) => Ok(()),
        Ok(Some(Ok(other))) => Err(format!("expected {what}, got {other:?}")),
        Ok(Some(Err(e))) => Err(format!("expected {what}: {e}")),
        Ok(None) => Err(format!("closed while waiting for {what}")),
        Err(_) => Err(format!("no {what} within 30 s")),
    }
}

async fn read_loop(
    mut ws: Ws,
    stalled: bool,
    mut stop: watch::Receiver<bool>,
    received: Arc<AtomicU64>,
    last_delivery_us: Arc<AtomicU64>,
) -> SubscriberResult {
    let mut out = SubscriberResult::default();
    if stalled {
        // A slow consumer: reads nothing until the end, then reads what is left to learn how it was closed.
        let _ = stop.wait_for(|s| *s).await;
        let ending = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(m) = ws.next().await {
                match m {
                    Ok(Message::Close(Some(f))) => return Ending::Closed(f.code.into()),
                    Ok(Message::Close(None)) | Err(_) => return Ending::Dropped,
                    Ok(_) => {}
                }
            }
            Ending::Dropped
        })
        .await;
        out.ending = ending.unwrap_or(Ending::Open);
        return out;
    }
    loop {
        tokio::select! {
            biased;
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let (Some(sent), Some(h), Some(c), Some(p), Some(s)) =
                        (field(&t, "t"), field(&t, "h"), field(&t, "c"), field(&t, "p"), field(&t, "s"))
                    else {
                        continue;
                    };
                    let now = now_us();
                    let h = h as u32;
                    if out.latencies.len() <= h as usize {
                        out.latencies.resize_with(h as usize + 1, Vec::new);
                    }
                    out.latencies[h as usize].push(now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                    out.tracker.record(h, c as u32, p as u32, s);
                    received.fetch_add(1, Relaxed);
                    last_delivery_us.fetch_max(now, Relaxed);
                }
                Some(Ok(Message::Close(f))) => {
                    out.ending = f.map(|f| Ending::Closed(f.code.into())).unwrap_or(Ending::Dropped);
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    out
}

impl Fleet {
    /// Opens every connection (at most `connect_concurrency` handshakes at once) and subscribes it.
    pub async fn connect(config: FleetConfig) -> Fleet {
        let (stop, _) = watch::channel(false);
        let received = Arc::new(AtomicU64::new(0));
        let last_delivery_us = Arc::new(AtomicU64::new(0));
        let limit = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
        let started = Instant::now();
        let mut pending = Vec::with_capacity(config.connections);
        for i in 0..config.connections {
            let config = config.clone();
            let limit = limit.clone();
            pending.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.map_err(|e| e.to_string())?;
                open(&config, i).await
            }));
        }
        let mut tasks = Vec::new();
        let mut readers_per_channel = vec![0u64; config.channels.max(1)];
        let mut connected = 0;
        let mut errs = 0;
        let mut first = None;
        for (i, handle) in pending.into_iter().enumerate() {
            let ws = handle.await.unwrap_or_else(|e| Err(format!("task: {e}")));
            match ws {
                Ok(ws) => {
                    connected += 1;
                    let stalled = i < config.stalled;
                    let channels = channels_of(&config, i);
                    if !stalled {
                        for c in &channels {
                            readers_per_channel[*c as usize] += 1;
                        }
                    }
                    let task = tokio::spawn(read_loop(
                        ws,
                        stalled,
                        stop.subscribe(),
                        received.clone(),
                        last_delivery_us.clone(),
                    ));
                    tasks.push((channels, stalled, task));
                }
                Err(e) => {
                    errs += 1;
                    first.get_or_insert(e);
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Fleet {
            connect: ConnectReport {
                connected,
                errors: errs,
                first_error: first,
                seconds,
                rate: connected as f64 / seconds.max(1e-9),
            },
            config,
            readers_per_channel,
            received,
            last_delivery_us,
            phase: 0,
            published: Vec::new(),
            stop,
            tasks,
            publish_target: None,
        }
    }

    /// Publishes through `target` (another hub of the same cluster) instead of the subscribers' hub.
    pub fn publish_through(&mut self, target: Target) {
        self.publish_target = Some(target);
    }

    /// Publishes for `phase.duration`, then waits (at most 10 s) for the deliveries to arrive.
    /// Returns the phase number, to look its report up after [`Fleet::close`].
    pub async fn publish(&mut self, phase: &PhaseConfig) -> (u32, PhaseReport) {
        let h = self.phase;
        self.phase += 1;
        let channels = self.config.channels.max(1);
        let prefix = self.config.channel_prefix;
        let publishers = phase.publishers.max(1);
        let before = self.received.load(Relaxed);
        let started = Instant::now();
        let started_us = now_us();
        let per_publisher = phase.rate / publishers as f64;
        // The publishers run on a thread and runtime of their own, as a backend on another machine would:
        // on this runtime, which drives the fleet's subscribers, each answer would wait behind the
        // subscribers' reads, and the publishing rate would be the load generator's, not the server's.
        let mut jobs = Vec::new();
        for p in 0..publishers {
            let target = self.publish_target.clone().unwrap_or_else(|| self.config.target.clone());
            let phase = phase.clone();
            // Publishers start evenly spread over one interval, so their events do not come in bursts.
            let offset = 1.0 / per_publisher.max(1e-3) * p as f64 / publishers as f64;
            jobs.push((target, p, phase, offset));
        }
        let outcome = crate::on_own_thread("publishers", move || async move {
            crate::install_crypto_provider();
            let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("HTTP client");
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(target, p, phase, offset)| {
                    let http = http.clone();
                    tokio::spawn(async move {
                        publisher(target, http, h, p as u32, (prefix, channels), per_publisher, offset, phase).await
                    })
                })
                .collect();
            let mut outcome = Vec::new();
            for handle in handles {
                outcome.push(handle.await.ok());
            }
            outcome
        })
        .await;
        // Publishers that never ran count as publish errors, so the report cannot read as a clean run.
        let outcome = outcome.unwrap_or_else(|e| {
            eprintln!("poussr-bench: {e}");
            vec![None; publishers]
        });
        let mut published = vec![vec![0u64; publishers]; channels];
        let mut errors = 0;
        for (p, result) in outcome.into_iter().enumerate() {
            match result {
                Some((counts, errs)) => {
                    for (c, n) in counts.into_iter().enumerate() {
                        published[c][p] = n;
                    }
                    errors += errs;
                }
                // A publisher that did not finish (it panicked, or its thread never ran).
                None => errors += 1,
            }
        }
        let publish_secs = started.elapsed().as_secs_f64().max(phase.duration.as_secs_f64());
        let expected: u64 =
            published.iter().enumerate().map(|(c, per)| per.iter().sum::<u64>() * self.readers_per_channel[c]).sum();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.received.load(Relaxed) - before < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let received = self.received.load(Relaxed) - before;
        let span_us = self.last_delivery_us.load(Relaxed).saturating_sub(started_us).max(1);
        let total_published: u64 = published.iter().flatten().sum();
        self.published.push(published);
        let report = PhaseReport {
            published: total_published,
            publish_errors: errors,
            publish_rate: total_published as f64 / publish_secs.max(1e-9),
            expected,
            received,
            deliveries_per_sec: received as f64 / (span_us as f64 / 1e6),
            ..PhaseReport::default()
        };
        (h, report)
    }

    /// Closes the fleet and completes the phase reports with loss, order and latency figures. Also
    /// returns how the stalled subscribers' connections ended.
    pub async fn close(self, mut reports: Vec<PhaseReport>) -> (Vec<PhaseReport>, Vec<Ending>) {
        let _ = self.stop.send(true);
        let mut latencies: Vec<Vec<u32>> = vec![Vec::new(); reports.len()];
        let mut stalled_codes = Vec::new();
        for (channels, stalled, task) in self.tasks {
            let Ok(result) = task.await else { continue };
            if stalled {
                stalled_codes.push(result.ending);
                continue;
            }
            for (h, report) in reports.iter_mut().enumerate() {
                for c in &channels {
                    for (p, n) in self.published[h][*c as usize].iter().enumerate() {
                        report.lost += result.tracker.lost(h as u32, *c, p as u32, *n);
                    }
                }
            }
            for (h, samples) in result.latencies.into_iter().enumerate() {
                if let Some(all) = latencies.get_mut(h) {
                    all.extend(samples);
                }
            }
            // Duplicates and reorders are not split by phase: phases run one after another.
            if let Some(last) = reports.last_mut() {
                last.duplicated += result.tracker.duplicated;
                last.reordered += result.tracker.reordered;
            }
        }
        for (report, samples) in reports.iter_mut().zip(latencies) {
            report.latency = Latency::of(samples);
        }
        (reports, stalled_codes)
    }
}

/// One publisher: events at `rate`/s from `offset_secs` on, round-robin over the channels, each numbered
/// per channel.
#[allow(clippy::too_many_arguments)]
async fn publisher(
    target: Target,
    http: reqwest::Client,
    h: u32,
    p: u32,
    (prefix, channels): (&'static str, usize),
    rate: f64,
    offset_secs: f64,
    phase: PhaseConfig,
) -> (Vec<u64>, u64) {
    let mut counts = vec![0u64; channels];
    let mut errors = 0;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let begin = tokio::time::Instant::now();
    let start = begin + Duration::from_secs_f64(offset_secs);
    let end = begin + phase.duration;
    let mut baseline = match &target {
        Target::Baseline { addr, acked } => {
            let path = if *acked { "publish-acked" } else { "publish" };
            match tokio_tungstenite::connect_async(format!("ws://{addr}/{path}")).await {
                Ok((ws, _)) => Some(ws),
                Err(_) => return (counts, 1),
            }
        }
        Target::Hub { .. } => None,
    };
    let mut k: u64 = 0;
    loop {
        let at = start + interval.mul_f64(k as f64);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let c = ((u64::from(p) + k) % channels as u64) as usize;
        let seq = counts[c] + 1;
        let data = event_data(h, c as u32, p, seq, phase.payload);
        let ok = match (&target, baseline.as_mut()) {
            (Target::Baseline { acked, .. }, Some(ws)) => {
                #[derive(Serialize)]
                struct Frame<'a> {
                    event: &'a str,
                    channel: &'a str,
                    data: &'a str,
                }
                let frame =
                    serde_json::to_string(&Frame { event: "e", channel: &channel_name(prefix, c as u32), data: &data })
                        .expect("frame serializes");
                let sent = ws.send(Message::text(frame)).await.is_ok();
                // Acknowledged publishing waits for the answer, as an SDK waits for the HTTP API's.
                sent && (!*acked || matches!(ws.next().await, Some(Ok(Message::Text(_)))))
            }
            (Target::Hub { addr, app_id, key, secret }, _) => {
                publish_http(&http, *addr, app_id, key, secret, phase.via, &channel_name(prefix, c as u32), &data).await
            }
            _ => false,
        };
        if ok {
            counts[c] = seq;
        } else {
            errors += 1;
        }
        k += 1;
    }
    (counts, errors)
}

/// One event through the hub's HTTP API or Poussr v1 REST; true when accepted.
#[allow(clippy::too_many_arguments)]
pub async fn publish_http(
    http: &reqwest::Client,
    addr: SocketAddr,
    app_id: &str,
    key: &str,
    secret: &str,
    via: Via,
    channel: &str,
    data: &str,
) -> bool {
    let request = match via {
        Via::Api => {
            #[derive(Serialize)]
            struct Body<'a> {
                name: &'a str,
                channel: &'a str,
                data: &'a str,
            }
            let body = serde_json::to_vec(&Body { name: "e", channel, data }).expect("body serializes");
            let path = format!("/apps/{app_id}/events");
            let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let query = crate::sign::signed_query(key, secret, "POST", &path, &body, ts);
            http.post(format!("http://{addr}{path}?{query}")).header("content-type", "application/json").body(body)
        }
        Via::V1Rest => http.post(format!("http://{addr}/v1/channels/{channel}/events?name=e")).body(data.to_owned()),
    };
    matches!(request.send().await, Ok(r) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracker_sees_loss_duplicates_and_reordering() {
        let mut t = Tracker::default();
        for s in [1, 2, 3, 4] {
            t.record(0, 0, 0, s);
        }
        assert_eq!((t.duplicated, t.reordered, t.lost(0, 0, 0, 4)), (0, 0, 0));
        // 5 lost, 7 before 6, 8 twice, and 10 never sent to this subscriber.
        for s in [7, 6, 8, 8, 9] {
            t.record(0, 0, 0, s);
        }
        assert_eq!(t.duplicated, 1);
        assert_eq!(t.reordered, 1);
        assert_eq!(t.lost(0, 0, 0, 10), 2);
        // Another stream is separate; one never seen lost everything.
        t.record(0, 1, 0, 1);
        assert_eq!(t.lost(0, 1, 0, 1), 0);
        assert_eq!(t.lost(1, 0, 0, 3), 3);
        assert_eq!(t.received, 10);
    }

    #[test]
    fn stamps_survive_the_frame_encoding() {
        let data = event_data(2, 3, 4, 5, 100);
        assert_eq!(data.len(), 100);
        let frame = serde_json::json!({"event": "e", "channel": "bench-3", "data": data}).to_string();
        assert_eq!(
            (field(&frame, "h"), field(&frame, "c"), field(&frame, "p"), field(&frame, "s")),
            (Some(2), Some(3), Some(4), Some(5))
        );
        assert!(field(&frame, "t").unwrap() > 1_600_000_000_000_000);
        assert_eq!(field(&frame, "nope"), None);
    }

    #[test]
    fn latency_percentiles() {
        let l = Latency::of((1..=100).collect());
        assert_eq!((l.p50, l.p90, l.p99, l.max, l.samples), (51, 90, 99, 100, 100));
        assert_eq!(Latency::of(Vec::new()).samples, 0);
    }
}
