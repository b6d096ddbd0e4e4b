//! The fan-out seam. An adapter decides where a published event goes: with the local adapter (the
//! default) straight to this hub's subscribers; with the Redis adapter, also to every other hub of the
//! cluster, each of which delivers it to its own subscribers through the same [`Hub::deliver_local`] path.
//! Local subscribers are always served first and directly, so a hub whose cluster link is down keeps
//! serving its own clients.

#[cfg(feature = "redis")]
pub(crate) mod redis;

use crate::hub::{App, Hub, Publish};

/// Where published events go.
#[derive(Debug, Default)]
pub(crate) enum Adapter {
    /// A single hub: deliver to the local subscribers.
    #[default]
    Local,
    /// A hub of a cluster that shares its traffic through Redis.
    #[cfg(feature = "redis")]
    Redis(Box<redis::Cluster>),
}

// Without the `redis` feature the cluster's arguments go unused.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
impl Adapter {
    /// Sends an event on its way; returns how many local connections it was queued to.
    pub(crate) fn publish(&self, hub: &Hub, app: &App, event: &Publish) -> usize {
        let delivered = hub.deliver_local(app, event);
        match self {
            Adapter::Local => {}
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => cluster.publish(app, event),
        }
        delivered
    }

    /// Tells the other hubs to close `user_id`'s connections (this hub closes its own).
    pub(crate) fn terminate_user(&self, app: &App, user_id: &str) {
        match self {
            Adapter::Local => {}
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => cluster.terminate_user(app, user_id),
        }
    }

    /// Starts the adapter's background work (the cluster link) for `hub`.
    pub(crate) fn start(&self, hub: &Hub) {
        match self {
            Adapter::Local => {}
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => cluster.start(hub),
        }
    }

    /// Stops the background work (the hub is shutting down).
    pub(crate) fn stop(&self) {
        match self {
            Adapter::Local => {}
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => cluster.stop(),
        }
    }

    /// What the other hubs hold of the app `app_id`, as of their last heartbeat.
    pub(crate) fn remote(&self, app_id: &str) -> Vec<crate::hub::AppSnapshot> {
        match self {
            Adapter::Local => Vec::new(),
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => cluster.remote(app_id),
        }
    }

    /// The members of presence channel `channel` of app `app_id` on the other hubs: user id → user info.
    pub(crate) fn remote_members(
        &self,
        app_id: &str,
        channel: &str,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        match self {
            Adapter::Local => Default::default(),
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => cluster.remote_members(app_id, channel),
        }
    }

    /// Whether another hub has subscribers on `channel` of app `app_id`.
    pub(crate) fn remote_occupied(&self, app_id: &str, channel: &str) -> bool {
        self.remote(app_id).iter().any(|s| s.channels.contains_key(channel))
    }

    /// Tells the other hubs that `user_id` is now a member of `channel` here (its first connection).
    pub(crate) fn member_added(&self, app: &App, channel: &str, user_id: &str, user_info: &serde_json::Value) {
        match self {
            Adapter::Local => {}
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => cluster.member_added(app, channel, user_id, user_info),
        }
    }

    /// Tells the other hubs that `user_id` is no longer a member of `channel` here (its last connection).
    pub(crate) fn member_removed(&self, app: &App, channel: &str, user_id: &str) {
        match self {
            Adapter::Local => {}
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => cluster.member_removed(app, channel, user_id),
        }
    }

    /// What `/health` and the dashboard show of the cluster, if this hub is part of one.
    pub(crate) fn status(&self) -> Option<crate::hub::ClusterStatus> {
        match self {
            Adapter::Local => None,
            #[cfg(feature = "redis")]
            Adapter::Redis(cluster) => Some(cluster.status()),
        }
    }
}
