//! The other hubs as this one knows them: their last heartbeat records, with the member and subscription
//! changes of later messages applied on top (patches), so that answers stay current between heartbeats.
//! Also the state of this hub's three links to Redis.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::hub::{AppSnapshot, ClusterNode, LinkState, RemoteMembers};

/// A presence channel of the cluster: (app id, channel name).
pub(super) type PresenceKey = (String, String);

/// The remote members of every presence channel.
pub(super) type Members = HashMap<PresenceKey, RemoteMembers>;

/// How long a patch outlives the message that made it: more than a heartbeat and the time to read it.
const PATCH_LIFE: Duration = Duration::from_secs(3);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A change to another hub's channels learned from a message, kept a while so that a heartbeat record
/// read a moment before it does not undo it.
#[derive(Debug, Clone)]
pub(super) struct Patch {
    /// When the message came.
    pub(super) at: Instant,
    /// The hub whose channel changed.
    pub(super) node: String,
    /// The app id.
    pub(super) app: String,
    /// The channel.
    pub(super) channel: String,
    /// What changed.
    pub(super) change: Change,
}

/// What a [`Patch`] changes.
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// A member of a presence channel: `Some(info)` added, `None` removed.
    Member(String, Option<serde_json::Value>),
    /// The channel's subscriptions on that hub now.
    Subscriptions(usize),
}

/// What a node writes about itself in its heartbeat key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NodeRecord {
    /// Its node id.
    pub(super) id: String,
    /// Its host name and port.
    pub(super) name: String,
    /// Its open connections.
    pub(super) connections: usize,
    /// When it started, ms since the epoch.
    pub(super) started_ms: u64,
    /// What it holds, by app id.
    #[serde(default)]
    pub(super) apps: BTreeMap<String, AppSnapshot>,
}

/// The remote members of every presence channel, over `others`.
fn union(others: &[NodeRecord]) -> Members {
    let mut out = Members::new();
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

/// Applies `patch` to the record of its node (made empty if the node is not known yet).
fn apply(others: &mut Vec<NodeRecord>, patch: &Patch) {
    let index = match others.iter().position(|n| n.id == patch.node) {
        Some(i) => i,
        None => {
            others.push(NodeRecord {
                id: patch.node.clone(),
                name: String::new(),
                connections: 0,
                started_ms: 0,
                apps: BTreeMap::new(),
            });
            others.len() - 1
        }
    };
    let app = others[index].apps.entry(patch.app.clone()).or_default();
    match &patch.change {
        Change::Member(user, info) => {
            let members = app.presence.entry(patch.channel.clone()).or_default();
            match info {
                Some(info) => {
                    members.insert(user.clone(), info.clone());
                }
                None => {
                    members.remove(user);
                }
            }
            if members.is_empty() {
                app.presence.remove(&patch.channel);
            }
        }
        Change::Subscriptions(0) => {
            app.channels.remove(&patch.channel);
        }
        Change::Subscriptions(n) => {
            app.channels.insert(patch.channel.clone(), *n);
        }
    }
}

/// This hub's links to Redis and what it knows of the other hubs.
#[derive(Debug, Default)]
pub(super) struct Link {
    /// The subscriber connection is subscribed.
    pub(super) subscribed: AtomicBool,
    /// The publisher connection works.
    pub(super) publishing: AtomicBool,
    /// The last heartbeat was written and read.
    pub(super) heartbeat: AtomicBool,
    /// Messages sent to the other hubs.
    pub(super) published: AtomicU64,
    /// Messages received from them.
    pub(super) received: AtomicU64,
    /// Messages dropped because the outbox was full.
    pub(super) dropped: AtomicU64,
    /// The last failure, for `/health` while the link is down.
    last_error: Mutex<Option<String>>,
    /// The other nodes, as of the last heartbeat, with the patches of later messages applied.
    others: Mutex<Vec<NodeRecord>>,
    /// Recent member changes from messages (see [`Patch`]).
    patches: Mutex<Vec<Patch>>,
    /// This hub's own messages, and what waits for them to come back.
    pub(super) own: super::own::Own,
    /// The last message number seen from each other hub.
    pub(super) seen: super::own::Seen,
    /// Hubs that died and whose clean-up this hub did (it held the lease).
    pub(super) cleaned_up: AtomicU64,
    /// The subscription was lost since the links were last all up: what the cluster published meanwhile
    /// never reached this hub.
    pub(super) missed: AtomicBool,
    /// The highest number of this hub's messages that Redis confirmed (the publisher's batches succeeded).
    pub(super) confirmed: AtomicU64,
    /// Held while ordering is turned on or off, so that the two connections' tasks do it one at a time.
    pub(super) relinking: Mutex<()>,
}

impl Link {
    /// Applies what a message says of `patch.node`'s channel; for a member, returns whether the user is a
    /// remote member before and after.
    pub(super) fn patch(&self, patch: Patch) -> (bool, bool) {
        let mut others = lock(&self.others);
        let key = (patch.app.clone(), patch.channel.clone());
        let user = match &patch.change {
            Change::Member(user, _) => Some(user.clone()),
            Change::Subscriptions(_) => None,
        };
        let present = |others: &[NodeRecord]| {
            let Some(user) = &user else { return false };
            others
                .iter()
                .any(|n| n.apps.get(&key.0).and_then(|a| a.presence.get(&key.1)).is_some_and(|m| m.contains_key(user)))
        };
        let before = present(&others);
        apply(&mut others, &patch);
        let after = present(&others);
        drop(others);
        let mut patches = lock(&self.patches);
        patches.retain(|p| p.at.elapsed() < PATCH_LIFE);
        patches.push(patch);
        (before, after)
    }

    /// Replaces the view with the records just read, keeps the recent patches, and returns the remote
    /// members before and after, and the hubs that are gone (as last known).
    pub(super) fn refresh(&self, fresh: Vec<NodeRecord>) -> (Members, Members, Vec<NodeRecord>) {
        let mut others = lock(&self.others);
        let before = union(&others);
        let gone: Vec<NodeRecord> = others.iter().filter(|n| !fresh.iter().any(|f| f.id == n.id)).cloned().collect();
        *others = fresh;
        let mut patches = lock(&self.patches);
        patches.retain(|p| p.at.elapsed() < PATCH_LIFE);
        for p in patches.iter() {
            // A patch for a node that has left the cluster (its key expired) is not applied.
            if others.iter().any(|n| n.id == p.node) {
                apply(&mut others, p);
            }
        }
        let after = union(&others);
        (before, after, gone)
    }

    /// Records a failure of one of the links.
    pub(super) fn failed(&self, what: &str, error: impl std::fmt::Display) {
        let message = format!("{what}: {error}");
        tracing::warn!("cluster link: {message}");
        *lock(&self.last_error) = Some(message);
    }

    /// Whether every link works, and the last failure while one does not.
    pub(super) fn state(&self) -> (LinkState, Option<String>) {
        let up = self.subscribed.load(Relaxed) && self.publishing.load(Relaxed) && self.heartbeat.load(Relaxed);
        if up { (LinkState::Up, None) } else { (LinkState::Down, lock(&self.last_error).clone()) }
    }

    /// The other hubs, for the cluster status.
    pub(super) fn nodes(&self) -> Vec<ClusterNode> {
        lock(&self.others)
            .iter()
            .map(|n| ClusterNode { id: n.id.clone(), name: n.name.clone(), connections: n.connections })
            .collect()
    }

    /// What the other hubs hold of the app `app_id`.
    pub(super) fn remote(&self, app_id: &str) -> Vec<AppSnapshot> {
        lock(&self.others).iter().filter_map(|n| n.apps.get(app_id).cloned()).collect()
    }

    /// The subscriptions to one channel on the other hubs, counted in place.
    pub(super) fn remote_subscriptions(&self, app_id: &str, channel: &str) -> usize {
        lock(&self.others).iter().filter_map(|n| n.apps.get(app_id)?.channels.get(channel)).sum()
    }

    /// The members of one presence channel on the other hubs. Only this channel's members are read, not
    /// the whole union: this runs at each presence (un)subscription.
    pub(super) fn remote_members(&self, app_id: &str, channel: &str) -> RemoteMembers {
        let others = lock(&self.others);
        let mut members = RemoteMembers::new();
        for snap in others.iter().filter_map(|n| n.apps.get(app_id)) {
            for (user, info) in snap.presence.get(channel).into_iter().flatten() {
                members.entry(user.clone()).or_insert_with(|| info.clone());
            }
        }
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, members: &[&str]) -> NodeRecord {
        let mut apps = BTreeMap::new();
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
        let change = Change::Member(user.into(), added.then(|| serde_json::json!({})));
        Patch { at: Instant::now(), node: node.into(), app: "1".into(), channel: "presence-room".into(), change }
    }

    fn members(link: &Link) -> Vec<String> {
        link.remote_members("1", "presence-room").into_keys().collect()
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
        let (before, after, gone) = link.refresh(vec![node("b", &["bob"])]);
        assert_eq!(before, after);
        assert!(gone.is_empty());
        assert_eq!(members(&link), ["bob", "carol"]);
    }

    #[test]
    fn a_node_whose_key_expired_takes_its_members_with_it() {
        let link = Link::default();
        link.refresh(vec![node("b", &["bob"]), node("c", &["dave"])]);
        let (before, after, gone) = link.refresh(vec![node("b", &["bob"])]);
        assert_eq!(gone.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["c"], "c is gone, as last known");
        assert!(gone[0].apps["1"].presence["presence-room"].contains_key("dave"));
        let key = ("1".to_owned(), "presence-room".to_owned());
        assert!(before[&key].contains_key("dave") && !after[&key].contains_key("dave"));
    }

    #[test]
    fn remote_subscriptions_add_up_over_the_other_hubs() {
        let link = Link::default();
        link.refresh(vec![node("b", &["alice", "bob"]), node("c", &["carol"]), node("d", &[])]);
        assert_eq!(link.remote_subscriptions("1", "presence-room"), 3);
        assert_eq!(link.remote_subscriptions("1", "presence-other"), 0);
        assert_eq!(link.remote_subscriptions("2", "presence-room"), 0);
    }

    #[test]
    fn subscription_counts_follow_messages_between_heartbeats() {
        let link = Link::default();
        link.refresh(vec![node("b", &["alice"])]);
        let count = |n| Patch {
            at: Instant::now(),
            node: "b".into(),
            app: "1".into(),
            channel: "news".into(),
            change: Change::Subscriptions(n),
        };
        assert_eq!(link.patch(count(2)), (false, false));
        assert_eq!(link.remote_subscriptions("1", "news"), 2);
        // A record written before the change does not undo it.
        link.refresh(vec![node("b", &["alice"])]);
        assert_eq!(link.remote_subscriptions("1", "news"), 2);
        link.patch(count(0));
        assert_eq!(link.remote_subscriptions("1", "news"), 0);
        assert!(!link.remote("1")[0].channels.contains_key("news"), "an empty channel is not listed");
    }
}
