//! Join latency: presence subscriptions answered while another channel of the same app fans out.
//!
//! Joiners (one WebSocket each, on a loopback address of their own) join a presence channel and leave it
//! again, paced together at a fixed rate. A join's latency is the time from sending `pusher:subscribe`
//! to reading `pusher_internal:subscription_succeeded` for it. The same joins are measured on an idle hub
//! and while a fleet on another channel of the app takes a fan-out, so the figure shows whether one
//! channel's deliveries hold up another channel's joins.
//!
//! Beside the joins, probes measure the machine's own floor: the same number of connections, at the same
//! rate, each sending a line to an echo server that does nothing else (a blocking thread per connection)
//! and timing the line's return. A probe's round trip has the same two wake-ups as a join (the server's,
//! then the prober's) and no server work, so the probes' figures during the fan-out are what any server
//! would show on this machine while the fan-out and the load generator share its cores.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::load::Target;
use crate::sign::channel_auth;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The presence channel the joiners use.
pub const CHANNEL: &str = "presence-joins";

/// How many joiners share the rate (each joins, waits for the answer, leaves, then waits its turn).
const JOINERS: usize = 10;

/// How long one answer may take before the run counts it as failed.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// What one measurement gives: each join's latency and each probe's round trip, in µs, and the joins
/// that failed (refused, or no answer within 10 s).
pub struct Measured {
    /// Each answered join's latency, in µs.
    pub joins: Vec<u32>,
    /// Joins refused, or not answered within 10 s.
    pub failed: usize,
    /// Each probe's round trip to the echo server, in µs.
    pub probes: Vec<u32>,
}

/// Joins and leaves `CHANNEL` at `rate` joins/s for `duration`, with probes of the machine's floor at the
/// same rate beside them (see the module's documentation).
///
/// The joiners run on a thread and runtime of their own: on the caller's runtime, which also drives a
/// fleet of 10,000 subscribers, a joiner reading its answer would wait behind those subscribers' tasks,
/// and the figure would measure the load generator instead of the hub.
pub async fn measure(target: &Target, rate: f64, duration: Duration) -> Result<Measured, String> {
    let target = target.clone();
    let echo = echo_server()?;
    crate::on_own_thread("joiners", move || async move { run(&target, echo, rate, duration).await }).await?
}

/// The joiners and the probers, on the runtime of [`measure`]'s thread.
async fn run(target: &Target, echo: SocketAddr, rate: f64, duration: Duration) -> Result<Measured, String> {
    let Target::Hub { addr, key, secret, .. } = target else { return Err("joins are measured on a hub".into()) };
    let mut joiners = Vec::new();
    let mut probers = Vec::new();
    let interval = Duration::from_secs_f64(JOINERS as f64 / rate.max(1e-3));
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    for j in 0..JOINERS {
        let (addr, key, secret) = (*addr, key.clone(), secret.clone());
        // Spread evenly over one interval, so the joins come at the rate and not in bursts; each probe
        // half a slot after a join, so the two never wait for each other on this runtime.
        let first = start + interval.mul_f64(j as f64 / JOINERS as f64);
        let probe_first = first + interval.mul_f64(0.5 / JOINERS as f64);
        joiners.push(tokio::spawn(async move { joiner(addr, &key, &secret, j, first, interval, duration).await }));
        probers.push(tokio::spawn(async move { prober(echo, j, probe_first, interval, duration).await }));
    }
    let mut measured = Measured { joins: Vec::new(), failed: 0, probes: Vec::new() };
    for task in joiners {
        let (s, f) = task.await.map_err(|e| e.to_string())??;
        measured.joins.extend(s);
        measured.failed += f;
    }
    for task in probers {
        measured.probes.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(measured)
}

/// An echo server on 127.0.0.1 that does nothing else: a blocking thread per connection sends each line
/// back. Its threads end when their connection does; the listening thread is left parked in `accept`.
fn echo_server() -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("the echo server: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("echo".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = std::thread::Builder::new().name("echo-conn".into()).spawn(move || {
                    let _ = stream.set_nodelay(true);
                    let Ok(mut out) = stream.try_clone() else { return };
                    let mut lines = BufReader::new(stream);
                    let mut line = String::new();
                    while matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
                        if out.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        })
        .map_err(|e| format!("the echo server: {e}"))?;
    Ok(addr)
}

/// One prober: sends a line to the echo server at its slots and times the line's return.
async fn prober(
    echo: SocketAddr,
    j: usize,
    first: tokio::time::Instant,
    interval: Duration,
    duration: Duration,
) -> Result<Vec<u32>, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 10), 0))).map_err(|e| e.to_string())?;
    let stream = socket.connect(echo).await.map_err(|e| format!("prober {j}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut stream = tokio::io::BufReader::new(stream);
    let end = first + duration;
    let mut samples = Vec::new();
    let mut line = String::new();
    let mut k = 0u32;
    loop {
        let at = first + interval * k;
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        k += 1;
        let sent = Instant::now();
        stream.get_mut().write_all(b"probe\n").await.map_err(|e| format!("prober {j}: {e}"))?;
        line.clear();
        match tokio::time::timeout(ANSWER_WITHIN, stream.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => samples.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
            Ok(Ok(_)) => return Err(format!("prober {j}: the echo server closed the connection")),
            Ok(Err(e)) => return Err(format!("prober {j}: {e}")),
            Err(_) => return Err(format!("prober {j}: no echo within {ANSWER_WITHIN:?}")),
        }
    }
    Ok(samples)
}

/// One joiner: connects, then joins and leaves at its own slots until `duration` has passed.
async fn joiner(
    addr: SocketAddr,
    key: &str,
    secret: &str,
    j: usize,
    first: tokio::time::Instant,
    interval: Duration,
    duration: Duration,
) -> Result<(Vec<u32>, usize), String> {
    let (mut ws, socket_id) = connect(addr, key).await?;
    let member = serde_json::json!({"user_id": format!("joiner-{j}"), "user_info": {"joiner": j}}).to_string();
    let auth = channel_auth(key, secret, &socket_id, CHANNEL, Some(&member));
    let subscribe = serde_json::json!({
        "event": "pusher:subscribe",
        "data": {"channel": CHANNEL, "auth": auth, "channel_data": member},
    })
    .to_string();
    let unsubscribe = serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": CHANNEL}}).to_string();
    let end = first + duration;
    let mut samples = Vec::new();
    let mut failed = 0;
    let mut k = 0u32;
    loop {
        let at = first + interval * k;
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        k += 1;
        let sent = Instant::now();
        ws.send(Message::text(subscribe.clone())).await.map_err(|e| format!("joiner {j}: {e}"))?;
        match tokio::time::timeout(ANSWER_WITHIN, answer(&mut ws)).await {
            Ok(Ok(())) => samples.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
            Ok(Err(e)) => return Err(format!("joiner {j}: {e}")),
            Err(_) => failed += 1,
        }
        ws.send(Message::text(unsubscribe.clone())).await.map_err(|e| format!("joiner {j}: {e}"))?;
    }
    // The hub answers the close after every frame before it, the last leave included: once the stream
    // ends, this joiner has left the channel.
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(ANSWER_WITHIN, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    Ok((samples, failed))
}

/// Reads until the answer to this connection's subscription (skipping the other joiners' member events).
async fn answer(ws: &mut Ws) -> Result<(), String> {
    while let Some(message) = ws.next().await {
        match message.map_err(|e| e.to_string())? {
            Message::Text(t) if t.contains("subscription_succeeded") => return Ok(()),
            Message::Text(t) if t.contains("subscription_error") => return Err(format!("refused: {t}")),
            _ => {}
        }
    }
    Err("the hub closed the connection".into())
}

/// A Pusher connection from 127.0.0.9 (apart from the fleet's addresses); returns it and its socket id.
async fn connect(addr: SocketAddr, key: &str) -> Result<(Ws, String), String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 9), 0))).map_err(|e| e.to_string())?;
    let stream = socket.connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let url = format!("ws://{addr}/app/{key}?protocol=7&client=poussr-bench-joins");
    let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let hello = match tokio::time::timeout(ANSWER_WITHIN, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        other => return Err(format!("no connection_established: {other:?}")),
    };
    let hello: serde_json::Value = serde_json::from_str(&hello).map_err(|e| e.to_string())?;
    let data: serde_json::Value =
        serde_json::from_str(hello["data"].as_str().unwrap_or("{}")).map_err(|e| e.to_string())?;
    let socket_id = data["socket_id"].as_str().ok_or("no socket_id")?.to_owned();
    Ok((ws, socket_id))
}
