//! The WebSocket endpoints: Pusher at `/app/{key}`, Poussr v1 at `/` and `/v1/ws`. A handshake that
//! names a wrong key, version or path is still upgraded, so that the client gets a `pusher:error` and the
//! close code that tells it not to retry; a plain HTTP request gets a JSON error.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::upgrade::{NotUpgraded, Socket, Upgrade};
use super::{ApiError, AppState, Peer};
use crate::hub::App;
use crate::monitor::{MonitorEvent, now_ms};
use crate::protocol::pusher::SUPPORTED_VERSIONS;
use crate::protocol::{CloseCode, ClosedBy, Protocol};
use crate::ws::{self as session, Peer as PeerInfo};

/// Frames larger than this are refused by the WebSocket layer itself, before the hub sees them; frames
/// between the configured limit and this get a `pusher:error` and close code 1009.
const HARD_FRAME_LIMIT: usize = 1 << 20;

/// The WebSocket layer's settings for a session.
pub(super) fn config(state: &AppState) -> WebSocketConfig {
    let hard = HARD_FRAME_LIMIT.max(state.hub.limits().max_message_bytes.saturating_mul(4));
    WebSocketConfig::default()
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard))
        // Small initial buffers: most connections are idle most of the time, and the buffers grow when a
        // large frame comes. The read size is also what the WebSocket layer zeroes each time it tries to
        // read, which a busy session does after every write: 1 KiB instead of 4 cut the hub's CPU per
        // delivery at saturation by about 3 % and its memory per idle connection by 3 KiB.
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
}

fn peer_info(peer: &Peer, headers: &HeaderMap) -> PeerInfo {
    PeerInfo {
        remote: peer.addr,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    }
}

/// Upgrades and runs a session, or refuses the connection with `refusal`.
fn upgrade(
    ws: Upgrade,
    state: AppState,
    protocol: Protocol,
    peer: PeerInfo,
    target: Result<Arc<App>, (CloseCode, String)>,
) -> Response {
    ws.answer(config(&state), move |socket: Socket| async move {
        // Held until the session ends, so that shutdown can wait for every session.
        let _alive = state.sessions.clone();
        match target {
            Ok(app) => {
                let ending = session::serve(socket, state.hub.clone(), app, protocol, peer.clone()).await;
                tracing::debug!(remote = %peer.remote, closed_by = ?ending.closed_by, reason = %ending.reason, "connection closed");
            }
            Err((code, message)) => {
                tracing::debug!(remote = %peer.remote, code = code.code(), %message, "connection refused");
                state.hub.record_close(ClosedBy::Hub(code));
                session::refuse(socket, protocol, code, &message).await;
            }
        }
    })
}

/// Refuses, before the upgrade, a handshake from a web page whose origin is not in `allowed_origins`.
/// Clients that send no `Origin` (programs rather than browsers) are not concerned.
fn check_origin(state: &AppState, remote: std::net::SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = String::from_utf8_lossy(origin.as_bytes());
    if state.access.origin_allowed(&origin) || own_page(state, &origin) {
        return Ok(());
    }
    state.hub.monitor().emit(|| MonitorEvent::ConnectionRefused {
        at_ms: now_ms(),
        remote: remote.to_string(),
        app_key: None,
        origin: Some(origin.to_string()),
        code: 403,
        reason: format!("the WebSocket handshake from a page of origin {origin:?} was refused (403)"),
        hint: Some(format!(
            "the page's origin is not in allowed_origins; add {origin} there (Settings, or allowed_origins in the \
             config file) if the page is yours"
        )),
    });
    Err(ApiError::Forbidden(format!(
        "WebSocket connections from pages of origin {origin:?} are not allowed; the hub's operator can add it \
         to allowed_origins"
    )))
}

/// Shows in the console a connection refused as it starts (a key that belongs to no app, a disabled app, a
/// wrong protocol version or path).
fn refused(state: &AppState, peer: &Peer, headers: &HeaderMap, key: Option<&str>, code: CloseCode, reason: &str) {
    state.hub.monitor().emit(|| MonitorEvent::ConnectionRefused {
        at_ms: now_ms(),
        remote: peer.addr.to_string(),
        app_key: key.map(str::to_owned),
        origin: headers.get(header::ORIGIN).map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned()),
        code: code.code(),
        reason: reason.to_owned(),
        hint: (code == CloseCode::AppNotFound).then(|| {
            format!(
                "the key {:?} belongs to no app on this hub: the page's Pusher key must be the app's key shown in \
                 the Overview (App credentials)",
                key.unwrap_or_default()
            )
        }),
    });
}

/// Whether `origin` is a page the hub serves itself (the check page, the dashboard): this machine's name or
/// address with the hub's own port. Those pages connect whatever `allowed_origins` says.
pub(super) fn own_page(state: &AppState, origin: &str) -> bool {
    let Some(host) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else { return false };
    let Some(port) = state.hub.local_addr().map(|a| a.port()) else { return false };
    let default_port = if origin.starts_with("https") { 443 } else { 80 };
    let origin_port = match host.rsplit_once(':') {
        Some((_, p)) if !host.ends_with(']') => p.parse::<u16>().ok(),
        _ => Some(default_port),
    };
    origin_port == Some(port) && crate::discovery::is_own_host(host)
}

/// `/app/{key}?protocol=7`: a Pusher client.
pub(super) async fn pusher(
    State(state): State<AppState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    peer: Peer,
    headers: HeaderMap,
    ws: Result<Upgrade, NotUpgraded>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.response("/app/{key}"),
    };
    if let Err(refused) = check_origin(&state, peer.addr, &headers) {
        return refused.into_response();
    }
    let target = check_pusher(&state, &key, query.as_deref());
    if let Err((code, reason)) = &target {
        refused(&state, &peer, &headers, Some(&key), *code, reason);
    }
    upgrade(ws, state.clone(), Protocol::Pusher, peer_info(&peer, &headers), target)
}

fn check_pusher(state: &AppState, key: &str, query: Option<&str>) -> Result<Arc<App>, (CloseCode, String)> {
    let app = state
        .hub
        .app_by_key(key)
        .ok_or_else(|| (CloseCode::AppNotFound, format!("no app has the key {key:?}; check the key in the client")))?;
    if !app.config.enabled {
        return Err((CloseCode::AppDisabled, format!("the app with key {key:?} is disabled")));
    }
    let version = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "protocol")
        .map(|(_, v)| v.into_owned())
        .ok_or((CloseCode::NoVersion, "no protocol version in the URL; add ?protocol=7".to_owned()))?;
    let version: u32 = version
        .parse()
        .map_err(|_| (CloseCode::InvalidVersion, format!("protocol version {version:?} is not a number")))?;
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err((
            CloseCode::UnsupportedVersion,
            format!(
                "protocol version {version} is not supported; use {} to {}",
                SUPPORTED_VERSIONS.start(),
                SUPPORTED_VERSIONS.end()
            ),
        ));
    }
    Ok(app)
}

/// `/v1/ws`: a Poussr v1 client.
pub(super) async fn v1(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ws: Result<Upgrade, NotUpgraded>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.response("/v1/ws"),
    };
    if let Err(refused) = check_origin(&state, peer.addr, &headers) {
        return refused.into_response();
    }
    let app = state.hub.default_app();
    upgrade(ws, state.clone(), Protocol::PoussrV1, peer_info(&peer, &headers), Ok(app))
}

/// `/`: a Poussr v1 client (the original server took WebSockets on any path), or a short description for
/// a browser.
pub(super) async fn root(
    state: State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ws: Result<Upgrade, NotUpgraded>,
) -> Response {
    match ws {
        Ok(_) => return v1(state, peer, headers, ws).await,
        // A plain GET (a browser) gets the description below; a handshake that went wrong, its answer.
        Err(NotUpgraded::NotAHandshake) => {}
        Err(rejection) => return rejection.response("/"),
    }
    axum::Json(serde_json::json!({
        "name": "Poussr",
        "version": env!("CARGO_PKG_VERSION"),
        "pusher_websocket": "/app/{key}?protocol=7",
        "poussr_v1_websocket": "/v1/ws",
        "poussr_v1_publish": "POST /v1/channels/{channel}/events?name={event}",
        "pusher_http_api": "/apps/{app_id}/...",
        "health": "/health",
        "client_script": "/poussr.js",
    }))
    .into_response()
}

/// Any other path: a WebSocket gets 4005, anything else a JSON 404.
pub(super) async fn fallback(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ws: Result<Upgrade, NotUpgraded>,
) -> Response {
    match ws {
        Ok(ws) => {
            if let Err(refused) = check_origin(&state, peer.addr, &headers) {
                return refused.into_response();
            }
            let message = format!("no WebSocket endpoint at {}; Pusher clients use /app/{{key}}", uri.path());
            refused(&state, &peer, &headers, None, CloseCode::PathNotFound, &message);
            upgrade(ws, state, Protocol::Pusher, peer_info(&peer, &headers), Err((CloseCode::PathNotFound, message)))
        }
        Err(_) => ApiError::NotFound(format!("nothing at {}", uri.path())).into_response(),
    }
}
