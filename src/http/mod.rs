//! The HTTP side of the hub, one axum router on one port: the WebSocket endpoints of both protocols,
//! Poussr v1 publishing, the signed Pusher HTTP API, `/health`, the check page and the files of
//! [`assets`].
//!
//! [`router`] builds the router without binding anything, so tests drive it with `oneshot`.

mod access;
mod admin;
mod api;
pub mod assets;
mod check;
mod error;
mod metrics;
mod replay;
mod search;
mod upgrade;
mod v1;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::sync::mpsc;

pub use access::Access;

pub use error::ApiError;

use crate::hub::Hub;

/// What the HTTP layer keeps of its own, beside the hub, for as long as it serves: its access settings and
/// the HTTP API's latency histogram. A cheap `Clone` handle; every router made with it shares it.
#[derive(Clone, Debug)]
pub struct Frontend {
    /// Who may use what.
    access: Arc<Access>,
    /// The HTTP API's request durations, for `/metrics`.
    latency: metrics::ApiLatency,
    /// TLS on the port, when a certificate is configured.
    tls: Option<crate::tls::Tls>,
    /// Whose forwarding headers name the client.
    proxies: Arc<crate::proxy::TrustedProxies>,
    /// Whether the server announces the hub over mDNS (never on loopback).
    mdns: bool,
}

impl Frontend {
    /// The frontend of `config`: its access settings (with a random admin token when it names none), its
    /// trusted proxies, no TLS (see [`Frontend::with_tls`]) and an empty latency histogram.
    pub fn new(config: &crate::config::Config) -> Self {
        Frontend {
            access: Arc::new(Access::new(config)),
            latency: metrics::ApiLatency::default(),
            tls: None,
            proxies: Arc::new(crate::proxy::TrustedProxies::new(&config.trusted_proxies, config.trusted_proxy_header)),
            mdns: config.mdns,
        }
    }

    /// Serves TLS too, with `tls` (made by [`crate::tls::Tls::from_config`]).
    pub fn with_tls(mut self, tls: Option<crate::tls::Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// Who may use what.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The TLS of the port, if it serves TLS.
    pub fn tls(&self) -> Option<&crate::tls::Tls> {
        self.tls.as_ref()
    }

    /// Whether the server announces the hub over mDNS (`mdns`; never on loopback).
    pub fn mdns(&self) -> bool {
        self.mdns
    }

    /// Whose forwarding headers name the client.
    pub fn proxies(&self) -> &crate::proxy::TrustedProxies {
        &self.proxies
    }
}

/// What every handler gets.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The hub the requests act on.
    pub(crate) hub: Hub,
    /// Who may use what.
    pub(crate) access: Arc<Access>,
    /// The HTTP API's latency histogram, for `/metrics`.
    pub(crate) latency: metrics::ApiLatency,
    /// TLS on the port, if any (for `/health` and `/poussr-ca.crt`).
    pub(crate) tls: Option<crate::tls::Tls>,
    /// Held by every WebSocket session: when every clone is gone, every session has ended (the server
    /// waits for that when it shuts down).
    pub(crate) sessions: mpsc::Sender<()>,
    /// When each device last published the check page's test event.
    pub(crate) check_sent: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, std::time::Instant>>>,
}

/// The hub's router, served with `frontend`. `sessions` is cloned into every WebSocket session so the
/// caller can wait for them all to end.
pub fn router(hub: Hub, frontend: Frontend, sessions: mpsc::Sender<()>) -> Router {
    let state = AppState {
        hub,
        access: frontend.access,
        latency: frontend.latency,
        tls: frontend.tls,
        sessions,
        check_sent: Arc::default(),
    };
    // The publishing and query API, timed for `/metrics`.
    let api = Router::new()
        .route("/v1/channels/{channel}/events", post(v1::publish))
        .route("/apps/{app_id}/events", post(api::events))
        .route("/apps/{app_id}/batch_events", post(api::batch_events))
        .route("/apps/{app_id}/channels", get(api::channels))
        .route("/apps/{app_id}/channels/{channel}", get(api::channel))
        .route("/apps/{app_id}/channels/{channel}/users", get(api::channel_users))
        .route("/apps/{app_id}/channels/{channel}/events", get(api::channel_events))
        .route("/apps/{app_id}/users/{user_id}/terminate_connections", post(api::terminate_connections))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::time_api));
    Router::new()
        .merge(admin::routes(state.clone()))
        .merge(api)
        .route("/", get(ws::root))
        .route("/v1/ws", any(ws::v1))
        .route("/app/{key}", any(ws::pusher))
        .route("/health", get(health))
        .route("/metrics", get(metrics::metrics))
        .route("/poussr.js", get(assets::poussr_js))
        .route("/poussr-recovery.js", get(assets::recovery_js))
        .route("/poussr-ca.crt", get(ca_certificate))
        .route("/vendor/{package}/{file}", get(assets::vendor_file))
        .route("/check", get(assets::check_page))
        .route("/check/", get(|| async { axum::response::Redirect::permanent("/check") }))
        .route("/check/info", get(check::info))
        .route("/check/publish", post(check::publish))
        .route("/check/{file}", get(assets::check_file))
        .route("/dashboard", get(|| async { axum::response::Redirect::permanent("/dashboard/") }))
        .route("/dashboard/", get(|| assets::dashboard_file(axum::extract::Path("index.html".to_owned()))))
        .route("/dashboard/{file}", get(assets::dashboard_file))
        .fallback(ws::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), request_timeout))
        .with_state(state)
}

/// Answers 408 to a request whose body has not arrived (or whose answer is not ready) within
/// `http_request_timeout_secs`, and closes its connection. A WebSocket upgrade is answered at once; the
/// session that follows is not timed.
async fn request_timeout(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let secs = state.hub.limits().http_request_timeout_secs;
    match tokio::time::timeout(std::time::Duration::from_secs(secs), next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response =
                ApiError::Timeout(format!("the request was not received and answered within {secs} s")).into_response();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// A channel name from a request, or a 400 that says what is wrong with it.
pub(crate) fn channel_name(name: &str) -> Result<crate::protocol::ChannelName, ApiError> {
    crate::protocol::ChannelName::parse(name)
        .map_err(|e| ApiError::BadRequest(format!("invalid channel {name:?}: {e}")))
}

/// Checks an event name against the limit (400).
pub(crate) fn check_event_name(limits: &crate::config::Limits, name: &str) -> Result<(), ApiError> {
    let len = name.chars().count();
    if len == 0 {
        return Err(ApiError::BadRequest("the event name is empty".into()));
    }
    if len > limits.max_event_name_len {
        return Err(ApiError::BadRequest(format!(
            "the event name is {len} characters long; the limit is {}",
            limits.max_event_name_len
        )));
    }
    Ok(())
}

/// Checks event data against the limit (413).
pub(crate) fn check_event_data(limits: &crate::config::Limits, data: &str) -> Result<(), ApiError> {
    if data.len() > limits.max_event_data_bytes {
        return Err(ApiError::TooLarge(format!(
            "the event data is {} bytes; the limit is {} bytes",
            data.len(),
            limits.max_event_data_bytes
        )));
    }
    Ok(())
}

/// Takes `events` from the app's publishing allowance, or answers 429 with how long to wait.
pub(crate) fn check_publish_rate(hub: &Hub, app: &crate::hub::App, events: usize) -> Result<(), ApiError> {
    hub.take_publish_budget(app, events).map_err(|wait| {
        let limit = hub.limits().max_publish_per_second;
        ApiError::TooManyRequests(
            format!(
                "the app {:?} may publish {limit} events per second and has used them up; retry in {} ms",
                app.config.id,
                wait.as_millis().max(1)
            ),
            wait.as_secs_f64().ceil().max(1.0) as u64,
        )
    })
}

/// Where a request comes from: the client's address (named by a trusted proxy, or the connection's peer)
/// and whether it has this machine's privileges. The server adds a [`crate::proxy::ClientAddr`] to every
/// request; tests that use `oneshot` add only the peer with `MockConnectInfo`, which is taken as direct.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// The client's address.
    pub(crate) addr: SocketAddr,
    /// Whether it may use what only this machine may (see [`crate::proxy::ClientAddr::local`]).
    pub(crate) local: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(client) = parts.extensions.get::<crate::proxy::ClientAddr>() {
            return Ok(Peer { addr: client.addr, local: client.local });
        }
        // `ConnectInfo`'s own extractor also finds the `MockConnectInfo` of tests.
        match axum::extract::ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await {
            Ok(info) => {
                let client = crate::proxy::ClientAddr::direct(info.0);
                Ok(Peer { addr: client.addr, local: client.local })
            }
            Err(_) => Err(ApiError::Internal("the request carries no client address".into())),
        }
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

async fn health(State(state): State<AppState>) -> Response {
    let hub = &state.hub;
    let stats = hub.stats();
    axum::Json(serde_json::json!({
        "status": if hub.is_shutting_down() { "shutting_down" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": hub.uptime().as_secs(),
        "connections": stats.connections,
        "channels": stats.channels,
        "events_published": stats.events_published,
        "deliveries": stats.deliveries,
        "slow_consumer_closes": stats.slow_consumer_closes,
        "webhooks": stats.webhooks,
        "cluster": hub.cluster_status(),
        "history": hub.history_status(),
        "tls": state.tls.as_ref().map(crate::tls::Tls::status),
    }))
    .into_response()
}

/// The CA certificate of `tls.ca`, for the LAN's devices to install (it holds no secret). Served over plain
/// HTTP too, since a device that does not trust the CA yet cannot check an https download of it.
async fn ca_certificate(State(state): State<AppState>) -> Response {
    let Some(path) = state.tls.as_ref().and_then(|t| t.ca_path().map(std::path::Path::to_owned)) else {
        return ApiError::NotFound("this hub has no CA to offer (tls.ca is not set)".into()).into_response();
    };
    // The certificates only: whatever else the file holds (a key pasted in by mistake) is never served.
    match tokio::fs::read(&path).await.map(|pem| crate::cert::certificates_pem(&pem)) {
        Ok(Ok(pem)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/x-x509-ca-cert")),
                (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"poussr-ca.crt\"")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            pem,
        )
            .into_response(),
        Ok(Err(_)) => ApiError::Internal("the configured CA file holds no certificate".into()).into_response(),
        Err(e) => {
            tracing::warn!("cannot read the CA file {}: {e}", path.display());
            ApiError::Internal("the configured CA file cannot be read".into()).into_response()
        }
    }
}
