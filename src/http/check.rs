//! The check page's two requests: what it needs to connect (`GET /check/info`) and its test event
//! (`POST /check/publish`), which the operator must allow (`allow_check_publish`). The page itself is in
//! [`super::assets`].

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState, Peer};
use crate::hub::Publish;
use crate::monitor::EventSource;

/// The event the check page publishes.
pub(super) const CHECK_EVENT: &str = "check";

/// The channel the check page listens on unless the person changes it.
pub(super) const CHECK_CHANNEL: &str = "poussr-check";

/// `GET /check/info`: the default app's key (public: every page that connects holds it), whether the test
/// event is allowed, and the page's defaults.
pub(super) async fn info(State(state): State<AppState>) -> Json<Value> {
    let hub = &state.hub;
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "key": hub.default_app().config.key,
        "publish": hub.allow_check_publish(),
        "channel": CHECK_CHANNEL,
        "event": CHECK_EVENT,
        "pusher_js": crate::vendor::pusher_js().version,
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    channel: String,
}

/// How often one device may publish the test event.
const CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `POST /check/publish` with `{"channel": "…"}`: publishes the event `check` to that public channel of
/// the default app, saying which device asked. Nothing else can be published this way, once a second per
/// device at most, and only by the hub's own page: the request must say it is JSON (so a page of another
/// origin cannot send it without a CORS preflight, which this route never admits), and an `Origin`, when
/// sent, must be one of the hub's own.
pub(super) async fn publish(
    State(state): State<AppState>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let hub = &state.hub;
    if !hub.allow_check_publish() {
        return Err(ApiError::Forbidden(
            "publishing from the check page is off; the hub's operator can allow it (Settings → \"Let the check \
             page publish a test event\", or allow_check_publish = true)"
                .into(),
        ));
    }
    if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        if !super::ws::own_page(&state, &origin) {
            return Err(ApiError::Forbidden(format!(
                "the check page's test event can be sent only from the hub's own check page, not from {origin:?}"
            )));
        }
    }
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(ApiError::UnsupportedMediaType("send the body as Content-Type: application/json".into()));
    }
    let body: CheckBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body must be {{\"channel\": \"<name>\"}}: {e}")))?;
    let channel = super::channel_name(&body.channel)?;
    if channel.kind() != crate::protocol::ChannelKind::Public {
        return Err(ApiError::BadRequest(format!(
            "the check page publishes to public channels only, and {:?} is not one",
            body.channel
        )));
    }
    let device = peer.addr.ip().to_canonical();
    {
        let mut sent = state.check_sent.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if let Some(last) = sent.get(&device)
            && now.duration_since(*last) < CHECK_INTERVAL
        {
            let wait = CHECK_INTERVAL - now.duration_since(*last);
            return Err(ApiError::TooManyRequests(
                format!("one test event a second per device; retry in {} ms", wait.as_millis().max(1)),
                1,
            ));
        }
        // Forget devices not heard from for a while, so the table stays small.
        sent.retain(|_, at| now.duration_since(*at) < CHECK_INTERVAL * 60);
        sent.insert(device, now);
    }
    let app = hub.default_app();
    super::check_publish_rate(hub, &app, 1)?;
    let data = json!({
        "message": "A test event from the check page",
        "from": device.to_string(),
        "at_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    })
    .to_string();
    let delivered =
        hub.publish(&app, &Publish::new(vec![channel], CHECK_EVENT, &data, None, EventSource::Check)).finish().await?;
    Ok(Json(json!({ "delivered": delivered, "event": CHECK_EVENT })))
}

/// The check page's address for each address clients use (`hosts`: IP addresses or names), each with its
/// QR code as an SVG data URL for an `<img>`, for the Overview.
pub(super) fn links(hosts: &[String], port: u16, tls: bool) -> Vec<Value> {
    let scheme = if tls { "https" } else { "http" };
    hosts
        .iter()
        .map(|host| {
            let url = format!("{scheme}://{}:{port}/check", crate::snippets::url_host(host));
            json!({ "host": host, "url": url, "qr": qr_data_url(&url) })
        })
        .collect()
}

/// `text` as a QR code (error correction M: readable with up to 15% of it damaged or in glare), drawn as an
/// SVG with its quiet zone, in a `data:` URL.
fn qr_data_url(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(232, 232)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    Some(format!("data:image/svg+xml;base64,{}", crate::cert::base64(svg.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_check_page_link_and_qr_code() {
        let links = links(&["192.168.1.20".into(), "fd00::5".into()], 6001, false);
        assert_eq!(links[0]["url"], "http://192.168.1.20:6001/check");
        assert_eq!(links[1]["url"], "http://[fd00::5]:6001/check");
        let qr = links[0]["qr"].as_str().unwrap();
        assert!(qr.starts_with("data:image/svg+xml;base64,"));
        assert_ne!(links[0]["qr"], links[1]["qr"]);
        assert_eq!(super::links(&["h".into()], 443, true)[0]["url"], "https://h:443/check");
    }
}
