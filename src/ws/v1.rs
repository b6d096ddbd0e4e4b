//! The frames of Poussr v1 on a session: subscribe and unsubscribe to public channels
//! (docs/protocol.md §1).

use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::Message;

use super::socket::{Linger, RawFrames, ReadError};
use super::{Ending, Next, Session};
use crate::protocol::{ChannelKind, ChannelName, v1};

impl<S, E> Session<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Linger + RawFrames + Unpin,
    E: ReadError,
{
    pub(super) async fn on_v1(&mut self, text: &str) -> Result<Next, Ending> {
        let (channel, subscribe) = match v1::ClientMessage::parse(text) {
            Ok(v1::ClientMessage::Subscribe { channel }) => (channel, true),
            Ok(v1::ClientMessage::Unsubscribe { channel }) => (channel, false),
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
        match self.hub.subscribe(&self.conn, &name, None) {
            Ok(_) => self.reply(v1::subscription_succeeded(&channel)).await?,
            Err(e) => self.reply_error(&e.to_string()).await?,
        }
        Ok(Next::Continue)
    }
}
