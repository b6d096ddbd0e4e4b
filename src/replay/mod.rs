//! Recordings, and playing them again: the format (JSON Lines, docs/recording.md), its parser, the replay
//! options (speed, channel map, app), and the [`Player`] that publishes a recording's events on their
//! original schedule through a publish function given by the caller. It knows no UI and no HTTP server:
//! `poussr replay` publishes through the signed HTTP API, the admin API through the hub itself.
//!
//! A recording is read whole and checked whole before anything is published: a refusal names the line
//! and what is wrong with it, and a refused recording publishes nothing.

mod player;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::protocol::ChannelName;

pub use player::{Player, Progress, PublishFn, State};

/// The `format` of a recording's header.
pub const FORMAT: &str = "poussr-recording";
/// The version of the format this Poussr writes and reads.
pub const VERSION: u64 = 1;
/// The slowest replay speed.
pub const MIN_SPEED: f64 = 0.5;
/// The fastest replay speed.
pub const MAX_SPEED: f64 = 10.0;
/// The `type` of the entries replay publishes.
pub const PUBLISHED: &str = "event_published";

/// The first line of a recording: the header, without its line break. `filter` says what was recorded
/// (the search that chose the events, say); it is written as given and ignored by replay.
pub fn header(recorded_at_ms: u64, filter: Value) -> String {
    let mut header = Map::new();
    header.insert("format".into(), FORMAT.into());
    header.insert("version".into(), VERSION.into());
    header.insert("recorded_at_ms".into(), recorded_at_ms.into());
    if !filter.is_null() {
        header.insert("filter".into(), filter);
    }
    Value::Object(header).to_string()
}

/// Why a recording or its options were refused: the line (from 1; 0 when the options are wrong) and what
/// is wrong. Shown as `line 7: "data" must be a string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The line of the recording, from 1; 0 for a refusal that is about no line (the options).
    pub line: usize,
    /// What is wrong, in words.
    pub reason: String,
}

impl Refusal {
    fn at(line: usize, reason: impl Into<String>) -> Self {
        Refusal { line, reason: reason.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 { f.write_str(&self.reason) } else { write!(f, "line {}: {}", self.line, self.reason) }
    }
}

impl std::error::Error for Refusal {}

/// One event of a recording, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its line in the recording, from 1.
    pub line: usize,
    /// When it was published, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The app it was published to, if the recording says (or the app given to replay into).
    pub app_id: Option<String>,
    /// The channel (after the channel map).
    pub channel: ChannelName,
    /// The event name.
    pub event: String,
    /// The data string, as published.
    pub data: String,
}

/// A recording that was read and checked whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// When it was recorded, from its header.
    pub recorded_at_ms: u64,
    /// The events replay publishes, oldest first.
    pub events: Vec<Event>,
    /// Entries of other types (connections, webhooks…), which replay skips.
    pub skipped: usize,
}

const NOT_A_RECORDING: &str =
    "not a Poussr recording (the first line must be the header {\"format\":\"poussr-recording\",\"version\":1,...})";

/// Reads and checks a whole recording. Blank lines are skipped (and counted in line numbers).
pub fn parse(text: &str) -> Result<Recording, Refusal> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    let recorded_at_ms = parse_header(lines.next().unwrap_or(""))?;
    let mut events: Vec<Event> = Vec::new();
    let mut skipped = 0;
    for (i, line) in lines.enumerate() {
        let number = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        match parse_entry(line).map_err(|reason| Refusal::at(number, reason))? {
            None => skipped += 1,
            Some(mut event) => {
                event.line = number;
                if let Some(before) = events.last()
                    && event.at_ms < before.at_ms
                {
                    return Err(Refusal::at(
                        number,
                        format!(
                            "at_ms goes back in time ({} < {}, the event of line {})",
                            event.at_ms, before.at_ms, before.line
                        ),
                    ));
                }
                events.push(event);
            }
        }
    }
    Ok(Recording { recorded_at_ms, events, skipped })
}

/// The JSON of one line, or why it is not JSON (the position within the line, which is always line 1 of
/// what serde saw, is given as a column).
fn json(line: &str) -> Result<Value, String> {
    serde_json::from_str(line).map_err(|e| {
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        format!("not JSON: {message} (column {})", e.column())
    })
}

fn parse_header(line: &str) -> Result<u64, Refusal> {
    let refuse = |reason: String| Refusal::at(1, reason);
    let header = match json(line) {
        Ok(Value::Object(header)) if header.get("format").and_then(Value::as_str) == Some(FORMAT) => header,
        _ => return Err(refuse(NOT_A_RECORDING.into())),
    };
    match header.get("version") {
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) if v.is_u64() => {
            return Err(refuse(format!(
                "this is a Poussr recording of version {v}; this Poussr reads version {VERSION}"
            )));
        }
        _ => {
            return Err(refuse(format!(
                "the header's \"version\" must be a whole number (this Poussr reads {VERSION})"
            )));
        }
    }
    header
        .get("recorded_at_ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| refuse("the header's \"recorded_at_ms\" must be a whole number of milliseconds".into()))
}

/// One entry: `Some` event to publish, `None` for an entry of another type.
fn parse_entry(line: &str) -> Result<Option<Event>, String> {
    let Value::Object(entry) = json(line)? else {
        return Err("an entry must be a JSON object".into());
    };
    let kind = entry
        .get("type")
        .and_then(Value::as_str)
        .ok_or("\"type\" must be a string (each entry names its type, e.g. \"event_published\")")?;
    if kind != PUBLISHED {
        return Ok(None);
    }
    let string = |field: &str| match entry.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("\"{field}\" must be a string")),
    };
    let at_ms = entry
        .get("at_ms")
        .and_then(Value::as_u64)
        .ok_or("\"at_ms\" must be a whole number of milliseconds since the Unix epoch")?;
    let channel = string("channel")?;
    let channel = ChannelName::parse(&channel).map_err(|e| format!("invalid channel {channel:?}: {e}"))?;
    let event = string("event")?;
    if event.is_empty() {
        return Err("\"event\" (the event name) is empty".into());
    }
    let data = string("data")?;
    let app_id = match entry.get("app_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err("\"app_id\" must be a string".into()),
    };
    Ok(Some(Event { line: 0, at_ms, app_id, channel, event, data }))
}

/// How a recording is played: its speed, which channels go elsewhere, and which app receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// 1 plays at the recorded pace, 2 twice as fast ([`MIN_SPEED`] to [`MAX_SPEED`]).
    pub speed: f64,
    /// Original channel → the channel it is published on instead.
    pub map: BTreeMap<String, ChannelName>,
    /// The app every event goes to, whatever the recording says.
    pub app_id: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options { speed: 1.0, map: BTreeMap::new(), app_id: None }
    }
}

impl Options {
    /// Options with `speed` (checked), no map and no app.
    pub fn with_speed(speed: f64) -> Result<Self, Refusal> {
        Ok(Options { speed: check_speed(speed)?, ..Options::default() })
    }

    /// Adds `from` → `to` to the channel map; both must be valid channel names, and `from` mapped once.
    pub fn map_channel(&mut self, from: &str, to: &str) -> Result<(), Refusal> {
        let options = |reason: String| Refusal::at(0, reason);
        ChannelName::parse(from).map_err(|e| options(format!("the channel map: invalid channel {from:?}: {e}")))?;
        let to =
            ChannelName::parse(to).map_err(|e| options(format!("the channel map: invalid channel {to:?}: {e}")))?;
        if self.map.insert(from.to_owned(), to).is_some() {
            return Err(options(format!("the channel map names {from:?} twice")));
        }
        Ok(())
    }

    /// Adds a mapping written `from=to` (as `--map` takes it).
    pub fn map_pair(&mut self, pair: &str) -> Result<(), Refusal> {
        let (from, to) = pair.split_once('=').ok_or_else(|| {
            Refusal::at(0, format!("a channel map is written FROM=TO (orders=test-orders), not {pair:?}"))
        })?;
        self.map_channel(from.trim(), to.trim())
    }

    /// The recording's events as they are published: channels mapped, the app replaced if one was given.
    pub fn apply(&self, recording: &Recording) -> Vec<Event> {
        recording
            .events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Some(to) = self.map.get(e.channel.as_str()) {
                    e.channel = to.clone();
                }
                if let Some(app) = &self.app_id {
                    e.app_id = Some(app.clone());
                }
                e
            })
            .collect()
    }
}

/// `speed` if it is within [`MIN_SPEED`]..=[`MAX_SPEED`].
pub fn check_speed(speed: f64) -> Result<f64, Refusal> {
    if (MIN_SPEED..=MAX_SPEED).contains(&speed) {
        Ok(speed)
    } else {
        Err(Refusal::at(0, format!("the speed must be between {MIN_SPEED} and {MAX_SPEED} (×), not {speed}")))
    }
}

/// How long `events` take to play at `speed`: from the first to the last.
pub fn duration(events: &[Event], speed: f64) -> std::time::Duration {
    match (events.first(), events.last()) {
        (Some(first), Some(last)) => player::offset(last.at_ms - first.at_ms, speed),
        _ => std::time::Duration::ZERO,
    }
}

#[cfg(test)]
mod tests;
