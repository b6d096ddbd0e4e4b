//! The Redis adapter: hubs that share their traffic through Redis pub/sub, with the `redis` crate.
//!
//! - **One order.** Every event published on a hub (HTTP API, Poussr v1, client events, the dashboard) is
//!   sent to `{prefix}#events`, and every hub, the one that published it included, delivers what that
//!   channel brings in the order Redis gives. The publisher is answered once its event has come back, so
//!   an event whose publish was answered is delivered everywhere before any event published after that
//!   answer. Each message carries its node and a number per node, so nothing is delivered twice.
//! - **Current answers.** Subscription counts and presence members travel as messages too. A request about
//!   the cluster first sends a sync to the hub's own channel `{prefix}#node:{id}` and waits for it to come
//!   back: by then everything Redis accepted before has been applied.
//! - `terminate_connections` travels the same way.
//! - Each hub writes `{prefix}:node:{id}` (its name, its connection count, its occupied channels) every
//!   second with an expiry of `node_timeout`; the keys of the others are how a hub knows the cluster, and
//!   a hub that dies disappears when its key expires. One survivor, under a lease, then sends the
//!   webhooks of what left the cluster with it (`reap.rs`).
//! - Each of the three Redis connections (subscriber, publisher, heartbeat) reconnects by itself with a
//!   backoff from 200 ms to 5 s; the subscriber pings Redis every second, so a silent partition is noticed
//!   within 3 s. While the subscriber or the publisher is down, events are delivered here at once, up to
//!   [`OUTBOX_CAPACITY`] wait for the link, and `/health` says the link is down.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | the messages between hubs, and [`Cluster`]: the [`Adapter`] the hub is handed |
//! | `own.rs` | this hub's messages: their numbers, and what waits for them to come back |
//! | `view.rs` | what this hub knows of the others (heartbeat records and patches) and of its links |
//! | `tasks.rs` | the three connections' tasks: subscriber, publisher, heartbeat |
//! | `reap.rs` | the clean-up of a hub that died, under a lease |
//! | `history.rs` | the cluster's history in Redis streams: the scripts that give positions, and reads |

mod history;
mod own;
mod reap;
mod tasks;
mod view;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use self::own::{Outgoing, Sent, Waiter};
use self::view::{Link, NodeRecord};
use crate::config::AdapterKind;
use crate::hub::{Adapter, App, AppSnapshot, ClusterStatus, Hub, Publish, RemoteMembers, Route};
use crate::monitor::{EventSource, now_ms};

/// Events waiting for the publisher connection; beyond this, new ones are dropped and counted.
pub(crate) const OUTBOX_CAPACITY: usize = 10_000;

/// What travels between hubs.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The node that sent it.
    node: String,
    /// Its number among that node's messages.
    #[serde(default)]
    seq: u64,
    /// Already delivered by its node (sent while that node's links were down).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    here: bool,
    /// What it says.
    #[serde(flatten)]
    body: Body,
}

/// The kinds of messages between hubs.
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
    /// A channel has this many subscriptions on the sending hub now.
    Subscriptions { app: String, channel: String, count: usize },
    /// Nothing: the sending hub waits for it to come back (sent to its own channel only). With `heads`
    /// (app id, channel), the script that published it put those channels' history heads before it.
    Sync {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        heads: Vec<(String, String)>,
    },
}

/// This hub's membership of a Redis cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// This hub's node id, random per start.
    node: String,
    /// What every key and channel of the cluster starts with.
    prefix: String,
    /// The Redis server.
    client: ::redis::Client,
    /// How long a silent hub stays a member.
    node_timeout: Duration,
    /// Messages for the publisher connection, in order.
    outbox: mpsc::Sender<Outgoing>,
    /// Taken by the publisher task when the hub starts serving.
    outbox_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// The links and the view of the others, shared with the tasks.
    link: Arc<Link>,
    /// Tells the tasks to stop.
    stop: watch::Sender<bool>,
    /// When this hub started, ms since the epoch, for its record.
    started_ms: u64,
    /// The names of the history's keys.
    keys: history::Keys,
    /// Whether the cluster keeps the history (`Adapter::history` made it).
    keeps_history: std::sync::atomic::AtomicBool,
}

impl Cluster {
    /// A cluster member for `url` (checked, not yet connected) under `prefix`, named `node`. Over
    /// `rediss://`, the server's certificate is checked against the system's roots plus `ca`.
    pub(crate) fn new(
        url: &str,
        prefix: &str,
        node: String,
        node_timeout: Duration,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let client = if url.starts_with("rediss://") {
            crate::tls::install_default_provider();
            // The roots are always given: the Redis client would otherwise load the system's itself and give
            // up on the first one it cannot read.
            let root_cert = Some(crate::tls::client_roots_pem(ca)?);
            let certificates = ::redis::TlsCertificates { client_tls: None, root_cert };
            ::redis::Client::build_with_tls(url, certificates)
        } else {
            ::redis::Client::open(url)
        };
        // The URL may hold a password: it is not repeated in the error.
        let client = client.map_err(|e| format!("redis_url: {e}"))?;
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
            started_ms: now_ms(),
            keys: history::Keys { prefix: prefix.to_owned() },
            keeps_history: Default::default(),
        })
    }

    /// The names of this cluster's channels.
    fn channels(&self) -> tasks::Channels {
        tasks::Channels {
            events: format!("{}#events", self.prefix),
            own: format!("{}#node:{}", self.prefix, self.node),
        }
    }

    /// Numbers and queues a message (to this hub's own channel with `to_self`); `waiter` waits for it to
    /// come back while the links are up. A full outbox drops it and counts it.
    fn send(&self, body: Body, to_self: bool, waiter: Option<Waiter>) -> Sent {
        self.send_with(body, to_self, waiter, None)
    }

    /// [`Cluster::send`], published by a history script (`script`) if any. A sync, or a script's message,
    /// is sent only while the links are up: a sync that cannot come back is no use, and the positions a
    /// script gives must reach this hub in the cluster's order.
    fn send_with(&self, body: Body, to_self: bool, waiter: Option<Waiter>, script: Option<history::Call>) -> Sent {
        let (node, keys) = (&self.node, &self.keys);
        let only_ordered = script.is_some() || matches!(body, Body::Sync { .. });
        let make = |seq, here| {
            let envelope = Envelope { node: node.clone(), seq, here, body };
            let script = script.map(|call| call.numbered(keys, node, seq));
            Outgoing { seq, to_self, message: serde_json::to_string(&envelope).unwrap_or_default(), script }
        };
        let sent = self.link.own.send(&self.outbox, make, waiter, only_ordered);
        if sent == Sent::Dropped {
            self.link.dropped.fetch_add(1, Relaxed);
        }
        sent
    }
}

impl Adapter for Cluster {
    fn publish(&self, app: &App, event: &Publish, kept: bool) -> Route {
        let channels: Vec<String> = event.channels.iter().map(|c| c.to_string()).collect();
        let script =
            (kept && self.keeps_history.load(Relaxed)).then(|| history::keep(&self.keys, app, &channels, event));
        let body = Body::Publish {
            app: app.config.id.clone(),
            channels,
            event: event.event.to_string(),
            data: event.data.to_string(),
            except: event.except.as_deref().map(str::to_owned),
            user_id: event.user_id.as_deref().map(str::to_owned),
            source: event.source,
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let waiter = Waiter::Deliver { app: app.config.id.clone(), event: Box::new(event.clone()), kept, answer };
        match self.send_with(body, false, Some(waiter), script) {
            Sent::Waiting => Route::Ordered(answered),
            Sent::Dropped if kept => Route::Refused(format!(
                "this hub has {OUTBOX_CAPACITY} messages waiting for the cluster already, so the event cannot get \
                 its place in the channel's history; it was delivered nowhere. Publish it again"
            )),
            Sent::Here | Sent::Dropped => Route::Here,
            Sent::Unordered => Route::Refused(format!(
                "this hub's link to the cluster is down ({}), so the event cannot get its place in the channel's \
                 history; it was delivered nowhere. Publish it again (on this hub once the link is back, or on \
                 another)",
                self.link.state().1.unwrap_or_else(|| "reconnecting".into())
            )),
        }
    }

    fn sync(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let body = Body::Sync { heads: Vec::new() };
        (self.send(body, true, Some(Waiter::Sync(answer))) == Sent::Waiting).then_some(answered)
    }

    fn sync_heads(&self, app: &App, channel: &str) -> Option<tokio::sync::oneshot::Receiver<()>> {
        if !self.keeps_history.load(Relaxed) || !app.config.history.enabled {
            return self.sync();
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let wanted = [(app.config.id.clone(), channel.to_owned(), app.config.history.max_age_secs)];
        let script = history::heads(&self.keys, &wanted);
        let body = Body::Sync { heads: vec![(app.config.id.clone(), channel.to_owned())] };
        (self.send_with(body, true, Some(Waiter::Sync(answer)), Some(script)) == Sent::Waiting).then_some(answered)
    }

    fn history(&self, apps: &[crate::config::AppConfig], history_on: bool) -> Option<crate::history::History> {
        if !history_on {
            return None;
        }
        let remote = history::RedisHistory::new(self.client.clone(), self.keys.clone());
        let history = crate::history::History::shared(apps, Box::new(remote));
        self.keeps_history.store(history.is_some(), Relaxed);
        history
    }

    fn subscriptions_changed(&self, app: &App, channel: &str, count: usize) {
        self.send(Body::Subscriptions { app: app.config.id.clone(), channel: channel.to_owned(), count }, false, None);
    }

    fn terminate_user(&self, app: &App, user_id: &str) {
        self.send(Body::Terminate { app: app.config.id.clone(), user_id: user_id.to_owned() }, false, None);
    }

    /// Spawns the three connections' tasks. They hold the hub weakly and end when it stops.
    fn start(&self, hub: &Hub) {
        let Some(outbox) = self.outbox_rx.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let weak = hub.downgrade();
        tokio::spawn(tasks::subscriber(
            self.client.clone(),
            self.channels(),
            self.node.clone(),
            weak.clone(),
            self.link.clone(),
            self.stop.subscribe(),
        ));
        tokio::spawn(tasks::publisher(
            self.client.clone(),
            self.channels(),
            outbox,
            weak.clone(),
            self.link.clone(),
            self.stop.subscribe(),
        ));
        tokio::spawn(tasks::heartbeat(
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

    fn stop(&self) {
        self.stop.send_replace(true);
    }

    fn remote(&self, app_id: &str) -> Vec<AppSnapshot> {
        self.link.remote(app_id)
    }

    fn remote_subscriptions(&self, app_id: &str, channel: &str) -> usize {
        self.link.remote_subscriptions(app_id, channel)
    }

    fn remote_members(&self, app_id: &str, channel: &str) -> RemoteMembers {
        self.link.remote_members(app_id, channel)
    }

    fn member_added(&self, app: &App, channel: &str, user_id: &str, user_info: &serde_json::Value) {
        let (app, channel, user_id) = (app.config.id.clone(), channel.to_owned(), user_id.to_owned());
        self.send(Body::MemberAdded { app, channel, user_id, user_info: user_info.clone() }, false, None);
    }

    fn member_removed(&self, app: &App, channel: &str, user_id: &str) {
        let (app, channel, user_id) = (app.config.id.clone(), channel.to_owned(), user_id.to_owned());
        self.send(Body::MemberRemoved { app, channel, user_id }, false, None);
    }

    fn status(&self) -> Option<ClusterStatus> {
        let (link, error) = self.link.state();
        Some(ClusterStatus {
            adapter: AdapterKind::Redis,
            node: self.node.clone(),
            prefix: self.prefix.clone(),
            link,
            error,
            others: self.link.nodes(),
            published: self.link.published.load(Relaxed),
            received: self.link.received.load(Relaxed),
            dropped: self.link.dropped.load(Relaxed),
            cleaned_up: self.link.cleaned_up.load(Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_name_their_node() {
        let message = Envelope {
            node: "n1".into(),
            seq: 7,
            here: false,
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
        assert!(text.contains("\"seq\":7") && !text.contains("here"), "{text}");
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert!(matches!(back.body, Body::Publish { except: Some(ref e), .. } if e == "1.2"));
    }
}
