//! The WebSocket handshake (RFC 6455 §4.2), done here rather than with axum's extractor so that the session
//! owns the byte stream under its WebSocket: to end the closing handshake properly after refusing a frame,
//! it has to read past the frame the WebSocket library gave up on (see [`crate::ws::socket`]).

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::ws::socket::Tracked;

/// A WebSocket over an upgraded HTTP connection.
pub(crate) type Socket = WebSocketStream<Tracked<TokioIo<Upgraded>>>;

/// A request that asks for a WebSocket and can have one.
#[derive(Debug)]
pub(crate) struct Upgrade {
    /// `Sec-WebSocket-Key`, which the answer signs.
    key: HeaderValue,
    /// Resolves to the connection once the answer has been sent.
    on_upgrade: OnUpgrade,
}

/// Why a request could not be upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotUpgraded {
    /// Not a WebSocket handshake at all (a plain GET, say).
    NotAHandshake,
    /// A handshake without `Sec-WebSocket-Key`.
    NoKey,
    /// A handshake for another version of WebSocket than 13.
    WrongVersion,
}

impl NotUpgraded {
    /// The answer for the WebSocket endpoint `what` (its route, named in the message). A version other than
    /// 13 gets 426 with `Sec-WebSocket-Version: 13`, as RFC 6455 §4.2.2 asks; anything else 400.
    pub(crate) fn response(self, what: &str) -> Response {
        use axum::response::IntoResponse;
        match self {
            NotUpgraded::WrongVersion => (
                StatusCode::UPGRADE_REQUIRED,
                [(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"))],
                axum::Json(serde_json::json!({
                    "error": format!("{what}: this hub speaks WebSocket version 13 (Sec-WebSocket-Version: 13)")
                })),
            )
                .into_response(),
            NotUpgraded::NoKey => {
                super::ApiError::BadRequest(format!("{what}: the WebSocket handshake has no Sec-WebSocket-Key header"))
                    .into_response()
            }
            NotUpgraded::NotAHandshake => {
                super::ApiError::BadRequest(format!("{what} is a WebSocket endpoint: connect with a WebSocket client"))
                    .into_response()
            }
        }
    }
}

/// For a handler that takes [`Upgrade`] itself; the hub's handlers take `Result<Upgrade, NotUpgraded>` and
/// answer with [`NotUpgraded::response`], naming their route.
impl axum::response::IntoResponse for NotUpgraded {
    fn into_response(self) -> Response {
        self.response("this endpoint")
    }
}

/// Whether `name`'s value is `value`, ignoring case.
fn header_is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers.get(name).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Whether `name`'s value lists `token` (as `Connection: keep-alive, Upgrade` does), ignoring case.
fn header_lists(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotUpgraded;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, NotUpgraded> {
        let headers = &parts.headers;
        if parts.method != Method::GET
            || !header_lists(headers, header::CONNECTION, "upgrade")
            || !header_is(headers, header::UPGRADE, "websocket")
        {
            return Err(NotUpgraded::NotAHandshake);
        }
        let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned().ok_or(NotUpgraded::NoKey)?;
        if !header_is(headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(NotUpgraded::WrongVersion);
        }
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or(NotUpgraded::NotAHandshake)?;
        Ok(Upgrade { key, on_upgrade })
    }
}

impl Upgrade {
    /// Answers 101 and, once the client has it, runs `serve` on the WebSocket.
    pub(crate) fn answer<F, Fut>(self, config: WebSocketConfig, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!("a WebSocket upgrade failed: {e}");
                    return;
                }
            };
            let socket =
                WebSocketStream::from_raw_socket(Tracked::new(TokioIo::new(upgraded)), Role::Server, Some(config))
                    .await;
            serve(socket).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::get("/app/k");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        // What hyper adds to a request on a connection that can be upgraded (here one that never will be).
        parts.extensions.insert(hyper::upgrade::on(axum::http::Request::new(())));
        parts
    }

    async fn upgrade(headers: &[(&str, &str)]) -> Result<Upgrade, NotUpgraded> {
        Upgrade::from_request_parts(&mut parts(headers), &()).await
    }

    const HANDSHAKE: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[tokio::test]
    async fn a_handshake_is_recognized_and_its_key_signed_as_rfc_6455_shows() {
        let up = upgrade(&HANDSHAKE).await.expect("a handshake");
        let response = up.answer(WebSocketConfig::default(), |_| async {});
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The example of RFC 6455 §1.3.
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[tokio::test]
    async fn what_is_missing_from_a_handshake_is_told_apart() {
        assert_eq!(upgrade(&[]).await.unwrap_err(), NotUpgraded::NotAHandshake);
        assert_eq!(upgrade(&HANDSHAKE[..3]).await.unwrap_err(), NotUpgraded::NoKey);
        let v8 = [HANDSHAKE[0], HANDSHAKE[1], ("sec-websocket-version", "8"), HANDSHAKE[3]];
        assert_eq!(upgrade(&v8).await.unwrap_err(), NotUpgraded::WrongVersion);
    }
}
