//! An app: what a Pusher client names with its key and a server SDK with its id. Each app has its own
//! channels, cache, signed-in users, webhook targets and publishing allowance.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::budget::Budget;
use super::cache::Cache;
use super::channel::Channel;
use super::user::Users;
use super::{Hub, lock};
use crate::config::{AppConfig, Limits, WebhookKind};
use crate::history::Position;
use crate::protocol::ChannelName;
use crate::webhook::{WebhookEvent, Webhooks};

/// An app and its channels.
#[derive(Debug)]
pub struct App {
    /// The credentials and switches.
    pub config: AppConfig,
    /// Its id, shared cheaply with monitor events.
    pub id: Arc<str>,
    /// Occupied channels only: a channel is removed when its last subscriber leaves, so the map never
    /// grows with names nobody uses any more.
    pub(super) channels: Mutex<HashMap<ChannelName, Arc<Channel>>>,
    /// Numbers every frame appended to any of its channels' rings, in the order they were appended.
    pub(super) seq: AtomicU64,
    /// The position of the last kept event delivered on each channel (whether or not it is occupied),
    /// written under the channel map's lock, where joins read it.
    pub(super) delivered: Mutex<HashMap<ChannelName, Position>>,
    /// The last event of each cache channel, kept whether or not the channel is occupied.
    pub(super) cache: Mutex<Cache>,
    /// Signed-in users and their connections, for `#server-to-user-` channels and `terminate_connections`.
    pub(super) users: Mutex<Users>,
    /// Where this app's webhooks go.
    pub webhooks: Webhooks,
    /// What is left of this second's publishing allowance (`max_publish_per_second`).
    publish_budget: Mutex<Budget>,
}

impl App {
    /// An app with no channels yet.
    pub(super) fn new(config: &AppConfig, limits: &Limits, ca: Option<&std::path::Path>) -> Self {
        App {
            config: config.clone(),
            id: Arc::from(config.id.as_str()),
            channels: Mutex::default(),
            seq: AtomicU64::new(0),
            delivered: Mutex::default(),
            cache: Mutex::default(),
            users: Mutex::default(),
            webhooks: Webhooks::new(config, limits, ca),
            publish_budget: Mutex::new(Budget::full(limits.max_publish_per_second)),
        }
    }

    /// Queues a webhook event about `channel` (and `user_id`), if a target wants its kind.
    pub(super) fn webhook(&self, kind: WebhookKind, channel: &ChannelName, user_id: Option<&Arc<str>>) {
        self.webhook_with(kind, || WebhookEvent { user_id: user_id.cloned(), ..WebhookEvent::new(kind, channel) });
    }

    /// Queues the webhook event `make` builds, if a target wants `kind`; nothing is built otherwise.
    pub(super) fn webhook_with(&self, kind: WebhookKind, make: impl FnOnce() -> WebhookEvent) {
        if self.webhooks.wants(kind) {
            self.webhooks.emit(make());
        }
    }
}

impl Hub {
    /// The position a connection joining `channel` now starts counting from: the last kept event
    /// delivered there, or, if none was, the channel's epoch before its first event. `None` if the app
    /// keeps no history. The caller holds the channel map's lock, under which deliveries record their
    /// positions.
    pub(super) fn delivered_position(&self, app: &App, channel: &ChannelName) -> Option<Position> {
        let history = self.history().filter(|h| h.keeps(&app.id, false))?;
        if let Some(p) = lock(&app.delivered).get(channel) {
            return Some(p.clone());
        }
        // No kept event was delivered here since the hub started, and none was kept before (the store's
        // heads were loaded into `delivered`): what is appended now is the epoch's first serial on. (A
        // cluster's history gives its heads in its order of events, before the join: none here means the
        // cluster could not be asked, and the position is unknown.)
        Some(Position { epoch: history.head(&app.id, &Arc::from(channel.as_str()))?.epoch, serial: 0 })
    }

    /// The position of the last kept event delivered on `channel`, if any was (or is on disk).
    pub fn kept_position(&self, app: &App, channel: &ChannelName) -> Option<Position> {
        lock(&app.delivered).get(channel).cloned()
    }

    /// Takes `events` from `app`'s publishing allowance (`max_publish_per_second`); when it is spent, says
    /// how long until it allows that many again.
    pub fn take_publish_budget(&self, app: &App, events: usize) -> Result<(), Duration> {
        lock(&app.publish_budget).take(events, self.shared.limits.max_publish_per_second, Instant::now())
    }
}
