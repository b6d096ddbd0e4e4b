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
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | the messages between hubs, and [`Cluster`]: the [`Adapter`] the hub is handed |
//! | `view.rs` | what this hub knows of the others (heartbeat records and patches) and of its links |
//! | `tasks.rs` | the three connections' tasks: subscriber, publisher, heartbeat |

mod tasks;
mod view;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use self::view::{Link, NodeRecord};
use crate::config::AdapterKind;
use crate::hub::{Adapter, App, AppSnapshot, ClusterStatus, Hub, Publish, RemoteMembers};
use crate::monitor::{EventSource, now_ms};

/// Events waiting for the publisher connection; beyond this, new ones are dropped and counted.
pub(crate) const OUTBOX_CAPACITY: usize = 10_000;

/// What travels between hubs.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The node that sent it.
    node: String,
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
    outbox: mpsc::Sender<String>,
    /// Taken by the publisher task when the hub starts serving.
    outbox_rx: Mutex<Option<mpsc::Receiver<String>>>,
    /// The links and the view of the others, shared with the tasks.
    link: Arc<Link>,
    /// Tells the tasks to stop.
    stop: watch::Sender<bool>,
    /// When this hub started, ms since the epoch, for its record.
    started_ms: u64,
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
        })
    }

    /// The pub/sub channel every hub publishes to and subscribes to.
    fn events_channel(&self) -> String {
        format!("{}#events", self.prefix)
    }

    /// Queues a message for the other hubs; a full outbox drops it and counts it.
    fn send(&self, body: Body) {
        let message = serde_json::to_string(&Envelope { node: self.node.clone(), body }).unwrap_or_default();
        if self.outbox.try_send(message).is_err() {
            self.link.dropped.fetch_add(1, Relaxed);
        }
    }
}

impl Adapter for Cluster {
    fn publish(&self, app: &App, event: &Publish) {
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

    fn terminate_user(&self, app: &App, user_id: &str) {
        self.send(Body::Terminate { app: app.config.id.clone(), user_id: user_id.to_owned() });
    }

    /// Spawns the three connections' tasks. They hold the hub weakly and end when it stops.
    fn start(&self, hub: &Hub) {
        let Some(outbox) = self.outbox_rx.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let weak = hub.downgrade();
        tokio::spawn(tasks::subscriber(
            self.client.clone(),
            self.events_channel(),
            self.node.clone(),
            weak.clone(),
            self.link.clone(),
            self.stop.subscribe(),
        ));
        tokio::spawn(tasks::publisher(
            self.client.clone(),
            self.events_channel(),
            outbox,
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
        self.send(Body::MemberAdded {
            app: app.config.id.clone(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
            user_info: user_info.clone(),
        });
    }

    fn member_removed(&self, app: &App, channel: &str, user_id: &str) {
        self.send(Body::MemberRemoved {
            app: app.config.id.clone(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
        });
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
