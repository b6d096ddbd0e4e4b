//! Resuming a subscription from a position (docs/protocol.md §7): the events a client missed are sent
//! before any live one, or a `poussr:not_recovered` says why they cannot be; then the client counts the
//! channel's positions from where it stands. The same for Pusher clients and Poussr v1 sockets, in each
//! one's frames.

use std::sync::Arc;

use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::Message;

use super::socket::{Linger, RawFrames, ReadError};
use super::{Ending, Session};
use crate::config::HistoryConfig;
use crate::history::{Gap, Position};
use crate::protocol::pusher;
use crate::protocol::resume::{self, NotRecovered, Resume};
use crate::protocol::{ChannelName, v1};

/// Whose frames to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `pusher_internal:poussr_position`.
    Pusher,
    /// `poussr:position`.
    V1,
}

impl Dialect {
    fn position(self, channel: &str, epoch: &str, serial: u64, client_events: Option<bool>) -> String {
        match self {
            Dialect::Pusher => resume::poussr_position(channel, epoch, serial, client_events),
            Dialect::V1 => v1::position(channel, epoch, serial, client_events),
        }
    }
}

/// What a subscription that asked to resume did.
pub(super) enum Resumed {
    /// The missed events were sent, after the position they continue from.
    Recovered,
    /// Nothing was recovered: the position frame to send once the cached event (if any) is written.
    Counting(Option<String>),
}

impl<S, E> Session<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Linger + RawFrames + Unpin,
    E: ReadError,
{
    /// A subscription that asked to resume, just joined at `head` (`None`: the app keeps no history).
    /// With a position, the events missed since are sent now, before any live one, each as it was first
    /// sent, preceded by the position they continue from; or, when they cannot all be given, a
    /// `poussr:not_recovered` event says why and counting starts again from `head`.
    pub(super) async fn resume(
        &mut self,
        dialect: Dialect,
        name: &ChannelName,
        resume: Resume,
        head: Option<Position>,
    ) -> Result<Resumed, Ending> {
        let channel = name.as_str();
        let asked = resume.epoch.as_deref().zip(resume.serial);
        let (Some(head), Some(history)) = (head, self.hub.history().cloned()) else {
            if let Some((epoch, serial)) = asked {
                let kept = self.hub.history().is_some_and(|h| h.keeps(&self.conn.app.id, false));
                let (reason, message) = if kept {
                    // A cluster's history whose head could not be read in time (its link is down).
                    ("unavailable", "the cluster's history cannot be reached now, so nothing missed can be recovered")
                } else {
                    ("history_off", "this app keeps no history of events, so nothing missed can be recovered")
                };
                let message = message.to_owned();
                let why = NotRecovered { reason, message, epoch, serial, oldest: None };
                self.reply(resume::not_recovered(channel, &why)).await?;
            }
            return Ok(Resumed::Counting(None));
        };
        let app = self.conn.app.clone();
        let client_events = history.keeps(&app.id, true);
        let counting = dialect.position(channel, &head.epoch, head.serial, Some(client_events));
        let Some((epoch, serial)) = asked else { return Ok(Resumed::Counting(Some(counting))) };
        let from = Position { epoch: Arc::from(epoch), serial };
        let max = app.config.history.max_events_per_channel;
        let (reason, message, oldest) = match history.after(&app.id, &Arc::from(channel), &from, &head, max).await {
            Ok(Ok(events)) => {
                self.reply(dialect.position(channel, epoch, serial, Some(client_events))).await?;
                for e in events {
                    // Not for the connection the client had then: its position only, as it was live.
                    let frame = if e.except.as_ref().is_some_and(|x| resume.socket_ids.contains(x)) {
                        dialect.position(channel, epoch, e.serial, None)
                    } else {
                        pusher::event(&e.event, channel, &e.data, e.user_id.as_deref())
                    };
                    self.reply(frame).await?;
                }
                return Ok(Resumed::Recovered);
            }
            Ok(Err(gap)) => {
                let oldest = match gap {
                    Gap::Evicted { oldest } => oldest,
                    _ => None,
                };
                (gap.reason(), gap_message(&gap, serial, head.serial, &app.config.history), oldest)
            }
            Err(e) => {
                // The store's error names its file: that stays in the hub's log.
                tracing::warn!(channel, "a resume could not read the history: {e}");
                ("unavailable", "the history store could not be read (the hub's log says why)".to_owned(), None)
            }
        };
        self.reply(resume::not_recovered(channel, &NotRecovered { reason, message, epoch, serial, oldest })).await?;
        Ok(Resumed::Counting(Some(counting)))
    }
}

/// Why a gap could not be filled, for people.
fn gap_message(gap: &Gap, serial: u64, head: u64, kept: &HistoryConfig) -> String {
    match gap {
        Gap::Evicted { oldest } => format!(
            "the events after serial {serial} are no longer all kept ({}); this app keeps {} events per channel, \
             for {} s, within {} bytes",
            oldest.map_or("none of them is".to_owned(), |o| format!("the oldest kept is {o}")),
            kept.max_events_per_channel,
            kept.max_age_secs,
            kept.max_bytes
        ),
        Gap::EpochChanged { .. } => "the channel's history is not the one this position came from (the history \
                                     store was replaced, or the channel was forgotten after its events expired)"
            .to_owned(),
        Gap::Unknown => format!("serial {serial} is past the channel's last event ({head})"),
    }
}
