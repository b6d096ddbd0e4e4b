//! `poussr replay FILE`: plays a recording (docs/recording.md) into a hub, local or remote, through its
//! signed Pusher HTTP API, each request marked `X-Poussr-Replay: 1` so that the console shows the events as
//! a replay. The recording is checked whole first: a refused one publishes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use poussr::replay::{self, Event, Options, Player, Progress, PublishFn, State};
use reqwest::Url;

/// How long one publish may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a progress line is printed at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The recording (JSON Lines: a header line, then one entry per line); `-` reads it from stdin.
    file: PathBuf,
    /// How fast to play it: 2 is twice as fast as recorded, 0.5 half as fast (0.5 to 10).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Publish the events of channel FROM on channel TO instead. Repeat for several.
    #[arg(long = "map", value_name = "FROM=TO")]
    map: Vec<String>,
    /// The hub's address, http:// or https://.
    #[arg(long, default_value = "http://127.0.0.1:6001")]
    url: String,
    /// The app to publish to (every event goes to it, whatever app the recording names).
    #[arg(long, env = "POUSSR_APP_ID")]
    app_id: Option<String>,
    /// The app's key.
    #[arg(long, visible_alias = "app-key", env = "POUSSR_APP_KEY")]
    key: Option<String>,
    /// The app's secret, which signs each request.
    #[arg(long, visible_alias = "app-secret", env = "POUSSR_APP_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's, for a hub whose certificate it signed (the
    /// `ca.pem` of `poussr cert create`).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Check the recording and say what would be published, without publishing anything.
    #[arg(long)]
    dry_run: bool,
}

/// Where and as whom the events are published.
struct Target {
    client: reqwest::Client,
    /// `…/apps/{app_id}/events`, path encoded.
    url: Url,
    /// What is signed: `/apps/{app_id}/events`, the path the hub sees (a reverse proxy that serves the hub
    /// under a prefix of its address strips it).
    signed_path: String,
    key: String,
    secret: String,
}

/// `poussr replay …`.
pub(crate) fn replay(args: ReplayArgs) -> Result<(), String> {
    let shown = args.file.display().to_string();
    let text = read(&args.file)?;
    let mut options = Options::with_speed(args.speed).map_err(|e| e.to_string())?;
    for pair in &args.map {
        options.map_pair(pair).map_err(|e| format!("--map: {e}"))?;
    }
    let recording = replay::parse(&text).map_err(|e| format!("{shown}: {e}; nothing was published"))?;
    let unused: Vec<&String> =
        options.map.keys().filter(|from| !recording.events.iter().any(|e| e.channel.as_str() == *from)).collect();
    for from in unused {
        eprintln!("poussr: --map {from}=…: the recording has no event on {from}");
    }
    let events = options.apply(&recording);
    let summary = describe(&shown, &events, recording.skipped, options.speed);
    if args.dry_run {
        println!("{summary}\nnothing was published (--dry-run)");
        return Ok(());
    }
    let missing = |flag: &str, var: &str| format!("give --{flag} (or set {var}), or use --dry-run to only check");
    let app_id = args.app_id.ok_or_else(|| missing("app-id", "POUSSR_APP_ID"))?;
    let key = args.key.ok_or_else(|| missing("key", "POUSSR_APP_KEY"))?;
    let secret = args.secret.ok_or_else(|| missing("secret", "POUSSR_APP_SECRET"))?;
    poussr::tls::install_default_provider();
    let tls = poussr::tls::client_config(args.ca.as_deref())?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {}", chain(&e)))?;
    let url = events_url(&args.url, &app_id)?;
    let signed_path = events_url("http://hub/", &app_id)?.path().to_owned();
    let target = Target { client, url, signed_path, key, secret };
    eprintln!("{summary}");
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(play(events, recording.skipped, options.speed, Arc::new(target)))
}

/// The recording's text, from the file or stdin.
fn read(file: &Path) -> Result<String, String> {
    let shown = file.display();
    let read =
        if file == Path::new("-") { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(file) };
    read.map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{shown} is not UTF-8 text, so not a Poussr recording"),
        _ => format!("cannot read {shown}: {e}"),
    })
}

/// `{hub}/apps/{app_id}/events`, keeping a path the hub's address may have.
fn events_url(hub: &str, app_id: &str) -> Result<Url, String> {
    let mut url = Url::parse(hub).map_err(|e| format!("--url {hub:?} is not an address: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("--url {hub:?} must be an http:// or https:// address, like http://127.0.0.1:6001"));
    }
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| format!("--url {hub:?} cannot take a path"))?
        .pop_if_empty()
        .extend(["apps", app_id, "events"]);
    Ok(url)
}

/// What the recording holds and how long it takes to play.
fn describe(file: &str, events: &[Event], skipped: usize, speed: f64) -> String {
    let mut channels: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events {
        *channels.entry(e.channel.as_str()).or_default() += 1;
    }
    let channels: Vec<String> = channels.iter().map(|(c, n)| format!("{c} ({n})")).collect();
    let span = replay::duration(events, 1.0).as_secs_f64();
    let takes = replay::duration(events, speed).as_secs_f64();
    let mut text = format!(
        "{file}: {} events over {span:.1} s ({}); at {speed}× it takes {takes:.1} s",
        events.len(),
        skipped_text(skipped)
    );
    if !channels.is_empty() {
        text.push_str(&format!("\nchannels: {}", channels.join(", ")));
    }
    text
}

/// "3 entries of other types skipped", said right for one.
fn skipped_text(skipped: usize) -> String {
    match skipped {
        1 => "1 entry of another type skipped".into(),
        n => format!("{n} entries of other types skipped"),
    }
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

/// Publishes one event through the signed HTTP API.
async fn publish(target: Arc<Target>, name: String, channel: String, data: String) -> Result<(), String> {
    let body = serde_json::json!({ "name": name, "channels": [channel], "data": data }).to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let query = poussr::protocol::signature::sign_request(
        &target.key,
        &target.secret,
        "POST",
        &target.signed_path,
        &[],
        body.as_bytes(),
        now,
    );
    let mut url = target.url.clone();
    url.set_query(Some(&query));
    let response = target
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Poussr-Replay", "1")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("the hub did not answer: {}", chain(&e.without_url())))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let reason = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(text);
    Err(format!("the hub answered {status}: {reason}"))
}

/// Plays the events, printing progress, until done, failed or Ctrl-C.
async fn play(events: Vec<Event>, skipped: usize, speed: f64, target: Arc<Target>) -> Result<(), String> {
    let hub = target.url.origin().ascii_serialization();
    let publish_fn: PublishFn = Box::new(move |event: &Event| {
        Box::pin(publish(target.clone(), event.event.clone(), event.channel.as_str().to_owned(), event.data.clone()))
    });
    let player = Player::start(events, skipped, speed, publish_fn);
    let finished = player.finished();
    tokio::pin!(finished);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut shown = 0;
    let end = loop {
        tokio::select! {
            end = &mut finished => break end,
            _ = tick.tick() => {
                let p = player.progress();
                if p.sent != shown {
                    shown = p.sent;
                    eprintln!("replayed {}/{} events…", p.sent, p.total);
                }
            }
            signal = tokio::signal::ctrl_c() => {
                if signal.is_err() {
                    // No Ctrl-C handler on this system: play to the end.
                    break (&mut finished).await;
                }
                let p = player.stop().await.unwrap_or_else(|_| player.progress());
                return Err(format!("stopped by Ctrl-C: {} of {} events were published to {hub}", p.sent, p.total));
            }
        }
    };
    summary(&end, &hub)
}

/// The last line: how it went.
fn summary(p: &Progress, hub: &str) -> Result<(), String> {
    match p.state {
        State::Done => {
            eprintln!(
                "replayed {}/{} events to {hub} in {:.1} s at {}× ({})",
                p.sent,
                p.total,
                p.elapsed_ms as f64 / 1000.0,
                p.speed,
                skipped_text(p.skipped)
            );
            Ok(())
        }
        _ => Err(format!(
            "{}; {} of {} events were published to {hub} before it",
            p.error.as_deref().unwrap_or("the replay stopped"),
            p.sent,
            p.total
        )),
    }
}
