//! The registry of connections: one record per open WebSocket, shared by its session, the channels it
//! joined and the dashboard; the quotas checked when one opens (`max_connections`,
//! `max_connections_per_address`); and its removal from everything when it closes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{Notify, watch};

use super::channel::Channel;
use super::{App, Frame, Hub, lock};
use crate::monitor::{MonitorEvent, now_ms};
use crate::protocol::{ChannelName, CloseCode, ClosedBy, Protocol};

/// The record of one WebSocket connection, shared by its session, the channels it joined and the
/// dashboard.
#[derive(Debug)]
pub struct Connection {
    /// Unique per connection, `^\d+\.\d+$`.
    pub socket_id: Arc<str>,
    /// The number part of the socket id: the key in channel maps.
    pub(super) number: u64,
    /// The app it belongs to.
    pub app: Arc<App>,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The peer's `User-Agent`.
    pub user_agent: Option<Arc<str>>,
    /// Pusher or Poussr v1.
    pub protocol: Protocol,
    /// When it connected.
    pub connected_at: SystemTime,
    /// The channels it has joined, for its session to take their frames, for the dashboard and for
    /// cleaning up when it closes.
    pub(super) channels: Mutex<BTreeMap<ChannelName, Arc<Channel>>>,
    /// The user it signed in as (`pusher:signin`), once it has.
    pub(super) user_id: OnceLock<Arc<str>>,
    /// The close code the hub wants this connection closed with: 0 for none yet, else its index + 1.
    kick_code: AtomicU8,
    /// Wakes the session when `kick_code` is set.
    kick: Notify,
    /// Frames received from the client.
    pub messages_in: AtomicU64,
    /// Frames sent to the client (bumped by its own session only: hub-wide sums are made when read).
    pub messages_out: AtomicU64,
    /// Bytes received from the client.
    pub bytes_in: AtomicU64,
    /// Bytes sent to the client.
    pub bytes_out: AtomicU64,
}

impl Connection {
    /// Asks the session to close with `code`. The first reason wins; later ones are ignored.
    pub fn kick(&self, code: CloseCode) {
        if self.kick_code.compare_exchange(0, code.index() + 1, Relaxed, Relaxed).is_ok() {
            // Every waiter: the session may be waiting in more than one place (its loop, and a write).
            self.kick.notify_waiters();
        }
    }

    /// Resolves when the connection has been asked to close, with the code.
    pub async fn kicked(&self) -> CloseCode {
        loop {
            let notified = self.kick.notified();
            tokio::pin!(notified);
            // Registered before the check, so a kick between the two is not missed.
            notified.as_mut().enable();
            if let Some(code) = self.pending_kick() {
                return code;
            }
            notified.await;
        }
    }

    /// The close the hub has asked for, if any.
    pub fn pending_kick(&self) -> Option<CloseCode> {
        self.kick_code.load(Relaxed).checked_sub(1).and_then(CloseCode::from_index)
    }

    /// Ready when a channel it joined has frames it has not taken; otherwise the task of `cx` is woken by
    /// the next frame appended to any of them.
    pub fn poll_queued(&self, cx: &mut Context<'_>) -> Poll<()> {
        let channels = lock(&self.channels);
        for ch in channels.values() {
            if lock(&ch.ring).poll(self.number, cx.waker()) {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }

    /// Moves the frames it has not taken from the channels it joined to the end of `out`, in the order
    /// they were published.
    ///
    /// From several channels, frames are merged by the number the app gave each when it was appended,
    /// and only frames numbered below the app's counter as read first are taken: every frame numbered
    /// lower was appended (or was being appended, under the ring's lock this waits for) before that read,
    /// so none can turn up later between two frames written now. An event answered before another was
    /// published therefore reaches a subscriber of both channels first.
    pub fn take_queued(&self, out: &mut VecDeque<Frame>) {
        let channels = lock(&self.channels);
        let mut rings = channels.values();
        match (rings.next(), rings.next()) {
            (None, _) => {}
            (Some(only), None) => {
                lock(&only.ring).take(self.number, u64::MAX, |_, frame| out.push_back(frame.clone()));
            }
            _ => {
                let below = self.app.seq.load(Acquire);
                let mut merged = Vec::new();
                for ch in channels.values() {
                    lock(&ch.ring).take(self.number, below, |seq, frame| merged.push((seq, frame.clone())));
                }
                merged.sort_unstable_by_key(|&(seq, _)| seq);
                out.extend(merged.into_iter().map(|(_, frame)| frame));
            }
        }
    }

    /// The channels it has joined.
    pub fn channels(&self) -> Vec<ChannelName> {
        lock(&self.channels).keys().cloned().collect()
    }

    /// The user it signed in as, if it has.
    pub fn user_id(&self) -> Option<&Arc<str>> {
        self.user_id.get()
    }

    /// Whether it has joined `channel`.
    pub fn is_subscribed(&self, channel: &ChannelName) -> bool {
        lock(&self.channels).contains_key(channel)
    }

    /// A snapshot for the dashboard and the admin API.
    pub fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            socket_id: self.socket_id.to_string(),
            app_id: self.app.id.to_string(),
            remote: shown(self.remote),
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            protocol: self.protocol,
            connected_at_ms: self
                .connected_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            channels: self.channels().iter().map(|c| c.to_string()).collect(),
            user_id: self.user_id().map(|u| u.to_string()),
            messages_in: self.messages_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
        }
    }
}

/// A connection as the dashboard shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Socket id.
    pub socket_id: String,
    /// App id.
    pub app_id: String,
    /// Peer address.
    pub remote: String,
    /// Peer user agent.
    pub user_agent: Option<String>,
    /// Pusher or Poussr v1.
    pub protocol: Protocol,
    /// Connected since, ms since the epoch.
    pub connected_at_ms: u64,
    /// Joined channels.
    pub channels: Vec<String>,
    /// The user it signed in as.
    pub user_id: Option<String>,
    /// Frames received.
    pub messages_in: u64,
    /// Frames sent.
    pub messages_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Too many connections (4004).
    OverQuota,
    /// Too many connections from this IP address (4100: retry later).
    TooManyFromAddress,
    /// The hub is shutting down (4200).
    ShuttingDown,
}

impl OpenError {
    /// The close code to answer with.
    pub fn close_code(self) -> CloseCode {
        match self {
            OpenError::OverQuota => CloseCode::OverQuota,
            OpenError::TooManyFromAddress => CloseCode::OverCapacity,
            OpenError::ShuttingDown => CloseCode::Restarting,
        }
    }
}

/// Every open connection, and the counts the quotas are checked against.
#[derive(Debug)]
pub(super) struct Registry {
    /// Every open connection, by number.
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Kept apart from the map so that the quota check does not take the lock.
    count: AtomicUsize,
    /// Open connections per remote IP address (for `max_connections_per_address`).
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// The first part of every socket id: random per process, so ids from two hubs (or two runs) differ.
    socket_prefix: u32,
    /// The number the next connection gets.
    next: AtomicU64,
    /// The number of open connections, for watchers such as the desktop tray's tooltip.
    watch: watch::Sender<usize>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            connections: Mutex::default(),
            count: AtomicUsize::new(0),
            per_address: Mutex::default(),
            socket_prefix: rand::random_range(1..1_000_000_000),
            next: AtomicU64::new(1),
            watch: watch::Sender::new(0),
        }
    }
}

impl Registry {
    /// Follows the number of open connections.
    pub(super) fn watch(&self) -> watch::Receiver<usize> {
        self.watch.subscribe()
    }

    /// Gives back the place `ip` held (a connection closed, or one refused after its place was taken).
    fn release_address(&self, ip: IpAddr) {
        let mut per_address = lock(&self.per_address);
        if let Some(from_here) = per_address.get_mut(&ip) {
            *from_here -= 1;
            if *from_here == 0 {
                per_address.remove(&ip);
            }
        }
    }

    /// Runs `f` over the open connections, under the registry's lock (keep `f` short).
    pub(super) fn with_connections<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Arc<Connection>>) -> R) -> R {
        let open = lock(&self.connections);
        f(&mut open.values())
    }

    /// How many connections `ip` has open, if it has an entry.
    #[cfg(test)]
    pub(super) fn open_from(&self, ip: IpAddr) -> Option<usize> {
        lock(&self.per_address).get(&ip).copied()
    }
}

impl Hub {
    /// Registers a new connection. Returns its record, whose queue its session drains.
    pub fn open(
        &self,
        app: Arc<App>,
        remote: SocketAddr,
        user_agent: Option<&str>,
        protocol: Protocol,
    ) -> Result<Arc<Connection>, OpenError> {
        let s = &self.shared;
        let r = &s.registry;
        if self.is_shutting_down() {
            return Err(OpenError::ShuttingDown);
        }
        // Reserve a place first, so that two racing connections cannot both take the last one.
        if r.count.fetch_add(1, Relaxed) >= s.limits.max_connections {
            r.count.fetch_sub(1, Relaxed);
            return Err(OpenError::OverQuota);
        }
        {
            let mut per_address = lock(&r.per_address);
            let from_here = per_address.entry(remote.ip().to_canonical()).or_insert(0);
            if *from_here >= s.limits.max_connections_per_address {
                drop(per_address);
                r.count.fetch_sub(1, Relaxed);
                return Err(OpenError::TooManyFromAddress);
            }
            *from_here += 1;
        }
        let number = r.next.fetch_add(1, Relaxed);
        let conn = Arc::new(Connection {
            socket_id: Arc::from(format!("{}.{}", r.socket_prefix, number)),
            number,
            app,
            remote,
            user_agent: user_agent.map(Arc::from),
            protocol,
            connected_at: SystemTime::now(),
            channels: Mutex::default(),
            user_id: OnceLock::new(),
            kick_code: AtomicU8::new(0),
            kick: Notify::new(),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        });
        lock(&r.connections).insert(number, conn.clone());
        s.counters.connections_total.fetch_add(1, Relaxed);
        r.watch.send_replace(r.count.load(Relaxed));
        s.monitor.emit(|| MonitorEvent::ConnectionOpened {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            app_id: conn.app.id.clone(),
            remote: shown(remote),
            user_agent: conn.user_agent.clone(),
            protocol,
        });
        Ok(conn)
    }

    /// Removes a connection from every channel, from its user and from the registry, and records how it
    /// ended. Idempotent.
    pub fn close(&self, conn: &Connection, closed_by: ClosedBy, reason: &str) {
        let channels = std::mem::take(&mut *lock(&conn.channels));
        for channel in channels.keys() {
            self.remove_subscriber(conn, channel);
        }
        self.forget_user_connection(conn);
        let r = &self.shared.registry;
        {
            let mut open = lock(&r.connections);
            if open.remove(&conn.number).is_none() {
                return;
            }
            self.shared.counters.add_closed(conn);
        }
        r.count.fetch_sub(1, Relaxed);
        r.release_address(conn.remote.ip().to_canonical());
        self.record_close(closed_by);
        if closed_by == ClosedBy::Hub(CloseCode::OverCapacity) {
            self.shared.counters.slow_consumer_closes.fetch_add(1, Relaxed);
        }
        r.watch.send_replace(r.count.load(Relaxed));
        self.shared.monitor.emit(|| MonitorEvent::ConnectionClosed {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            code: closed_by,
            reason: reason.to_owned(),
        });
    }

    /// Every open connection, oldest first.
    pub fn connections(&self) -> Vec<Arc<Connection>> {
        let mut all: Vec<Arc<Connection>> = lock(&self.shared.registry.connections).values().cloned().collect();
        all.sort_by_key(|c| c.number);
        all
    }

    /// The open connection with this socket id.
    pub fn connection(&self, socket_id: &str) -> Option<Arc<Connection>> {
        let conn = lock(&self.shared.registry.connections).get(&self.local_number(socket_id)?).cloned()?;
        (*conn.socket_id == *socket_id).then_some(conn)
    }

    /// The number of this hub's connection with socket id `socket_id`, resolved once per event so that
    /// fan-out compares numbers. `None` for an id this hub did not give out (another hub's, or malformed).
    pub(super) fn local_number(&self, socket_id: &str) -> Option<u64> {
        // Only the id as the hub writes it: "1.007" or "1.+7" names no connection, as the string it is.
        let written = |part: &str| part.bytes().all(|b| b.is_ascii_digit()) && (part == "0" || !part.starts_with('0'));
        let (prefix, number) = socket_id.split_once('.').filter(|(p, n)| written(p) && written(n))?;
        (prefix.parse::<u32>().ok()? == self.shared.registry.socket_prefix).then_some(number.parse().ok()?)
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.shared.registry.count.load(Relaxed)
    }
}

/// A client's address as people read it: `ip:port`, or the address alone when no port is known (a client
/// named by a proxy's `X-Forwarded-For`, which carries none).
fn shown(addr: SocketAddr) -> String {
    if addr.port() == 0 { addr.ip().to_string() } else { addr.to_string() }
}
