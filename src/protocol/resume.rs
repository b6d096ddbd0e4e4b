//! Poussr's recovery frames (docs/protocol.md §7), for Pusher clients and Poussr v1 sockets alike: the
//! position a subscription asks to resume from, the position frames, and `poussr:not_recovered`.

use serde::{Deserialize, Serialize};

use super::pusher::{encoded, frame};

/// `poussr_resume` in `pusher:subscribe`: where the client is in the channel's history, if anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Resume {
    /// The epoch of the client's last position.
    #[serde(default)]
    pub epoch: Option<String>,
    /// The serial of the client's last event (or skip) in that epoch.
    #[serde(default)]
    pub serial: Option<u64>,
    /// The socket ids the client had since that position: events that were not for them are not sent
    /// again (their positions come as position frames).
    #[serde(default)]
    pub socket_ids: Vec<String>,
}

/// `pusher_internal:poussr_position` (docs/protocol.md §7): for a connection that counts a channel's
/// positions, the position it has reached: where counting starts after a subscription, or an event that
/// was not for it. `client_events` says whether kept positions include client events.
pub fn poussr_position(channel: &str, epoch: &str, serial: u64, client_events: Option<bool>) -> String {
    position_frame("pusher_internal:poussr_position", channel, epoch, serial, client_events)
}

/// A position frame named `event` (Poussr v1 names it `poussr:position`).
pub(crate) fn position_frame(
    event: &str,
    channel: &str,
    epoch: &str,
    serial: u64,
    client_events: Option<bool>,
) -> String {
    #[derive(Serialize)]
    struct Position<'a> {
        epoch: &'a str,
        serial: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_events: Option<bool>,
    }
    frame(event, Some(channel), encoded(&Position { epoch, serial, client_events }))
}

/// Why the events missed since a position could not be given (docs/protocol.md §7).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotRecovered<'a> {
    /// `evicted`, `epoch_changed`, `unknown_position`, `history_off` or `unavailable`.
    pub reason: &'a str,
    /// A sentence for people.
    pub message: String,
    /// The position the client asked to resume from.
    pub epoch: &'a str,
    /// Its serial.
    pub serial: u64,
    /// The oldest serial still kept after it, when some were evicted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest: Option<u64>,
}

/// `poussr:not_recovered`: an event on the channel, so that the client's own `bind` callbacks see it.
pub fn not_recovered(channel: &str, why: &NotRecovered<'_>) -> String {
    frame("poussr:not_recovered", Some(channel), encoded(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_and_not_recovered_frames() {
        assert_eq!(
            poussr_position("c", "e1", 4, Some(false)),
            r#"{"event":"pusher_internal:poussr_position","channel":"c","data":"{\"epoch\":\"e1\",\"serial\":4,\"client_events\":false}"}"#
        );
        let why = NotRecovered { reason: "evicted", message: "m".into(), epoch: "e1", serial: 2, oldest: Some(9) };
        assert_eq!(
            not_recovered("c", &why),
            r#"{"event":"poussr:not_recovered","channel":"c","data":"{\"reason\":\"evicted\",\"message\":\"m\",\"epoch\":\"e1\",\"serial\":2,\"oldest\":9}"}"#
        );
    }
}
