//! Fan-out: an event is serialized once per channel into a shared frame, and a reference-counted handle to
//! it is queued to each subscriber. Cache channels keep their last event here too, and client events are
//! relayed through the same path.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

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
    pub fn deliver_local(&self, app: &App, event: &Publish) -> usize {
        let s = &self.shared;
        let mut total = 0;
        for name in &event.channels {
            let make_frame = || -> Frame {
                pusher::event(&event.event, name.as_str(), &event.data, event.user_id.as_deref()).into()
            };
            // Events from the backend are what a cache channel keeps; client events are not.
            let caching = name.is_cache() && event.source != EventSource::Client;
            let map = lock(&app.channels);
            let mut frame = None;
            if caching {
                let f = make_frame();
                lock(&app.cache).store(name, f.clone(), self.cache_ttl());
                frame = Some(f);
            }
            let ch = map.get(name).cloned();
            // For a cache channel the channel map stays locked until the subscribers are (see `subscribe`).
            let map = if caching {
                Some(map)
            } else {
                drop(map);
                None
            };
            let mut delivered = 0;
            if let Some(ch) = &ch {
                // Serialized once; each subscriber's queue gets a reference-counted handle to it.
                let frame = frame.unwrap_or_else(make_frame);
                let state = lock(&ch.state);
                drop(map);
                for sub in state.subscribers.values() {
                    if event.except.as_deref().is_some_and(|x| *x == *sub.conn.socket_id) {
                        continue;
                    }
                    if sub.conn.send(frame.clone()) {
                        delivered += 1;
                    }
                }
                drop(state);
                ch.events.fetch_add(1, Relaxed);
                ch.deliveries.fetch_add(delivered as u64, Relaxed);
                ch.last_event_ms.store(now_ms(), Relaxed);
            }
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
