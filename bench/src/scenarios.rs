//! The benchmark scenarios: each runs against a fresh hub and a fresh baseline in the same run, and is
//! written as Markdown with the hub/baseline ratio next to every figure.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::load::{Ending, Fleet, FleetConfig, Latency, PhaseConfig, PhaseReport, Protocol, Target, Via};
use crate::procfs;

/// How big the scenarios are.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Idle connections for the memory figure.
    pub idle: usize,
    /// Subscribers in the fan-out scenario.
    pub fanout: usize,
    /// Publish rates tried in the fan-out scenario, events/s.
    pub fanout_rates: Vec<f64>,
    /// Seconds per fan-out step.
    pub step_secs: u64,
    /// Subscribers in the latency scenario.
    pub latency_subscribers: usize,
    /// Seconds per latency rate.
    pub latency_secs: u64,
    /// Readers in the slow-consumer scenario.
    pub slow_readers: usize,
    /// Seconds of the slow-consumer scenario.
    pub slow_secs: u64,
    /// Try as many connections as the open-file limit allows.
    pub max_connections: bool,
    /// Subscribers in the cluster scenario.
    pub cluster_subscribers: usize,
    /// Publish rates of the cluster scenario, events/s.
    pub cluster_rates: Vec<f64>,
}

impl Scale {
    /// The sizes the issue asks for.
    pub fn full() -> Self {
        Scale {
            idle: 10_000,
            fanout: 10_000,
            fanout_rates: vec![10.0, 25.0, 50.0, 100.0, 200.0, 400.0],
            step_secs: 5,
            latency_subscribers: 1_000,
            latency_secs: 10,
            slow_readers: 200,
            slow_secs: 15,
            max_connections: true,
            cluster_subscribers: 5_000,
            cluster_rates: vec![10.0, 50.0, 100.0],
        }
    }

    /// A quick pass that checks that every scenario runs.
    pub fn quick() -> Self {
        Scale {
            idle: 200,
            fanout: 200,
            fanout_rates: vec![10.0, 50.0],
            step_secs: 1,
            latency_subscribers: 50,
            latency_secs: 1,
            slow_readers: 20,
            slow_secs: 3,
            max_connections: false,
            cluster_subscribers: 100,
            cluster_rates: vec![10.0, 50.0],
        }
    }
}

/// A process under test: the hub or the baseline.
pub(crate) struct Server {
    child: Child,
    pub(crate) target: Target,
    pub(crate) pid: u32,
    _data: Option<TempDir>,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const APP_ID: &str = "100100";
const APP_KEY: &str = "benchkey0123456789ab";
const APP_SECRET: &str = "benchsecret0123456789abcdef012345";

async fn listening(child: &mut Child) -> std::io::Result<SocketAddr> {
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split("listening on ").nth(1) {
                // "http://127.0.0.1:6001", or "http://… and https://…" with TLS: the first address.
                let first = rest.split_whitespace().next().unwrap_or_default();
                let addr =
                    first.trim_start_matches("http://").trim_start_matches("https://").trim_start_matches("ws://");
                if let Ok(a) = addr.parse() {
                    return Ok(a);
                }
            }
        }
        Err(std::io::Error::other("the process ended without a \"listening on\" line"))
    })
    .await
    .map_err(|_| std::io::Error::other("no \"listening on\" line within 30 s"))??;
    // Keep draining its output so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(found)
}

impl Server {
    pub(crate) async fn hub(bin: &Path) -> std::io::Result<Server> {
        Self::hub_with(bin, &[]).await
    }

    /// A hub of a Redis cluster (`--adapter redis`), with the same app as every other.
    pub(crate) async fn clustered_hub(bin: &Path, redis_url: &str, extra: &[&str]) -> std::io::Result<Server> {
        let mut flags = vec!["--adapter", "redis", "--redis-url", redis_url, "--redis-prefix", "bench"];
        flags.extend_from_slice(extra);
        Self::hub_with(bin, &flags).await
    }

    /// A hub with the bench's app, its own data folder and the `extra` flags.
    pub(crate) async fn hub_with(bin: &Path, extra: &[&str]) -> std::io::Result<Server> {
        let data = std::env::temp_dir().join(format!("poussr-bench-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&data)?;
        let mut child = hub_command(bin)
            .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--app-id", APP_ID, "--app-key", APP_KEY])
            .args(["--app-secret", APP_SECRET])
            .args(extra)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let addr = listening(&mut child).await?;
        let pid = child.id().unwrap_or(0);
        Ok(Server {
            child,
            target: Target::Hub { addr, app_id: APP_ID.into(), key: APP_KEY.into(), secret: APP_SECRET.into() },
            pid,
            _data: Some(TempDir(data)),
        })
    }

    async fn baseline() -> std::io::Result<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["baseline", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let addr = listening(&mut child).await?;
        let pid = child.id().unwrap_or(0);
        Ok(Server { child, target: Target::Baseline { addr, acked: false }, pid, _data: None })
    }

    pub(crate) fn sample(&self) -> procfs::Sample {
        procfs::sample(self.pid).unwrap_or(procfs::Sample {
            at: std::time::Instant::now(),
            rss_kib: 0,
            cpu_ticks: 0,
            fds: 0,
        })
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Stops it as a service manager does (SIGTERM) and waits for it to exit (at most 10 s, then SIGKILL).
    pub(crate) async fn terminate(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// The command that runs the hub `bin`: the Windows build (`poussr.exe`) runs under Wine elsewhere than on
/// Windows (its process is the program's own, so its memory and CPU are sampled as the Linux build's are).
pub(crate) fn hub_command(bin: &Path) -> Command {
    if !cfg!(windows) && bin.extension().is_some_and(|e| e.eq_ignore_ascii_case("exe")) {
        let mut wine = Command::new("wine");
        wine.arg(bin).env("WINEDEBUG", "-all");
        wine
    } else {
        Command::new(bin)
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A redis-server on a free loopback port, in memory only, killed when dropped.
struct Redis {
    _child: Child,
    url: String,
}

impl Redis {
    async fn start() -> std::io::Result<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| std::io::Error::other(format!("redis-server: {e} (apt install redis-server)")))?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(Redis { _child: child, url: format!("redis://127.0.0.1:{port}") });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(std::io::Error::other("redis-server did not start within 5 s"))
    }
}

/// One hub against two hubs on Redis: subscribers on the first, events published through the second, then
/// through the first itself; under the fan-out load, then with one subscriber (where the round trip to Redis
/// that one order adds is not hidden by the fan-out).
pub async fn cluster(hub_bin: &Path, scale: &Scale) -> std::io::Result<String> {
    let mut md = String::new();
    let subscribers = scale.cluster_subscribers;
    writeln!(
        md,
        "## Cluster: two hubs through Redis against one hub\n\n`poussr-bench cluster`: {subscribers} subscribers on \
         one channel of hub A, 100-byte events published through the signed HTTP API (16 publishers), {} s per \
         rate, history on (the default of `poussr serve`). *One hub*: publishers and subscribers on the same \
         hub (local adapter; its history in its own store, committed to the disk before delivery). *Through \
         Redis*: the subscribers on hub A, the events published on hub B, delivered by way of a local \
         redis-server (`--adapter redis`; the history in Redis). *Cluster, own hub*: the events published on \
         hub A itself, which delivers them only once they are back from Redis (one order for the cluster): \
         what that order costs. Everything on this machine's 2 cores, Redis included.\n",
        scale.step_secs
    )
    .ok();
    cluster_table(&mut md, hub_bin, subscribers, &scale.cluster_rates, scale.step_secs, &[]).await?;
    writeln!(
        md,
        "The same with **one subscriber** at {} events/s, where nothing hides the cost of the order (a round \
         trip to Redis before a hub's own subscribers get its events):\n",
        scale.cluster_rates[0]
    )
    .ok();
    cluster_table(&mut md, hub_bin, 1, &scale.cluster_rates[..1], scale.step_secs, &[]).await?;
    writeln!(
        md,
        "And with history off (`--no-history`) on every hub, so that neither the store's commit to the disk (one \
         hub) nor Redis's stream (the cluster) is in the figures, only the order's round trip:\n"
    )
    .ok();
    cluster_table(&mut md, hub_bin, 1, &scale.cluster_rates[..1], scale.step_secs, &["--no-history"]).await?;
    Ok(md)
}

/// One table of [`cluster`]: `subscribers` on hub A, each rate published on one hub alone, then through hub
/// B of a cluster, then through hub A itself; every hub with the `extra` flags.
async fn cluster_table(
    md: &mut String,
    hub_bin: &Path,
    subscribers: usize,
    rates: &[f64],
    step_secs: u64,
    extra: &[&str],
) -> std::io::Result<()> {
    writeln!(
        md,
        "| rate (events/s) | setup | deliveries/s | p50 ms | p99 ms | lost | duplicated | reordered |
|---|---|---|---|---|---|---|---|"
    )
    .ok();
    let mut single = Vec::new();
    {
        let server = Server::hub_with(hub_bin, extra).await?;
        let mut f = Fleet::connect(fleet(&server.target, subscribers, 0)).await;
        for rate in rates {
            let p = PhaseConfig { publishers: FANOUT_PUBLISHERS, ..phase(*rate, 100, step_secs) };
            single.push(f.publish(&p).await.1);
        }
        single = f.close(single).await.0;
        server.stop().await;
    }
    let mut across = Vec::new();
    {
        let redis = Redis::start().await?;
        let a = Server::clustered_hub(hub_bin, &redis.url, extra).await?;
        let b = Server::clustered_hub(hub_bin, &redis.url, extra).await?;
        // Both linked: B has seen A's heartbeat.
        for _ in 0..100 {
            let others = health(&b.target).await.and_then(|h| h["cluster"]["others"].as_array().map(Vec::len));
            if others == Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut f = Fleet::connect(fleet(&a.target, subscribers, 0)).await;
        for target in [&b.target, &a.target] {
            f.publish_through(target.clone());
            for rate in rates {
                let p = PhaseConfig { publishers: FANOUT_PUBLISHERS, ..phase(*rate, 100, step_secs) };
                across.push(f.publish(&p).await.1);
            }
        }
        across = f.close(across).await.0;
        a.stop().await;
        b.stop().await;
        drop(redis);
    }
    let own = across.split_off(rates.len());
    for (i, rate) in rates.iter().enumerate() {
        for (who, r) in [("one hub", &single[i]), ("through Redis", &across[i]), ("cluster, own hub", &own[i])] {
            writeln!(
                md,
                "| {rate:.0} | {who} | {:.0} | {} | {} | {} | {} | {} |",
                r.deliveries_per_sec,
                ms(r.latency.p50),
                ms(r.latency.p99),
                r.lost,
                r.duplicated,
                r.reordered
            )
            .ok();
        }
        for (who, r) in [("through Redis", &across[i]), ("own hub", &own[i])] {
            writeln!(
                md,
                "| {rate:.0} | **ratio, {who}** | **{}** | | **{}** | | | |",
                ratio(r.deliveries_per_sec, single[i].deliveries_per_sec),
                ratio(r.latency.p99 as f64, single[i].latency.p99 as f64)
            )
            .ok();
        }
    }
    writeln!(md).ok();
    Ok(())
}

/// The bench app's id, key and secret.
pub(crate) fn credentials() -> (&'static str, &'static str, &'static str) {
    (APP_ID, APP_KEY, APP_SECRET)
}

/// Subscribers on one channel, reading.
pub(crate) fn fleet_config(target: &Target, connections: usize) -> FleetConfig {
    fleet(target, connections, 0)
}

fn fleet(target: &Target, connections: usize, stalled: usize) -> FleetConfig {
    FleetConfig {
        target: target.clone(),
        protocol: Protocol::Pusher,
        connections,
        channels: 1,
        channels_per_connection: 1,
        sources: 8,
        stalled,
        connect_concurrency: 128,
        channel_prefix: "",
        tls: None,
    }
}

pub(crate) fn phase(rate: f64, payload: usize, secs: u64) -> PhaseConfig {
    PhaseConfig { publishers: 2, rate, via: Via::Api, payload, duration: Duration::from_secs(secs) }
}

/// Publishers for the fan-out steps: an SDK waits for each answer, so one publisher's rate is bounded by
/// the round trip; several in parallel keep the HTTP path from being what limits the hub.
const FANOUT_PUBLISHERS: usize = 16;

/// The hub's `/health`.
pub(crate) async fn health(target: &Target) -> Option<serde_json::Value> {
    crate::install_crypto_provider();
    let res = reqwest::get(format!("http://{}/health", target.addr())).await.ok()?;
    serde_json::from_slice(&res.bytes().await.ok()?).ok()
}

pub(crate) fn ratio(hub: f64, base: f64) -> String {
    if base <= 0.0 { "—".into() } else { format!("{:.2}×", hub / base) }
}

pub(crate) fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Runs every scenario and returns the Markdown section.
pub async fn run(hub_bin: &Path, scale: &Scale) -> std::io::Result<String> {
    let mut md = String::new();
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, 0));
    writeln!(md, "## Load: the hub against the bare-socket baseline\n").ok();
    writeln!(
        md,
        "`poussr-bench run` (bench/src): the load generator, the hub (`{}`, release) and the baseline (the smallest \
         tokio-tungstenite broadcast server, `poussr-bench baseline`) all on this machine; open-file limit {} soft / \
         {} hard. Client sockets are spread over 127.0.0.1–127.0.0.8. Hub events go through the signed HTTP API \
         (2 publishers, 16 in the fan-out steps); baseline events through one publishing WebSocket per publisher. The \
         publishers run on a thread and runtime of their own, apart from the subscribers'. Ratios are hub / \
         baseline.\n",
        hub_bin.display(),
        limit.0,
        limit.1
    )
    .ok();
    idle_memory(&mut md, hub_bin, scale).await?;
    fanout(&mut md, hub_bin, scale).await?;
    latency(&mut md, hub_bin, scale).await?;
    slow_consumer(&mut md, hub_bin, scale).await?;
    joins(&mut md, hub_bin, scale).await?;
    md.push_str(&crate::history::section(hub_bin, scale).await?);
    md.push_str(&crate::tls::section(hub_bin, scale).await?);
    if scale.max_connections {
        max_connections(&mut md, hub_bin).await?;
    }
    Ok(md)
}

async fn idle_memory(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    writeln!(md, "### Idle connections: connect rate and memory ({} Pusher connections, 1 channel each)\n", scale.idle)
        .ok();
    writeln!(md, "| | hub | baseline | ratio |\n|---|---|---|---|").ok();
    let mut rows: Vec<(f64, f64, u64, u64, usize, f64)> = Vec::new();
    for hub in [true, false] {
        let server = if hub { Server::hub(hub_bin).await? } else { Server::baseline().await? };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = server.sample();
        let f = Fleet::connect(fleet(&server.target, scale.idle, 0)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let loaded = server.sample();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let later = server.sample();
        let per_conn = (loaded.rss_kib.saturating_sub(idle.rss_kib)) as f64 / f.connect.connected.max(1) as f64;
        rows.push((
            f.connect.rate,
            per_conn,
            idle.rss_kib,
            loaded.rss_kib,
            f.connect.errors,
            procfs::cpu_percent(&loaded, &later),
        ));
        let _ = f.close(Vec::new()).await;
        server.stop().await;
    }
    let (h, b) = (&rows[0], &rows[1]);
    writeln!(md, "| connect + subscribe rate (conn/s) | {:.0} | {:.0} | {} |", h.0, b.0, ratio(h.0, b.0)).ok();
    writeln!(md, "| RSS idle, no connections (KiB) | {} | {} | |", h.2, b.2).ok();
    writeln!(md, "| RSS with the connections (KiB) | {} | {} | |", h.3, b.3).ok();
    writeln!(md, "| **RSS per idle connection (KiB)** | **{:.1}** | {:.1} | {} |", h.1, b.1, ratio(h.1, b.1)).ok();
    writeln!(md, "| CPU while idle (% of one core) | {:.1} | {:.1} | |", h.5, b.5).ok();
    writeln!(md, "| connect errors | {} | {} | |\n", h.4, b.4).ok();
    Ok(())
}

async fn fanout(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    writeln!(
        md,
        "### Fan-out: {} subscribers on one channel, 100-byte events, rising publish rate ({} s per step)\n",
        scale.fanout, scale.step_secs
    )
    .ok();
    writeln!(
        md,
        "Two baselines, the same broadcast server: *baseline* publishers write events down a WebSocket without \
         waiting, so a backlog builds when the subscribers fall behind; *acked baseline* publishers wait for the \
         server's answer to each event, as the hub's publishers wait for the HTTP API's (and as every Pusher SDK \
         does). Ratios are the hub's deliveries/s over each baseline's.\n"
    )
    .ok();
    writeln!(
        md,
        "| events/s asked | hub: published/s | hub: deliveries/s | hub: lost | hub: p99 ms | hub CPU % | baseline: published/s | baseline: deliveries/s | baseline: lost | baseline: p99 ms | baseline CPU % | acked baseline: published/s | acked baseline: deliveries/s | acked baseline: lost | acked baseline: p99 ms | acked baseline CPU % | ratio | ratio (acked) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    .ok();
    let mut results: Vec<Vec<(PhaseReport, f64)>> = Vec::new();
    for run in 0..3 {
        let server = if run == 0 { Server::hub(hub_bin).await? } else { Server::baseline().await? };
        let target = match server.target.clone() {
            Target::Baseline { addr, .. } => Target::Baseline { addr, acked: run == 2 },
            hub => hub,
        };
        let mut f = Fleet::connect(fleet(&target, scale.fanout, 0)).await;
        let mut reports = Vec::new();
        let mut cpus = Vec::new();
        for rate in &scale.fanout_rates {
            let before = server.sample();
            let step = PhaseConfig { publishers: FANOUT_PUBLISHERS, ..phase(*rate, 100, scale.step_secs) };
            let (_, r) = f.publish(&step).await;
            let after = server.sample();
            cpus.push(procfs::cpu_percent(&before, &after));
            reports.push(r);
        }
        let (reports, _) = f.close(reports).await;
        results.push(reports.into_iter().zip(cpus).collect());
        server.stop().await;
    }
    // The peak with zero loss, and the p99 at that step, of each server.
    let mut peaks = [(0.0f64, 0u64); 3];
    for (i, rate) in scale.fanout_rates.iter().enumerate() {
        let mut row = format!("| {rate:.0} |");
        for (server, peak) in results.iter().zip(peaks.iter_mut()) {
            let (r, cpu) = &server[i];
            if r.lost == 0 && r.deliveries_per_sec > peak.0 {
                *peak = (r.deliveries_per_sec, r.latency.p99);
            }
            write!(
                row,
                " {:.0} | {:.0} | {} | {} | {:.0} |",
                r.publish_rate,
                r.deliveries_per_sec,
                r.lost,
                ms(r.latency.p99),
                cpu
            )
            .ok();
        }
        let hub = results[0][i].0.deliveries_per_sec;
        writeln!(
            md,
            "{row} {} | {} |",
            ratio(hub, results[1][i].0.deliveries_per_sec),
            ratio(hub, results[2][i].0.deliveries_per_sec)
        )
        .ok();
    }
    let [hub, base, acked] = peaks;
    writeln!(
        md,
        "\n**Peak deliveries/s with zero loss: hub {:.0} (p99 {} ms), baseline {:.0} (p99 {} ms), acked baseline {:.0} \
         (p99 {} ms); ratio {}, ratio (acked) {}.** (Duplicates or reorders seen by any subscriber: hub {}, \
         baseline {}, acked baseline {}.)\n",
        hub.0,
        ms(hub.1),
        base.0,
        ms(base.1),
        acked.0,
        ms(acked.1),
        ratio(hub.0, base.0),
        ratio(hub.0, acked.0),
        results[0].iter().map(|(r, _)| r.duplicated + r.reordered).sum::<u64>(),
        results[1].iter().map(|(r, _)| r.duplicated + r.reordered).sum::<u64>(),
        results[2].iter().map(|(r, _)| r.duplicated + r.reordered).sum::<u64>(),
    )
    .ok();
    Ok(())
}

/// The fan-out scenario alone, as Markdown.
pub async fn fanout_section(hub_bin: &Path, scale: &Scale) -> std::io::Result<String> {
    let mut md = String::new();
    fanout(&mut md, hub_bin, scale).await?;
    Ok(md)
}

/// Presence joins and leaves at this rate, per second.
const JOIN_RATE: f64 = 100.0;

/// The publish rate of the fan-out the joins are measured against (200,000 deliveries/s to 10,000
/// subscribers): a heavy load this machine still delivers without queueing, so what moves the joins' p99 is
/// the hub's own contention, not a backlog every task waits behind.
const JOIN_FANOUT_RATE: f64 = 20.0;

/// The joins scenario alone, as Markdown.
pub async fn joins_section(hub_bin: &Path, scale: &Scale) -> std::io::Result<String> {
    let mut md = String::new();
    joins(&mut md, hub_bin, scale).await?;
    Ok(md)
}

async fn joins(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    let secs = scale.latency_secs;
    writeln!(
        md,
        "### Joins during a fan-out: presence joins and leaves at {JOIN_RATE:.0}/s on one channel, while {} \
         subscribers of a cache channel of the same app take events published at {JOIN_FANOUT_RATE:.0}/s ({secs} s each)\n",
        scale.fanout
    )
    .ok();
    writeln!(
        md,
        "| what | hub | samples | failed | p50 ms | p90 ms | p99 ms | max ms | fan-out deliveries/s |
|---|---|---|---|---|---|---|---|---|"
    )
    .ok();
    let server = Server::hub(hub_bin).await?;
    let io = |e: String| std::io::Error::other(e);
    let duration = Duration::from_secs(secs);
    let idle = crate::joins::measure(&server.target, JOIN_RATE, duration).await.map_err(io)?;
    let mut f =
        Fleet::connect(FleetConfig { channel_prefix: "cache-", ..fleet(&server.target, scale.fanout, 0) }).await;
    let step = PhaseConfig { publishers: FANOUT_PUBLISHERS, ..phase(JOIN_FANOUT_RATE, 100, secs) };
    let (loaded, (_, report)) =
        tokio::join!(crate::joins::measure(&server.target, JOIN_RATE, duration), f.publish(&step));
    let loaded = loaded.map_err(io)?;
    let (reports, _) = f.close(vec![report]).await;
    server.stop().await;
    let row = |md: &mut String, what: &str, hub: &str, l: &Latency, failed: &str, deliveries: &str| {
        writeln!(
            md,
            "| {what} | {hub} | {} | {failed} | {} | {} | {} | {} | {deliveries} |",
            l.samples,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max)
        )
        .ok();
    };
    let r = &reports[0];
    let fanned = format!("{:.0} (lost {})", r.deliveries_per_sec, r.lost);
    let (idle_joins, idle_probes) = (Latency::of(idle.joins), Latency::of(idle.probes));
    let (loaded_joins, loaded_probes) = (Latency::of(loaded.joins), Latency::of(loaded.probes));
    row(md, "joins", "idle", &idle_joins, &idle.failed.to_string(), "—");
    row(md, "joins", "during the fan-out", &loaded_joins, &loaded.failed.to_string(), &fanned);
    row(md, "echo probes (the floor)", "idle", &idle_probes, "0", "—");
    row(md, "echo probes (the floor)", "during the fan-out", &loaded_probes, "0", &fanned);
    writeln!(
        md,
        "\n**Join p99 during the fan-out / idle: {}.** The floor (an echo server with nothing else to do, on the \
         same machine, the same rate): p99 during the fan-out / the idle join p99: {}; the join p99 during the \
         fan-out / the floor's: {}.\n",
        ratio(loaded_joins.p99 as f64, idle_joins.p99 as f64),
        ratio(loaded_probes.p99 as f64, idle_joins.p99 as f64),
        ratio(loaded_joins.p99 as f64, loaded_probes.p99 as f64),
    )
    .ok();
    Ok(())
}

async fn latency(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    writeln!(
        md,
        "### Latency: {} subscribers on one channel, publish→deliver ({} s per rate, 100-byte events)\n",
        scale.latency_subscribers, scale.latency_secs
    )
    .ok();
    writeln!(md, "| rate | | p50 ms | p90 ms | p99 ms | max ms | samples | lost |\n|---|---|---|---|---|---|---|---|")
        .ok();
    let rates = [10.0, 100.0];
    let mut all = Vec::new();
    for hub in [true, false] {
        let server = if hub { Server::hub(hub_bin).await? } else { Server::baseline().await? };
        let mut f = Fleet::connect(fleet(&server.target, scale.latency_subscribers, 0)).await;
        let mut reports = Vec::new();
        for rate in rates {
            reports.push(f.publish(&phase(rate, 100, scale.latency_secs)).await.1);
        }
        if hub {
            // The same at 100/s through Poussr v1 REST.
            let v1 = PhaseConfig { via: Via::V1Rest, ..phase(100.0, 100, scale.latency_secs) };
            reports.push(f.publish(&v1).await.1);
        }
        all.push(f.close(reports).await.0);
        server.stop().await;
    }
    for (i, rate) in rates.iter().enumerate() {
        for (who, r) in [("hub", &all[0][i]), ("baseline", &all[1][i])] {
            latency_row(md, &format!("{rate:.0}/s"), who, r);
        }
        let (h, b) = (all[0][i].latency.p99 as f64, all[1][i].latency.p99 as f64);
        writeln!(md, "| {rate:.0}/s | **p99 ratio** | | | **{}** | | | |", ratio(h, b)).ok();
    }
    if let Some(r) = all[0].get(rates.len()) {
        latency_row(md, "100/s", "hub, published via Poussr v1 REST", r);
    }
    writeln!(md).ok();
    Ok(())
}

fn latency_row(md: &mut String, rate: &str, who: &str, r: &PhaseReport) {
    let l = r.latency;
    writeln!(
        md,
        "| {rate} | {who} | {} | {} | {} | {} | {} | {} |",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.max),
        l.samples,
        r.lost
    )
    .ok();
}

async fn slow_consumer(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    writeln!(
        md,
        "### Slow consumer: {} readers and one subscriber that stops reading (8 KB events, 200/s, {} s; queue 1024 frames)\n",
        scale.slow_readers, scale.slow_secs
    )
    .ok();
    writeln!(md, "| server | run | readers' p99 ms | lost | RSS start → end of publishing (KiB) | RSS peak (KiB) | stalled subscriber |\n|---|---|---|---|---|---|---|").ok();
    let mut p99s = Vec::new();
    for (hub, stalled) in [(true, 0), (true, 1), (false, 0), (false, 1)] {
        let server = if hub { Server::hub(hub_bin).await? } else { Server::baseline().await? };
        let mut f = Fleet::connect(fleet(&server.target, scale.slow_readers + stalled, stalled)).await;
        let start = server.sample();
        // The hub's RSS every 100 ms while publishing, for the peak.
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(start.rss_kib));
        let sampler = {
            let (pid, peak) = (server.pid, peak.clone());
            tokio::spawn(async move {
                loop {
                    let rss = procfs::sample(pid).map(|s| s.rss_kib).unwrap_or(0);
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let (_, r) = f.publish(&phase(200.0, 8 * 1024, scale.slow_secs)).await;
        let end = server.sample();
        sampler.abort();
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed).max(end.rss_kib);
        let (reports, codes) = f.close(vec![r]).await;
        let r = &reports[0];
        p99s.push(r.latency.p99 as f64);
        // What the hub counted: a stalled reader cannot read a close frame either, so the hub may have
        // had to drop it without one.
        let counted = health(&server.target).await.and_then(|h| h["slow_consumer_closes"].as_u64());
        let counted = counted.map(|n| format!(" (hub counted {n} slow-consumer close, code 4100)")).unwrap_or_default();
        let closed = match codes.first() {
            None => "—".to_owned(),
            Some(Ending::Closed(code)) => format!("close frame {code}{counted}"),
            Some(Ending::Dropped) => format!("dropped without a close frame it could read{counted}"),
            Some(Ending::Open) => "still open".to_owned(),
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {} → {} | {} | {} |",
            if hub { "hub" } else { "baseline" },
            if stalled == 0 { "all reading" } else { "one stalled" },
            ms(r.latency.p99),
            r.lost,
            start.rss_kib,
            end.rss_kib,
            peak,
            closed
        )
        .ok();
        server.stop().await;
    }
    writeln!(
        md,
        "\nWith the stalled subscriber present, the readers' p99 moved by {:+.1} % on the hub and {:+.1} % on the baseline.\n",
        (p99s[1] - p99s[0]) / p99s[0].max(1.0) * 100.0,
        (p99s[3] - p99s[2]) / p99s[2].max(1.0) * 100.0
    )
    .ok();
    Ok(())
}

async fn max_connections(md: &mut String, hub_bin: &Path) -> std::io::Result<()> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
    // Each process (the server, this generator) has its own limit; keep some descriptors for everything else.
    let n = (hard as usize).saturating_sub(500).min(1_000_000);
    writeln!(md, "### As many connections as one process may open ({n}, open-file limit {hard})\n").ok();
    writeln!(md, "| figure | hub | baseline |\n|---|---|---|").ok();
    let mut rows: Vec<[String; 6]> = Vec::new();
    for hub in [true, false] {
        let server = if hub { Server::hub(hub_bin).await? } else { Server::baseline().await? };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = server.sample();
        let f = Fleet::connect(FleetConfig { channels: 100, ..fleet(&server.target, n, 0) }).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let loaded = server.sample();
        let per = (loaded.rss_kib.saturating_sub(idle.rss_kib)) as f64 / f.connect.connected.max(1) as f64;
        rows.push([
            f.connect.connected.to_string(),
            format!(
                "{}{}",
                f.connect.errors,
                f.connect.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
            ),
            format!("{:.0}/s", f.connect.rate),
            loaded.fds.to_string(),
            format!("{} KiB ({per:.1} KiB per connection)", loaded.rss_kib),
            format!(
                "{:.1} GiB / {:.1} GiB",
                (idle.rss_kib as f64 + per * 100_000.0) / 1024.0 / 1024.0,
                (idle.rss_kib as f64 + per * 1_000_000.0) / 1024.0 / 1024.0
            ),
        ]);
        let _ = f.close(Vec::new()).await;
        server.stop().await;
    }
    let names = [
        "connected and subscribed",
        "errors",
        "connect + subscribe rate",
        "open file descriptors",
        "RSS",
        "estimated RSS at 100,000 / 1,000,000 connections",
    ];
    for (i, name) in names.iter().enumerate() {
        writeln!(md, "| {name} | {} | {} |", rows[0][i], rows[1][i]).ok();
    }
    writeln!(md).ok();
    Ok(())
}
