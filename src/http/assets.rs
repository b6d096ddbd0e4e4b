//! What the hub serves from its own binary: the Poussr v1 client and the recovery add-on, the pinned browser
//! builds of pusher-js and laravel-echo (with their licences), the check page and the dashboard. Everything
//! is compiled in, so a LAN with no Internet needs nothing else.
//!
//! The pinned builds ([`crate::vendor`]) are served at paths that name the version, never change, and may be
//! cached for ever; pages load them with their Subresource Integrity hash.

use std::sync::LazyLock;

use super::ApiError;
use crate::vendor::{VENDORED, pusher_js};
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// `GET /vendor/{package}@{version}/{file}`: a pinned build or one of its licence texts.
pub(super) async fn vendor_file(Path((package, file)): Path<(String, String)>) -> Response {
    let found = VENDORED.iter().find(|v| format!("{}@{}", v.package, v.version) == package);
    let Some(lib) = found else {
        let served: Vec<String> = VENDORED.iter().map(|v| v.path()).collect();
        return ApiError::NotFound(format!("no library {package:?} here; this hub serves {}", served.join(", ")))
            .into_response();
    };
    let (content_type, body) = if file == lib.file {
        ("text/javascript; charset=utf-8", lib.body)
    } else if let Some((_, text)) = lib.licences.iter().find(|(name, _)| *name == file) {
        ("text/plain; charset=utf-8", *text)
    } else {
        return ApiError::NotFound(format!("{package} has no file {file:?} here")).into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The path names the version: what it serves never changes.
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
            // Pages of other origins load it with an integrity check, which needs CORS.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response()
}

/// The page policy of the dashboard and the check page: their own files and the hub's WebSockets only.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; \
                           object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// A file of one of the hub's pages, never cached stale (`no-cache` revalidates).
fn page_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response()
}

/// The dashboard: the same files as the desktop window (`ui/`), compiled into the binary. They hold no
/// data; everything they show comes from the admin API, which needs the token.
const DASHBOARD: [(&str, &str, &str); 21] = [
    ("index.html", "text/html; charset=utf-8", include_str!("../../ui/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../ui/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../../ui/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_str!("../../ui/dom.js")),
    ("feed.js", "text/javascript; charset=utf-8", include_str!("../../ui/feed.js")),
    ("tabs.js", "text/javascript; charset=utf-8", include_str!("../../ui/tabs.js")),
    ("overview.js", "text/javascript; charset=utf-8", include_str!("../../ui/overview.js")),
    ("channels.js", "text/javascript; charset=utf-8", include_str!("../../ui/channels.js")),
    ("clients.js", "text/javascript; charset=utf-8", include_str!("../../ui/clients.js")),
    ("livelog.js", "text/javascript; charset=utf-8", include_str!("../../ui/livelog.js")),
    ("publish.js", "text/javascript; charset=utf-8", include_str!("../../ui/publish.js")),
    ("settings.js", "text/javascript; charset=utf-8", include_str!("../../ui/settings.js")),
    ("log.js", "text/javascript; charset=utf-8", include_str!("../../ui/log.js")),
    ("chart.js", "text/javascript; charset=utf-8", include_str!("../../ui/chart.js")),
    ("kinds.js", "text/javascript; charset=utf-8", include_str!("../../ui/kinds.js")),
    ("search.js", "text/javascript; charset=utf-8", include_str!("../../ui/search.js")),
    ("channel.js", "text/javascript; charset=utf-8", include_str!("../../ui/channel.js")),
    ("replay.js", "text/javascript; charset=utf-8", include_str!("../../ui/replay.js")),
    ("save.js", "text/javascript; charset=utf-8", include_str!("../../ui/save.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../ui/style.css")),
    ("icon.svg", "image/svg+xml", include_str!("../../ui/icon.svg")),
];

/// `GET /dashboard/{file}`.
pub(super) async fn dashboard_file(Path(file): Path<String>) -> Response {
    match DASHBOARD.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => page_file(content_type, body),
        None => ApiError::NotFound(format!("no dashboard file {file:?}")).into_response(),
    }
}

/// The check page (`/check`), for any device on the LAN: it connects with the hub's own pusher-js.
const CHECK: [(&str, &str, &str); 3] = [
    ("check.js", "text/javascript; charset=utf-8", include_str!("check/check.js")),
    ("check.css", "text/css; charset=utf-8", include_str!("check/check.css")),
    ("icon.svg", "image/svg+xml", include_str!("../../ui/icon.svg")),
];

/// The check page's HTML, with the pinned pusher-js and its integrity hash filled in.
static CHECK_HTML: LazyLock<String> =
    LazyLock::new(|| include_str!("check/check.html").replace("<!-- pusher-js -->", &pusher_js().script_tag("")));

/// `GET /check`.
pub(super) async fn check_page() -> Response {
    page_file("text/html; charset=utf-8", CHECK_HTML.as_str())
}

/// `GET /check/{file}`.
pub(super) async fn check_file(Path(file): Path<String>) -> Response {
    match CHECK.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => page_file(content_type, body),
        None => ApiError::NotFound(format!("no check page file {file:?}")).into_response(),
    }
}

/// The Poussr v1 browser client, kept API-compatible with the original poussr-js.
const POUSSR_JS: &str = include_str!("poussr.js");

/// `GET /poussr.js`.
pub(super) async fn poussr_js() -> Response {
    script(POUSSR_JS)
}

/// The recovery add-on for pusher-js and laravel-echo (docs/protocol.md §7).
const RECOVERY_JS: &str = include_str!("poussr-recovery.js");

/// `GET /poussr-recovery.js`.
pub(super) async fn recovery_js() -> Response {
    script(RECOVERY_JS)
}

fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Pages of other origins load it with <script>; integrity checks need CORS.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_page_loads_the_pinned_pusher_js_with_its_hash() {
        assert!(CHECK_HTML.contains(&format!(
            "src=\"/vendor/pusher-js@8.6.0/pusher.min.js\" integrity=\"{}\"",
            pusher_js().integrity()
        )));
        assert!(!CHECK_HTML.contains("<!-- pusher-js -->"));
    }
}
