//! Counters: hub-wide and per connection, read by `/health`, `/metrics` and the dashboard. Every counter
//! is an atomic bumped without a lock; the figures are read when asked for.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use super::{Connection, Hub, lock};
use crate::protocol::ClosedBy;
use crate::webhook::WebhookStats;

/// Hub-wide counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Connections accepted since start.
    pub(super) connections_total: AtomicU64,
    /// Events published, one per channel.
    pub(super) events_published: AtomicU64,
    /// Frames queued to subscribers.
    pub(super) deliveries: AtomicU64,
    /// Connections closed with 4100 because their queue overflowed.
    pub(super) slow_consumer_closes: AtomicU64,
    /// Frames received from clients.
    messages_in: AtomicU64,
    /// Frames sent to connections that have closed (open ones keep their own count, summed when read, so
    /// that writing to one connection touches nothing the others share).
    messages_out: AtomicU64,
    /// Bytes received from clients.
    bytes_in: AtomicU64,
    /// Bytes sent to connections that have closed (see `messages_out`).
    bytes_out: AtomicU64,
    /// Connections closed or refused, by close code, since start.
    closes_by_code: Mutex<BTreeMap<u16, u64>>,
}

impl Counters {
    /// Adds what a closing connection sent to the totals of closed ones. Called under the registry's
    /// lock, as it leaves the registry, so that a sum made under the same lock counts it exactly once.
    pub(super) fn add_closed(&self, conn: &Connection) {
        self.messages_out.fetch_add(conn.messages_out.load(Relaxed), Relaxed);
        self.bytes_out.fetch_add(conn.bytes_out.load(Relaxed), Relaxed);
    }
}

/// Hub-wide figures for `/health` and the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Occupied channels, over all apps.
    pub channels: usize,
    /// Events published since start (one per channel).
    pub events_published: u64,
    /// Frames queued to subscribers since start.
    pub deliveries: u64,
    /// Connections closed with 4100 because they did not read fast enough.
    pub slow_consumer_closes: u64,
    /// Frames received from clients.
    pub messages_in: u64,
    /// Frames sent to clients.
    pub messages_out: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
    /// Webhooks over all apps: delivered, failed, dropped, queued.
    pub webhooks: WebhookStats,
}

/// Whether a history is kept, where, and its figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryStatus {
    /// `on`; `off` (no store configured, or no app keeps history); `unavailable` (the store could not be
    /// used: see `error`).
    pub state: &'static str,
    /// The store's file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why the configured store could not be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What happened at start (a damaged store moved aside).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// Size on disk, events kept, evictions, write errors.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub figures: Option<crate::history::HistoryStats>,
}

impl Hub {
    /// Counts a frame received from a client.
    pub fn count_in(&self, conn: &Connection, bytes: usize) {
        let c = &self.shared.counters;
        conn.messages_in.fetch_add(1, Relaxed);
        conn.bytes_in.fetch_add(bytes as u64, Relaxed);
        c.messages_in.fetch_add(1, Relaxed);
        c.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    /// Counts frames sent to a client: on the connection only (its own cache line), summed when read.
    pub fn count_out(&self, conn: &Connection, frames: u64, bytes: u64) {
        conn.messages_out.fetch_add(frames, Relaxed);
        conn.bytes_out.fetch_add(bytes, Relaxed);
    }

    /// Counts a connection closed or refused, for `/metrics` (by the code of its close frame; a
    /// connection lost without one is not counted here).
    pub fn record_close(&self, closed_by: ClosedBy) {
        if let Some(code) = closed_by.code() {
            *lock(&self.shared.counters.closes_by_code).entry(code).or_insert(0) += 1;
        }
    }

    /// How many connections were closed or refused with each close code since start.
    pub fn closes_by_code(&self) -> BTreeMap<u16, u64> {
        lock(&self.shared.counters.closes_by_code).clone()
    }

    /// Hub-wide figures.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let (messages_out, bytes_out) = self.sent_totals();
        Stats {
            connections: self.connection_count(),
            connections_total: c.connections_total.load(Relaxed),
            channels: self.channel_count(),
            events_published: c.events_published.load(Relaxed),
            deliveries: c.deliveries.load(Relaxed),
            slow_consumer_closes: c.slow_consumer_closes.load(Relaxed),
            messages_in: c.messages_in.load(Relaxed),
            messages_out,
            bytes_in: c.bytes_in.load(Relaxed),
            bytes_out,
            webhooks: self.webhook_stats(),
        }
    }

    /// Frames and bytes sent since start: the closed connections' totals plus every open connection's
    /// count, read under the registry's lock so that a connection closing meanwhile counts once.
    fn sent_totals(&self) -> (u64, u64) {
        let c = &self.shared.counters;
        self.shared.registry.with_connections(|conns| {
            conns.fold((c.messages_out.load(Relaxed), c.bytes_out.load(Relaxed)), |(m, b), conn| {
                (m + conn.messages_out.load(Relaxed), b + conn.bytes_out.load(Relaxed))
            })
        })
    }

    /// The history's state and figures, for `/health`, `/metrics` and the window.
    pub fn history_status(&self) -> HistoryStatus {
        match (self.history(), self.history_error()) {
            (Some(h), _) => HistoryStatus {
                state: "on",
                path: Some(h.location()),
                error: None,
                notice: h.notice().map(str::to_owned),
                figures: Some(h.stats()),
            },
            (None, Some(e)) => HistoryStatus {
                state: "unavailable",
                path: None,
                error: Some(e.to_owned()),
                notice: None,
                figures: None,
            },
            (None, None) => HistoryStatus { state: "off", path: None, error: None, notice: None, figures: None },
        }
    }

    /// Webhook figures summed over every app.
    pub fn webhook_stats(&self) -> WebhookStats {
        let mut total = WebhookStats::default();
        for app in &self.shared.apps {
            total += app.webhooks.stats();
        }
        total
    }

    /// Waits until every webhook event queued so far has been sent or given up on, at most `timeout`;
    /// returns how many are left. Used before the process exits.
    pub async fn flush_webhooks(&self, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = self.webhook_stats().queued;
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
