//! What keeping history costs, and what recovering from it takes: the fan-out and the HTTP API's publishing
//! rate with history on and off (the same hub binary, `--no-history`), the disk bytes per kept event, and
//! the time a client takes to recover 1,000 missed events.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::load::{Fleet, Latency, PhaseConfig, Target, Via};
use crate::scenarios::{Scale, Server, fleet_config, health, ms, phase};

/// A config file giving the bench's app larger bounds (and no publishing allowance in the way); removed
/// when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn write(max_events_per_channel: u64) -> std::io::Result<ConfigFile> {
        let dir = std::env::temp_dir().join(format!("poussr-bench-config-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("poussr.toml");
        let (id, key, secret) = crate::scenarios::credentials();
        std::fs::write(
            &path,
            format!(
                "[limits]\nmax_publish_per_second = 1000000\n\n[[apps]]\nid = \"{id}\"\nkey = \"{key}\"\nsecret = \
                 \"{secret}\"\n[apps.history]\nmax_events_per_channel = {max_events_per_channel}\n"
            ),
        )?;
        Ok(ConfigFile(path))
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// The section, as Markdown.
pub async fn section(hub_bin: &Path, scale: &Scale) -> std::io::Result<String> {
    let mut md = String::new();
    writeln!(md, "### History: what keeping events costs, and recovering them\n").ok();
    writeln!(
        md,
        "The same hub binary with its history on (the default: every event committed to the store before it is \
         delivered, `sync = full`) and off (`--no-history`), alternately. The store is on this machine's disk \
         (ext4 on a virtual disk).\n"
    )
    .ok();
    fanout(&mut md, hub_bin, scale).await?;
    publish_rate(&mut md, hub_bin, scale).await?;
    disk_bytes(&mut md, hub_bin, scale).await?;
    recovery(&mut md, hub_bin, scale).await?;
    Ok(md)
}

/// Runs of each setting, alternating, in the fan-out and publishing measurements: the figure kept is the
/// median of the runs' ratios, since one run of this machine's 2 shared cores varies by ±10 %.
const RUNS: usize = 3;

/// Publishers in flight for the fan-out: enough that neither setting waits on its answers (each publish with
/// history waits for its commit, and 16 in flight capped the rate with history on at 101–110/s).
const FANOUT_PUBLISHERS: usize = 64;

/// The median of `xs` (the middle one; `xs` is not empty).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// Peak zero-loss deliveries/s to `scale.fanout` subscribers, history on then off, [`RUNS`] times.
async fn fanout(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    writeln!(
        md,
        "Fan-out: {} subscribers on one channel, 100-byte events, the fan-out scenario's rising rates ({} s each), \
         {FANOUT_PUBLISHERS} publishers each waiting for its answer.\n\n| run | history | peak deliveries/s (no loss) | \
         publishes/s at the peak | p99 ms at the peak | events kept |\n|---|---|---|---|---|---|",
        scale.fanout, scale.step_secs
    )
    .ok();
    let config = ConfigFile::write(1_000)?;
    let mut ratios = Vec::new();
    for run in 1..=RUNS {
        let mut peaks = Vec::new();
        for on in [true, false] {
            let mut args = vec!["--config", config.arg()];
            if !on {
                args.push("--no-history");
            }
            let server = Server::hub_with(hub_bin, &args).await?;
            let mut f = Fleet::connect(fleet_config(&server.target, scale.fanout)).await;
            let mut reports = Vec::new();
            for rate in &scale.fanout_rates {
                let step = PhaseConfig { publishers: FANOUT_PUBLISHERS, ..phase(*rate, 100, scale.step_secs) };
                reports.push(f.publish(&step).await.1);
            }
            let (reports, _) = f.close(reports).await;
            let kept = health(&server.target).await.and_then(|h| h["history"]["events"].as_u64());
            server.stop().await;
            let peak = reports
                .iter()
                .filter(|r| r.lost == 0)
                .max_by(|a, b| a.deliveries_per_sec.total_cmp(&b.deliveries_per_sec))
                .map(|r| (r.deliveries_per_sec, r.publish_rate, r.latency.p99))
                .unwrap_or((0.0, 0.0, 0));
            writeln!(
                md,
                "| {run} | {} | {:.0} | {:.0} | {} | {} |",
                if on { "on" } else { "off" },
                peak.0,
                peak.1,
                ms(peak.2),
                kept.map_or("—".into(), |k| k.to_string())
            )
            .ok();
            peaks.push(peak.0);
        }
        ratios.push(if peaks[1] > 0.0 { peaks[0] / peaks[1] } else { 0.0 });
    }
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}×")).collect();
    writeln!(
        md,
        "\n**Fan-out with history on / off: {:.2}× (median; runs {}).**\n",
        median(ratios.clone()),
        each.join(", ")
    )
    .ok();
    Ok(())
}

/// Events/s that `publishers` publishers, each waiting for its answer, get through the HTTP API to one
/// channel (10 subscribers), for each setting, [`RUNS`] times, with the median ratio of each `on` setting to
/// `off`.
async fn publish_rate(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    let secs = scale.step_secs;
    writeln!(
        md,
        "Publishing: publishers each waiting for its answer, as fast as the hub answers, to one channel with 10 \
         subscribers ({secs} s each). With 16 in flight, a publish with history waits for its commit (the disk's \
         flush), so the rate is bound by that wait; with 64 in flight, both settings are bound by the CPU.\n\n\
         | in flight | run | history | published/s | p99 publish→deliver ms | commits/s | events per commit | \
         written to disk per event |\n|---|---|---|---|---|---|---|---|"
    )
    .ok();
    let config = ConfigFile::write(1_000)?;
    let mut summary = Vec::new();
    for publishers in [16, 64] {
        // (label, run) -> rate
        let mut rows: Vec<(&str, f64)> = Vec::new();
        for run in 1..=RUNS {
            for (label, extra) in [
                ("on (sync full)", vec![]),
                ("on (sync normal)", vec!["--history-sync", "normal"]),
                ("off", vec!["--no-history"]),
            ] {
                let mut args = vec!["--config", config.arg()];
                args.extend(extra);
                let server = Server::hub_with(hub_bin, &args).await?;
                let mut f = Fleet::connect(fleet_config(&server.target, 10)).await;
                let phase = PhaseConfig {
                    publishers,
                    rate: 50_000.0,
                    via: Via::Api,
                    payload: 100,
                    duration: Duration::from_secs(secs),
                };
                let written_before = crate::procfs::storage_written(server.pid);
                let (_, r) = f.publish(&phase).await;
                let written = crate::procfs::storage_written(server.pid)
                    .zip(written_before)
                    .map(|(after, before)| after.saturating_sub(before));
                let (reports, _) = f.close(vec![r]).await;
                let r = &reports[0];
                let h = health(&server.target).await;
                server.stop().await;
                let commits = h.as_ref().and_then(|h| h["history"]["commits"].as_u64());
                let kept = h.as_ref().and_then(|h| h["history"]["written"].as_u64());
                writeln!(
                    md,
                    "| {publishers} | {run} | {label} | {:.0} | {} | {} | {} | {} |",
                    r.publish_rate,
                    ms(r.latency.p99),
                    // Over the time the publishers took (published / rate), not the step's nominal length.
                    commits.map_or("—".into(), |c| format!(
                        "{:.0}",
                        c as f64 * r.publish_rate / r.published.max(1) as f64
                    )),
                    commits.zip(kept).map_or("—".into(), |(c, w)| format!("{:.1}", w as f64 / c.max(1) as f64)),
                    match (kept, written) {
                        (Some(k), Some(w)) if k > 0 => format!("{:.1} KB", w as f64 / k as f64 / 1000.0),
                        _ => "—".into(),
                    },
                )
                .ok();
                rows.push((label, r.publish_rate));
            }
        }
        let runs = |label: &str| rows.iter().filter(|(l, _)| *l == label).map(|r| r.1).collect::<Vec<_>>();
        let off = runs("off");
        let vs_off = |label: &str| {
            let ratios =
                runs(label).iter().zip(&off).map(|(on, off)| if *off > 0.0 { on / off } else { 0.0 }).collect();
            median(ratios)
        };
        summary.push(format!(
            "{:.2}× (sync full) and {:.2}× (sync normal) with {publishers} in flight",
            vs_off("on (sync full)"),
            vs_off("on (sync normal)")
        ));
    }
    writeln!(md, "\n**Publishing with history on / off (medians): {}.**\n", summary.join("; ")).ok();
    Ok(())
}

/// The store's size for `events` kept 100-byte events, after the hub stopped (its log folded in).
async fn disk_bytes(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    let events: u64 = if scale.fanout >= 10_000 { 20_000 } else { 2_000 };
    let config = ConfigFile::write(events)?;
    let server = Server::hub_with(hub_bin, &["--config", config.arg()]).await?;
    let target = server.target.clone();
    let empty = health(&target).await.and_then(|h| h["history"]["bytes_on_disk"].as_u64()).unwrap_or(0);
    publish_numbered(&target, "disk-bytes", events, 100).await.map_err(std::io::Error::other)?;
    let h = health(&target).await.unwrap_or_default();
    let kept = h["history"]["events"].as_u64().unwrap_or(0);
    let running = h["history"]["bytes_on_disk"].as_u64().unwrap_or(0);
    let path = PathBuf::from(h["history"]["path"].as_str().unwrap_or_default());
    // A graceful stop folds the write-ahead log into the file.
    let mut server = server;
    server.terminate().await;
    let file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    drop(server);
    writeln!(
        md,
        "Disk: {kept} events of 100 bytes of data kept on one channel (event name `numbered`). The store's file after \
         the hub stopped: {file} bytes (an empty store, with its log: {empty} bytes); while running, with the \
         write-ahead log: {running} bytes.\n\n**Disk bytes per kept 100-byte event: {:.0}** (the file over the \
         events it holds).\n",
        file as f64 / kept.max(1) as f64
    )
    .ok();
    Ok(())
}

/// Publishes `n` events `{"n":k,"pad":"..."}` of about `payload` bytes on `channel`, ten per batch request.
async fn publish_numbered(target: &Target, channel: &str, n: u64, payload: usize) -> Result<(), String> {
    let Target::Hub { addr, app_id, key, secret } = target else { return Err("a hub is needed".into()) };
    crate::install_crypto_provider();
    let client = reqwest::Client::new();
    let path = format!("/apps/{app_id}/batch_events");
    let mut k = 1;
    while k <= n {
        let batch: Vec<serde_json::Value> = (k..(k + 10).min(n + 1))
            .map(|i| {
                let head = format!("{{\"n\":{i},\"pad\":\"");
                let pad = "x".repeat(payload.saturating_sub(head.len() + 2));
                serde_json::json!({"channel": channel, "name": "numbered", "data": format!("{head}{pad}\"}}")})
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "batch": batch })).map_err(|e| e.to_string())?;
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let query = crate::sign::signed_query(key, secret, "POST", &path, &body, ts);
        let res = client
            .post(format!("http://{addr}{path}?{query}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("publishing: {}", res.status()));
        }
        k += 10;
    }
    Ok(())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Pusher connection, subscribed to `channel` with `poussr_resume` (`resume`: the position to resume from).
async fn subscribe(
    addr: std::net::SocketAddr,
    key: &str,
    channel: &str,
    resume: serde_json::Value,
) -> Result<Ws, String> {
    let url = format!("ws://{addr}/app/{key}?protocol=7&client=poussr-bench-history");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
    ws.next().await; // connection_established
    let subscribe =
        serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel, "poussr_resume": resume}});
    ws.send(Message::text(subscribe.to_string())).await.map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Reads frames until `wanted` returns true for one; returns how many `numbered` events came before and with it.
async fn read_until(ws: &mut Ws, mut wanted: impl FnMut(&serde_json::Value) -> bool) -> Result<u64, String> {
    let mut numbered = 0;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| "no frame within 30 s".to_owned())?
            .ok_or("the hub closed the connection")?
            .map_err(|e| e.to_string())?;
        let Message::Text(t) = frame else { continue };
        let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
        if v["event"] == "numbered" {
            numbered += 1;
        }
        if wanted(&v) {
            return Ok(numbered);
        }
    }
}

/// Time from `pusher:subscribe` with a position to the last of 1,000 missed events, 20 times over.
async fn recovery(md: &mut String, hub_bin: &Path, scale: &Scale) -> std::io::Result<()> {
    let missed: u64 = 1_000;
    let rounds = if scale.fanout >= 10_000 { 20 } else { 3 };
    let config = ConfigFile::write(5_000)?;
    let server = Server::hub_with(hub_bin, &["--config", config.arg()]).await?;
    let Target::Hub { addr, key, .. } = server.target.clone() else {
        return Err(std::io::Error::other("a hub is needed"));
    };
    let io = std::io::Error::other;
    let channel = "recovered";
    // Where the channel is: the position a first subscription is given.
    let mut ws = subscribe(addr, &key, channel, serde_json::json!({})).await.map_err(io)?;
    let mut position = None;
    read_until(&mut ws, |v| {
        if v["event"] == "pusher_internal:poussr_position" {
            let d: serde_json::Value = serde_json::from_str(v["data"].as_str().unwrap_or("{}")).unwrap_or_default();
            position = Some((d["epoch"].as_str().unwrap_or_default().to_owned(), d["serial"].as_u64().unwrap_or(0)));
            true
        } else {
            false
        }
    })
    .await
    .map_err(io)?;
    let _ = ws.close(None).await;
    let (epoch, mut serial) = position.ok_or_else(|| io("no position".to_owned()))?;
    let mut samples = Vec::new();
    for _ in 0..rounds {
        publish_numbered(&server.target, channel, missed, 100).await.map_err(io)?;
        let resume = serde_json::json!({"epoch": epoch, "serial": serial});
        let started = Instant::now();
        let mut ws = subscribe(addr, &key, channel, resume).await.map_err(io)?;
        let mut got = 0;
        let got_all = read_until(&mut ws, |v| {
            if v["event"] == "numbered" {
                got += 1;
            }
            got == missed || v["event"] == "poussr:not_recovered"
        })
        .await
        .map_err(io)?;
        if got_all != missed {
            return Err(io(format!("recovered {got_all} of {missed}")));
        }
        samples.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        serial += missed;
        let _ = ws.close(None).await;
    }
    server.stop().await;
    let l = Latency::of(samples);
    writeln!(
        md,
        "Recovery: a client subscribes with the position it had, {missed} events behind (100 bytes of data each); \
         timed from opening its new connection to reading the last missed event, \
         {rounds} times.\n\n**Time to recover {missed} missed events: median {} ms, p90 {} ms, max {} ms.**\n",
        ms(l.p50),
        ms(l.p90),
        ms(l.max)
    )
    .ok();
    Ok(())
}
