//! The admin API, which the dashboard and the desktop window use: what the hub is doing, and (later) the
//! live monitor feed and operator actions.
//!
//! Every request needs the admin token (`Authorization: Bearer <token>`, or `?token=` where a header
//! cannot be set). It answers this machine only unless the operator allowed remote viewing, and refuses a
//! `Host` header that does not name this machine, so a web page on another site cannot reach it through
//! DNS rebinding. The desktop window's origin (`tauri://localhost`) is allowed by CORS.

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio_tungstenite::tungstenite::Message;

use super::upgrade::{NotUpgraded, Socket, Upgrade};
use super::{ApiError, AppState, Peer};
use crate::hub::{Hub, Publish};
use crate::monitor::{EventSource, MonitorEvent, now_ms};

/// The origins of the desktop window on each OS.
const DESKTOP_ORIGINS: [&str; 3] = ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"];

/// The admin routes, behind [`guard`].
pub(super) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/api/overview", get(overview).options(preflight))
        .route("/admin/api/channels", get(channels).options(preflight))
        .route("/admin/api/clients", get(clients).options(preflight))
        .route("/admin/api/clients/{socket_id}", axum::routing::delete(disconnect).options(preflight))
        .route("/admin/api/publish", axum::routing::post(publish).options(preflight))
        .route("/admin/api/history", get(history).options(preflight))
        .route("/admin/api/history/clear", axum::routing::post(clear_history).options(preflight))
        .route("/admin/api/history/recent", get(recent_history).options(preflight))
        .route("/admin/api/feed", get(feed))
        .merge(super::search::routes())
        .merge(super::replay::routes())
        .layer(axum::middleware::from_fn_with_state(state, guard))
}

/// CORS preflights are answered by [`guard`]; this only gives the method a route.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

fn cors_headers(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE, OPTIONS"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
}

fn token_from(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(t) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_owned());
    }
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

/// Checks where the request comes from, the `Host` it names and its token; answers CORS preflights.
pub(super) async fn guard(State(state): State<AppState>, peer: Peer, request: Request, next: Next) -> Response {
    let desktop_origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|o| DESKTOP_ORIGINS.iter().any(|d| o.as_bytes() == d.as_bytes()))
        .cloned();
    let mut response = match check(&state, &peer, &request) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    };
    if let Some(origin) = desktop_origin {
        cors_headers(response.headers_mut(), &origin);
    }
    response
}

/// Refuses a `Host` header that does not name this machine (DNS rebinding).
pub(super) fn check_host(request: &Request) -> Result<(), ApiError> {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !crate::discovery::is_own_host(host) {
        return Err(ApiError::Forbidden(format!(
            "the Host header {host:?} does not name this machine (refused to prevent DNS rebinding)"
        )));
    }
    Ok(())
}

/// The admin API's checks: where the request comes from, the `Host` it names and its token.
pub(super) fn check(state: &AppState, peer: &Peer, request: &Request) -> Result<(), ApiError> {
    if !peer.local && !state.access.allow_remote_dashboard() {
        return Err(ApiError::Forbidden(
            "the admin API answers this machine only; start the hub with --allow-remote-dashboard to watch it \
             from another machine"
                .into(),
        ));
    }
    check_host(request)?;
    // A CORS preflight carries no credentials by design; it only learns which headers it may send.
    if request.method() == Method::OPTIONS {
        return Ok(());
    }
    match token_from(request.headers(), request.uri().query()) {
        Some(t) if bool::from(t.as_bytes().ct_eq(state.access.admin_token().as_bytes())) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("the admin token is wrong".into())),
        None => Err(ApiError::Unauthorized(
            "the admin token is missing: send \"Authorization: Bearer <token>\" (poussr serve prints it)".into(),
        )),
    }
}

/// `GET /admin/api/overview`: the state, the addresses clients should use, the default app's
/// credentials, ready-made snippets and totals.
async fn overview(State(state): State<AppState>) -> Json<Value> {
    let hub = &state.hub;
    let local = hub.local_addr();
    let port = local.map(|a| a.port()).unwrap_or(0);
    let addresses: Vec<String> = local
        .map(|a| crate::net::client_addresses(a.ip()).iter().map(|ip| ip.to_string()).collect())
        .unwrap_or_default();
    let app = hub.default_app();
    let host = addresses.first().cloned().unwrap_or_else(|| "127.0.0.1".into());
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "status": if hub.is_shutting_down() { "stopping" } else { "running" },
        "uptime_secs": hub.uptime().as_secs(),
        "listen": local.map(|a| a.to_string()),
        "port": port,
        "addresses": addresses,
        "app": { "id": app.config.id, "key": app.config.key, "secret": app.config.secret },
        "apps": hub.apps().iter().map(|a| json!({"id": a.config.id, "key": a.config.key})).collect::<Vec<_>>(),
        "snippets": crate::snippets::snippets(&host, port, &app.config, state.tls.is_some()),
        "check_links": super::check::links(&addresses, port, state.tls.is_some()),
        "mdns": crate::discovery::published(),
        "stats": hub.stats(),
        "cluster": hub.cluster_status(),
        "tls": state.tls.as_ref().map(crate::tls::Tls::status),
    }))
}

/// `GET /admin/api/channels`: every occupied channel of every app.
async fn channels(State(state): State<AppState>) -> Json<Value> {
    let hub = &state.hub;
    let mut out = Vec::new();
    for app in hub.apps() {
        let kept = hub.history().map(|h| h.kept_counts(&app.config.id)).unwrap_or_default();
        for c in hub.channels(&app) {
            let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
            v["app_id"] = json!(app.config.id);
            v["history_events"] = json!(kept.get(c.name.as_str()).copied().unwrap_or(0));
            if c.kind == crate::protocol::ChannelKind::Presence
                && let Ok(name) = crate::protocol::ChannelName::parse(&c.name)
            {
                v["members"] = json!(hub.channel_users(&app, &name).iter().map(|u| &**u).collect::<Vec<_>>());
            }
            out.push(v);
        }
    }
    Json(json!({ "channels": out }))
}

/// `GET /admin/api/history`: whether history is kept, where, its size on disk and counts.
async fn history(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "history": state.hub.history_status() }))
}

/// `POST /admin/api/history/clear`: deletes every kept event and gives the disk space back. Positions go
/// on, so clients that resume from before are told their events were evicted.
async fn clear_history(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let history = state.hub.history().ok_or_else(|| ApiError::NotFound("no history is kept".into()))?;
    history.clear().await.map_err(|e| ApiError::Unavailable(format!("the history could not be cleared: {e}")))?;
    tracing::info!("the history of events was cleared from the admin API");
    Ok(Json(json!({ "history": state.hub.history_status() })))
}

/// Most events `GET /admin/api/history/recent` gives.
const RECENT_MAX: u64 = 5000;

/// `GET /admin/api/history/recent?limit=N`: the most recent kept events, newest first (the live log opens
/// with them, so that after a restart the operator still sees what happened).
async fn recent_history(
    State(state): State<AppState>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut limit = 200;
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        if k == "limit" {
            limit =
                v.parse::<u64>().ok().filter(|n| (1..=RECENT_MAX).contains(n)).ok_or_else(|| {
                    ApiError::BadRequest(format!("limit must be between 1 and {RECENT_MAX}, not {v:?}"))
                })?;
        }
    }
    let Some(history) = state.hub.history() else { return Ok(Json(json!({ "events": [] }))) };
    let events = history
        .recent(limit)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the history could not be read: {e}")))?;
    Ok(Json(json!({ "events": events })))
}

/// `GET /admin/api/clients`: every open connection.
async fn clients(State(state): State<AppState>) -> Json<Value> {
    let clients: Vec<_> = state.hub.connections().iter().map(|c| c.info()).collect();
    Json(json!({ "clients": clients }))
}

/// `DELETE /admin/api/clients/{socket_id}`: closes that connection with 4009 (a Pusher client does not
/// reconnect by itself after a 40xx code).
async fn disconnect(State(state): State<AppState>, Path(socket_id): Path<String>) -> Result<StatusCode, ApiError> {
    let conn = state
        .hub
        .connection(&socket_id)
        .ok_or_else(|| ApiError::NotFound(format!("no open connection has the socket id {socket_id:?}")))?;
    conn.kick(crate::protocol::CloseCode::Terminated);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize)]
struct PublishBody {
    channel: String,
    event: String,
    data: String,
    #[serde(default)]
    app_id: Option<String>,
}

/// `POST /admin/api/publish`: the dashboard's test events. Answers with how many connections it reached.
async fn publish(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let hub = &state.hub;
    let body: PublishBody = serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(crate::protocol::from_object)
        .map_err(|e| {
            ApiError::BadRequest(format!("the body must be a JSON object with channel, event and data (a string): {e}"))
        })?;
    let app = match &body.app_id {
        Some(id) => hub.app_by_id(id).ok_or_else(|| ApiError::NotFound(format!("no app has the id {id:?}")))?,
        None => hub.default_app(),
    };
    let channel = super::channel_name(&body.channel)?;
    super::check_event_name(hub.limits(), &body.event)?;
    super::check_event_data(hub.limits(), &body.data)?;
    let delivered = hub
        .publish(&app, &Publish::new(vec![channel], &body.event, &body.data, None, EventSource::Dashboard))
        .finish()
        .await?;
    Ok(Json(json!({ "delivered": delivered })))
}

/// How often the feed sends a batch.
const FEED_INTERVAL: Duration = Duration::from_millis(100);
/// Most events in one batch; more within one interval are counted as skipped. (The broadcast itself keeps
/// [`crate::monitor::MONITOR_CAPACITY`] events between two batches; beyond that they are skipped too.)
const FEED_MAX_EVENTS: usize = 2000;
/// Most payload bytes in one batch, so a burst of large events cannot flood the viewer.
const FEED_MAX_BYTES: usize = 1 << 20;

/// `GET /admin/api/feed`: the monitor feed over a WebSocket, in batches about ten times a second:
/// `{"at_ms", "events": [...], "skipped": n, "stats": {...}}`. A viewer that cannot keep up misses events
/// (counted in `skipped`); the hub never waits for it.
async fn feed(State(state): State<AppState>, ws: Result<Upgrade, NotUpgraded>) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.response("/admin/api/feed"),
    };
    let hub = state.hub.clone();
    let sessions = state.sessions.clone();
    ws.answer(super::ws::config(&state), move |socket| async move {
        let _alive = sessions;
        feed_session(socket, hub).await;
    })
}

fn approx_size(e: &MonitorEvent) -> usize {
    match e {
        MonitorEvent::EventPublished { data, .. } => data.len() + 200,
        _ => 200,
    }
}

async fn feed_session(mut socket: Socket, hub: Hub) {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut rx = hub.monitor().subscribe();
    let mut tick = tokio::time::interval(FEED_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batch: Vec<MonitorEvent> = Vec::new();
    let mut bytes = 0;
    let mut skipped: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Drained once per batch rather than woken once per event: at thousands of events a second
                // this is what keeps a viewer cheap for the hub.
                loop {
                    match rx.try_recv() {
                        Ok(e) => {
                            let size = approx_size(&e);
                            if batch.len() < FEED_MAX_EVENTS && bytes + size <= FEED_MAX_BYTES {
                                bytes += size;
                                batch.push(e);
                            } else {
                                skipped += 1;
                            }
                        }
                        Err(TryRecvError::Lagged(n)) => skipped += n,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Closed) => return,
                    }
                }
                let frame = json!({
                    "at_ms": now_ms(),
                    "events": batch,
                    "skipped": skipped,
                    "stats": hub.stats(),
                });
                batch = Vec::new();
                bytes = 0;
                skipped = 0;
                if socket.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
        if hub.is_shutting_down() {
            let _ = socket.send(Message::Close(None)).await;
            break;
        }
    }
}
