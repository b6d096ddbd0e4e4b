//! `GET /metrics`: the hub's figures in the Prometheus (OpenMetrics) text format, written with the
//! `prometheus-client` crate. Counters and gauges are read from the hub when scraped; the HTTP API's
//! latency is a live histogram fed by [`time_api`].
//!
//! On a hub that listens on loopback only, `/metrics` needs no token (only this machine can reach it).
//! On a hub that listens beyond loopback, it is protected exactly like the admin API: the admin token,
//! this machine only unless remote viewing is allowed, and a `Host` that names this machine.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{ApiError, AppState, Peer};

type Labels = Vec<(&'static str, String)>;

/// The HTTP API's request durations, by route and status.
#[derive(Debug, Clone)]
pub(crate) struct ApiLatency(Family<Labels, Histogram, fn() -> Histogram>);

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

impl Default for ApiLatency {
    fn default() -> Self {
        ApiLatency(Family::new_with_constructor(latency_histogram))
    }
}

/// Times a request to the Pusher HTTP API or to Poussr v1 publishing (a `route_layer`, so the route is
/// known), and shows a refused one in the console.
pub(super) async fn time_api(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let monitor = state.hub.monitor();
    // Cheap handles only (a method, a shared URI, an address): strings are made for a refusal alone.
    let asked = monitor.is_watched_or_journaled().then(|| {
        let remote =
            request.extensions().get::<crate::proxy::ClientAddr>().map(|c| c.addr).or_else(|| {
                request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0)
            });
        (request.method().clone(), request.uri().clone(), remote)
    });
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let labels = vec![("route", route), ("status", status.as_u16().to_string())];
    state.latency.0.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    if let Some((method, uri, remote)) = asked
        && (status.is_client_error() || status.is_server_error())
    {
        let reason = response.extensions().get::<super::error::Refusal>().map(|r| r.0.clone());
        monitor.send(crate::monitor::MonitorEvent::HttpRefused {
            at_ms: crate::monitor::now_ms(),
            remote: remote.map(|a| a.to_string()).unwrap_or_default(),
            method: method.to_string(),
            path: uri.path().to_owned(),
            status: status.as_u16(),
            reason: reason.unwrap_or_else(|| status.canonical_reason().unwrap_or("refused").to_owned()),
        });
    }
    response
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<AppState>, peer: Peer, request: Request) -> Response {
    // A hub that listens on loopback only answers without the token, unless the request came through a
    // proxy from another machine.
    let loopback_only = peer.local && state.hub.local_addr().is_some_and(|a| a.ip().to_canonical().is_loopback());
    let allowed =
        if loopback_only { super::admin::check_host(&request) } else { super::admin::check(&state, &peer, &request) };
    if let Err(e) = allowed {
        return e.into_response();
    }
    match render(&state) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::Internal(format!("cannot encode the metrics: {e}")).into_response(),
    }
}

fn counter(value: u64) -> ConstCounter<u64> {
    ConstCounter::new(value)
}

fn gauge(value: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

fn render(state: &AppState) -> Result<String, std::fmt::Error> {
    let hub = &state.hub;
    let stats = hub.stats();
    let mut r = Registry::with_prefix("poussr");
    r.register("connections", "Open WebSocket connections", gauge(stats.connections as u64));
    r.register("connections_opened", "WebSocket connections accepted since start", counter(stats.connections_total));
    r.register("channels", "Occupied channels, over all apps", gauge(stats.channels as u64));
    r.register("messages_received", "WebSocket messages received from clients", counter(stats.messages_in));
    r.register("messages_sent", "WebSocket messages sent to clients", counter(stats.messages_out));
    r.register("received_bytes", "Bytes of WebSocket messages received from clients", counter(stats.bytes_in));
    r.register("sent_bytes", "Bytes of WebSocket messages sent to clients", counter(stats.bytes_out));
    r.register("events_published", "Events published, one per channel", counter(stats.events_published));
    r.register("deliveries", "Event frames queued to subscribers", counter(stats.deliveries));
    r.register(
        "slow_consumer_closes",
        "Connections closed with 4100 because they did not read fast enough",
        counter(stats.slow_consumer_closes),
    );
    let closes = Family::<Labels, Counter>::default();
    for (code, count) in hub.closes_by_code() {
        closes.get_or_create(&vec![("code", code.to_string())]).inc_by(count);
    }
    r.register("connection_closes", "Connections closed or refused, by WebSocket close code", closes);
    let webhooks = &stats.webhooks;
    r.register("webhook_events_sent", "Webhook events delivered", counter(webhooks.sent));
    r.register("webhook_events_failed", "Webhook events given up after every attempt", counter(webhooks.failed));
    r.register("webhook_events_dropped", "Webhook events dropped because a queue was full", counter(webhooks.dropped));
    r.register(
        "webhook_attempts_failed",
        "Webhook requests that failed (each retry counts)",
        counter(webhooks.failed_attempts),
    );
    r.register("webhook_queue_depth", "Webhook events waiting to be sent", gauge(webhooks.queued));
    r.register(
        "http_api_request_duration_seconds",
        "Time to answer a Pusher HTTP API or Poussr v1 publish request, by route and status",
        state.latency.0.clone(),
    );
    if let Some(h) = hub.history().map(|h| h.stats()) {
        r.register("history_disk_bytes", "Bytes of the history store on disk (file and log)", gauge(h.bytes_on_disk));
        r.register("history_events", "Events kept in the history", gauge(h.events));
        r.register("history_events_written", "Events written to the history since start", counter(h.written));
        r.register(
            "history_commits",
            "History commits since start (each carries every event queued meanwhile)",
            counter(h.commits),
        );
        r.register(
            "history_evicted",
            "Events evicted from the history since start (count, age or size bounds)",
            counter(h.evicted),
        );
        r.register(
            "history_write_errors",
            "History commits that failed since start (their publishes were refused)",
            counter(h.write_errors),
        );
    }
    r.register("uptime_seconds", "Seconds since the hub started", gauge(hub.uptime().as_secs()));
    let mut text = String::new();
    encode(&mut text, &r)?;
    Ok(text)
}
