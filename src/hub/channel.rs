//! Channels and presence: who has joined which channel, the members of presence channels, and the
//! listings the API and the dashboard read. A channel exists only while it has subscribers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::cache::Cached;
use super::ring::{Appended, Ring};
use super::{App, Connection, Frame, Hub, lock};
use crate::config::WebhookKind;
use crate::history::Position;
use crate::monitor::{MonitorEvent, now_ms};
use crate::protocol::{ChannelKind, ChannelName, CloseCode, pusher};

/// One occupied channel.
#[derive(Debug)]
pub(super) struct Channel {
    /// Its name, which also gives its kind.
    pub(super) name: ChannelName,
    /// Its subscribers and, for a presence channel, its members, under one lock so that the two always
    /// agree. Held only for map operations and for appending one frame to the ring: a delivery never
    /// walks the subscribers.
    pub(super) state: Mutex<ChannelState>,
    /// The frames its subscribers have yet to take, in the channel's one order. Appended to only under
    /// `state`, so that every join and leave falls wholly before or after each frame; read by the
    /// sessions under its own lock alone.
    pub(super) ring: Mutex<Ring>,
    /// The most frames `ring` holds (`send_queue_frames`): a subscriber that far behind is closed.
    capacity: usize,
    /// Events published to it while it existed.
    pub(super) events: AtomicU64,
    /// Frames queued to its subscribers.
    pub(super) deliveries: AtomicU64,
    /// When the last event was published, in ms since the epoch (0: never).
    pub(super) last_event_ms: AtomicU64,
}

impl Channel {
    fn new(name: &ChannelName, capacity: usize) -> Self {
        Channel {
            name: name.clone(),
            state: Mutex::default(),
            ring: Mutex::default(),
            capacity,
            events: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            last_event_ms: AtomicU64::new(0),
        }
    }

    /// Appends `frame` to the ring for every subscriber but `except`. The caller holds `state` (so joins
    /// and leaves fall wholly before or after it) and wakes the sessions of the answer once it holds no
    /// lock. Subscribers a whole ring behind are closed with 4100 (a slow consumer).
    pub(super) fn append(&self, app: &App, state: &ChannelState, frame: Frame, except: Option<u64>) -> Appended {
        self.append_kept(app, state, frame, except, None)
    }

    /// [`Channel::append`] for a kept event: `skip` is what `except` gets in its place if it counts the
    /// channel's positions.
    pub(super) fn append_kept(
        &self,
        app: &App,
        state: &ChannelState,
        frame: Frame,
        except: Option<u64>,
        skip: Option<Frame>,
    ) -> Appended {
        let done = {
            let mut ring = lock(&self.ring);
            // Numbered inside the ring's lock, so that a session reading several channels finds every frame
            // numbered below what it last read of the counter (see `Connection::take_queued`).
            let seq = app.seq.fetch_add(1, AcqRel);
            ring.append_kept(seq, frame, except, skip, self.capacity)
        };
        for number in &done.dropped {
            if let Some(sub) = state.subscribers.get(number) {
                sub.conn.kick(CloseCode::OverCapacity);
            }
        }
        done
    }

    /// What the API and the dashboard show of it.
    fn info(&self) -> ChannelInfo {
        let last = self.last_event_ms.load(Relaxed);
        let (subscription_count, user_count) = {
            let state = lock(&self.state);
            (state.subscribers.len(), (self.name.kind() == ChannelKind::Presence).then_some(state.members.len()))
        };
        ChannelInfo {
            name: self.name.to_string(),
            kind: self.name.kind(),
            subscription_count,
            user_count,
            events: self.events.load(Relaxed),
            deliveries: self.deliveries.load(Relaxed),
            last_event_ms: (last != 0).then_some(last),
        }
    }
}

/// A channel's subscribers and members.
#[derive(Debug, Default)]
pub(super) struct ChannelState {
    /// Keyed by the connection's number, which is unique within this hub.
    pub(super) subscribers: HashMap<u64, Subscriber>,
    /// Presence channels: the users, sorted by id, each with its info and number of connections here.
    pub(super) members: BTreeMap<Arc<str>, MemberState>,
}

/// One subscription.
#[derive(Debug)]
pub(super) struct Subscriber {
    /// The connection.
    pub(super) conn: Arc<Connection>,
    /// On a presence channel, the user this connection joined as.
    pub(super) user_id: Option<Arc<str>>,
}

/// A user in a presence channel on this hub.
#[derive(Debug)]
pub(super) struct MemberState {
    /// What other members learn about the user.
    pub(super) info: serde_json::Value,
    /// How many of this hub's connections joined as the user.
    connections: usize,
}

/// Who a connection joins a presence channel as (from the signed `channel_data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The user's id.
    pub user_id: Arc<str>,
    /// What other members learn about the user (`null` when not given).
    pub user_info: serde_json::Value,
}

/// The outcome of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// False when the connection had already joined (a harmless repeat).
    pub newly: bool,
    /// The `subscription_succeeded` data of a presence channel, encoded.
    pub presence: Option<String>,
    /// For a newly joined cache channel: the last event or a miss.
    pub cached: Option<Cached>,
    /// For a connection that asked to count positions, on an app that keeps history: the position of the
    /// last event before it joined. Every kept event it receives on the channel from now on is the next
    /// serial (an event not for it comes as a `pusher_internal:poussr_position` instead).
    pub position: Option<Position>,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The connection has joined as many channels as allowed.
    #[error("this connection has joined {0} channels, the most allowed")]
    TooManyChannels(usize),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// A presence channel has as many members as allowed.
    #[error("this presence channel has {0} members, the most allowed")]
    PresenceFull(usize),
}

/// A channel as the API and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The name.
    pub name: String,
    /// Its kind, from the prefix.
    pub kind: ChannelKind,
    /// Connections subscribed on this hub.
    pub subscription_count: usize,
    /// Presence channels: the number of distinct users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_count: Option<usize>,
    /// Events published to it while occupied.
    pub events: u64,
    /// Frames queued to its subscribers.
    pub deliveries: u64,
    /// When the last event was published (ms since the epoch), if ever.
    pub last_event_ms: Option<u64>,
}

/// The `subscription_succeeded` data of a presence channel: its members here and, in a cluster, on the
/// other hubs (this hub's copy of a user's info wins).
fn presence_data(state: &ChannelState, remote: &BTreeMap<String, serde_json::Value>) -> String {
    let local = state.members.iter().map(|(id, m)| (&**id, &m.info));
    let others =
        remote.iter().filter(|(id, _)| !state.members.contains_key(id.as_str())).map(|(id, info)| (id.as_str(), info));
    pusher::presence_data(local.chain(others))
}

impl Hub {
    /// Adds `conn` to `channel`, as `member` on a presence channel (the caller has checked the signature).
    /// Joining again is harmless and answers as the first time, without a cached event.
    ///
    /// The other members learn of a user only when the user's first connection joins. A cache channel's
    /// last event is read under the same locks that delivery takes, so a new subscriber gets each event
    /// exactly once: from the cache or live, never both and never neither.
    pub fn subscribe(
        &self,
        conn: &Arc<Connection>,
        channel: &ChannelName,
        member: Option<Member>,
    ) -> Result<Joined, SubscribeError> {
        self.subscribe_counting(conn, channel, member, false)
    }

    /// [`Hub::subscribe`], and with `positions`, the connection counts the channel's positions from the
    /// one [`Joined::position`] gives (when the app keeps history).
    pub fn subscribe_counting(
        &self,
        conn: &Arc<Connection>,
        channel: &ChannelName,
        member: Option<Member>,
        positions: bool,
    ) -> Result<Joined, SubscribeError> {
        let s = &self.shared;
        if self.is_shutting_down() {
            return Err(SubscribeError::ShuttingDown);
        }
        let again = {
            let joined = lock(&conn.channels);
            let max = s.limits.max_channels_per_connection;
            if !joined.contains_key(channel) && joined.len() >= max {
                return Err(SubscribeError::TooManyChannels(max));
            }
            joined.contains_key(channel)
        };
        let app = &conn.app;
        let presence = channel.kind() == ChannelKind::Presence;
        // The members on the other hubs of a cluster (empty for a hub alone), read before the locks.
        let remote =
            if presence { s.adapter.remote_members(&app.config.id, channel.as_str()) } else { BTreeMap::new() };
        let mut map = lock(&app.channels);
        let mut created = false;
        let ch = map
            .entry(channel.clone())
            .or_insert_with(|| {
                created = true;
                Arc::new(Channel::new(channel, s.limits.send_queue_frames))
            })
            .clone();
        let mut state = lock(&ch.state);
        if again {
            let presence = presence.then(|| presence_data(&state, &remote));
            return Ok(Joined { newly: false, presence, cached: None, position: None });
        }
        let mut added = None;
        let mut first_here = None;
        let mut woken = None;
        if let Some(m) = member.as_ref().filter(|_| presence) {
            let max = s.limits.max_presence_members;
            let members =
                state.members.len() + remote.keys().filter(|u| !state.members.contains_key(u.as_str())).count();
            let known = state.members.contains_key(&m.user_id) || remote.contains_key(&*m.user_id);
            if !known && members >= max {
                let empty = state.subscribers.is_empty();
                drop(state);
                if empty {
                    map.remove(channel);
                }
                return Err(SubscribeError::PresenceFull(max));
            }
            let entry = state
                .members
                .entry(m.user_id.clone())
                .or_insert_with(|| MemberState { info: m.user_info.clone(), connections: 0 });
            entry.connections += 1;
            if entry.connections == 1 {
                first_here = Some((m.user_id.clone(), m.user_info.clone()));
                // A user already present on another hub is already known to everyone.
                if !remote.contains_key(&*m.user_id) {
                    let frame = pusher::member_added(channel.as_str(), &m.user_id, &m.user_info).into();
                    woken = Some(ch.append(app, &state, frame, None));
                    added = Some(m.user_id.clone());
                }
            }
        }
        let user_id = member.filter(|_| presence).map(|m| m.user_id);
        state.subscribers.insert(conn.number, Subscriber { conn: conn.clone(), user_id });
        s.adapter.subscriptions_changed(app, channel.as_str(), state.subscribers.len());
        // It reads what is appended from now on: a cache channel's event before this is the cached one,
        // and a kept event before this is at most the position it is given.
        let position = positions.then(|| self.delivered_position(app, channel)).flatten();
        {
            let mut ring = lock(&ch.ring);
            ring.join(conn.number);
            if position.is_some() {
                ring.count_positions(conn.number);
            }
        }
        let presence = presence.then(|| presence_data(&state, &remote));
        let cached = channel.is_cache().then(|| self.cached(app, channel));
        lock(&conn.channels).insert(channel.clone(), ch.clone());
        drop(state);
        drop(map);
        if let Some(woken) = woken {
            woken.wake();
        }

        if let Some((user_id, user_info)) = first_here {
            s.adapter.member_added(app, channel.as_str(), &user_id, &user_info);
        }
        if created && !self.remote_occupied(app, channel) {
            app.webhook(WebhookKind::ChannelOccupied, channel, None);
        }
        s.monitor.emit(|| MonitorEvent::Subscribed {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            channel: channel.clone(),
        });
        if channel.kind().needs_auth() {
            s.monitor.subscription_succeeded(&app.id, channel.as_str());
        }
        if let Some(user_id) = added {
            app.webhook(WebhookKind::MemberAdded, channel, Some(&user_id));
            s.monitor.emit(|| MonitorEvent::MemberAdded {
                at_ms: now_ms(),
                socket_id: conn.socket_id.clone(),
                channel: channel.clone(),
                user_id,
            });
        }
        if cached == Some(Cached::Miss) {
            app.webhook(WebhookKind::CacheMiss, channel, None);
        }
        Ok(Joined { newly: true, presence, cached, position })
    }

    /// The cached event of `channel`, if it has one that has not expired.
    fn cached(&self, app: &App, channel: &ChannelName) -> Cached {
        lock(&app.cache).get(channel, self.cache_ttl())
    }

    /// How long a cache channel keeps its last event.
    pub(super) fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.shared.limits.cache_ttl_secs)
    }

    /// Removes `conn` from `channel`. Returns whether it had joined it; leaving twice is harmless.
    pub fn unsubscribe(&self, conn: &Connection, channel: &ChannelName) -> bool {
        if lock(&conn.channels).remove(channel).is_none() {
            return false;
        }
        self.remove_subscriber(conn, channel);
        true
    }

    /// Takes `conn` out of `channel`'s subscribers (and members); the channel goes when it is empty.
    pub(super) fn remove_subscriber(&self, conn: &Connection, channel: &ChannelName) {
        let app = &conn.app;
        let s = &self.shared;
        let remote = if channel.kind() == ChannelKind::Presence {
            s.adapter.remote_members(&app.config.id, channel.as_str())
        } else {
            BTreeMap::new()
        };
        let mut map = lock(&app.channels);
        let Some(ch) = map.get(channel).cloned() else { return };
        let mut state = lock(&ch.state);
        let Some(sub) = state.subscribers.remove(&conn.number) else { return };
        s.adapter.subscriptions_changed(app, channel.as_str(), state.subscribers.len());
        lock(&ch.ring).leave(conn.number);
        let mut removed = None;
        let mut last_here = None;
        let mut woken = None;
        if let Some(user_id) = sub.user_id
            && let Some(member) = state.members.get_mut(&user_id)
        {
            member.connections -= 1;
            if member.connections == 0 {
                state.members.remove(&user_id);
                // A user still present on another hub stays a member for everyone.
                if !remote.contains_key(&*user_id) {
                    let frame = pusher::member_removed(channel.as_str(), &user_id).into();
                    woken = Some(ch.append(app, &state, frame, None));
                    removed = Some(user_id.clone());
                }
                last_here = Some(user_id);
            }
        }
        let vacated = state.subscribers.is_empty();
        drop(state);
        if vacated {
            map.remove(channel);
        }
        drop(map);
        if let Some(woken) = woken {
            woken.wake();
        }

        if let Some(user_id) = last_here {
            s.adapter.member_removed(app, channel.as_str(), &user_id);
        }
        s.monitor.emit(|| MonitorEvent::Unsubscribed {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            channel: channel.clone(),
        });
        if let Some(user_id) = removed {
            app.webhook(WebhookKind::MemberRemoved, channel, Some(&user_id));
            s.monitor.emit(|| MonitorEvent::MemberRemoved {
                at_ms: now_ms(),
                socket_id: conn.socket_id.clone(),
                channel: channel.clone(),
                user_id,
            });
        }
        if vacated && !self.remote_occupied(app, channel) {
            app.webhook(WebhookKind::ChannelVacated, channel, None);
        }
    }

    /// A member of presence channel `channel` of app `app_id` appeared on another hub (`Some(info)`) or
    /// is gone from every other hub (`None`): this hub's subscribers learn it, unless the user is also a
    /// member here (they know already, and still do).
    pub fn remote_presence_changed(
        &self,
        app_id: &str,
        channel: &str,
        user_id: &str,
        info: Option<&serde_json::Value>,
    ) {
        let Some(app) = self.app_by_id(app_id) else { return };
        let Ok(name) = ChannelName::parse(channel) else { return };
        let Some(ch) = lock(&app.channels).get(&name).cloned() else { return };
        let state = lock(&ch.state);
        if state.members.contains_key(user_id) {
            return;
        }
        let frame: Frame = match info {
            Some(info) => pusher::member_added(channel, user_id, info).into(),
            None => pusher::member_removed(channel, user_id).into(),
        };
        let woken = ch.append(&app, &state, frame, None);
        drop(state);
        woken.wake();
    }

    /// The users of a presence channel, sorted by id (empty when nobody is in it).
    pub fn channel_users(&self, app: &App, channel: &ChannelName) -> Vec<Arc<str>> {
        let ch = lock(&app.channels).get(channel).cloned();
        ch.map(|c| lock(&c.state).members.keys().cloned().collect()).unwrap_or_default()
    }

    /// The occupied channels of `app`, sorted by name.
    pub fn channels(&self, app: &App) -> Vec<ChannelInfo> {
        let chans: Vec<Arc<Channel>> = lock(&app.channels).values().cloned().collect();
        let mut out: Vec<ChannelInfo> = chans.iter().map(|c| c.info()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One channel of `app`, if occupied.
    pub fn channel(&self, app: &App, name: &ChannelName) -> Option<ChannelInfo> {
        let ch = lock(&app.channels).get(name).cloned();
        ch.map(|c| c.info())
    }

    /// How many channels are occupied, over all apps.
    pub(super) fn channel_count(&self) -> usize {
        self.shared.apps.iter().map(|a| lock(&a.channels).len()).sum()
    }
}
