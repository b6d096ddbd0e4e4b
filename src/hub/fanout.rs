//! Fan-out: an event is serialized once per channel into a shared frame, which is appended to the
//! channel's ring for its subscribers' sessions to take. Cache channels keep their last event here too,
//! and client events are relayed through the same path.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use tokio::sync::oneshot;

use super::channel::Channel;
use super::cluster::Route;
use super::ring::Appended;
use super::{App, Connection, Frame, Hub, lock};
use crate::config::WebhookKind;
use crate::history::{Entry, History, HistoryError, Position};
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

/// Whether an event of this name gets a position and is kept (docs/protocol.md §7.2): not one of the
/// reserved names (`pusher:`, `pusher_internal:`, `poussr:`), and a `client-` one only if the app keeps
/// client events. Clients that count positions apply the same rule.
fn kept(history: &History, app: &str, event: &str) -> bool {
    let reserved = ["pusher:", "pusher_internal:", "poussr:"].iter().any(|p| event.starts_with(p));
    !reserved && history.keeps(app, event.starts_with("client-"))
}

/// A frame to append to a channel's ring, and how.
struct Appending {
    frame: Frame,
    /// The connection it is not for.
    except: Option<u64>,
    /// Whether it is the cache channel's new last event.
    caching: bool,
    /// Its position, if it is kept.
    position: Option<Position>,
}

/// What publishing did, or will have done once the event is durable.
#[derive(Debug)]
pub enum Delivery {
    /// Delivered: to this many connections.
    Done(usize),
    /// Kept in the history first: the answer comes once the event is durable and in the rings, with the
    /// sessions to wake (woken by [`Delivery::finish`], on the caller's runtime thread: the history's writer
    /// appends in order and leaves the waking of thousands of sessions to the publishers).
    Pending(Kept),
    /// In a cluster: delivered here by the adapter once the cluster has ordered it (see [`Route`]).
    Ordered(oneshot::Receiver<Result<usize, HistoryError>>),
    /// Not delivered: it could not be kept.
    Refused(HistoryError),
}

/// What a kept event's delivery answers: to how many connections, and the sessions to wake.
type KeptDelivery = Result<(usize, Vec<Waker>), HistoryError>;

/// The answer of a kept event's delivery. Dropped without being waited for (an event from another hub,
/// whose delivery nobody answers), it still wakes the sessions: before the answer comes, by refusing it
/// (the store's side then wakes them); after, by waking those it carries.
#[derive(Debug)]
pub struct Kept(Option<oneshot::Receiver<KeptDelivery>>);

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(mut answer) = self.0.take() {
            // Closed first, so that an answer is either refused or already here, never lost in between.
            answer.close();
            if let Ok(Ok((_, wake))) = answer.try_recv() {
                wake_all(wake);
            }
        }
    }
}

impl Delivery {
    /// The number of connections, if the delivery is done.
    pub fn ready(&self) -> Option<usize> {
        match self {
            Delivery::Done(n) => Some(*n),
            Delivery::Pending(_) | Delivery::Ordered(_) | Delivery::Refused(_) => None,
        }
    }

    /// Waits until the event is durable (when it is kept) and delivered; returns to how many connections.
    pub async fn finish(self) -> Result<usize, HistoryError> {
        match self {
            Delivery::Done(n) => Ok(n),
            Delivery::Pending(mut kept) => {
                let Some(answer) = kept.0.take() else { return Err(HistoryError::Closed) };
                let (delivered, wake) = answer.await.unwrap_or(Err(HistoryError::Closed))?;
                for waker in wake {
                    waker.wake();
                }
                Ok(delivered)
            }
            Delivery::Ordered(answer) => answer.await.unwrap_or(Err(HistoryError::Closed)),
            Delivery::Refused(e) => Err(e),
        }
    }
}

/// What is left of a kept event's delivery: its channels still waiting for the store.
struct Waiting {
    left: usize,
    delivered: usize,
    /// The sessions to wake once every channel is appended.
    wake: Vec<Waker>,
    error: Option<HistoryError>,
    answer: Option<oneshot::Sender<KeptDelivery>>,
}

impl Waiting {
    fn channel_done(&mut self, result: KeptDelivery) {
        match result {
            Ok((n, wake)) => {
                self.delivered += n;
                self.wake.extend(wake);
            }
            Err(e) => self.error = Some(e),
        }
        self.left -= 1;
        if self.left == 0 {
            let wake = std::mem::take(&mut self.wake);
            let result = match self.error.take() {
                Some(e) => {
                    // Some channels may have the event: their sessions must hear of it all the same.
                    wake_all(wake);
                    Err(e)
                }
                None => Ok((self.delivered, wake)),
            };
            match self.answer.take() {
                // Nobody waits (a remote event, or a publisher gone): the sessions are woken here.
                Some(answer) => {
                    if let Err(Ok((_, wake))) = answer.send(result) {
                        wake_all(wake);
                    }
                }
                None => {
                    if let Ok((_, wake)) = result {
                        wake_all(wake);
                    }
                }
            }
        }
    }
}

fn wake_all(wake: Vec<Waker>) {
    for waker in wake {
        waker.wake();
    }
}

impl Hub {
    /// Publishes an event. A hub alone delivers it to its subscribers at once; in a cluster the adapter
    /// hands it to the other hubs and delivers it here in the cluster's order ([`Route::Ordered`]), or
    /// here at once while the cluster cannot be reached. When the app keeps history, the event is made
    /// durable first: the delivery then finishes once it is on disk and queued to every local subscriber.
    pub fn publish(&self, app: &App, event: &Publish) -> Delivery {
        let history = self.keeping(app, event);
        match self.shared.adapter.publish(app, event, history.is_some()) {
            Route::Ordered(answer) => Delivery::Ordered(answer),
            Route::Here => self.deliver_kept(history, app, event),
            Route::Refused(why) => Delivery::Refused(HistoryError::Unreachable(why)),
        }
    }

    /// Delivers an event from the cluster that comes with the position its history gave it on each of
    /// its channels (`None` where it is not kept).
    pub fn deliver_positioned(&self, app: &App, event: &Publish, positions: &[Option<Position>]) -> usize {
        let at = |i: usize| positions.get(i).cloned().flatten();
        event.channels.iter().enumerate().map(|(i, name)| self.deliver_channel(app, event, name, at(i), None)).sum()
    }

    /// Records `position` as the last kept event delivered on `channel` (the cluster's history gave it in
    /// its order of events, with everything before it delivered here): joins from now on count from it.
    pub fn record_position(&self, app: &App, channel: &ChannelName, position: Position) {
        let _map = lock(&app.channels);
        lock(&app.delivered).insert(channel.clone(), position);
    }

    /// Delivers an event to this hub's subscribers: the path every event ends in, whether it was published
    /// here or arrived from another hub.
    pub fn deliver_local(&self, app: &App, event: &Publish) -> Delivery {
        self.deliver_kept(self.keeping(app, event), app, event)
    }

    /// Delivers an event here, kept first in this hub's own store when `history` keeps it. A cluster's
    /// history gives positions as the cluster orders events ([`Hub::deliver_positioned`]): an event that
    /// reaches here without them is delivered without them.
    fn deliver_kept(&self, history: Option<&History>, app: &App, event: &Publish) -> Delivery {
        match history.filter(|h| !h.is_shared()) {
            Some(history) => self.keep_then_deliver(history, app, Arc::new(event.clone())),
            None => Delivery::Done(self.deliver_now(app, event)),
        }
    }

    /// The history, if it keeps this event.
    fn keeping(&self, app: &App, event: &Publish) -> Option<&History> {
        self.shared.history.as_ref().filter(|h| kept(h, &app.id, &event.event))
    }

    /// Delivers an event that is not kept, at once; returns to how many connections.
    fn deliver_now(&self, app: &App, event: &Publish) -> usize {
        event.channels.iter().map(|name| self.deliver_channel(app, event, name, None, None)).sum()
    }

    /// Keeps an event, then delivers it once it is durable. The event is copied once for all its channels'
    /// completions.
    fn keep_then_deliver(&self, history: &History, app: &App, event: Arc<Publish>) -> Delivery {
        let Some(owned) = self.app_by_id(&app.id) else { return Delivery::Done(self.deliver_now(app, &event)) };
        if event.channels.is_empty() {
            return Delivery::Done(0);
        }
        let (answer, answered) = oneshot::channel();
        let waiting = Arc::new(Mutex::new(Waiting {
            left: event.channels.len(),
            delivered: 0,
            wake: Vec::new(),
            error: None,
            answer: Some(answer),
        }));
        for name in &event.channels {
            let entry = Entry {
                app: owned.id.clone(),
                channel: Arc::from(name.as_str()),
                event: event.event.clone(),
                data: event.data.clone(),
                user_id: event.user_id.clone(),
                except: event.except.clone(),
            };
            let (hub, app, event, name, waiting) =
                (self.clone(), owned.clone(), event.clone(), name.clone(), waiting.clone());
            // Runs on the history's writer thread once the event is durable, in the order of the serials.
            history.append(
                entry,
                Box::new(move |stored| {
                    let result = stored.map(|position| {
                        let mut wake = Vec::new();
                        let n = hub.deliver_channel(&app, &event, &name, Some(position), Some(&mut wake));
                        (n, wake)
                    });
                    lock(&waiting).channel_done(result);
                }),
            );
        }
        Delivery::Pending(Kept(Some(answered)))
    }

    /// Delivers an event on one of its channels.
    ///
    /// The frame is built once and appended to the channel's ring, under the channel's state lock for
    /// that one step only, so joins and leaves fall wholly before or after it and the channel keeps one
    /// order. Nothing walks the subscribers: the sessions that were waiting are woken, once no lock is
    /// held, and each session takes from the ring what it has not yet written.
    /// With `wake`, the sessions to wake are put there instead of woken.
    fn deliver_channel(
        &self,
        app: &App,
        event: &Publish,
        name: &ChannelName,
        position: Option<Position>,
        wake: Option<&mut Vec<Waker>>,
    ) -> usize {
        let s = &self.shared;
        // The excluded connection, as a number (an id another hub gave out excludes nobody here).
        let except = event.except.as_deref().and_then(|id| self.local_number(id));
        let frame = Frame::from(pusher::event(&event.event, name.as_str(), &event.data, event.user_id.as_deref()));
        // Events from the backend are what a cache channel keeps; client events are not.
        let caching = name.is_cache() && event.source != EventSource::Client;
        let delivered = match self.append(app, name, Appending { frame, except, caching, position }) {
            Some((ch, appended)) => {
                let delivered = appended.delivered;
                match wake {
                    Some(wake) => wake.extend(appended.wake),
                    None => appended.wake(),
                }
                ch.events.fetch_add(1, Relaxed);
                ch.deliveries.fetch_add(delivered as u64, Relaxed);
                ch.last_event_ms.store(now_ms(), Relaxed);
                delivered
            }
            None => 0,
        };
        s.counters.events_published.fetch_add(1, Relaxed);
        s.counters.deliveries.fetch_add(delivered as u64, Relaxed);
        // Published events go to viewers only (the history keeps them, not the journal).
        if s.monitor.is_watched() {
            s.monitor.send(MonitorEvent::EventPublished {
                at_ms: now_ms(),
                app_id: app.id.clone(),
                channel: name.clone(),
                event: event.event.clone(),
                data: event.data.clone(),
                source: event.source,
                socket_id: event.except.clone(),
                delivered,
                hint: s.monitor.publish_hint(&app.id, name.as_str(), &event.event, event.except.as_deref(), delivered),
            });
        }
        delivered
    }

    /// Appends `frame` to channel `name`'s ring, if the channel is occupied. With `caching`, the frame is
    /// also stored as the channel's last event, under the locks `subscribe` reads it under: a connection
    /// joining meanwhile either finds it in the cache and does not read it from the ring, or reads it from
    /// the ring and found the previous one in the cache; never both, never neither.
    fn append(&self, app: &App, name: &ChannelName, a: Appending) -> Option<(Arc<Channel>, Appended)> {
        let Appending { frame, except, caching, position } = a;
        let map = lock(&app.channels);
        // A kept event: joins from now on count from its position. The connection it is not for gets its
        // position instead, if it counts them.
        let skip = position.map(|p| {
            let skip = except.map(|_| {
                Frame::from(crate::protocol::resume::poussr_position(name.as_str(), &p.epoch, p.serial, None))
            });
            let mut delivered = lock(&app.delivered);
            match delivered.get_mut(name) {
                Some(last) => *last = p,
                None => {
                    delivered.insert(name.clone(), p);
                }
            }
            skip
        });
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
        let appended = ch.append_kept(app, &state, frame, except, skip.flatten());
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
    ) -> Result<Delivery, ClientEventError> {
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
