//! The wire protocols, with no I/O and no async: frames in and out, channel names, signatures and close
//! codes. Everything here is a pure function over bytes and JSON, so it is tested without a runtime.

pub mod channel;
pub mod close;
pub mod frame;
pub mod pusher;
pub mod resume;
pub mod signature;
pub mod v1;

pub use channel::{ChannelKind, ChannelName, InvalidChannelName};
pub use close::{CloseCode, ClosedBy};
pub use frame::Frame;

/// Parses `text` as a JSON object into `T`: a JSON array is refused (as a data error), and so is a key
/// given twice (serde's derived structs refuse duplicates; a map would keep the last one silently).
pub fn object_from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    if text.trim_start().starts_with('[') {
        // Said to be "not JSON" if it is not, else "not an object".
        serde_json::from_str::<serde::de::IgnoredAny>(text)?;
        return Err(serde::de::Error::invalid_type(serde::de::Unexpected::Seq, &"a JSON object"));
    }
    serde_json::from_str(text)
}

/// Reads a JSON object into `T`. serde's derived structs also accept a JSON array of the fields in order
/// (`["pusher:ping"]`); the protocols speak of objects only, so anything else is refused here.
pub fn from_object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    match value {
        serde_json::Value::Object(_) => serde_json::from_value(value).map_err(|e| e.to_string()),
        serde_json::Value::Array(_) => Err("a JSON array where a JSON object is expected".into()),
        other => Err(format!("expected a JSON object, found {other}")),
    }
}

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Pusher Channels protocol 7, at `/app/{key}`.
    Pusher,
    /// The original Poussr v1 protocol, at `/` and `/v1/ws`.
    PoussrV1,
}
