//! Pusher Channels protocol 7: the frames a client sends, parsed into [`ClientMessage`], and the frames
//! the hub sends, built as JSON text in the canonical form (`data` double-encoded as a JSON string
//! wherever Pusher does, since the .NET and Swift clients accept nothing else).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol versions the hub speaks. Versions 5 and 6 differ from 7 only in things the hub does not
/// use, so their clients are served as version 7 clients.
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 5..=7;

/// A frame from a client, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `pusher:ping`: answer with `pusher:pong`.
    Ping,
    /// `pusher:pong`: the answer to the hub's ping.
    Pong,
    /// `pusher:subscribe`.
    Subscribe(Subscribe),
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel to leave (not yet validated).
        channel: String,
    },
    /// `pusher:signin`.
    Signin {
        /// `"{app_key}:{hex signature}"`.
        auth: String,
        /// The JSON string describing the user, exactly as signed.
        user_data: String,
    },
    /// A `client-*` event to relay to the channel's other members.
    ClientEvent {
        /// The event name, starting with `client-`.
        event: String,
        /// The channel it is sent on (not yet validated).
        channel: String,
        /// The payload, as the client sent it.
        data: Value,
    },
}

/// The fields of `pusher:subscribe`. The channel name is validated by the session, which then answers
/// with a `pusher:subscription_error` naming the channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subscribe {
    /// The channel to join.
    pub channel: String,
    /// The signature for private and presence channels.
    #[serde(default)]
    pub auth: Option<String>,
    /// For presence channels: the JSON string with `user_id` and `user_info`, exactly as signed.
    #[serde(default)]
    pub channel_data: Option<String>,
    /// A Poussr extension (docs/protocol.md §7): the client counts the channel's positions and, with a
    /// position, asks for the events it missed since.
    #[serde(default)]
    pub poussr_resume: Option<super::resume::Resume>,
}

/// Why a client frame was not understood. The message goes back to the client in `pusher:error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame was not JSON.
    #[error("the frame is not valid JSON: {0}")]
    NotJson(String),
    /// The frame was JSON but not an object with a string `event`.
    #[error("the frame must be a JSON object with a string \"event\" field")]
    NoEvent,
    /// `pusher_internal:*` events are sent by the hub only.
    #[error("\"{0}\" is reserved for the server; clients may not send pusher_internal events")]
    Reserved(String),
    /// A `pusher:*` event the hub does not know, or another non-`client-` event.
    #[error(
        "unknown event \"{0}\"; clients send pusher:subscribe, pusher:unsubscribe, pusher:ping, pusher:pong, pusher:signin or client-* events"
    )]
    UnknownEvent(String),
    /// A known event whose `data` or `channel` had the wrong shape.
    #[error("invalid {event}: {reason}")]
    BadData {
        /// The event whose data was wrong.
        event: String,
        /// What was wrong with it.
        reason: String,
    },
}

#[derive(Deserialize)]
struct RawFrame {
    event: Value,
    #[serde(default)]
    channel: Option<Value>,
    #[serde(default)]
    data: Option<Value>,
}

/// `data` may be an object, or (from some clients) a JSON-encoded string of one.
fn data_object<T: serde::de::DeserializeOwned>(event: &str, data: Option<Value>) -> Result<T, FrameError> {
    let bad = |reason: String| FrameError::BadData { event: event.to_owned(), reason };
    let value = match data {
        Some(Value::String(s)) => {
            serde_json::from_str(&s).map_err(|e| bad(format!("data is a string that is not a JSON object: {e}")))?
        }
        Some(v) => v,
        None => return Err(bad("\"data\" is missing".into())),
    };
    super::from_object(value).map_err(bad)
}

#[derive(Deserialize)]
struct ChannelOnly {
    channel: String,
}

#[derive(Deserialize)]
struct SigninData {
    auth: String,
    user_data: String,
}

impl ClientMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let raw: RawFrame = super::object_from_str(text)
            .map_err(|e| if e.is_data() { FrameError::NoEvent } else { FrameError::NotJson(e.to_string()) })?;
        let Value::String(event) = raw.event else {
            return Err(FrameError::NoEvent);
        };
        match event.as_str() {
            "pusher:ping" => Ok(ClientMessage::Ping),
            "pusher:pong" => Ok(ClientMessage::Pong),
            "pusher:subscribe" => Ok(ClientMessage::Subscribe(data_object(&event, raw.data)?)),
            "pusher:unsubscribe" => {
                let ChannelOnly { channel } = data_object(&event, raw.data)?;
                Ok(ClientMessage::Unsubscribe { channel })
            }
            "pusher:signin" => {
                let SigninData { auth, user_data } = data_object(&event, raw.data)?;
                Ok(ClientMessage::Signin { auth, user_data })
            }
            e if e.starts_with("pusher_internal:") => Err(FrameError::Reserved(event)),
            e if e.starts_with("client-") => {
                let channel = match raw.channel {
                    Some(Value::String(c)) => c,
                    _ => {
                        return Err(FrameError::BadData {
                            event,
                            reason: "a client event needs a string \"channel\"".into(),
                        });
                    }
                };
                Ok(ClientMessage::ClientEvent { event, channel, data: raw.data.unwrap_or(Value::Null) })
            }
            _ => Err(FrameError::UnknownEvent(event)),
        }
    }
}

/// Who a presence subscriber is, read from its signed `channel_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceMember {
    /// `user_id`, as a string (a number is accepted and written in decimal, as Laravel sends them).
    pub user_id: String,
    /// `user_info`, or `null` when absent.
    pub user_info: Value,
}

/// Reads a presence `channel_data` string: a JSON object with a `user_id` of at most `max_id_chars`
/// characters and an optional `user_info` of at most `max_info_bytes` bytes of JSON.
pub fn parse_channel_data(
    channel_data: &str,
    max_id_chars: usize,
    max_info_bytes: usize,
) -> Result<PresenceMember, String> {
    let value: Value =
        serde_json::from_str(channel_data).map_err(|e| format!("channel_data is not valid JSON ({e})"))?;
    let Value::Object(mut object) = value else {
        return Err("channel_data must be a JSON object with user_id and user_info".into());
    };
    let user_id = match object.remove("user_id") {
        Some(Value::String(id)) if !id.is_empty() => id,
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(_)) => return Err("user_id in channel_data is empty".into()),
        Some(_) => return Err("user_id in channel_data must be a string or a number".into()),
        None => return Err("channel_data has no user_id".into()),
    };
    let chars = user_id.chars().count();
    if chars > max_id_chars {
        return Err(format!("user_id is {chars} characters long; the limit is {max_id_chars}"));
    }
    let user_info = object.remove("user_info").unwrap_or(Value::Null);
    let bytes = encoded(&user_info).len();
    if bytes > max_info_bytes {
        return Err(format!("user_info is {bytes} bytes of JSON; the limit is {max_info_bytes}"));
    }
    Ok(PresenceMember { user_id, user_info })
}

/// Reads the `id` of a signed-in user from `user_data` (a JSON object with a non-empty string `id`).
pub fn parse_user_id(user_data: &str, max_id_chars: usize) -> Result<String, String> {
    let value: Value = serde_json::from_str(user_data).map_err(|e| format!("user_data is not valid JSON ({e})"))?;
    let id = match value.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("user_data must be a JSON object with a non-empty string \"id\"".into()),
    };
    let chars = id.chars().count();
    if chars > max_id_chars {
        return Err(format!("the user id is {chars} characters long; the limit is {max_id_chars}"));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c)) {
        return Err(format!(
            "the user id {id:?} may hold only A-Z a-z 0-9 and _ - = @ , . ; (it becomes part of a channel name)"
        ));
    }
    Ok(id)
}

#[derive(Serialize)]
struct Frame<'a, D> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    data: D,
}

pub(super) fn frame<D: Serialize>(event: &str, channel: Option<&str>, data: D) -> String {
    // Serializing strings, numbers and derived structs into a String cannot fail.
    serde_json::to_string(&Frame { event, channel, data }).expect("frame serializes")
}

pub(super) fn encoded<D: Serialize>(data: &D) -> String {
    serde_json::to_string(data).expect("frame data serializes")
}

/// `pusher:connection_established`, with `data` double-encoded.
pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        socket_id: &'a str,
        activity_timeout: u64,
    }
    frame("pusher:connection_established", None, encoded(&Data { socket_id, activity_timeout: activity_timeout_secs }))
}

/// `pusher:error`; `data` is an object. `code` is set for the errors that close the connection and
/// `null` for the ones that only report a bad frame, as the Pusher protocol allows.
pub fn error(code: Option<u16>, message: &str) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        code: Option<u16>,
        message: &'a str,
    }
    frame("pusher:error", None, Data { code, message })
}

/// `pusher:ping`, sent when a connection has been silent for the activity timeout.
pub fn ping() -> String {
    frame("pusher:ping", None, serde_json::json!({}))
}

/// `pusher:pong`, the answer to every `pusher:ping`.
pub fn pong() -> String {
    frame("pusher:pong", None, serde_json::json!({}))
}

/// `pusher_internal:subscription_succeeded` with `data` already encoded (`"{}"` for non-presence channels).
pub fn subscription_succeeded(channel: &str, data: &str) -> String {
    frame("pusher_internal:subscription_succeeded", Some(channel), data)
}

/// `pusher:subscription_error`; `data` is an object with `type`, `error` and `status`.
pub fn subscription_error(channel: &str, kind: SubscriptionErrorKind, error: &str, status: u16) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        #[serde(rename = "type")]
        kind: SubscriptionErrorKind,
        error: &'a str,
        status: u16,
    }
    frame("pusher:subscription_error", Some(channel), Data { kind, error, status })
}

/// The `type` of a `pusher:subscription_error`: what kind of problem the client has to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SubscriptionErrorKind {
    /// The channel name is not valid.
    InvalidChannel,
    /// The auth signature is missing or wrong, or the connection is not the user a channel belongs to.
    AuthError,
    /// A presence subscription's `channel_data` is missing or malformed.
    InvalidChannelData,
    /// A limit of the hub was reached (channels per connection, presence members) or it is shutting down.
    LimitReached,
}

/// `pusher_internal:member_added`, with `data` = `{"user_id","user_info"}` double-encoded.
pub fn member_added(channel: &str, user_id: &str, user_info: &Value) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a str,
        user_info: &'a Value,
    }
    frame("pusher_internal:member_added", Some(channel), encoded(&Data { user_id, user_info }))
}

/// `pusher_internal:member_removed`, with `data` = `{"user_id"}` double-encoded.
pub fn member_removed(channel: &str, user_id: &str) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a str,
    }
    frame("pusher_internal:member_removed", Some(channel), encoded(&Data { user_id }))
}

/// The `data` of a presence channel's `subscription_succeeded`: `{"presence":{"ids","hash","count"}}`,
/// encoded. `members` are (user id, user info) in the order they joined.
pub fn presence_data<'a>(members: impl Iterator<Item = (&'a str, &'a Value)> + Clone) -> String {
    #[derive(Serialize)]
    struct Presence<'a> {
        ids: Vec<&'a str>,
        hash: serde_json::Map<String, Value>,
        count: usize,
    }
    #[derive(Serialize)]
    struct Data<'a> {
        presence: Presence<'a>,
    }
    let ids: Vec<&str> = members.clone().map(|(id, _)| id).collect();
    let hash = members.map(|(id, info)| (id.to_owned(), info.clone())).collect();
    encoded(&Data { presence: Presence { count: ids.len(), ids, hash } })
}

/// `pusher:cache_miss`: a cache channel had no event to give a new subscriber.
pub fn cache_miss(channel: &str) -> String {
    #[derive(Serialize)]
    struct Miss<'a> {
        event: &'a str,
        channel: &'a str,
    }
    serde_json::to_string(&Miss { event: "pusher:cache_miss", channel }).expect("frame serializes")
}

/// `pusher:signin_success`, with `data` = `{"user_data"}` double-encoded.
pub fn signin_success(user_data: &str) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        user_data: &'a str,
    }
    frame("pusher:signin_success", None, encoded(&Data { user_data }))
}

/// An application event: `data` is the published string, exactly as published. The same frame serves
/// Poussr v1 subscribers, whose delivery frame has the same three fields.
pub fn event(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Event<'a> {
        event: &'a str,
        channel: &'a str,
        data: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
    }
    serde_json::to_string(&Event { event, channel, data, user_id }).expect("event serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_are_not_objects() {
        // serde would read a struct from an array of its fields; the protocol speaks of objects only.
        assert_eq!(ClientMessage::parse(r#"["pusher:ping"]"#), Err(FrameError::NoEvent));
        let smuggled = r#"{"event":"pusher:subscribe","data":["array-smuggled"]}"#;
        assert!(matches!(ClientMessage::parse(smuggled), Err(FrameError::BadData { .. })));
        let as_string = r#"{"event":"pusher:subscribe","data":"[\"array-smuggled\"]"}"#;
        assert!(matches!(ClientMessage::parse(as_string), Err(FrameError::BadData { .. })));
    }

    #[test]
    fn connection_established_is_double_encoded() {
        assert_eq!(
            connection_established("123.456", 120),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#
        );
    }

    #[test]
    fn error_data_is_an_object() {
        assert_eq!(error(Some(4001), "no"), r#"{"event":"pusher:error","data":{"code":4001,"message":"no"}}"#);
        assert_eq!(error(None, "bad"), r#"{"event":"pusher:error","data":{"code":null,"message":"bad"}}"#);
    }

    #[test]
    fn ping_pong_shapes() {
        assert_eq!(ping(), r#"{"event":"pusher:ping","data":{}}"#);
        assert_eq!(pong(), r#"{"event":"pusher:pong","data":{}}"#);
    }

    #[test]
    fn subscription_frames() {
        assert_eq!(
            subscription_succeeded("room", "{}"),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"room","data":"{}"}"#
        );
        assert_eq!(
            subscription_error("private-x", SubscriptionErrorKind::AuthError, "bad", 401),
            r#"{"event":"pusher:subscription_error","channel":"private-x","data":{"type":"AuthError","error":"bad","status":401}}"#
        );
    }

    #[test]
    fn channel_data_is_checked_with_clear_reasons() {
        let m = parse_channel_data(r#"{"user_id":"7","user_info":{"name":"Ann"}}"#, 128, 1024).unwrap();
        assert_eq!(m, PresenceMember { user_id: "7".into(), user_info: json!({"name":"Ann"}) });
        assert_eq!(parse_channel_data(r#"{"user_id":42}"#, 128, 1024).unwrap().user_id, "42");
        assert_eq!(parse_channel_data(r#"{"user_id":"a"}"#, 128, 1024).unwrap().user_info, Value::Null);
        let cases = [
            ("nope", "not valid JSON"),
            ("[1]", "JSON object"),
            (r#"{"user_info":{}}"#, "no user_id"),
            (r#"{"user_id":""}"#, "empty"),
            (r#"{"user_id":true}"#, "string or a number"),
        ];
        for (data, why) in cases {
            let err = parse_channel_data(data, 128, 1024).unwrap_err();
            assert!(err.contains(why), "{data}: {err}");
        }
        let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129));
        assert!(parse_channel_data(&long, 128, 1024).unwrap_err().contains("129 characters"));
        let big = format!(r#"{{"user_id":"a","user_info":"{}"}}"#, "x".repeat(1030));
        assert!(parse_channel_data(&big, 128, 1024).unwrap_err().contains("limit is 1024"));
    }

    #[test]
    fn user_data_needs_a_usable_id() {
        assert_eq!(parse_user_id(r#"{"id":"alice","name":"A"}"#, 128).unwrap(), "alice");
        assert_eq!(parse_user_id(r#"{"id":7}"#, 128).unwrap(), "7");
        assert!(parse_user_id(r#"{"name":"A"}"#, 128).unwrap_err().contains("\"id\""));
        assert!(parse_user_id(r#"{"id":"a b"}"#, 128).unwrap_err().contains("may hold only"));
        assert!(parse_user_id("x", 128).unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn presence_frames_are_double_encoded() {
        let info = json!({"name": "Ann"});
        assert_eq!(
            member_added("presence-a", "7", &info),
            r#"{"event":"pusher_internal:member_added","channel":"presence-a","data":"{\"user_id\":\"7\",\"user_info\":{\"name\":\"Ann\"}}"}"#
        );
        assert_eq!(
            member_removed("presence-a", "7"),
            r#"{"event":"pusher_internal:member_removed","channel":"presence-a","data":"{\"user_id\":\"7\"}"}"#
        );
        let null = Value::Null;
        let data = presence_data([("7", &info), ("8", &null)].into_iter());
        let parsed: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            parsed,
            json!({"presence": {"ids": ["7", "8"], "hash": {"7": {"name": "Ann"}, "8": null}, "count": 2}})
        );
    }

    #[test]
    fn cache_miss_and_signin_success() {
        assert_eq!(cache_miss("cache-x"), r#"{"event":"pusher:cache_miss","channel":"cache-x"}"#);
        assert_eq!(
            signin_success(r#"{"id":"7"}"#),
            r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"7\\\"}\"}"}"#
        );
    }

    #[test]
    fn application_event_keeps_data_verbatim() {
        assert_eq!(
            event("order-created", "orders", r#"{"id":1}"#, None),
            r#"{"event":"order-created","channel":"orders","data":"{\"id\":1}"}"#
        );
        assert_eq!(
            event("client-typing", "presence-a", "x", Some("7")),
            r#"{"event":"client-typing","channel":"presence-a","data":"x","user_id":"7"}"#
        );
    }

    #[test]
    fn a_subscribe_may_ask_to_resume_from_a_position() {
        let frame = json!({"event":"pusher:subscribe","data":{"channel":"room",
            "poussr_resume":{"epoch":"e1","serial":17,"socket_ids":["1.2"]}}})
        .to_string();
        let ClientMessage::Subscribe(sub) = ClientMessage::parse(&frame).unwrap() else { panic!("not a subscribe") };
        let resume = sub.poussr_resume.unwrap();
        assert_eq!(
            (resume.epoch.as_deref(), resume.serial, resume.socket_ids),
            (Some("e1"), Some(17), vec!["1.2".into()])
        );
        let counting = json!({"event":"pusher:subscribe","data":{"channel":"room","poussr_resume":{}}}).to_string();
        let ClientMessage::Subscribe(sub) = ClientMessage::parse(&counting).unwrap() else { panic!("not a subscribe") };
        assert_eq!(sub.poussr_resume, Some(super::super::resume::Resume::default()));
        let bad = json!({"event":"pusher:subscribe","data":{"channel":"room","poussr_resume":{"serial":"x"}}});
        assert!(ClientMessage::parse(&bad.to_string()).is_err(), "a malformed position is an error, not ignored");
    }

    #[test]
    fn parses_subscribe_with_object_or_string_data() {
        let want = ClientMessage::Subscribe(Subscribe {
            channel: "room".into(),
            auth: Some("k:s".into()),
            channel_data: None,
            poussr_resume: None,
        });
        let obj = json!({"event":"pusher:subscribe","data":{"channel":"room","auth":"k:s"}}).to_string();
        let string = json!({"event":"pusher:subscribe","data":"{\"channel\":\"room\",\"auth\":\"k:s\"}"}).to_string();
        assert_eq!(ClientMessage::parse(&obj).unwrap(), want);
        assert_eq!(ClientMessage::parse(&string).unwrap(), want);
    }

    #[test]
    fn parses_ping_unsubscribe_signin_and_client_events() {
        assert_eq!(ClientMessage::parse(r#"{"event":"pusher:ping","data":{}}"#).unwrap(), ClientMessage::Ping);
        assert_eq!(ClientMessage::parse(r#"{"event":"pusher:pong"}"#).unwrap(), ClientMessage::Pong);
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:unsubscribe","data":{"channel":"a"}}"#).unwrap(),
            ClientMessage::Unsubscribe { channel: "a".into() }
        );
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{}"}}"#).unwrap(),
            ClientMessage::Signin { auth: "k:s".into(), user_data: "{}".into() }
        );
        assert_eq!(
            ClientMessage::parse(r#"{"event":"client-t","channel":"private-a","data":{"x":1}}"#).unwrap(),
            ClientMessage::ClientEvent { event: "client-t".into(), channel: "private-a".into(), data: json!({"x":1}) }
        );
    }

    #[test]
    fn rejects_bad_frames_with_a_reason() {
        assert!(matches!(ClientMessage::parse("{nope"), Err(FrameError::NotJson(_))));
        assert_eq!(ClientMessage::parse("[1,2]"), Err(FrameError::NoEvent));
        assert_eq!(ClientMessage::parse(r#"{"event":5}"#), Err(FrameError::NoEvent));
        assert_eq!(ClientMessage::parse(r#"{"data":{}}"#), Err(FrameError::NoEvent));
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:foo"}"#),
            Err(FrameError::UnknownEvent("pusher:foo".into()))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher_internal:subscription_succeeded","channel":"a"}"#),
            Err(FrameError::Reserved("pusher_internal:subscription_succeeded".into()))
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(FrameError::BadData { .. })
        ));
        assert!(matches!(ClientMessage::parse(r#"{"event":"pusher:subscribe"}"#), Err(FrameError::BadData { .. })));
        assert!(matches!(ClientMessage::parse(r#"{"event":"client-x","data":{}}"#), Err(FrameError::BadData { .. })));
    }
}
