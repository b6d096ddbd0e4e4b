//! The console's search over what the hub kept on disk (docs/protocol.md §6.11): published events from the
//! history store, every other kind from the console journal, merged by time into one page, newest first.
//!
//! - `GET /admin/api/search?kinds=&channel=&event=&socket_id=&text=&from_ms=&to_ms=&before=&limit=` → a page;
//! - `GET /admin/api/search/recording?<the same filters>` → the matches as a recording, oldest first;
//! - `GET /admin/api/journal` → the journal's figures.
//!
//! The order is (time, source, position in the source), newest first; the cursor (`next`, given back as
//! `before`) names one entry in it, so a page starts strictly after the last one even when many entries
//! share a millisecond.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::{ApiError, AppState};
use crate::history::search::{self as history_search, SearchError};
use crate::hub::Hub;
use crate::monitor::journal::{self, Found};
use crate::monitor::{Kind, now_ms};

/// Entries in a page when the request names no `limit`.
const DEFAULT_LIMIT: usize = 100;
/// Most entries in a page.
const MAX_LIMIT: usize = 500;
/// Most entries in a recording.
const MAX_RECORDING: usize = 100_000;
/// Most bytes in a recording: what the dashboard's replay takes (32 MiB of JSON) with room for the escaping
/// of its text.
const MAX_RECORDING_BYTES: usize = 16 << 20;
/// Entries read from each source at a time while a recording is gathered.
const RECORDING_PAGE: usize = 2_000;

/// The admin routes of this module (behind the admin guard).
pub(super) fn routes() -> Router<AppState> {
    // CORS preflights are answered by the admin guard; these only give the method a route.
    let preflight = || async { StatusCode::NO_CONTENT };
    Router::new()
        .route("/admin/api/search", get(search).options(preflight))
        .route("/admin/api/search/recording", get(recording).options(preflight))
        .route("/admin/api/journal", get(journal_stats).options(preflight))
}

/// Which store an entry comes from; at equal times, journal entries come first (newest first order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    History,
    Journal,
}

/// An entry's place in the merged order: (time, source, then the source's own position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cursor {
    at_ms: u64,
    source: Source,
    a: i64,
    b: u64,
}

impl Cursor {
    fn encode(self) -> String {
        match self.source {
            Source::Journal => format!("j.{}.{}", self.at_ms, self.a),
            Source::History => format!("h.{}.{}.{}", self.at_ms, self.a, self.b),
        }
    }

    fn parse(text: &str) -> Option<Cursor> {
        let parts: Vec<&str> = text.split('.').collect();
        match parts[..] {
            ["j", at, id] => {
                Some(Cursor { at_ms: at.parse().ok()?, source: Source::Journal, a: id.parse().ok()?, b: 0 })
            }
            ["h", at, ch, serial] => Some(Cursor {
                at_ms: at.parse().ok()?,
                source: Source::History,
                a: ch.parse().ok()?,
                b: serial.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// Where the journal's part of the next page starts.
    fn journal_before(self) -> journal::Before {
        match self.source {
            Source::Journal => journal::Before { at_ms: self.at_ms, id: Some(self.a) },
            // Journal entries at this time came before the history entry: they were given already.
            Source::History => journal::Before { at_ms: self.at_ms, id: None },
        }
    }

    /// Where the history's part of the next page starts.
    fn history_before(self) -> history_search::Before {
        match self.source {
            Source::History => history_search::Before { at_ms: self.at_ms, key: Some((self.a, self.b)) },
            // History entries at this time come after the journal entry: all of them are still to give.
            Source::Journal => history_search::Before { at_ms: self.at_ms.saturating_add(1), key: None },
        }
    }
}

/// A search's parameters.
#[derive(Debug, Clone)]
struct Params {
    kinds: Vec<Kind>,
    channel: Option<String>,
    event: Option<String>,
    socket_id: Option<String>,
    text: Option<String>,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
    before: Option<Cursor>,
    limit: usize,
}

impl Params {
    fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let mut p = Params {
            kinds: Kind::ALL.to_vec(),
            channel: None,
            event: None,
            socket_id: None,
            text: None,
            from_ms: None,
            to_ms: None,
            before: None,
            limit: DEFAULT_LIMIT,
        };
        let time = |name: &str, v: &str| {
            v.parse::<u64>().map_err(|_| {
                bad(format!("{name} must be a whole number of milliseconds since the Unix epoch, not {v:?}"))
            })
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let text = (!v.trim().is_empty()).then(|| v.trim().to_owned());
            match &*k {
                "kinds" => {
                    let mut kinds = Vec::new();
                    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        let kind = Kind::parse(name).ok_or_else(|| {
                            let known: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                            bad(format!("unknown kind {name:?} (the kinds are {})", known.join(", ")))
                        })?;
                        if !kinds.contains(&kind) {
                            kinds.push(kind);
                        }
                    }
                    if !kinds.is_empty() {
                        p.kinds = kinds;
                    }
                }
                "channel" => p.channel = text,
                "event" => p.event = text,
                "socket_id" => p.socket_id = text,
                "text" => p.text = text,
                "from_ms" if text.is_some() => p.from_ms = Some(time("from_ms", &v)?),
                "to_ms" if text.is_some() => p.to_ms = Some(time("to_ms", &v)?),
                "before" if text.is_some() => {
                    p.before = Some(Cursor::parse(&v).ok_or_else(|| {
                        bad(format!("before {v:?} is not a cursor: give back the \"next\" of the page before"))
                    })?)
                }
                "limit" => {
                    p.limit =
                        v.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                            bad(format!("limit must be a whole number from 1 to {MAX_LIMIT}, not {v:?}"))
                        })?
                }
                "from_ms" | "to_ms" | "before" | "token" => {}
                other => return Err(bad(format!("unknown parameter {other:?}"))),
            }
        }
        if let (Some(from), Some(to)) = (p.from_ms, p.to_ms)
            && from > to
        {
            return Err(bad(format!("from_ms ({from}) is after to_ms ({to})")));
        }
        Ok(p)
    }

    /// The filter as a recording's header names it.
    fn filter(&self) -> Value {
        let mut filter = Map::new();
        filter.insert("kinds".into(), json!(self.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>()));
        for (name, value) in
            [("channel", &self.channel), ("event", &self.event), ("socket_id", &self.socket_id), ("text", &self.text)]
        {
            if let Some(v) = value {
                filter.insert(name.into(), json!(v));
            }
        }
        for (name, value) in [("from_ms", self.from_ms), ("to_ms", self.to_ms)] {
            if let Some(v) = value {
                filter.insert(name.into(), json!(v));
            }
        }
        Value::Object(filter)
    }
}

/// A page of the merged search.
struct Merged {
    entries: Vec<(Cursor, Value)>,
    next: Option<Cursor>,
    history: &'static str,
    journal: bool,
    notes: Vec<String>,
}

/// The part of the search each source answers, and what the page should say about the rest.
async fn merged(hub: &Hub, p: &Params) -> Result<Merged, ApiError> {
    let mut notes = Vec::new();
    let journal_kinds: Vec<Kind> = p.kinds.iter().copied().filter(|k| k.journaled()).collect();
    let (events, client_events) = (p.kinds.contains(&Kind::Event), p.kinds.contains(&Kind::ClientEvent));
    let history = hub.history();
    let history_state = match history {
        None => "off",
        Some(h) if h.is_shared() => "shared",
        Some(_) => "local",
    };
    // The journal's part.
    let mut found: Vec<(Cursor, Value)> = Vec::new();
    let mut more = false;
    if !journal_kinds.is_empty() {
        if p.event.is_some() {
            notes.push("the event filter applies to published events only: other kinds are left out".to_owned());
        } else if let Some(journal) = hub.journal() {
            let query = journal::Query {
                kinds: journal_kinds,
                channel: p.channel.clone(),
                socket_id: p.socket_id.clone(),
                app_id: None,
                text: p.text.clone(),
                from_ms: p.from_ms,
                to_ms: p.to_ms,
                before: p.before.map(Cursor::journal_before),
                limit: p.limit,
            };
            let page = journal.search(query).await.map_err(ApiError::Unavailable)?;
            more |= page.next.is_some();
            found.extend(page.entries.into_iter().map(journal_entry));
            if journal.is_stopped() {
                notes.push("the console journal stopped writing (see the hub's log): newer entries are missing".into());
            }
        } else {
            notes.push(hub.journal_error().unwrap_or("no console journal is kept").to_owned());
        }
    }
    // The history's part.
    if events || client_events {
        if p.socket_id.is_some() {
            notes.push("published events have no socket id: they are left out when socket_id is set".to_owned());
        } else if let Some(history) = history {
            let search = history_search::Search {
                app: None,
                channel: p.channel.clone(),
                event: p.event.clone(),
                text: p.text.clone(),
                client_events: if events && client_events { None } else { Some(client_events) },
                from_ms: p.from_ms,
                to_ms: p.to_ms,
                before: p.before.map(Cursor::history_before),
                limit: p.limit,
            };
            match history.search(search).await {
                Ok(page) => {
                    more |= page.next.is_some();
                    found.extend(page.events.into_iter().map(history_entry));
                }
                Err(SearchError::Shared) => {
                    notes.push(format!("published events are not searched: {}", SearchError::Shared));
                }
                Err(e @ (SearchError::TooSlow | SearchError::Stalled)) => {
                    return Err(ApiError::Unavailable(e.to_string()));
                }
                Err(e) => return Err(ApiError::Unavailable(format!("the history could not be searched: {e}"))),
            }
        } else {
            let why = hub.history_error().map_or_else(
                || "no history is kept (no history folder, or no app keeps history)".to_owned(),
                |e| format!("the history store cannot be used: {e}"),
            );
            notes.push(format!("published events are not searched: {why}"));
        }
    }
    let dropped = hub.monitor().journal_dropped();
    if dropped > 0 && hub.journal().is_some() {
        notes.push(format!("{dropped} entries were not journaled: the journal's queue was full"));
    }
    found.sort_by_key(|e| std::cmp::Reverse(e.0));
    more |= found.len() > p.limit;
    found.truncate(p.limit);
    let next = if more { found.last().map(|(c, _)| *c) } else { None };
    Ok(Merged { entries: found, next, history: history_state, journal: hub.journal().is_some(), notes })
}

/// A journal entry as the live feed sent it, with its kind.
fn journal_entry(e: Found) -> (Cursor, Value) {
    let cursor = Cursor { at_ms: e.at_ms, source: Source::Journal, a: e.id, b: 0 };
    let mut value = serde_json::from_str::<Value>(&e.text)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"type": "unreadable", "at_ms": e.at_ms, "text": e.text}));
    value["kind"] = json!(e.kind.as_str());
    (cursor, value)
}

/// A kept event in the live feed's shape for a published event.
fn history_entry(e: history_search::Found) -> (Cursor, Value) {
    let (a, b) = e.position.key.unwrap_or_default();
    let cursor = Cursor { at_ms: e.at_ms, source: Source::History, a, b };
    let kind = if e.event.starts_with("client-") { Kind::ClientEvent } else { Kind::Event };
    let value = json!({
        "type": "event_published",
        "kind": kind.as_str(),
        "at_ms": e.at_ms,
        "app_id": e.app_id,
        "channel": e.channel,
        "event": e.event,
        "data": e.data,
        "source": "history",
        "socket_id": e.except,
        "serial": e.serial,
        "delivered": null,
    });
    (cursor, value)
}

/// `GET /admin/api/search`: a page of matches, newest first.
async fn search(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(query.as_deref())?;
    let page = merged(&state.hub, &p).await?;
    Ok(Json(json!({
        "entries": page.entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "next": page.next.map(Cursor::encode),
        "history": page.history,
        "journal": page.journal,
        "notes": page.notes,
    })))
}

/// `GET /admin/api/search/recording`: every match (at most [`MAX_RECORDING`]) as a recording, oldest first.
async fn recording(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(query.as_deref())?;
    p.before = None;
    p.limit = RECORDING_PAGE;
    let mut lines: Vec<String> = Vec::new();
    let mut bytes = 0;
    loop {
        let page = merged(&state.hub, &p).await?;
        for (_, entry) in &page.entries {
            let line = entry.to_string();
            bytes += line.len() + 1;
            lines.push(line);
        }
        if lines.len() > MAX_RECORDING {
            return Err(ApiError::TooLarge(format!(
                "more than {MAX_RECORDING} entries match: narrow the time range (from_ms, to_ms) or the filters"
            )));
        }
        if bytes > MAX_RECORDING_BYTES {
            return Err(ApiError::TooLarge(format!(
                "the matches make more than {} MiB: narrow the time range (from_ms, to_ms) or the filters",
                MAX_RECORDING_BYTES >> 20
            )));
        }
        match page.next {
            Some(next) => p.before = Some(next),
            None => break,
        }
    }
    let now = now_ms();
    let mut body = crate::replay::header(now, p.filter());
    body.reserve(bytes + 1);
    body.push('\n');
    for line in lines.iter().rev() {
        body.push_str(line);
        body.push('\n');
    }
    let disposition = format!("attachment; filename=\"poussr-recording-{}.jsonl\"", file_time(now));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// A time for a file name, in UTC: `20250102-030405`.
fn file_time(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}{:02}{:02}-{:02}{:02}{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// `GET /admin/api/journal`: the journal's figures, or why there is none.
async fn journal_stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let hub = &state.hub;
    let Some(journal) = hub.journal() else {
        return Ok(Json(json!({"journal": null, "reason": hub.journal_error().unwrap_or("no journal is kept")})));
    };
    let stats = journal.stats().await.map_err(ApiError::Unavailable)?;
    let mut value = serde_json::to_value(&stats).map_err(|e| ApiError::Internal(e.to_string()))?;
    value["dropped"] = json!(hub.monitor().journal_dropped());
    Ok(Json(json!({ "journal": value })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_go_and_come_back_and_order_sources_within_a_millisecond() {
        let j = Cursor { at_ms: 5, source: Source::Journal, a: 7, b: 0 };
        let h = Cursor { at_ms: 5, source: Source::History, a: 2, b: 9 };
        for c in [j, h] {
            assert_eq!(Cursor::parse(&c.encode()), Some(c));
        }
        assert!(j > h, "journal entries come first at equal times, newest first");
        assert_eq!(j.history_before(), history_search::Before { at_ms: 6, key: None });
        assert_eq!(h.journal_before(), journal::Before { at_ms: 5, id: None });
        for bad in ["", "j.1", "x.1.2", "j.a.1", "h.1.2", "j.1.2.3"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_parameters_say_what_is_wrong() {
        let err = |q: &str| Params::parse(Some(q)).unwrap_err().to_string();
        assert!(err("kinds=event,nope").contains("unknown kind \"nope\""));
        assert!(err("from_ms=yesterday").contains("from_ms must be a whole number"));
        assert!(err("limit=0").contains("limit must be a whole number from 1 to 500"));
        assert!(err("limit=501").contains("from 1 to 500"));
        assert!(err("before=xyz").contains("not a cursor"));
        assert!(err("from_ms=5&to_ms=4").contains("after to_ms"));
        assert!(err("chanel=a").contains("unknown parameter \"chanel\""));
        let p = Params::parse(Some("kinds=&channel=&from_ms=&limit=3&token=t")).unwrap();
        assert_eq!((p.kinds.len(), p.channel, p.from_ms, p.limit), (8, None, None, 3));
        assert_eq!(file_time(86_400_000 + 3_723_000), "19700102-010203");
    }
}
