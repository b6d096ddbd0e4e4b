//! The Redis adapter: hubs that share their traffic through Redis pub/sub, with the `redis` crate.
//!
//! - Every event this hub publishes (HTTP API, Poussr v1, client events) is delivered to its own
//!   subscribers at once and queued for `PUBLISH` on `{prefix}#events`; every hub subscribes to that
//!   channel and delivers what the others published. A message carries its origin node, so nobody
//!   delivers an event twice, and the `socket_id` to leave out, which every node honours.
//! - `terminate_connections` travels the same way.
//! - Each hub writes `{prefix}:node:{id}` (its name, its connection count, its occupied channels) every
//!   second with an expiry of `node_timeout`; the keys of the others are how a hub knows the cluster, and
//!   a hub that dies disappears when its key expires.
//! - Each of the three Redis connections (subscriber, publisher, heartbeat) reconnects by itself with a
//!   backoff from 200 ms to 5 s. While Redis is unreachable, local delivery goes on, up to
//!   [`OUTBOX_CAPACITY`] events wait for the link, and `/health` says the link is down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::hub::{App, AppSnapshot, ClusterNode, ClusterStatus, EventSource, Hub, Publish};
use crate::protocol::ChannelName;

/// Events waiting for the publisher connection; beyond this, new ones are dropped and counted.
pub(crate) const OUTBOX_CAPACITY: usize = 10_000;
/// How often a hub rewrites its node key and reads the others'.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A Redis command that takes longer than this counts as a failure (the link is down).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// What travels between hubs.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The node that sent it.
    node: String,
    #[serde(flatten)]
    body: Body,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Body {
    /// An event for the subscribers of `channels` in `app`.
    Publish {
        app: String,
        channels: Vec<String>,
        event: String,
        data: String,
        except: Option<String>,
        user_id: Option<String>,
        source: EventSource,
    },
    /// Close the connections of a user (`terminate_connections`).
    Terminate { app: String, user_id: String },
    /// A user's first connection on the sending hub joined a presence channel.
    MemberAdded { app: String, channel: String, user_id: String, user_info: serde_json::Value },
    /// A user's last connection on the sending hub left a presence channel.
    MemberRemoved { app: String, channel: String, user_id: String },
}

/// A change to another hub's members learned from a message, kept a while so that a heartbeat record
/// read a moment before it does not undo it.
#[derive(Debug, Clone)]
struct Patch {
    at: std::time::Instant,
    node: String,
    app: String,
    channel: String,
    user_id: String,
    /// `Some(info)` for an added member, `None` for a removed one.
    info: Option<serde_json::Value>,
}

/// How long a patch outlives the message that made it: more than a heartbeat and the time to read it.
const PATCH_LIFE: Duration = Duration::from_secs(3);

type PresenceKey = (String, String);

/// The remote members of every presence channel: (app, channel) → user id → info.
fn union(
    others: &[NodeRecord],
) -> std::collections::HashMap<PresenceKey, std::collections::BTreeMap<String, serde_json::Value>> {
    let mut out: std::collections::HashMap<PresenceKey, std::collections::BTreeMap<String, serde_json::Value>> =
        std::collections::HashMap::new();
    for node in others {
        for (app, snap) in &node.apps {
            for (channel, members) in &snap.presence {
                let entry = out.entry((app.clone(), channel.clone())).or_default();
                for (user, info) in members {
                    entry.entry(user.clone()).or_insert_with(|| info.clone());
                }
            }
        }
    }
    out
}

fn apply(others: &mut Vec<NodeRecord>, patch: &Patch) {
    let index = match others.iter().position(|n| n.id == patch.node) {
        Some(i) => i,
        None => {
            others.push(NodeRecord {
                id: patch.node.clone(),
                name: String::new(),
                connections: 0,
                started_ms: 0,
                apps: Default::default(),
            });
            others.len() - 1
        }
    };
    let members =
        others[index].apps.entry(patch.app.clone()).or_default().presence.entry(patch.channel.clone()).or_default();
    match &patch.info {
        Some(info) => {
            members.insert(patch.user_id.clone(), info.clone());
        }
        None => {
            members.remove(&patch.user_id);
        }
    }
}

/// What a node writes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeRecord {
    id: String,
    name: String,
    connections: usize,
    started_ms: u64,
    /// What it holds, by app id.
    #[serde(default)]
    apps: std::collections::BTreeMap<String, AppSnapshot>,
}

#[derive(Debug, Default)]
struct Link {
    subscribed: AtomicBool,
    publishing: AtomicBool,
    heartbeat: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The other nodes, as of the last heartbeat, with the patches of later messages applied.
    others: Mutex<Vec<NodeRecord>>,
    /// Recent member changes from messages (see [`Patch`]).
    patches: Mutex<Vec<Patch>>,
}

impl Link {
    /// Applies what a message says of `patch.node`'s members; returns whether the user is a remote member
    /// before and after.
    fn patch(&self, patch: Patch) -> (bool, bool) {
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        let key = (patch.app.clone(), patch.channel.clone());
        let present = |others: &[NodeRecord]| {
            others.iter().any(|n| {
                n.apps.get(&key.0).and_then(|a| a.presence.get(&key.1)).is_some_and(|m| m.contains_key(&patch.user_id))
            })
        };
        let before = present(&others);
        apply(&mut others, &patch);
        let after = present(&others);
        drop(others);
        let mut patches = self.patches.lock().unwrap_or_else(|e| e.into_inner());
        patches.retain(|p| p.at.elapsed() < PATCH_LIFE);
        patches.push(patch);
        (before, after)
    }

    /// Replaces the view with the records just read, keeps the recent patches, and returns the remote
    /// members before and after.
    #[allow(clippy::type_complexity)]
    fn refresh(
        &self,
        fresh: Vec<NodeRecord>,
    ) -> (
        std::collections::HashMap<PresenceKey, std::collections::BTreeMap<String, serde_json::Value>>,
        std::collections::HashMap<PresenceKey, std::collections::BTreeMap<String, serde_json::Value>>,
    ) {
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        let before = union(&others);
        *others = fresh;
        let mut patches = self.patches.lock().unwrap_or_else(|e| e.into_inner());
        patches.retain(|p| p.at.elapsed() < PATCH_LIFE);
        for p in patches.iter() {
            // A patch for a node that has left the cluster (its key expired) is not applied.
            if others.iter().any(|n| n.id == p.node) {
                apply(&mut others, p);
            }
        }
        let after = union(&others);
        (before, after)
    }
}

impl Link {
    fn failed(&self, what: &str, error: impl std::fmt::Display) {
        let message = format!("{what}: {error}");
        tracing::warn!("cluster link: {message}");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }
}

/// This hub's membership of a Redis cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    node: String,
    prefix: String,
    client: ::redis::Client,
    node_timeout: Duration,
    outbox: mpsc::Sender<String>,
    outbox_rx: Mutex<Option<mpsc::Receiver<String>>>,
    link: Arc<Link>,
    stop: watch::Sender<bool>,
    started_ms: u64,
}

impl Cluster {
    /// A cluster member for `url` (checked, not yet connected) under `prefix`, named `node`.
    pub(crate) fn new(url: &str, prefix: &str, node: String, node_timeout: Duration) -> Result<Self, String> {
        let client = ::redis::Client::open(url).map_err(|e| format!("redis_url {url:?}: {e}"))?;
        let (outbox, rx) = mpsc::channel(OUTBOX_CAPACITY);
        Ok(Cluster {
            node,
            prefix: prefix.to_owned(),
            client,
            node_timeout,
            outbox,
            outbox_rx: Mutex::new(Some(rx)),
            link: Arc::default(),
            stop: watch::Sender::new(false),
            started_ms: crate::hub::now_ms(),
        })
    }

    fn events_channel(&self) -> String {
        format!("{}#events", self.prefix)
    }

    fn send(&self, body: Body) {
        let message = serde_json::to_string(&Envelope { node: self.node.clone(), body }).unwrap_or_default();
        if self.outbox.try_send(message).is_err() {
            self.link.dropped.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn publish(&self, app: &App, event: &Publish) {
        self.send(Body::Publish {
            app: app.config.id.clone(),
            channels: event.channels.iter().map(|c| c.to_string()).collect(),
            event: event.event.to_string(),
            data: event.data.to_string(),
            except: event.except.as_deref().map(str::to_owned),
            user_id: event.user_id.as_deref().map(str::to_owned),
            source: event.source,
        });
    }

    pub(crate) fn terminate_user(&self, app: &App, user_id: &str) {
        self.send(Body::Terminate { app: app.config.id.clone(), user_id: user_id.to_owned() });
    }

    /// Spawns the three connections' tasks. They hold the hub weakly and end when it stops.
    pub(crate) fn start(&self, hub: &Hub) {
        let Some(outbox) = self.outbox_rx.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let weak = hub.downgrade();
        tokio::spawn(subscriber(
            self.client.clone(),
            self.events_channel(),
            self.node.clone(),
            weak.clone(),
            self.link.clone(),
            self.stop.subscribe(),
        ));
        tokio::spawn(publisher(
            self.client.clone(),
            self.events_channel(),
            outbox,
            self.link.clone(),
            self.stop.subscribe(),
        ));
        tokio::spawn(heartbeat(
            self.client.clone(),
            self.prefix.clone(),
            NodeRecord {
                id: self.node.clone(),
                name: String::new(),
                connections: 0,
                started_ms: self.started_ms,
                apps: Default::default(),
            },
            self.node_timeout,
            weak,
            self.link.clone(),
            self.stop.subscribe(),
        ));
    }

    pub(crate) fn remote_members(
        &self,
        app_id: &str,
        channel: &str,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        let others = self.link.others.lock().unwrap_or_else(|e| e.into_inner());
        // Only this channel's members, not the whole union: this runs at each presence (un)subscription.
        let mut members = std::collections::BTreeMap::new();
        for snap in others.iter().filter_map(|n| n.apps.get(app_id)) {
            for (user, info) in snap.presence.get(channel).into_iter().flatten() {
                members.entry(user.clone()).or_insert_with(|| info.clone());
            }
        }
        members
    }

    pub(crate) fn member_added(&self, app: &App, channel: &str, user_id: &str, user_info: &serde_json::Value) {
        self.send(Body::MemberAdded {
            app: app.config.id.clone(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
            user_info: user_info.clone(),
        });
    }

    pub(crate) fn member_removed(&self, app: &App, channel: &str, user_id: &str) {
        self.send(Body::MemberRemoved {
            app: app.config.id.clone(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
        });
    }

    pub(crate) fn remote(&self, app_id: &str) -> Vec<AppSnapshot> {
        let others = self.link.others.lock().unwrap_or_else(|e| e.into_inner());
        others.iter().filter_map(|n| n.apps.get(app_id).cloned()).collect()
    }

    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub(crate) fn status(&self) -> ClusterStatus {
        let link = &self.link;
        let up = link.subscribed.load(Relaxed) && link.publishing.load(Relaxed) && link.heartbeat.load(Relaxed);
        ClusterStatus {
            adapter: "redis",
            node: self.node.clone(),
            prefix: self.prefix.clone(),
            link: if up { "up" } else { "down" },
            error: if up { None } else { link.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone() },
            others: link
                .others
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|n| ClusterNode { id: n.id.clone(), name: n.name.clone(), connections: n.connections })
                .collect(),
            published: link.published.load(Relaxed),
            received: link.received.load(Relaxed),
            dropped: link.dropped.load(Relaxed),
        }
    }
}

/// Resolves when the hub stops.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps for the current backoff (doubling it, at most 5 s); false when the hub stops meanwhile.
async fn back_off(delay: &mut Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let wait = *delay;
    *delay = (*delay * 2).min(Duration::from_secs(5));
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stopped(stop) => false,
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Connects, retrying with the backoff while recording each failure as `what` and clearing `up`; `None`
/// when the hub stops meanwhile.
async fn connect(
    client: &::redis::Client,
    link: &Link,
    up: &AtomicBool,
    what: &str,
    delay: &mut Duration,
    stop: &mut watch::Receiver<bool>,
) -> Option<::redis::aio::MultiplexedConnection> {
    let config = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    loop {
        match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(conn) => return Some(conn),
            Err(e) => {
                up.store(false, Relaxed);
                link.failed(what, e);
                if !back_off(delay, stop).await {
                    return None;
                }
            }
        }
    }
}

/// Receives what the other hubs publish and delivers it here.
async fn subscriber(
    client: ::redis::Client,
    channel: String,
    node: String,
    hub: crate::hub::WeakHub,
    link: Arc<Link>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = FIRST_BACKOFF;
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            ::redis::RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, session).await {
            Ok(Ok(pubsub)) => {
                link.subscribed.store(true, Relaxed);
                delay = FIRST_BACKOFF;
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                let Some(hub) = hub.upgrade() else { return };
                                deliver(&hub, &node, message.get_payload_bytes(), &link);
                            }
                            None => break,
                        },
                        () = stopped(&mut stop) => return,
                    }
                }
                link.subscribed.store(false, Relaxed);
                link.failed("the subscription", "the connection to Redis was lost");
            }
            Ok(Err(e)) => link.failed("subscribing", e),
            Err(_) => link.failed("subscribing", "Redis did not answer in time"),
        }
        link.subscribed.store(false, Relaxed);
        if !back_off(&mut delay, &mut stop).await {
            return;
        }
    }
}

/// Acts on one message from the cluster.
fn deliver(hub: &Hub, node: &str, payload: &[u8], link: &Link) {
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("cluster link: a message that is not Poussr's was ignored: {e}");
            return;
        }
    };
    if envelope.node == node {
        return; // Published here: already delivered to this hub's subscribers.
    }
    link.received.fetch_add(1, Relaxed);
    match envelope.body {
        Body::Publish { app, channels, event, data, except, user_id, source } => {
            let Some(app) = hub.app_by_id(&app) else { return };
            let channels: Vec<ChannelName> = channels.iter().filter_map(|c| ChannelName::parse(c).ok()).collect();
            let mut publish = Publish::new(channels, &event, &data, except.as_deref(), source);
            publish.user_id = user_id.map(Arc::from);
            hub.deliver_local(&app, &publish);
        }
        Body::Terminate { app, user_id } => {
            if let Some(app) = hub.app_by_id(&app) {
                hub.terminate_local_user(&app, &user_id);
            }
        }
        Body::MemberAdded { app, channel, user_id, user_info } => {
            let info = user_info.clone();
            let patch =
                Patch { at: std::time::Instant::now(), node: envelope.node, app, channel, user_id, info: Some(info) };
            let (app, channel, user) = (patch.app.clone(), patch.channel.clone(), patch.user_id.clone());
            let (before, after) = link.patch(patch);
            if !before && after {
                hub.remote_presence_changed(&app, &channel, &user, Some(&user_info));
            }
        }
        Body::MemberRemoved { app, channel, user_id } => {
            let patch = Patch { at: std::time::Instant::now(), node: envelope.node, app, channel, user_id, info: None };
            let (app, channel, user) = (patch.app.clone(), patch.channel.clone(), patch.user_id.clone());
            let (before, after) = link.patch(patch);
            if before && !after {
                hub.remote_presence_changed(&app, &channel, &user, None);
            }
        }
    }
}

/// Tells the hub which remote members appeared and disappeared between two views.
fn announce_changes(
    hub: &Hub,
    before: &std::collections::HashMap<PresenceKey, std::collections::BTreeMap<String, serde_json::Value>>,
    after: &std::collections::HashMap<PresenceKey, std::collections::BTreeMap<String, serde_json::Value>>,
) {
    let empty = std::collections::BTreeMap::new();
    let keys: std::collections::HashSet<&PresenceKey> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let (old, new) = (before.get(key).unwrap_or(&empty), after.get(key).unwrap_or(&empty));
        for user in old.keys().filter(|u| !new.contains_key(*u)) {
            hub.remote_presence_changed(&key.0, &key.1, user, None);
        }
        for (user, info) in new.iter().filter(|(u, _)| !old.contains_key(*u)) {
            hub.remote_presence_changed(&key.0, &key.1, user, Some(info));
        }
    }
}

/// Publishes the outbox, in order.
async fn publisher(
    client: ::redis::Client,
    channel: String,
    mut outbox: mpsc::Receiver<String>,
    link: Arc<Link>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = FIRST_BACKOFF;
    let mut pending: Option<String> = None;
    loop {
        let Some(mut conn) =
            connect(&client, &link, &link.publishing, "connecting the publisher", &mut delay, &mut stop).await
        else {
            return;
        };
        link.publishing.store(true, Relaxed);
        delay = FIRST_BACKOFF;
        loop {
            let message = match pending.take() {
                Some(m) => m,
                None => tokio::select! {
                    m = outbox.recv() => match m { Some(m) => m, None => return },
                    () = stopped(&mut stop) => return,
                },
            };
            let sent: ::redis::RedisResult<i64> =
                ::redis::cmd("PUBLISH").arg(&channel).arg(&message).query_async(&mut conn).await;
            match sent {
                Ok(_) => {
                    link.published.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    // Sent again on the next connection, so that order is kept.
                    pending = Some(message);
                    link.publishing.store(false, Relaxed);
                    link.failed("publishing", e);
                    break;
                }
            }
        }
        if !back_off(&mut delay, &mut stop).await {
            return;
        }
    }
}

/// Writes this node's key every second and reads the others'.
async fn heartbeat(
    client: ::redis::Client,
    prefix: String,
    mut record: NodeRecord,
    node_timeout: Duration,
    hub: crate::hub::WeakHub,
    link: Arc<Link>,
    mut stop: watch::Receiver<bool>,
) {
    let key = format!("{prefix}:node:{}", record.id);
    let pattern = format!("{prefix}:node:*");
    let mut conn = None;
    let mut delay = FIRST_BACKOFF;
    loop {
        {
            let Some(hub) = hub.upgrade() else { return };
            record.connections = hub.connection_count();
            record.apps = hub.snapshot();
            let host = crate::net::host_name().unwrap_or_else(|| "poussr".into());
            record.name = hub.local_addr().map_or_else(|| host.clone(), |a| format!("{host}:{}", a.port()));
        }
        if conn.is_none() {
            conn = connect(&client, &link, &link.heartbeat, "connecting the heartbeat", &mut delay, &mut stop).await;
        }
        let Some(c) = conn.as_mut() else { return };
        match beat(c, &key, &pattern, &record, node_timeout).await {
            Ok(others) => {
                link.heartbeat.store(true, Relaxed);
                delay = FIRST_BACKOFF;
                let (before, after) = link.refresh(others);
                if let Some(hub) = hub.upgrade() {
                    announce_changes(&hub, &before, &after);
                }
            }
            Err(e) => {
                link.heartbeat.store(false, Relaxed);
                link.failed("the heartbeat", e);
                conn = None;
                if !back_off(&mut delay, &mut stop).await {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT) => {}
            () = stopped(&mut stop) => {
                // Leave the cluster at once rather than when the key expires.
                if let Some(c) = conn.as_mut() {
                    let _: ::redis::RedisResult<i64> = ::redis::cmd("DEL").arg(&key).query_async(c).await;
                }
                return;
            }
        }
    }
}

async fn beat(
    conn: &mut ::redis::aio::MultiplexedConnection,
    key: &str,
    pattern: &str,
    record: &NodeRecord,
    node_timeout: Duration,
) -> ::redis::RedisResult<Vec<NodeRecord>> {
    let value = serde_json::to_string(record).unwrap_or_default();
    let ms = node_timeout.as_millis() as u64;
    let () = ::redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms).query_async(conn).await?;
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) =
            ::redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query_async(conn).await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.retain(|k| k != key);
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<String>> = ::redis::cmd("MGET").arg(&keys).query_async(conn).await?;
    let mut others: Vec<NodeRecord> =
        values.into_iter().flatten().filter_map(|v| serde_json::from_str(&v).ok()).collect();
    others.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, members: &[&str]) -> NodeRecord {
        let mut apps = std::collections::BTreeMap::new();
        let mut snap = AppSnapshot::default();
        if !members.is_empty() {
            snap.channels.insert("presence-room".into(), members.len());
            snap.presence.insert(
                "presence-room".into(),
                members.iter().map(|m| (m.to_string(), serde_json::json!({"name": m}))).collect(),
            );
        }
        apps.insert("1".into(), snap);
        NodeRecord { id: id.into(), name: id.into(), connections: members.len(), started_ms: 0, apps }
    }

    fn patch(node: &str, user: &str, added: bool) -> Patch {
        Patch {
            at: std::time::Instant::now(),
            node: node.into(),
            app: "1".into(),
            channel: "presence-room".into(),
            user_id: user.into(),
            info: added.then(|| serde_json::json!({})),
        }
    }

    fn members(link: &Link) -> Vec<String> {
        let others = link.others.lock().unwrap();
        union(&others)
            .get(&("1".into(), "presence-room".into()))
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_user_on_two_hubs_is_one_remote_member() {
        let link = Link::default();
        link.refresh(vec![node("b", &["alice", "bob"]), node("c", &["alice"])]);
        assert_eq!(members(&link), ["alice", "bob"]);
        // alice leaves hub b: still a member through c.
        assert_eq!(link.patch(patch("b", "alice", false)), (true, true));
        assert_eq!(link.patch(patch("c", "alice", false)), (true, false));
        assert_eq!(members(&link), ["bob"]);
    }

    #[test]
    fn a_heartbeat_read_before_a_message_does_not_undo_it() {
        let link = Link::default();
        link.refresh(vec![node("b", &["bob"])]);
        assert_eq!(link.patch(patch("b", "carol", true)), (false, true));
        // The next record of b was written before carol joined: she stays, thanks to the recent patch.
        let (before, after) = link.refresh(vec![node("b", &["bob"])]);
        assert_eq!(before, after);
        assert_eq!(members(&link), ["bob", "carol"]);
    }

    #[test]
    fn a_node_whose_key_expired_takes_its_members_with_it() {
        let link = Link::default();
        link.refresh(vec![node("b", &["bob"]), node("c", &["dave"])]);
        let (before, after) = link.refresh(vec![node("b", &["bob"])]);
        let key = ("1".to_owned(), "presence-room".to_owned());
        assert!(before[&key].contains_key("dave") && !after[&key].contains_key("dave"));
    }

    #[test]
    fn messages_round_trip_and_name_their_node() {
        let message = Envelope {
            node: "n1".into(),
            body: Body::Publish {
                app: "1".into(),
                channels: vec!["a".into()],
                event: "e".into(),
                data: "{\"x\":1}".into(),
                except: Some("1.2".into()),
                user_id: None,
                source: EventSource::Api,
            },
        };
        let text = serde_json::to_string(&message).unwrap();
        assert!(text.contains("\"kind\":\"publish\"") && text.contains("\"node\":\"n1\""), "{text}");
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert!(matches!(back.body, Body::Publish { except: Some(ref e), .. } if e == "1.2"));
    }
}
