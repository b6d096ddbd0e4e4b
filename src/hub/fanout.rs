//! Fan-out: an event is serialized once per channel into a shared frame, and a reference-counted handle to
//! it is queued to each subscriber. Cache channels keep their last event here too, and client events are
//! relayed through the same path.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::channel::{Channel, Snapshot};
use super::{App, Connection, Frame, Hub, lock};
use crate::config::WebhookKind;
use crate::monitor::{EventSource, MonitorEvent, now_ms};
use crate::protocol::{ChannelKind, ChannelName, pusher};
use crate::webhook::WebhookEvent;

/// An event to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The channels (each gets its own frame, since the frame names the channel).
    pub channels: Vec<ChannelName>,
    /// The event name.
    pub event: Arc<str>,
    /// The data string, exactly as published.
    pub data: Arc<str>,
    /// A connection that must not receive it (`socket_id` on the API; the sender of a client event).
    pub except: Option<Arc<str>>,
    /// Who published it.
    pub source: EventSource,
    /// The sender's user id, for client events on presence channels.
    pub user_id: Option<Arc<str>>,
}

impl Publish {
    /// An event from the API, Poussr v1 or the dashboard: no sender user.
    pub fn new(channels: Vec<ChannelName>, event: &str, data: &str, except: Option<&str>, source: EventSource) -> Self {
        Publish {
            channels,
            event: Arc::from(event),
            data: Arc::from(data),
            except: except.map(Arc::from),
            source,
            user_id: None,
        }
    }
}

/// Why a client event was refused (answered with a `pusher:error`; the connection stays open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientEventError {
    /// The app has client events turned off.
    #[error("client events are turned off for this app")]
    Disabled,
    /// Not a private or presence channel.
    #[error(
        "client events are allowed only on private and presence channels (not public or encrypted ones); {0:?} is {1}"
    )]
    WrongKind(String, &'static str),
    /// The connection has not joined the channel.
    #[error("client events can be sent only on channels this connection has joined; it has not joined {0:?}")]
    NotJoined(String),
}

impl Hub {
    /// Publishes an event: delivers it to this hub's subscribers, then hands it to the adapter for the
    /// other hubs of a cluster. Returns when it is queued to every local subscriber, with how many
    /// connections it was queued to.
    pub fn publish(&self, app: &App, event: &Publish) -> usize {
        let delivered = self.deliver_local(app, event);
        self.shared.adapter.publish(app, event);
        delivered
    }

    /// Delivers an event to this hub's subscribers: the path every event ends in, whether it was published
    /// here or arrived from another hub.
    ///
    /// Per channel: the frame is built once; the subscribers are read from the channel's snapshot under
    /// a lock held for a pointer copy; the walk over them, which queues a handle to the frame to each,
    /// holds no lock that a join or a leave needs. Deliveries to one channel take their turn (its
    /// `delivering` lock), so all its subscribers get its events in one order.
    pub fn deliver_local(&self, app: &App, event: &Publish) -> usize {
        let s = &self.shared;
        // The excluded connection, as a number compared once per subscriber (an id another hub gave out
        // excludes nobody here).
        let except = event.except.as_deref().and_then(|id| self.local_number(id));
        let mut total = 0;
        for name in &event.channels {
            let frame = Frame::from(pusher::event(&event.event, name.as_str(), &event.data, event.user_id.as_deref()));
            // Events from the backend are what a cache channel keeps; client events are not.
            let caching = name.is_cache() && event.source != EventSource::Client;
            let delivered = loop {
                let Some(ch) = self.channel_or_cache(app, name, caching.then_some(&frame)) else { break 0 };
                // The turn is taken before the snapshot, so snapshots (and cache writes) follow the turns.
                let _turn = lock(&ch.delivering);
                // None: the channel emptied and was replaced while this waited for its turn.
                let Some(subscribers) = self.snapshot_for_turn(app, name, &ch, caching.then_some(&frame)) else {
                    continue;
                };
                let mut delivered = 0;
                for conn in subscribers.iter() {
                    if Some(conn.number) != except && conn.send(frame.clone()) {
                        delivered += 1;
                    }
                }
                ch.events.fetch_add(1, Relaxed);
                ch.deliveries.fetch_add(delivered as u64, Relaxed);
                ch.last_event_ms.store(now_ms(), Relaxed);
                break delivered;
            };
            s.counters.events_published.fetch_add(1, Relaxed);
            s.counters.deliveries.fetch_add(delivered as u64, Relaxed);
            s.monitor.emit(|| MonitorEvent::EventPublished {
                at_ms: now_ms(),
                app_id: app.id.clone(),
                channel: name.clone(),
                event: event.event.clone(),
                data: event.data.clone(),
                source: event.source,
                socket_id: event.except.clone(),
                delivered,
            });
            total += delivered;
        }
        total
    }

    /// The occupied channel `name`, or `None` when nobody has joined it; then `cached`, if given, is
    /// stored as its last event under the channel map's lock, so that a connection creating the channel
    /// meanwhile reads the cache after it.
    fn channel_or_cache(&self, app: &App, name: &ChannelName, cached: Option<&Frame>) -> Option<Arc<Channel>> {
        let map = lock(&app.channels);
        let ch = map.get(name).cloned();
        if ch.is_none()
            && let Some(frame) = cached
        {
            self.store_cached(app, name, frame);
        }
        ch
    }

    /// Stores `frame` as cache channel `name`'s last event (the caller holds the locks that order it).
    fn store_cached(&self, app: &App, name: &ChannelName, frame: &Frame) {
        lock(&app.cache).store(name, frame.clone(), self.cache_ttl());
    }

    /// The subscribers of `ch` for a delivery whose turn it is, or `None` if `ch` is no longer the
    /// channel called `name`. With `cached`, the frame is stored as the channel's last event under the
    /// same locks `subscribe` reads it under: a connection joining meanwhile either finds it in the cache
    /// and is not in the snapshot, or is in the snapshot and found the previous one; never both, never
    /// neither.
    fn snapshot_for_turn(
        &self,
        app: &App,
        name: &ChannelName,
        ch: &Arc<Channel>,
        cached: Option<&Frame>,
    ) -> Option<Snapshot> {
        let map = lock(&app.channels);
        if !map.get(name).is_some_and(|c| Arc::ptr_eq(c, ch)) {
            return None;
        }
        let mut state = lock(&ch.state);
        if let Some(frame) = cached {
            self.store_cached(app, name, frame);
        }
        drop(map);
        Some(state.snapshot())
    }

    /// Relays a `client-*` event from `conn` to the other subscribers of `channel` (the caller has checked
    /// the name and the rate). On a presence channel the frame names the sender's `user_id`.
    pub fn client_event(
        &self,
        conn: &Connection,
        channel: &ChannelName,
        event: &str,
        data: &str,
    ) -> Result<usize, ClientEventError> {
        if !conn.app.config.client_events {
            return Err(ClientEventError::Disabled);
        }
        match channel.kind() {
            ChannelKind::Private | ChannelKind::Presence => {}
            kind => return Err(ClientEventError::WrongKind(channel.to_string(), kind.as_str())),
        }
        let user_id = {
            let ch = lock(&conn.app.channels).get(channel).cloned();
            let state = ch.as_ref().map(|c| lock(&c.state));
            match state.as_ref().and_then(|st| st.subscribers().get(&conn.number)) {
                Some(sub) => sub.user_id.clone(),
                None => return Err(ClientEventError::NotJoined(channel.to_string())),
            }
        };
        let event = Publish {
            channels: vec![channel.clone()],
            event: Arc::from(event),
            data: Arc::from(data),
            except: Some(conn.socket_id.clone()),
            source: EventSource::Client,
            user_id,
        };
        let delivered = self.publish(&conn.app, &event);
        conn.app.webhook_with(WebhookKind::ClientEvent, || WebhookEvent {
            name: WebhookKind::ClientEvent,
            channel: channel.clone(),
            user_id: event.user_id.clone(),
            event: Some(event.event.clone()),
            data: Some(event.data.clone()),
            socket_id: Some(conn.socket_id.clone()),
        });
        Ok(delivered)
    }
}
