//! The three connections of a cluster member, each a task that reconnects by itself: the subscriber
//! (what the other hubs publish, delivered here), the publisher (this hub's outbox, in order) and the
//! heartbeat (this hub's record written, the others' read).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::view::{Link, Members, NodeRecord, Patch, PresenceKey};
use super::{Body, Envelope};
use crate::hub::{Hub, Publish, WeakHub};
use crate::protocol::ChannelName;

/// How often a hub rewrites its node key and reads the others'.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A Redis command that takes longer than this counts as a failure (the link is down).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The first pause before reconnecting; it doubles up to 5 s.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

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
pub(super) async fn subscriber(
    client: ::redis::Client,
    channel: String,
    node: String,
    hub: WeakHub,
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
            let patch = Patch { at: Instant::now(), node: envelope.node, app, channel, user_id, info: Some(info) };
            let (app, channel, user) = (patch.app.clone(), patch.channel.clone(), patch.user_id.clone());
            let (before, after) = link.patch(patch);
            if !before && after {
                hub.remote_presence_changed(&app, &channel, &user, Some(&user_info));
            }
        }
        Body::MemberRemoved { app, channel, user_id } => {
            let patch = Patch { at: Instant::now(), node: envelope.node, app, channel, user_id, info: None };
            let (app, channel, user) = (patch.app.clone(), patch.channel.clone(), patch.user_id.clone());
            let (before, after) = link.patch(patch);
            if before && !after {
                hub.remote_presence_changed(&app, &channel, &user, None);
            }
        }
    }
}

/// Tells the hub which remote members appeared and disappeared between two views.
fn announce_changes(hub: &Hub, before: &Members, after: &Members) {
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
pub(super) async fn publisher(
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
pub(super) async fn heartbeat(
    client: ::redis::Client,
    prefix: String,
    mut record: NodeRecord,
    node_timeout: Duration,
    hub: WeakHub,
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
