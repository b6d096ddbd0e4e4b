//! The admin API, which the dashboard and the desktop window use: what the hub is doing, and (later) the
//! live monitor feed and operator actions.
//!
//! Every request needs the admin token (`Authorization: Bearer <token>`, or `?token=` where a header
//! cannot be set). It answers this machine only unless the operator allowed remote viewing, and refuses a
//! `Host` header that does not name this machine, so a web page on another site cannot reach it through
//! DNS rebinding. The desktop window's origin (`tauri://localhost`) is allowed by CORS.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, Peer};

/// The origins of the desktop window on each OS.
const DESKTOP_ORIGINS: [&str; 3] = ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"];

/// The admin routes, behind [`guard`].
pub(super) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/api/overview", get(overview).options(preflight))
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

fn check(state: &AppState, peer: &Peer, request: &Request) -> Result<(), ApiError> {
    let hub = &state.hub;
    if !peer.0.ip().to_canonical().is_loopback() && !hub.allow_remote_dashboard() {
        return Err(ApiError::Forbidden(
            "the admin API answers this machine only; start the hub with --allow-remote-dashboard to watch it \
             from another machine"
                .into(),
        ));
    }
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !crate::net::is_own_host(host) {
        return Err(ApiError::Forbidden(format!(
            "the Host header {host:?} does not name this machine (refused to prevent DNS rebinding)"
        )));
    }
    // A CORS preflight carries no credentials by design; it only learns which headers it may send.
    if request.method() == Method::OPTIONS {
        return Ok(());
    }
    match token_from(request.headers(), request.uri().query()) {
        Some(t) if bool::from(t.as_bytes().ct_eq(hub.admin_token().as_bytes())) => Ok(()),
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
        "snippets": crate::snippets::snippets(&host, port, &app.config),
        "stats": hub.stats(),
    }))
}
