//! The three connections of a cluster member, each a task that reconnects by itself: the subscriber
//! (what the other hubs publish, delivered here), the publisher (this hub's outbox, in order) and the
//! heartbeat (this hub's record written, the others' read).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::history::Scripts;
use super::own::{ECHO_TIMEOUT, Outgoing};
use super::view::{Change, Link, Members, NodeRecord, Patch, PresenceKey};
use super::{Body, Envelope};
use crate::hub::{Hub, Publish, WeakHub};
use crate::protocol::ChannelName;

/// How often a hub rewrites its node key and reads the others'.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A Redis command that takes longer than this counts as a failure (the link is down).
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscriber connection pings Redis.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// The most messages sent in one round trip.
const BATCH: usize = 512;
/// The first pause before reconnecting; it doubles up to 5 s.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Resolves when the hub stops.
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps for the current backoff (doubling it, at most 5 s); false when the hub stops meanwhile.
pub(super) async fn back_off(delay: &mut Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let wait = *delay;
    *delay = (*delay * 2).min(Duration::from_secs(5));
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stopped(stop) => false,
    }
}

/// Connects, retrying with the backoff while recording each failure as `what` and clearing `up`; `None`
/// when the hub stops meanwhile.
pub(super) async fn connect(
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

/// The pub/sub channels of a cluster member.
#[derive(Debug, Clone)]
pub(super) struct Channels {
    /// What every hub publishes to and subscribes to.
    pub(super) events: String,
    /// This hub's own (its syncs).
    pub(super) own: String,
}

/// Turns ordering on while both the subscriber and the publisher work, and off when either stops; what
/// waited to come back is then delivered here, in order (but the events the cluster's history keeps go on
/// waiting for their positions, unless the hub `stopping`).
fn relink(link: &Link, hub: &WeakHub, stopping: bool) {
    let _one_at_a_time = link.relinking.lock().unwrap_or_else(|e| e.into_inner());
    let ordered = !stopping && link.subscribed.load(Relaxed) && link.publishing.load(Relaxed);
    if ordered == link.own.is_ordered() && !stopping {
        return;
    }
    let waiting = link.own.set_ordered(ordered, !stopping);
    let hub = hub.upgrade();
    for waiter in waiting {
        if stopping { waiter.stopped(hub.as_ref()) } else { waiter.resolve(hub.as_ref(), None) }
    }
    // Back in the cluster's order after the subscription was lost: what the cluster published meanwhile
    // never reached this hub, so the connections that count positions resume to get it.
    if ordered
        && link.missed.swap(false, Relaxed)
        && let Some(hub) = hub.filter(|h| h.history().is_some_and(|h| h.is_shared()))
    {
        let asked = hub.restart_counting();
        tracing::info!(
            "cluster link: back in the cluster's order; {asked} connections that count positions were asked to \
             reconnect, to recover what the cluster published meanwhile"
        );
    }
}

/// Pings Redis on the subscriber connection every [`KEEPALIVE`]; returns why once a ping fails or is not
/// answered in [`COMMAND_TIMEOUT`], or once a message of this hub has not come back in [`ECHO_TIMEOUT`].
async fn keepalive(mut sink: ::redis::aio::PubSubSink, link: Arc<Link>) -> String {
    loop {
        tokio::time::sleep(KEEPALIVE).await;
        match tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<::redis::Value>()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("a ping failed: {e}"),
            Err(_) => return format!("Redis did not answer a ping within {} s", COMMAND_TIMEOUT.as_secs()),
        }
        // Kept events that went round the cluster while the subscription was lost never come back.
        for waiter in link.own.unreturned(link.confirmed.load(Relaxed)) {
            waiter.missed();
        }
        if link.own.oldest_wait().is_some_and(|w| w > ECHO_TIMEOUT) {
            return format!("a message of this hub did not come back within {} s", ECHO_TIMEOUT.as_secs());
        }
    }
}

/// Receives what every hub publishes, this one included, and delivers it here in Redis's order. When
/// the hub stops, what still waits to come back is delivered here.
pub(super) async fn subscriber(
    client: ::redis::Client,
    channels: Channels,
    node: String,
    hub: WeakHub,
    link: Arc<Link>,
    stop: watch::Receiver<bool>,
) {
    subscribe_until_stopped(client, channels, node, hub.clone(), link.clone(), stop).await;
    link.subscribed.store(false, Relaxed);
    relink(&link, &hub, true);
}

async fn subscribe_until_stopped(
    client: ::redis::Client,
    channels: Channels,
    node: String,
    hub: WeakHub,
    link: Arc<Link>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = FIRST_BACKOFF;
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&[&channels.events, &channels.own]).await?;
            ::redis::RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, session).await {
            Ok(Ok(pubsub)) => {
                let (sink, mut messages) = pubsub.split();
                let mut alive = tokio::spawn(keepalive(sink, link.clone()));
                link.subscribed.store(true, Relaxed);
                relink(&link, &hub, false);
                delay = FIRST_BACKOFF;

                let why = loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                let Some(hub) = hub.upgrade() else { return };
                                deliver(&hub, &node, message.get_payload_bytes(), &link);
                            }
                            None => break "the connection to Redis was lost".to_owned(),
                        },
                        why = &mut alive => break why.unwrap_or_else(|e| format!("the keep-alive ended: {e}")),
                        () = stopped(&mut stop) => {
                            alive.abort();
                            return;
                        }
                    }
                };
                alive.abort();
                link.subscribed.store(false, Relaxed);
                link.missed.store(true, Relaxed);
                relink(&link, &hub, false);
                link.failed("the subscription", why);
            }
            Ok(Err(e)) => link.failed("subscribing", e),
            Err(_) => link.failed("subscribing", "Redis did not answer in time"),
        }
        link.subscribed.store(false, Relaxed);
        relink(&link, &hub, false);
        if !back_off(&mut delay, &mut stop).await {
            return;
        }
    }
}

/// Acts on one message from the cluster.
fn deliver(hub: &Hub, node: &str, payload: &[u8], link: &Link) {
    let (positions, payload) = super::history::split(payload);
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("cluster link: a message that is not Poussr's was ignored: {e}");
            return;
        }
    };
    if envelope.node == node {
        // Heads read in the cluster's order: everything kept before them has been delivered here.
        if let (Body::Sync { heads }, Some(positions)) = (&envelope.body, &positions) {
            for ((app, channel), position) in heads.iter().zip(positions) {
                if let (Some(app), Ok(name)) = (hub.app_by_id(app), ChannelName::parse(channel)) {
                    hub.record_position(&app, &name, position.clone());
                }
            }
        }
        // This hub's own message is back: what waited for it (and for any earlier one lost) is done now.
        let positions: Option<Vec<Option<_>>> = positions.map(|p| p.into_iter().map(Some).collect());
        for (seq, waiter) in link.own.came_back(envelope.seq) {
            waiter.resolve(Some(hub), positions.as_deref().filter(|_| seq == envelope.seq));
        }
        return;
    }
    if matches!(envelope.body, Body::Sync { .. }) || !link.seen.first_time(&envelope.node, envelope.seq) {
        return;
    }
    link.received.fetch_add(1, Relaxed);
    match envelope.body {
        Body::Publish { app, channels, event, data, except, user_id, source } => {
            let Some(app) = hub.app_by_id(&app) else { return };
            let channels: Vec<ChannelName> = channels.iter().filter_map(|c| ChannelName::parse(c).ok()).collect();
            let mut publish = Publish::new(channels, &event, &data, except.as_deref(), source);
            publish.user_id = user_id.map(Arc::from);
            match positions {
                Some(positions) => {
                    let positions: Vec<_> = positions.into_iter().map(Some).collect();
                    hub.deliver_positioned(&app, &publish, &positions);
                }
                None => {
                    hub.deliver_local(&app, &publish);
                }
            }
        }
        Body::Terminate { app, user_id } => {
            if let Some(app) = hub.app_by_id(&app) {
                hub.terminate_local_user(&app, &user_id);
            }
        }
        Body::MemberAdded { app, channel, user_id, user_info } => {
            let change = Change::Member(user_id.clone(), Some(user_info.clone()));
            let patch =
                Patch { at: Instant::now(), node: envelope.node, app: app.clone(), channel: channel.clone(), change };
            let (before, after) = link.patch(patch);
            if !before && after {
                hub.remote_presence_changed(&app, &channel, &user_id, Some(&user_info));
            }
        }
        Body::MemberRemoved { app, channel, user_id } => {
            let change = Change::Member(user_id.clone(), None);
            let patch =
                Patch { at: Instant::now(), node: envelope.node, app: app.clone(), channel: channel.clone(), change };
            let (before, after) = link.patch(patch);
            if before && !after {
                hub.remote_presence_changed(&app, &channel, &user_id, None);
            }
        }
        Body::Subscriptions { app, channel, count } => {
            let change = Change::Subscriptions(count);
            link.patch(Patch { at: Instant::now(), node: envelope.node, app, channel, change });
        }
        Body::Sync { .. } => {}
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

/// Publishes the outbox in order, in batches of what is queued (one round trip each).
pub(super) async fn publisher(
    client: ::redis::Client,
    channels: Channels,
    outbox: mpsc::Receiver<Outgoing>,
    hub: WeakHub,
    link: Arc<Link>,
    stop: watch::Receiver<bool>,
) {
    publish_until_stopped(client, channels, outbox, hub.clone(), link.clone(), stop).await;
    link.publishing.store(false, Relaxed);
    relink(&link, &hub, true);
}

async fn publish_until_stopped(
    client: ::redis::Client,
    channels: Channels,
    mut outbox: mpsc::Receiver<Outgoing>,
    hub: WeakHub,
    link: Arc<Link>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = FIRST_BACKOFF;
    // A batch whose sending failed: sent again first on the next connection, so that order is kept (the
    // others drop what they had already, by its number).
    let mut unsent: Vec<Outgoing> = Vec::new();
    loop {
        let Some(mut conn) =
            connect(&client, &link, &link.publishing, "connecting the publisher", &mut delay, &mut stop).await
        else {
            return;
        };
        // The history's scripts, on every new connection (a Redis that restarted has forgotten them).
        let scripts = match tokio::time::timeout(COMMAND_TIMEOUT, Scripts::load(&mut conn)).await {
            Ok(Ok(scripts)) => scripts,
            Ok(Err(e)) => {
                link.failed("loading the history's scripts", e);
                if !back_off(&mut delay, &mut stop).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                link.failed("loading the history's scripts", "Redis did not answer in time");
                continue;
            }
        };
        link.publishing.store(true, Relaxed);
        relink(&link, &hub, false);
        delay = FIRST_BACKOFF;
        loop {
            if unsent.is_empty() {
                tokio::select! {
                    n = outbox.recv_many(&mut unsent, BATCH) => if n == 0 { return },
                    () = stopped(&mut stop) => return,
                }
            }
            let mut pipe = ::redis::pipe();
            for m in &unsent {
                let to = if m.to_self { &channels.own } else { &channels.events };
                match &m.script {
                    Some(call) => scripts.add(&mut pipe, to, &m.message, call),
                    None => {
                        pipe.cmd("PUBLISH").arg(to).arg(&m.message).ignore();
                    }
                }
            }
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => {
                    link.published.fetch_add(unsent.len() as u64, Relaxed);
                    link.confirmed.fetch_max(unsent.iter().map(|m| m.seq).max().unwrap_or(0), Relaxed);
                    unsent.clear();
                }
                Err(e) => {
                    link.publishing.store(false, Relaxed);
                    relink(&link, &hub, false);
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
                let (before, after, gone) = link.refresh(others);
                if let Some(hub) = hub.upgrade() {
                    announce_changes(&hub, &before, &after);
                }
                for dead in gone {
                    link.seen.forget(&dead.id);
                    let reaper = super::reap::Reaper {
                        client: client.clone(),
                        prefix: prefix.clone(),
                        me: record.id.clone(),
                        hub: hub.clone(),
                        link: link.clone(),
                    };
                    tokio::spawn(reaper.run(dead, stop.clone()));
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
                // Leave the cluster at once rather than when the key expires, saying that this hub left on
                // purpose: its own clients' leaving sent their webhooks, there is nothing to clean up.
                if let Some(c) = conn.as_mut() {
                    let _ = super::reap::left(c, &prefix, &record.id).await;
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
