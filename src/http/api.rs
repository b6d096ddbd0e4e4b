//! The Pusher HTTP API (`/apps/{app_id}/...`), which every Pusher server SDK speaks. Every request is
//! signed; see [`crate::protocol::signature::verify_request`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, Uri};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, AppState};
use crate::hub::{App, Publish};
use crate::monitor::EventSource;
use crate::protocol::signature::verify_request;
use crate::protocol::{ChannelKind, ChannelName};

/// Reads a body up to the limit: a larger one is refused with 413 before it is all in memory.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // The limit's own error type, wherever it is in the chain of sources.
        let too_large = std::iter::successors(std::error::Error::source(&e), |s| s.source())
            .any(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::TooLarge(format!("the request body is over the {limit}-byte limit"))
        } else {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        }
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Finds the app and checks the request's signature.
fn authorize(state: &AppState, app_id: &str, method: &Method, uri: &Uri, body: &[u8]) -> Result<Arc<App>, ApiError> {
    let app = state.hub.app_by_id(app_id).ok_or_else(|| ApiError::NotFound(format!("no app has the id {app_id:?}")))?;
    if !app.config.enabled {
        return Err(ApiError::Forbidden(format!("the app {app_id:?} is disabled")));
    }
    verify_request(
        &app.config.key,
        &app.config.secret,
        method.as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
        body,
        now_secs(),
    )?;
    Ok(app)
}

/// The `info` attributes a request may ask for.
#[derive(Debug, Default, Clone, Copy)]
struct Info {
    user_count: bool,
    subscription_count: bool,
}

impl Info {
    fn parse(info: Option<&str>) -> Result<Self, ApiError> {
        let mut out = Info::default();
        for attr in info.unwrap_or("").split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match attr {
                "user_count" => out.user_count = true,
                "subscription_count" => out.subscription_count = true,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown info attribute {other:?}; use user_count and/or subscription_count"
                    )));
                }
            }
        }
        Ok(out)
    }

    fn any(self) -> bool {
        self.user_count || self.subscription_count
    }

    /// `user_count` is a presence-channel figure: asking it of another kind is an error, as in Pusher.
    fn check(self, channel: &ChannelName) -> Result<(), ApiError> {
        if self.user_count && channel.kind() != ChannelKind::Presence {
            return Err(ApiError::BadRequest(format!(
                "info=user_count is only available for presence channels, and {channel:?} is not one"
            )));
        }
        Ok(())
    }

    fn attributes(self, state: &AppState, app: &App, channel: &ChannelName) -> Value {
        let mut out = Map::new();
        let info = state.hub.cluster_channel(app, channel);
        if self.user_count {
            out.insert("user_count".into(), info.as_ref().and_then(|c| c.user_count).unwrap_or(0).into());
        }
        if self.subscription_count {
            out.insert("subscription_count".into(), info.map(|c| c.subscription_count).unwrap_or(0).into());
        }
        Value::Object(out)
    }
}

#[derive(Debug, Deserialize)]
struct EventBody {
    name: Option<String>,
    data: Option<Value>,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
    info: Option<String>,
}

/// A validated event, ready to publish.
struct Checked {
    publish: Publish,
    info: Info,
}

fn is_socket_id(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// The header that marks a request's events as a recording played again (`poussr replay`): the console
/// shows them as `replay` rather than `api`. It changes nothing else; the signature covers the body as usual.
const REPLAY_HEADER: &str = "x-poussr-replay";

/// Who published a request's events: the API, or a replay through it.
fn source(headers: &HeaderMap) -> EventSource {
    if headers.get(REPLAY_HEADER).is_some_and(|v| v.as_bytes() == b"1") {
        EventSource::Replay
    } else {
        EventSource::Api
    }
}

fn check_event(state: &AppState, body: EventBody, batch: bool, source: EventSource) -> Result<Checked, ApiError> {
    let limits = state.hub.limits();
    let name = body
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("\"name\" (the event name) is missing".into()))?;
    super::check_event_name(limits, &name)?;
    let data = match body.data {
        Some(Value::String(s)) => s,
        // Pusher's API takes a string; SDKs stringify objects. Accept JSON values too and send their text.
        Some(Value::Null) | None => return Err(ApiError::BadRequest("\"data\" is missing".into())),
        Some(other) => other.to_string(),
    };
    super::check_event_data(limits, &data)?;
    let names: Vec<String> = match (body.channel, body.channels) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest("give either \"channel\" or \"channels\", not both".into()));
        }
        (Some(c), None) => vec![c],
        (None, Some(cs)) if !batch => cs,
        (None, Some(_)) => {
            return Err(ApiError::BadRequest("each batch event names one \"channel\"".into()));
        }
        (None, None) => return Err(ApiError::BadRequest("\"channel\" or \"channels\" is missing".into())),
    };
    if names.is_empty() {
        return Err(ApiError::BadRequest("\"channels\" is empty; name at least one channel".into()));
    }
    if names.len() > limits.max_channels_per_event {
        return Err(ApiError::BadRequest(format!(
            "{} channels in one event; the limit is {}",
            names.len(),
            limits.max_channels_per_event
        )));
    }
    let mut channels = Vec::with_capacity(names.len());
    for n in &names {
        let c = super::channel_name(n)?;
        if !channels.contains(&c) {
            channels.push(c);
        }
    }
    if let Some(id) = &body.socket_id
        && !is_socket_id(id)
    {
        return Err(ApiError::BadRequest(format!("socket_id {id:?} is not a socket id (two numbers joined by a dot)")));
    }
    let info = Info::parse(body.info.as_deref())?;
    for c in &channels {
        info.check(c)?;
    }
    Ok(Checked { publish: Publish::new(channels, &name, &data, body.socket_id.as_deref(), source), info })
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("the body is not valid UTF-8".into()))?;
    crate::protocol::object_from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("the body is not the expected JSON: {e}")))
}

/// `POST /apps/{app_id}/events`.
pub(super) async fn events(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, state.hub.limits().max_body_bytes).await?;
    let app = authorize(&state, &app_id, &method, &uri, &body)?;
    let checked = check_event(&state, parse_json(&body)?, false, source(&headers))?;
    super::check_publish_rate(&state.hub, &app, 1)?;
    state.hub.publish(&app, &checked.publish).finish().await?;
    if !checked.info.any() {
        return Ok(Json(json!({})));
    }
    let channels: Map<String, Value> =
        checked.publish.channels.iter().map(|c| (c.to_string(), checked.info.attributes(&state, &app, c))).collect();
    Ok(Json(json!({ "channels": channels })))
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    /// Each read with [`crate::protocol::from_object`], which refuses arrays.
    batch: Vec<Value>,
}

/// `POST /apps/{app_id}/batch_events`: all events are checked before any is published.
pub(super) async fn batch_events(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, state.hub.limits().max_body_bytes).await?;
    let app = authorize(&state, &app_id, &method, &uri, &body)?;
    let batch: BatchBody = parse_json(&body)?;
    let max = state.hub.limits().max_batch_events;
    if batch.batch.is_empty() {
        return Err(ApiError::BadRequest("\"batch\" is empty".into()));
    }
    if batch.batch.len() > max {
        return Err(ApiError::BadRequest(format!("{} events in one batch; the limit is {max}", batch.batch.len())));
    }
    let checked = batch
        .batch
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let e: EventBody = crate::protocol::from_object(e)
                .map_err(|m| ApiError::BadRequest(format!("batch[{i}]: not the expected JSON: {m}")))?;
            check_event(&state, e, true, source(&headers)).map_err(|err| match err {
                ApiError::BadRequest(m) => ApiError::BadRequest(format!("batch[{i}]: {m}")),
                ApiError::TooLarge(m) => ApiError::TooLarge(format!("batch[{i}]: {m}")),
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    super::check_publish_rate(&state.hub, &app, checked.len())?;
    // Queued one after the other (so kept in this order and committed together), then waited for.
    let deliveries: Vec<_> = checked.iter().map(|c| state.hub.publish(&app, &c.publish)).collect();
    for delivery in deliveries {
        delivery.finish().await?;
    }
    if !checked.iter().any(|c| c.info.any()) {
        return Ok(Json(json!({})));
    }
    let batch: Vec<Value> = checked.iter().map(|c| c.info.attributes(&state, &app, &c.publish.channels[0])).collect();
    Ok(Json(json!({ "batch": batch })))
}

#[derive(Debug, Default)]
struct ChannelsQuery {
    filter_by_prefix: Option<String>,
    info: Option<String>,
}

fn channels_query(query: Option<&str>) -> ChannelsQuery {
    let mut out = ChannelsQuery::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "filter_by_prefix" => out.filter_by_prefix = Some(v.into_owned()),
            "info" => out.info = Some(v.into_owned()),
            _ => {}
        }
    }
    out
}

/// `GET /apps/{app_id}/channels`: the occupied channels, optionally filtered by prefix.
pub(super) async fn channels(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let app = authorize(&state, &app_id, &method, &uri, b"")?;
    let q = channels_query(query.as_deref());
    let info = Info::parse(q.info.as_deref())?;
    let prefix = q.filter_by_prefix.unwrap_or_default();
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::BadRequest(
            "info=user_count needs filter_by_prefix=presence- (user counts exist for presence channels only)".into(),
        ));
    }
    let mut out = BTreeMap::new();
    state.hub.cluster_sync().await;
    for c in state.hub.cluster_channels(&app) {
        if !c.name.starts_with(&prefix) {
            continue;
        }
        let mut attrs = Map::new();
        if info.user_count {
            attrs.insert("user_count".into(), c.user_count.unwrap_or(0).into());
        }
        if info.subscription_count {
            attrs.insert("subscription_count".into(), c.subscription_count.into());
        }
        out.insert(c.name, Value::Object(attrs));
    }
    Ok(Json(json!({ "channels": out })))
}

/// `GET /apps/{app_id}/channels/{channel}`.
pub(super) async fn channel(
    State(state): State<AppState>,
    Path((app_id, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let app = authorize(&state, &app_id, &method, &uri, b"")?;
    let name = super::channel_name(&name)?;
    let info = Info::parse(channels_query(query.as_deref()).info.as_deref())?;
    info.check(&name)?;
    state.hub.cluster_sync().await;
    let occupied = state.hub.cluster_channel(&app, &name).is_some();
    let mut out = Map::new();
    out.insert("occupied".into(), occupied.into());
    if let Value::Object(attrs) = info.attributes(&state, &app, &name) {
        out.extend(attrs);
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /apps/{app_id}/channels/{channel}/users`: the members of a presence channel.
pub(super) async fn channel_users(
    State(state): State<AppState>,
    Path((app_id, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let app = authorize(&state, &app_id, &method, &uri, b"")?;
    let name = super::channel_name(&name)?;
    if name.kind() != ChannelKind::Presence {
        return Err(ApiError::BadRequest(format!(
            "{name:?} is not a presence channel; only presence channels have users"
        )));
    }
    state.hub.cluster_sync().await;
    let users: Vec<Value> =
        state.hub.cluster_channel_users(&app, &name).iter().map(|id| json!({ "id": &**id })).collect();
    Ok(Json(json!({ "users": users })))
}

/// `POST /apps/{app_id}/users/{user_id}/terminate_connections`: closes every connection signed in as that
/// user, with 4009 (so the client does not reconnect by itself).
pub(super) async fn terminate_connections(
    State(state): State<AppState>,
    Path((app_id, user_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, state.hub.limits().max_body_bytes).await?;
    let app = authorize(&state, &app_id, &method, &uri, &body)?;
    if user_id.is_empty() {
        return Err(ApiError::BadRequest("the user id is empty".into()));
    }
    let closed = state.hub.terminate_user(&app, &user_id);
    tracing::info!(app = %app.id, user = %user_id, closed, "terminated a user's connections");
    Ok(Json(json!({})))
}

/// Most events one page of `GET .../events` returns.
const HISTORY_PAGE_MAX: u64 = 1000;

/// `GET /apps/{app_id}/channels/{channel}/events` (a Poussr extension, docs/protocol.md §7.6): the kept
/// events of a channel after a serial, oldest first, a page at a time.
pub(super) async fn channel_events(
    State(state): State<AppState>,
    Path((app_id, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let app = authorize(&state, &app_id, &method, &uri, b"")?;
    let name = super::channel_name(&name)?;
    let (mut after, mut limit, mut epoch) = (0u64, 100u64, None);
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        let number = |what: &str| {
            v.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("{what} must be a whole number, not {v:?}")))
        };
        match &*k {
            "after" => after = number("after")?,
            "limit" => limit = number("limit")?,
            "epoch" => epoch = Some(v.into_owned()),
            _ => {}
        }
    }
    if limit == 0 || limit > HISTORY_PAGE_MAX {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {HISTORY_PAGE_MAX}, not {limit}")));
    }
    let Some(history) = state.hub.history().filter(|h| h.keeps(&app.id, false)) else {
        let why = match state.hub.history_error() {
            Some(e) => format!("no history is kept: the store could not be used ({e})"),
            None => format!("app {} keeps no history of events", app.id),
        };
        return Err(ApiError::NotFound(why));
    };
    // In a cluster, the channel's head as the cluster's history has it now.
    state.hub.cluster_sync_heads(&app, &name).await;
    let Some(last) = state.hub.kept_position(&app, &name) else {
        return Ok(Json(json!({
            "channel": name.as_str(), "epoch": null, "last_serial": 0, "events": [], "next_after": null,
        })));
    };
    if let Some(e) = epoch.filter(|e| **e != *last.epoch) {
        return Err(ApiError::Conflict(format!(
            "the channel's history is epoch {:?}, not {e:?}: the events of that epoch are gone",
            last.epoch
        )));
    }
    let events = history
        .read(&app.id, &Arc::from(name.as_str()), after, last.serial, limit)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the history could not be read: {e}")))?;
    let next_after = events.last().map(|e| e.serial).filter(|&s| s < last.serial);
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| {
            let mut o = json!({"serial": e.serial, "published_at_ms": e.at_ms, "event": e.event, "data": e.data});
            if let Some(u) = e.user_id {
                o["user_id"] = u.into();
            }
            if let Some(x) = e.except {
                o["socket_id"] = x.into();
            }
            o
        })
        .collect();
    Ok(Json(json!({
        "channel": name.as_str(),
        "epoch": &*last.epoch,
        "last_serial": last.serial,
        "events": events,
        "next_after": next_after,
    })))
}
