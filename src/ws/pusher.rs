//! The frames of the Pusher protocol 7 on a session: subscriptions with their auth signatures, presence
//! `channel_data`, `pusher:signin` and `client-*` events (docs/protocol.md §2).

use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::resume::{Dialect, Resumed};
use super::socket::{Linger, RawFrames, ReadError};
use super::{Ending, Next, Session};
use crate::hub::{Cached, Member, SubscribeError};
use crate::monitor::{MonitorEvent, now_ms};
use crate::protocol::channel::SERVER_TO_USER_PREFIX;
use crate::protocol::pusher::{self, SubscriptionErrorKind as Kind};
use crate::protocol::{ChannelKind, ChannelName, CloseCode, signature};

impl<S, E> Session<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Linger + RawFrames + Unpin,
    E: ReadError,
{
    pub(super) async fn on_pusher(&mut self, text: &str) -> Result<Next, Ending> {
        use pusher::ClientMessage as M;
        let message = match M::parse(text) {
            Ok(m) => m,
            Err(e) => {
                self.reply_error(&e.to_string()).await?;
                return Ok(Next::Continue);
            }
        };
        match message {
            M::Ping => self.reply(pusher::pong()).await?,
            M::Pong => {}
            M::Subscribe(sub) => self.pusher_subscribe(sub).await?,
            M::Unsubscribe { channel } => {
                // Leaving a channel one never joined (or with a bad name) is harmless, as in Pusher.
                if let Ok(name) = ChannelName::parse(&channel) {
                    self.hub.unsubscribe(&self.conn, &name);
                }
            }
            M::Signin { auth, user_data } => return self.signin(&auth, &user_data).await,
            M::ClientEvent { event, channel, data } => return self.client_event(&event, &channel, data).await,
        }
        Ok(Next::Continue)
    }

    async fn subscription_error(&mut self, channel: &str, kind: Kind, error: &str, status: u16) -> Result<(), Ending> {
        let app = &self.conn.app.id;
        self.hub.monitor().emit(|| MonitorEvent::SubscriptionRefused {
            at_ms: now_ms(),
            socket_id: self.conn.socket_id.clone(),
            app_id: app.clone(),
            channel: channel.to_owned(),
            status,
            reason: error.to_owned(),
        });
        if ChannelName::parse(channel).is_ok_and(|c| c.kind().needs_auth()) {
            self.hub.monitor().subscription_refused(app, channel, status);
        }
        self.reply(pusher::subscription_error(channel, kind, error, status)).await
    }

    async fn pusher_subscribe(&mut self, sub: pusher::Subscribe) -> Result<(), Ending> {
        let channel = sub.channel.as_str();
        let name = match ChannelName::parse(channel) {
            Ok(name) => name,
            Err(e) => return self.subscription_error(channel, Kind::InvalidChannel, &e.to_string(), 400).await,
        };
        let kind = name.kind();
        let mut member = None;
        match kind {
            ChannelKind::Public => {}
            ChannelKind::ServerToUser => {
                let wanted = &channel[SERVER_TO_USER_PREFIX.len()..];
                if self.conn.user_id().map(|u| &**u) != Some(wanted) {
                    let error = format!(
                        "{channel} can be joined only by a connection signed in (pusher:signin) as user {wanted:?}"
                    );
                    return self.subscription_error(channel, Kind::AuthError, &error, 403).await;
                }
            }
            ChannelKind::Private | ChannelKind::Encrypted | ChannelKind::Presence => {
                let app = &self.conn.app.config;
                let Some(auth) = sub.auth.as_deref().filter(|a| !a.is_empty()) else {
                    let error = format!(
                        "subscribing to a {} channel needs an auth signature from the app's backend (its channel \
                         authorization endpoint); none was sent",
                        kind.as_str()
                    );
                    return self.subscription_error(channel, Kind::AuthError, &error, 401).await;
                };
                let signed = if kind == ChannelKind::Presence {
                    let Some(data) = sub.channel_data.as_deref() else {
                        let error = "subscribing to a presence channel needs channel_data (the signed user_id and \
                                     user_info); none was sent";
                        return self.subscription_error(channel, Kind::InvalidChannelData, error, 400).await;
                    };
                    format!("{}:{channel}:{data}", self.conn.socket_id)
                } else {
                    format!("{}:{channel}", self.conn.socket_id)
                };
                if !signature::verify_channel_auth(&app.key, &app.secret, auth, &signed) {
                    let error = format!(
                        "the auth signature for {channel:?} is not valid for socket {}: it must be \"{{app_key}}:\
                         {{hex HMAC-SHA256}}\" made with this app's key and secret",
                        self.conn.socket_id
                    );
                    return self.subscription_error(channel, Kind::AuthError, &error, 401).await;
                }
                if let Some(data) = sub.channel_data.as_deref().filter(|_| kind == ChannelKind::Presence) {
                    let limits = self.hub.limits();
                    match pusher::parse_channel_data(
                        data,
                        limits.max_presence_user_id_chars,
                        limits.max_presence_user_info_bytes,
                    ) {
                        Ok(m) => member = Some(Member { user_id: m.user_id.into(), user_info: m.user_info }),
                        Err(e) => return self.subscription_error(channel, Kind::InvalidChannelData, &e, 400).await,
                    }
                }
            }
        }
        let resume = sub.poussr_resume;
        // In a cluster, the members listed are those of every subscription that completed on any hub
        // before this one, and a connection that counts positions learns the channel's head in the
        // cluster's order of events.
        if resume.is_some() {
            self.hub.cluster_sync_heads(&self.conn.app, &name).await;
        } else if kind == ChannelKind::Presence {
            self.hub.cluster_sync().await;
        }
        let joined = match self.hub.subscribe_counting(&self.conn, &name, member, resume.is_some()) {
            Ok(joined) => joined,
            Err(e) => {
                let status = match e {
                    SubscribeError::PresenceFull(_) => 403,
                    SubscribeError::TooManyChannels(_) => 400,
                    SubscribeError::ShuttingDown => 503,
                };
                return self.subscription_error(channel, Kind::LimitReached, &e.to_string(), status).await;
            }
        };
        // In a cluster, every hub counts this subscription before the client learns it succeeded.
        if joined.newly {
            self.hub.cluster_sync().await;
        }
        self.reply(pusher::subscription_succeeded(channel, joined.presence.as_deref().unwrap_or("{}"))).await?;
        let after = match (resume, joined.newly) {
            (Some(resume), true) => match self.resume(Dialect::Pusher, &name, resume, joined.position).await? {
                // A client that recovered what it missed has the cached event already (or just got it).
                Resumed::Recovered => return Ok(()),
                Resumed::Counting(position) => position,
            },
            _ => None,
        };
        match joined.cached {
            Some(Cached::Hit(frame)) => self.write(Message::Text(frame.to_text())).await?,
            Some(Cached::Miss) => self.reply(pusher::cache_miss(channel)).await?,
            None => {}
        }
        // Counting starts after the cached event, which is older than the position.
        match after {
            Some(position) => self.reply(position).await,
            None => Ok(()),
        }
    }

    /// `pusher:signin`: a bad signature closes the connection with 4009, as Pusher does.
    async fn signin(&mut self, auth: &str, user_data: &str) -> Result<Next, Ending> {
        let app = &self.conn.app.config;
        let signed = format!("{}::user::{user_data}", self.conn.socket_id);
        if !signature::verify_channel_auth(&app.key, &app.secret, auth, &signed) {
            let why = format!(
                "pusher:signin refused: the auth signature does not match the user_data for socket {} (it must be \
                 \"{{app_key}}:{{hex HMAC-SHA256 of socket_id::user::user_data}}\" made with this app's secret)",
                self.conn.socket_id
            );
            return Ok(Next::Close(CloseCode::Unauthorized, why));
        }
        let user_id = match pusher::parse_user_id(user_data, self.hub.limits().max_presence_user_id_chars) {
            Ok(id) => id,
            Err(e) => return Ok(Next::Close(CloseCode::Unauthorized, format!("pusher:signin refused: {e}"))),
        };
        if let Err(e) = self.hub.sign_in(&self.conn, &user_id) {
            self.reply_error(&format!("pusher:signin refused: {e}")).await?;
            return Ok(Next::Continue);
        }
        self.reply(pusher::signin_success(user_data)).await?;
        Ok(Next::Continue)
    }

    /// A `client-*` event: rate-limited per connection, then relayed by the hub if the channel allows it.
    async fn client_event(&mut self, event: &str, channel: &str, data: serde_json::Value) -> Result<Next, Ending> {
        let limits = self.hub.limits().clone();
        let now = Instant::now();
        if now.duration_since(self.client_window) >= Duration::from_secs(1) {
            self.client_window = now;
            self.client_events = 0;
        }
        self.client_events += 1;
        if self.client_events > limits.client_events_per_second {
            let why = format!(
                "more than {} client events in one second from this connection; slow down",
                limits.client_events_per_second
            );
            self.hub.monitor().emit(|| MonitorEvent::Error {
                at_ms: now_ms(),
                socket_id: Some(self.conn.socket_id.clone()),
                code: Some(CloseCode::ClientEventRateLimit.code()),
                message: format!("{event} on {channel:?} refused, and the connection closed: {why}"),
            });
            return Ok(Next::Close(CloseCode::ClientEventRateLimit, why));
        }
        let name = match ChannelName::parse(channel) {
            Ok(name) => name,
            Err(e) => {
                self.reply_error(&format!("{event} on {channel:?}: {e}")).await?;
                return Ok(Next::Continue);
            }
        };
        if event.len() > limits.max_event_name_len {
            let error = format!("the event name is {} bytes; the limit is {}", event.len(), limits.max_event_name_len);
            self.reply_error(&error).await?;
            return Ok(Next::Continue);
        }
        // Relayed as a JSON string, the canonical form; a string the client sent is kept as it is.
        let data = match data {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        if data.len() > limits.max_event_data_bytes {
            let error =
                format!("{event}: the data is {} bytes; the limit is {}", data.len(), limits.max_event_data_bytes);
            self.reply_error(&error).await?;
            return Ok(Next::Continue);
        }
        match self.hub.client_event(&self.conn, &name, event, &data) {
            Err(e) => self.reply_error(&format!("{event} was not relayed: {e}")).await?,
            // A client event the app keeps is relayed once it is on disk: a failed commit is told to its
            // sender, since nobody got it (the reason, with the store's path, is in the hub's log only).
            Ok(delivery) => {
                if delivery.finish().await.is_err() {
                    let why = "the hub could not keep it in its history (the hub's log says why)";
                    self.reply_error(&format!("{event} was not relayed: {why}")).await?;
                }
            }
        }
        Ok(Next::Continue)
    }
}
