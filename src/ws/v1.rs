//! The frames of Poussr v1 on a session: subscribe and unsubscribe to public channels
//! (docs/protocol.md §1).

use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::Message;

use super::resume::{Dialect, Resumed};
use super::socket::{Linger, RawFrames, ReadError};
use super::{Ending, Next, Session};
use crate::protocol::{ChannelKind, ChannelName, v1};

impl<S, E> Session<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Linger + RawFrames + Unpin,
    E: ReadError,
{
    pub(super) async fn on_v1(&mut self, text: &str) -> Result<Next, Ending> {
        let (channel, subscribe, resume) = match v1::ClientMessage::parse(text) {
            Ok(v1::ClientMessage::Subscribe { channel, resume }) => (channel, true, resume),
            Ok(v1::ClientMessage::Unsubscribe { channel }) => (channel, false, None),
            Err(e) => {
                self.reply_error(&e.to_string()).await?;
                return Ok(Next::Continue);
            }
        };
        let name = match ChannelName::parse(&channel) {
            Ok(name) => name,
            Err(e) => {
                self.reply_error(&format!("invalid channel {channel:?}: {e}")).await?;
                return Ok(Next::Continue);
            }
        };
        if !subscribe {
            self.hub.unsubscribe(&self.conn, &name);
            return Ok(Next::Continue);
        }
        if name.kind() != ChannelKind::Public || name.is_cache() {
            self.reply_error(&format!(
                "{channel:?} is a {} channel; Poussr v1 clients subscribe to public channels only",
                name.kind().as_str()
            ))
            .await?;
            return Ok(Next::Continue);
        }
        if resume.is_some() {
            self.hub.cluster_sync_heads(&self.conn.app, &name).await;
        }
        let joined = match self.hub.subscribe_counting(&self.conn, &name, None, resume.is_some()) {
            Ok(joined) => joined,
            Err(e) => {
                self.reply_error(&e.to_string()).await?;
                return Ok(Next::Continue);
            }
        };
        if joined.newly {
            self.hub.cluster_sync().await;
        }
        self.reply(v1::subscription_succeeded(&channel)).await?;
        if let Some(resume) = resume.filter(|_| joined.newly) {
            // Poussr v1 joins no cache channel: nothing to write between the events and the position.
            if let Resumed::Counting(Some(position)) = self.resume(Dialect::V1, &name, resume, joined.position).await? {
                self.reply(position).await?;
            }
        }
        Ok(Next::Continue)
    }
}
