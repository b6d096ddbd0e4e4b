//! Poussr v1, the original tiny protocol: a browser subscribes to channels over a WebSocket and receives
//! what backends POST over HTTP. Old clients must keep working unchanged, so the subscribe frame is read
//! the way the original client sends it (`data` as a JSON-encoded string) and the way the original README
//! shows it (`data` as an object).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A frame from a v1 client, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `poussr:subscribe`: add a channel to this socket.
    Subscribe {
        /// The channel (not yet validated).
        channel: String,
        /// With `resume` in `data` (docs/protocol.md §7): the client counts the channel's positions and,
        /// with a position, asks for what it missed since.
        resume: Option<super::resume::Resume>,
    },
    /// `poussr:unsubscribe`, or the original misspelled `poussr::unsusbscribe`.
    Unsubscribe {
        /// The channel (not yet validated).
        channel: String,
    },
}

/// Why a v1 frame was not understood; sent back in `poussr:error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or not an object with a string `event`.
    #[error("the frame must be a JSON object with a string \"event\": {0}")]
    Malformed(String),
    /// An event other than subscribe and unsubscribe.
    #[error("unknown event \"{0}\"; send poussr:subscribe or poussr:unsubscribe")]
    UnknownEvent(String),
    /// `data` did not name a channel.
    #[error("{0} needs data {{\"channel\":\"name\"}} (an object or a JSON string of one)")]
    NoChannel(String),
}

impl FrameError {
    /// The code sent in `poussr:error` for every malformed frame. Errors that are not about one frame use
    /// the Pusher close codes (see [`crate::protocol::CloseCode`]).
    pub const CODE: u16 = 4000;
}

#[derive(Deserialize)]
struct RawFrame {
    event: Value,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct ChannelData {
    channel: String,
    #[serde(default)]
    resume: Option<super::resume::Resume>,
}

impl ClientMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let raw: RawFrame = super::object_from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
        let Value::String(event) = raw.event else {
            return Err(FrameError::Malformed("\"event\" is not a string".into()));
        };
        let unsubscribe = match event.as_str() {
            "poussr:subscribe" => false,
            "poussr:unsubscribe" | "poussr::unsusbscribe" => true,
            _ => return Err(FrameError::UnknownEvent(event)),
        };
        let data = match raw.data {
            Some(Value::String(s)) => serde_json::from_str::<Value>(&s).ok(),
            other => other,
        };
        let data = data.and_then(|d| super::from_object::<ChannelData>(d).ok()).ok_or(FrameError::NoChannel(event))?;
        let channel = data.channel;
        Ok(if unsubscribe {
            ClientMessage::Unsubscribe { channel }
        } else {
            ClientMessage::Subscribe { channel, resume: data.resume }
        })
    }
}

/// `{"event":"poussr:subscription_succeeded","channel":"users"}`, sent after each subscribe.
pub fn subscription_succeeded(channel: &str) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        event: &'static str,
        channel: &'a str,
    }
    serde_json::to_string(&Frame { event: "poussr:subscription_succeeded", channel }).expect("frame serializes")
}

/// `{"event":"poussr:position","channel":"users","data":"{\"epoch\":\"...\",\"serial\":12}"}`: for a socket
/// that counts the channel's positions (docs/protocol.md §7).
pub fn position(channel: &str, epoch: &str, serial: u64, client_events: Option<bool>) -> String {
    super::resume::position_frame("poussr:position", channel, epoch, serial, client_events)
}

/// `{"event":"poussr:error","data":{"message":"...","code":4xxx}}`.
pub fn error(code: u16, message: &str) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        message: &'a str,
        code: u16,
    }
    #[derive(Serialize)]
    struct Frame<'a> {
        event: &'static str,
        data: Data<'a>,
    }
    serde_json::to_string(&Frame { event: "poussr:error", data: Data { message, code } }).expect("frame serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_not_objects() {
        assert!(matches!(ClientMessage::parse(r#"["poussr:subscribe", "users"]"#), Err(FrameError::Malformed(_))));
        let smuggled = r#"{"event":"poussr:subscribe","data":["users"]}"#;
        assert_eq!(ClientMessage::parse(smuggled), Err(FrameError::NoChannel("poussr:subscribe".into())));
    }

    #[test]
    fn subscribe_data_as_string_like_the_original_client() {
        assert_eq!(
            ClientMessage::parse(r#"{"event":"poussr:subscribe","data":"{\"channel\":\"users\"}"}"#),
            Ok(ClientMessage::Subscribe { channel: "users".into(), resume: None })
        );
    }

    #[test]
    fn subscribe_data_as_object_like_the_original_readme() {
        assert_eq!(
            ClientMessage::parse(r#"{"event":"poussr:subscribe","data":{"channel":"users"}}"#),
            Ok(ClientMessage::Subscribe { channel: "users".into(), resume: None })
        );
    }

    #[test]
    fn subscribe_may_ask_to_resume() {
        let frame = r#"{"event":"poussr:subscribe","data":{"channel":"users","resume":{"epoch":"e","serial":3}}}"#;
        let Ok(ClientMessage::Subscribe { resume: Some(r), .. }) = ClientMessage::parse(frame) else {
            panic!("not a subscribe with a position")
        };
        assert_eq!((r.epoch.as_deref(), r.serial), (Some("e"), Some(3)));
        assert_eq!(
            position("users", "e", 3, None),
            r#"{"event":"poussr:position","channel":"users","data":"{\"epoch\":\"e\",\"serial\":3}"}"#
        );
    }

    #[test]
    fn unsubscribe_and_its_misspelled_alias() {
        for event in ["poussr:unsubscribe", "poussr::unsusbscribe"] {
            let frame = format!(r#"{{"event":"{event}","data":{{"channel":"users"}}}}"#);
            assert_eq!(ClientMessage::parse(&frame), Ok(ClientMessage::Unsubscribe { channel: "users".into() }));
        }
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert!(matches!(ClientMessage::parse("nope"), Err(FrameError::Malformed(_))));
        assert_eq!(
            ClientMessage::parse(r#"{"event":"poussr:publish"}"#),
            Err(FrameError::UnknownEvent("poussr:publish".into()))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"event":"poussr:subscribe","data":"users"}"#),
            Err(FrameError::NoChannel("poussr:subscribe".into()))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"event":"poussr:subscribe"}"#),
            Err(FrameError::NoChannel("poussr:subscribe".into()))
        );
    }

    #[test]
    fn server_frames() {
        assert_eq!(subscription_succeeded("users"), r#"{"event":"poussr:subscription_succeeded","channel":"users"}"#);
        assert_eq!(error(4000, "bad"), r#"{"event":"poussr:error","data":{"message":"bad","code":4000}}"#);
    }
}
