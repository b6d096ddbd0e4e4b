//! Webhooks: the hub tells the app's backend about channels, members, client events and cache misses.
//!
//! Each configured target has its own bounded queue and its own sender task, so a dead or slow target
//! delays nobody: the hub only ever does a `try_send` into the queue, and when the queue is full the event
//! is dropped and counted (never waited for). The sender takes what is queued, up to a batch, and POSTs it
//! as one signed request (`X-Pusher-Key`, `X-Pusher-Signature` = hex HMAC-SHA256 of the body with the app
//! secret), retrying with a doubling pause when the target fails or does not answer in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{AppConfig, Limits, WebhookConfig, WebhookKind};
use crate::monitor::{Monitor, MonitorEvent, WebhookOutcome, now_ms};
use crate::protocol::{ChannelName, signature};

/// The first pause before a retry; each later pause doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One event of a webhook request body (docs/protocol.md §4).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The kind.
    #[serde(serialize_with = "kind_name")]
    pub name: WebhookKind,
    /// The channel.
    pub channel: ChannelName,
    /// For member and client events: the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Arc<str>>,
    /// For client events: the event name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Arc<str>>,
    /// For client events: the data, as relayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Arc<str>>,
    /// For client events: the sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<Arc<str>>,
}

fn kind_name<S: serde::Serializer>(kind: &WebhookKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

impl WebhookEvent {
    /// An event that names only the kind and the channel.
    pub fn new(name: WebhookKind, channel: &ChannelName) -> Self {
        WebhookEvent { name, channel: channel.clone(), user_id: None, event: None, data: None, socket_id: None }
    }
}

/// Figures of one target, for `/health` and the dashboard.
#[derive(Debug, Default)]
struct Counters {
    /// Events delivered (the target answered 2xx).
    sent: AtomicU64,
    /// Events given up on after every attempt failed.
    failed: AtomicU64,
    /// Events dropped because the queue was full.
    dropped: AtomicU64,
    /// Failed attempts (each retried or, at the last, given up).
    failed_attempts: AtomicU64,
    /// Events of the batch being sent now.
    in_flight: AtomicU64,
}

/// Webhook figures summed over targets.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct WebhookStats {
    /// Configured targets.
    pub targets: usize,
    /// Events delivered.
    pub sent: u64,
    /// Events given up on after every attempt failed.
    pub failed: u64,
    /// Events dropped because a queue was full (the target was too slow or down for too long).
    pub dropped: u64,
    /// Attempts that failed.
    pub failed_attempts: u64,
    /// Events waiting in the queues or being sent now.
    pub queued: u64,
}

impl std::ops::AddAssign for WebhookStats {
    fn add_assign(&mut self, o: Self) {
        self.targets += o.targets;
        self.sent += o.sent;
        self.failed += o.failed;
        self.dropped += o.dropped;
        self.failed_attempts += o.failed_attempts;
        self.queued += o.queued;
    }
}

#[derive(Debug)]
struct Target {
    config: WebhookConfig,
    tx: mpsc::Sender<WebhookEvent>,
    /// Taken by the sender task when the hub starts serving.
    rx: Mutex<Option<mpsc::Receiver<WebhookEvent>>>,
    counters: Arc<Counters>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The webhook targets of one app.
#[derive(Debug)]
pub struct Webhooks {
    targets: Vec<Target>,
    /// The CA trusted beside the system's roots for `https://` targets (`tls.ca`).
    ca: Option<std::path::PathBuf>,
}

impl Webhooks {
    /// The targets configured for `app`, each with a queue of `limits.webhook_queue_events`.
    pub fn new(app: &AppConfig, limits: &Limits, ca: Option<&std::path::Path>) -> Self {
        let targets = app
            .webhooks
            .iter()
            .map(|config| {
                let (tx, rx) = mpsc::channel(limits.webhook_queue_events);
                Target { config: config.clone(), tx, rx: Mutex::new(Some(rx)), counters: Arc::default() }
            })
            .collect();
        Webhooks { targets, ca: ca.map(std::path::Path::to_owned) }
    }

    /// Whether any target wants events of `kind` (lets callers skip building events nobody wants).
    pub fn wants(&self, kind: WebhookKind) -> bool {
        self.targets.iter().any(|t| t.config.wants(kind))
    }

    /// Queues `event` for every target that wants its kind. Never waits: a full queue drops the event
    /// and counts it.
    pub fn emit(&self, event: WebhookEvent) {
        for target in self.targets.iter().filter(|t| t.config.wants(event.name)) {
            match target.tx.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    target.counters.dropped.fetch_add(1, Relaxed);
                }
                // The sender task ended with its runtime: nothing more can be delivered.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    target.counters.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Figures summed over this app's targets.
    pub fn stats(&self) -> WebhookStats {
        let mut total = WebhookStats::default();
        for t in &self.targets {
            total += WebhookStats {
                targets: 1,
                sent: t.counters.sent.load(Relaxed),
                failed: t.counters.failed.load(Relaxed),
                dropped: t.counters.dropped.load(Relaxed),
                failed_attempts: t.counters.failed_attempts.load(Relaxed),
                queued: (t.tx.max_capacity() - t.tx.capacity()) as u64 + t.counters.in_flight.load(Relaxed),
            };
        }
        total
    }

    /// Starts a sender task per target on the current tokio runtime (once; later calls do nothing).
    pub(crate) fn start(&self, app: &AppConfig, limits: &Limits, monitor: &Monitor) {
        for target in &self.targets {
            let Some(rx) = lock(&target.rx).take() else { continue };
            let sender = Sender {
                url: target.config.url.trim().to_owned(),
                app_id: Arc::from(app.id.as_str()),
                ca: self.ca.clone(),
                key: app.key.clone(),
                secret: app.secret.clone(),
                batch: limits.webhook_batch_events,
                attempts: limits.webhook_attempts,
                timeout: Duration::from_millis(limits.webhook_timeout_ms),
                counters: target.counters.clone(),
                monitor: monitor.clone(),
            };
            tokio::spawn(sender.run(rx));
        }
    }
}

struct Sender {
    url: String,
    app_id: Arc<str>,
    ca: Option<std::path::PathBuf>,
    key: String,
    secret: String,
    batch: usize,
    attempts: u32,
    timeout: Duration,
    counters: Arc<Counters>,
    monitor: Monitor,
}

#[derive(Serialize)]
struct Body<'a> {
    time_ms: u64,
    events: &'a [WebhookEvent],
}

impl Sender {
    /// Sends batches until the hub (the owner of the queue's sending end) is gone.
    async fn run(self, mut rx: mpsc::Receiver<WebhookEvent>) {
        // The hub's own rustls settings: the system's roots plus the configured CA.
        let tls = crate::tls::client_config(self.ca.as_deref()).or_else(|e| {
            tracing::error!(url = %self.url, "webhooks: {e}; only the system's roots are trusted");
            crate::tls::client_config(None)
        });
        let tls = match tls {
            Ok(tls) => tls,
            Err(e) => {
                tracing::error!(url = %self.url, "cannot set up TLS for webhooks: {e}");
                return;
            }
        };
        let client = match reqwest::Client::builder().timeout(self.timeout).tls_backend_preconfigured(tls).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(url = %self.url, "cannot make an HTTP client for webhooks: {e}");
                return;
            }
        };
        let mut events = Vec::with_capacity(self.batch);
        while rx.recv_many(&mut events, self.batch).await > 0 {
            self.counters.in_flight.store(events.len() as u64, Relaxed);
            self.deliver(&client, &events).await;
            self.counters.in_flight.store(0, Relaxed);
            events.clear();
        }
    }

    /// One batch, tried up to `attempts` times.
    async fn deliver(&self, client: &reqwest::Client, events: &[WebhookEvent]) {
        let body = serde_json::to_vec(&Body { time_ms: now_ms(), events }).expect("webhook body serializes");
        let signature = signature::sign(&self.secret, &body);
        let mut pause = FIRST_BACKOFF;
        for attempt in 1..=self.attempts {
            let result = client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-pusher-key", &self.key)
                .header("x-pusher-signature", &signature)
                .body(body.clone())
                .send()
                .await;
            let (status, why) = match result {
                Ok(res) if res.status().is_success() => {
                    self.counters.sent.fetch_add(events.len() as u64, Relaxed);
                    self.report(events, attempt, Some(res.status().as_u16()), WebhookOutcome::Delivered, None);
                    return;
                }
                Ok(res) => (Some(res.status().as_u16()), format!("answered {}", res.status())),
                Err(e) if e.is_timeout() => (None, format!("did not answer within {} ms", self.timeout.as_millis())),
                Err(e) => (None, format!("could not be reached ({})", error_chain(&e))),
            };
            self.counters.failed_attempts.fetch_add(1, Relaxed);
            let last = attempt == self.attempts;
            if last {
                tracing::warn!(
                    "webhook {} {why}; gave up on {} event(s) after {attempt} attempt(s)",
                    self.url,
                    events.len()
                );
            } else {
                tracing::warn!("webhook {} {why} (attempt {attempt} of {}); retrying", self.url, self.attempts);
            }
            let outcome = if last { WebhookOutcome::Failed } else { WebhookOutcome::Retrying };
            self.report(events, attempt, status, outcome, Some(why));
            if last {
                self.counters.failed.fetch_add(events.len() as u64, Relaxed);
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }
}

impl Sender {
    /// Shows one attempt in the console.
    fn report(
        &self,
        events: &[WebhookEvent],
        attempt: u32,
        status: Option<u16>,
        outcome: WebhookOutcome,
        reason: Option<String>,
    ) {
        self.monitor.emit(|| MonitorEvent::Webhook {
            at_ms: now_ms(),
            app_id: self.app_id.clone(),
            url: Arc::from(self.url.as_str()),
            events: events.iter().map(|e| format!("{} {}", e.name.as_str(), e.channel.as_str())).collect(),
            attempt,
            attempts: self.attempts,
            status,
            outcome,
            reason,
        });
    }
}

/// An error and its causes on one line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_with(urls: &[(&str, Vec<WebhookKind>)]) -> AppConfig {
        let mut app = AppConfig::new("1", "k", "s");
        app.webhooks = urls.iter().map(|(u, e)| WebhookConfig { url: (*u).to_owned(), events: e.clone() }).collect();
        app
    }

    #[test]
    fn events_serialize_as_protocol_md_says() {
        let channel = ChannelName::parse("presence-room").unwrap();
        let e = WebhookEvent { user_id: Some(Arc::from("7")), ..WebhookEvent::new(WebhookKind::MemberAdded, &channel) };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"member_added","channel":"presence-room","user_id":"7"}"#
        );
        let e = WebhookEvent::new(WebhookKind::ChannelVacated, &channel);
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"name":"channel_vacated","channel":"presence-room"}"#);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let limits = Limits { webhook_queue_events: 3, ..Limits::default() };
        let hooks = Webhooks::new(&app_with(&[("http://127.0.0.1:9/", vec![])]), &limits, None);
        let channel = ChannelName::parse("a").unwrap();
        for _ in 0..5 {
            hooks.emit(WebhookEvent::new(WebhookKind::ChannelOccupied, &channel));
        }
        let stats = hooks.stats();
        assert_eq!((stats.targets, stats.queued, stats.dropped, stats.sent), (1, 3, 2, 0));
    }

    #[test]
    fn each_target_gets_only_the_kinds_it_asked_for() {
        let hooks = Webhooks::new(
            &app_with(&[
                ("http://127.0.0.1:9/a", vec![WebhookKind::ChannelOccupied]),
                ("http://127.0.0.1:9/b", vec![]),
            ]),
            &Limits::default(),
            None,
        );
        let channel = ChannelName::parse("a").unwrap();
        hooks.emit(WebhookEvent::new(WebhookKind::ChannelOccupied, &channel));
        hooks.emit(WebhookEvent::new(WebhookKind::ChannelVacated, &channel));
        let queued: Vec<u64> = hooks.targets.iter().map(|t| (t.tx.max_capacity() - t.tx.capacity()) as u64).collect();
        assert_eq!(queued, [1, 2]);
        assert!(hooks.wants(WebhookKind::CacheMiss));
        let none = Webhooks::new(&app_with(&[]), &Limits::default(), None);
        assert!(!none.wants(WebhookKind::CacheMiss));
    }
}
