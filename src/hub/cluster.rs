//! The hub's side of the cluster seam: the [`Adapter`] trait through which the hub tells the other hubs
//! what happened here and asks what they hold, and the cluster-wide views built on it (channel lists,
//! counts and presence users over every hub).
//!
//! The hub only knows this trait. The adapters themselves live in `crate::adapter` and are handed to
//! [`Hub::new`]; what the other hubs send arrives through the hub's ordinary entry points
//! ([`Hub::deliver_local`], [`Hub::terminate_local_user`], [`Hub::remote_presence_changed`]), the same
//! path as this hub's own traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{App, Hub, Publish, lock};
use crate::config::{AdapterKind, WebhookKind};
use crate::history::HistoryError;
use crate::protocol::{ChannelKind, ChannelName};

/// The members of one presence channel on other hubs: user id → user info.
pub type RemoteMembers = BTreeMap<String, serde_json::Value>;

/// How long a request waits for the cluster to catch up ([`Hub::cluster_sync`]) before it is answered
/// from what this hub knows.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// Who delivers an event published on this hub to this hub's own subscribers.
#[derive(Debug)]
pub enum Route {
    /// The hub, now (a hub alone, or a cluster whose link is down: the adapter has queued the event for
    /// the other hubs already).
    Here,
    /// The adapter, in the cluster's order, through [`Hub::deliver_local`] (or
    /// [`Hub::deliver_positioned`]): the answer comes once the cluster has the event and this hub has
    /// delivered it, with the number of local connections.
    Ordered(oneshot::Receiver<Result<usize, HistoryError>>),
    /// Nobody: the event is kept in the cluster's history, which cannot be reached (the reason), so it
    /// could not get its position. It was not delivered anywhere.
    Refused(String),
}

/// Where the hub's traffic goes beyond its own subscribers. Every method has the behaviour of a hub
/// alone as its default, so an adapter implements only what it shares.
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// Hands on an event published on this hub, and says who delivers it here. With `kept`, the event
    /// is one the history keeps (the cluster gives its positions, if the history is the cluster's).
    fn publish(&self, _app: &App, _event: &Publish, _kept: bool) -> Route {
        Route::Here
    }

    /// The history the cluster keeps for `apps`, if it keeps one (`history_on`: the hub keeps history).
    fn history(&self, _apps: &[crate::config::AppConfig], _history_on: bool) -> Option<crate::history::History> {
        None
    }

    /// [`Adapter::sync`], which also brings the head of `channel`'s history in the cluster's order, for
    /// a connection that counts positions: the hub records it as the channel's last delivered position.
    fn sync_heads(&self, _app: &App, _channel: &str) -> Option<oneshot::Receiver<()>> {
        None
    }

    /// Resolves once every change the cluster accepted before this call has been applied here (`None`:
    /// nothing to wait for, as for a hub alone or a cluster whose link is down).
    fn sync(&self) -> Option<oneshot::Receiver<()>> {
        None
    }

    /// Tells the other hubs that `channel` has `count` subscriptions here now. Called under the channel's
    /// lock, so that the counts leave in the order they changed: it must only queue.
    fn subscriptions_changed(&self, _app: &App, _channel: &str, _count: usize) {}

    /// Tells the other hubs to close `user_id`'s connections (this hub closes its own).
    fn terminate_user(&self, _app: &App, _user_id: &str) {}

    /// Starts the adapter's background work for `hub` (the hub starts serving).
    fn start(&self, _hub: &Hub) {}

    /// Stops the background work (the hub is shutting down).
    fn stop(&self) {}

    /// What the other hubs hold of the app `app_id`, as they last told.
    fn remote(&self, _app_id: &str) -> Vec<AppSnapshot> {
        Vec::new()
    }

    /// The subscriptions to `channel` of app `app_id` on the other hubs, as they last told. Read at each
    /// channel's creation and vacating here, so it counts in place rather than copying [`Adapter::remote`].
    fn remote_subscriptions(&self, _app_id: &str, _channel: &str) -> usize {
        0
    }

    /// The members of presence channel `channel` of app `app_id` on the other hubs.
    fn remote_members(&self, _app_id: &str, _channel: &str) -> RemoteMembers {
        RemoteMembers::new()
    }

    /// Tells the other hubs that `user_id` is now a member of `channel` here (its first connection).
    fn member_added(&self, _app: &App, _channel: &str, _user_id: &str, _user_info: &serde_json::Value) {}

    /// Tells the other hubs that `user_id` is no longer a member of `channel` here (its last connection).
    fn member_removed(&self, _app: &App, _channel: &str, _user_id: &str) {}

    /// What `/health` and the dashboard show of the cluster, if this hub is part of one.
    fn status(&self) -> Option<ClusterStatus> {
        None
    }
}

/// The local adapter: a hub on its own, with nothing to share and nobody to ask.
#[derive(Debug, Default, Clone, Copy)]
pub struct Alone;

impl Adapter for Alone {}

/// What one hub holds of an app, as the cluster heartbeat shares it: occupied channels with their
/// subscription counts, and the members of presence channels.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppSnapshot {
    /// Occupied channels and their subscriptions.
    pub channels: BTreeMap<String, usize>,
    /// Presence channels: user id → user info.
    pub presence: BTreeMap<String, RemoteMembers>,
}

/// A channel as the whole cluster has it (the HTTP API's answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterChannel {
    /// The name.
    pub name: String,
    /// Subscriptions on every hub.
    pub subscription_count: usize,
    /// Presence channels: distinct users over every hub.
    pub user_count: Option<usize>,
}

/// Another hub of the cluster, as its heartbeat describes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterNode {
    /// Its node id.
    pub id: String,
    /// Its host name and port.
    pub name: String,
    /// Its open connections.
    pub connections: usize,
}

/// Whether this hub's links to the cluster work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Every connection to the cluster's server works.
    Up,
    /// At least one does not; the hub keeps serving its own clients and retries.
    Down,
}

/// The cluster as this hub sees it (`/health`, the dashboard).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The adapter (`redis`).
    pub adapter: AdapterKind,
    /// This hub's node id.
    pub node: String,
    /// The key prefix of the cluster.
    pub prefix: String,
    /// Whether the links work.
    pub link: LinkState,
    /// The last failure, while the link is down.
    pub error: Option<String>,
    /// The other hubs.
    pub others: Vec<ClusterNode>,
    /// Messages sent to the other hubs.
    pub published: u64,
    /// Messages received from them.
    pub received: u64,
    /// Messages dropped because the link was down too long (the outbox was full).
    pub dropped: u64,
    /// Hubs that died and whose webhooks this hub sent (it held their clean-up lease).
    pub cleaned_up: u64,
}

impl Hub {
    /// The cluster this hub belongs to, if any.
    pub fn cluster_status(&self) -> Option<ClusterStatus> {
        self.shared.adapter.status()
    }

    /// Waits (at most [`SYNC_TIMEOUT`]) until every change the cluster accepted before this call is
    /// applied here: subscriptions, members and events of the other hubs. Answers about the cluster given
    /// after it reflect everything that completed on any hub before the call.
    pub async fn cluster_sync(&self) {
        if let Some(synced) = self.shared.adapter.sync()
            && tokio::time::timeout(SYNC_TIMEOUT, synced).await.is_err()
        {
            tracing::debug!("the cluster did not catch up within {SYNC_TIMEOUT:?}; answering from what this hub knows");
        }
    }

    /// [`Hub::cluster_sync`], bringing the head of `channel`'s history in the cluster's order too (for a
    /// subscription that counts positions, in a cluster that keeps the history).
    /// With a history kept by the cluster, a head that could not be brought (the link is down, or it did
    /// not come in time) leaves the channel's position unknown here: joins then count no positions.
    pub async fn cluster_sync_heads(&self, app: &App, channel: &ChannelName) {
        let shared = self.history().is_some_and(|h| h.is_shared() && h.keeps(&app.id, false));
        let synced = match self.shared.adapter.sync_heads(app, channel.as_str()) {
            Some(synced) => tokio::time::timeout(SYNC_TIMEOUT, synced).await.is_ok(),
            None => false,
        };
        if shared && !synced {
            tracing::debug!(channel = channel.as_str(), "the cluster's history could not be asked; position unknown");
            let _map = lock(&app.channels);
            lock(&app.delivered).remove(channel);
        }
    }

    /// Asks every connection that counts positions on a channel to reconnect (4200): this hub missed what
    /// the cluster published while its link was down, so they must resume from their positions (on any
    /// hub) to get it. Returns how many were asked.
    pub fn restart_counting(&self) -> usize {
        let mut counting = Vec::new();
        for app in &self.shared.apps {
            let channels: Vec<_> = lock(&app.channels).values().cloned().collect();
            for ch in channels {
                let state = lock(&ch.state);
                let ring = lock(&ch.ring);
                counting.extend(
                    state.subscribers.iter().filter(|(n, _)| ring.counts_positions(**n)).map(|(_, s)| s.conn.clone()),
                );
            }
        }
        counting.sort_by_key(|c| c.number);
        counting.dedup_by_key(|c| c.number);
        for conn in &counting {
            conn.kick(crate::protocol::CloseCode::Restarting);
        }
        counting.len()
    }

    /// The departed hub `departed` held these channels and members of `app_id`: sends the
    /// `member_removed` and `channel_vacated` webhooks for those that are now gone from the whole cluster.
    /// The adapter calls it on one hub only (the one that holds the departed hub's clean-up lease).
    pub fn departed_webhooks(&self, app_id: &str, departed: &AppSnapshot) -> (usize, usize) {
        let Some(app) = self.app_by_id(app_id) else { return (0, 0) };
        let remote = self.shared.adapter.remote(app_id);
        let (mut members, mut vacated) = (0, 0);
        for (channel, users) in &departed.presence {
            let Ok(name) = ChannelName::parse(channel) else { continue };
            let present = self.cluster_users_with(&app, &name, &remote);
            for user in users.keys().filter(|u| !present.iter().any(|p| **p == ***u)) {
                app.webhook(WebhookKind::MemberRemoved, &name, Some(&Arc::from(user.as_str())));
                members += 1;
            }
        }
        for (channel, &count) in &departed.channels {
            let Ok(name) = ChannelName::parse(channel) else { continue };
            let local = self.channel(&app, &name).map_or(0, |c| c.subscription_count);
            let others: usize = remote.iter().filter_map(|s| s.channels.get(channel)).sum();
            if count > 0 && local + others == 0 {
                app.webhook(WebhookKind::ChannelVacated, &name, None);
                vacated += 1;
            }
        }
        (members, vacated)
    }

    /// Whether another hub has subscribers on `channel` of `app`.
    pub(super) fn remote_occupied(&self, app: &App, channel: &ChannelName) -> bool {
        self.shared.adapter.remote_subscriptions(&app.config.id, channel.as_str()) > 0
    }

    /// What this hub holds, by app id, for the cluster heartbeat.
    pub fn snapshot(&self) -> BTreeMap<String, AppSnapshot> {
        let mut out = BTreeMap::new();
        for app in &self.shared.apps {
            let chans: Vec<_> = lock(&app.channels).values().cloned().collect();
            let mut snap = AppSnapshot::default();
            for ch in chans {
                let state = lock(&ch.state);
                if state.subscribers.is_empty() {
                    continue;
                }
                snap.channels.insert(ch.name.to_string(), state.subscribers.len());
                if ch.name.kind() == ChannelKind::Presence {
                    let members = state.members.iter().map(|(id, m)| (id.to_string(), m.info.clone())).collect();
                    snap.presence.insert(ch.name.to_string(), members);
                }
            }
            out.insert(app.config.id.clone(), snap);
        }
        out
    }

    /// The occupied channels of `app` on every hub of the cluster, sorted by name.
    pub fn cluster_channels(&self, app: &App) -> Vec<ClusterChannel> {
        let remote = self.shared.adapter.remote(&app.config.id);
        // Subscriptions by channel name: this hub's, then every other hub's added.
        let mut subscriptions: BTreeMap<String, usize> =
            self.channels(app).into_iter().map(|c| (c.name, c.subscription_count)).collect();
        for snap in &remote {
            for (name, count) in &snap.channels {
                *subscriptions.entry(name.clone()).or_default() += count;
            }
        }
        subscriptions
            .into_iter()
            .filter_map(|(n, count)| Some((ChannelName::parse(&n).ok()?, count)))
            .filter_map(|(n, count)| self.cluster_channel_with(app, &n, count, &remote))
            .collect()
    }

    /// One channel of `app` over the cluster, if occupied anywhere.
    pub fn cluster_channel(&self, app: &App, name: &ChannelName) -> Option<ClusterChannel> {
        let remote = self.shared.adapter.remote(&app.config.id);
        let local = self.channel(app, name).map_or(0, |c| c.subscription_count);
        let subscriptions = local + remote.iter().filter_map(|s| s.channels.get(name.as_str())).sum::<usize>();
        self.cluster_channel_with(app, name, subscriptions, &remote)
    }

    /// `name` with `subscription_count` subscriptions over the cluster, if any.
    fn cluster_channel_with(
        &self,
        app: &App,
        name: &ChannelName,
        subscription_count: usize,
        remote: &[AppSnapshot],
    ) -> Option<ClusterChannel> {
        if subscription_count == 0 {
            return None;
        }
        let user_count =
            (name.kind() == ChannelKind::Presence).then(|| self.cluster_users_with(app, name, remote).len());
        Some(ClusterChannel { name: name.to_string(), subscription_count, user_count })
    }

    /// The users of a presence channel over the cluster, sorted by id: a user on two hubs is one user.
    pub fn cluster_channel_users(&self, app: &App, name: &ChannelName) -> Vec<Arc<str>> {
        self.cluster_users_with(app, name, &self.shared.adapter.remote(&app.config.id))
    }

    fn cluster_users_with(&self, app: &App, name: &ChannelName, remote: &[AppSnapshot]) -> Vec<Arc<str>> {
        let mut users: BTreeSet<Arc<str>> = self.channel_users(app, name).into_iter().collect();
        for snap in remote {
            if let Some(members) = snap.presence.get(name.as_str()) {
                users.extend(members.keys().map(|k| Arc::from(k.as_str())));
            }
        }
        users.into_iter().collect()
    }
}
