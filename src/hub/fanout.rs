//! Fan-out: an event is serialized once per channel into a shared frame, which is appended to the
//! channel's ring for its subscribers' sessions to take. Cache channels keep their last event here too,
//! and client events are relayed through the same path.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::channel::Channel;
use super::ring::Appended;
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
    /// Per channel: the frame is built once and appended to the channel's ring, under the channel's
    /// state lock for that one step only, so joins and leaves fall wholly before or after it and the
    /// channel keeps one order. Nothing walks the subscribers: the sessions that were waiting are woken,
    /// once no lock is held, and each session takes from the ring what it has not yet written.
    pub fn deliver_local(&self, app: &App, event: &Publish) -> usize {
        let s = &self.shared;
        // The excluded connection, as a number (an id another hub gave out excludes nobody here).
        let except = event.except.as_deref().and_then(|id| self.local_number(id));
        let mut total = 0;
        for name in &event.channels {
            let frame = Frame::from(pusher::event(&event.event, name.as_str(), &event.data, event.user_id.as_deref()));
            // Events from the backend are what a cache channel keeps; client events are not.
            let caching = name.is_cache() && event.source != EventSource::Client;
            let delivered = match self.append(app, name, frame, except, caching) {
                Some((ch, appended)) => {
                    let delivered = appended.delivered;
                    appended.wake();
                    ch.events.fetch_add(1, Relaxed);
                    ch.deliveries.fetch_add(delivered as u64, Relaxed);
                    ch.last_event_ms.store(now_ms(), Relaxed);
                    delivered
                }
                None => 0,
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

    /// Appends `frame` to channel `name`'s ring, if the channel is occupied. With `caching`, the frame is
    /// also stored as the channel's last event, under the locks `subscribe` reads it under: a connection
    /// joining meanwhile either finds it in the cache and does not read it from the ring, or reads it from
    /// the ring and found the previous one in the cache; never both, never neither.
    fn append(
        &self,
        app: &App,
        name: &ChannelName,
        frame: Frame,
        except: Option<u64>,
        caching: bool,
    ) -> Option<(Arc<Channel>, Appended)> {
        let map = lock(&app.channels);
        let Some(ch) = map.get(name).cloned() else {
            if caching {
                self.store_cached(app, name, &frame);
            }
            return None;
        };
        let state = lock(&ch.state);
        if caching {
            self.store_cached(app, name, &frame);
        }
        drop(map);
        let appended = ch.append(app, &state, frame, except);
        drop(state);
        Some((ch, appended))
    }

    /// Stores `frame` as cache channel `name`'s last event (the caller holds the locks that order it).
    fn store_cached(&self, app: &App, name: &ChannelName, frame: &Frame) {
        lock(&app.cache).store(name, frame.clone(), self.cache_ttl());
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
            match state.as_ref().and_then(|st| st.subscribers.get(&conn.number)) {
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
