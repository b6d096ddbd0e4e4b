//! The dashboard's Replay, through the admin API (docs/recording.md): a recording is checked whole (the
//! hub's event limits included), then played in a task through the hub's own publish path, its events
//! marked `replay` in the console. One replay at a time per router (one per hub); the last one's progress
//! stays readable until the next starts.
//!
//! - `POST /admin/api/replay` `{"recording", "speed"?, "map"?, "app_id"?, "name"?}` → 202 and the progress;
//!   400 (with the line) for a refused recording, 409 while another plays or is paused;
//! - `GET /admin/api/replay` → the progress (`"state": "idle"` when none ran);
//! - `POST /admin/api/replay/pause`, `/resume`, `/stop` → the progress; 409 when there is nothing to act on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::hub::{Hub, Publish};
use crate::monitor::EventSource;
use crate::replay::{self, Event, Options, Player, PublishFn, Refusal};

/// The largest recording the admin API takes, in bytes of its request body.
const MAX_RECORDING_BYTES: usize = 32 << 20;

/// The admin routes of this module (behind the admin guard).
pub(super) fn routes() -> Router<AppState> {
    // CORS preflights are answered by the admin guard; these only give the method a route.
    let preflight = || async { StatusCode::NO_CONTENT };
    Router::new()
        .route("/admin/api/replay", get(status).post(start).options(preflight))
        .route("/admin/api/replay/pause", post(pause).options(preflight))
        .route("/admin/api/replay/resume", post(resume).options(preflight))
        .route("/admin/api/replay/stop", post(stop).options(preflight))
        .layer(Extension(Slot::default()))
}

/// The replay of this router: the current or last one.
#[derive(Clone, Default)]
struct Slot(Arc<Mutex<Option<Arc<Current>>>>);

struct Current {
    player: Player,
    name: Option<String>,
}

impl Slot {
    fn current(&self) -> Option<Arc<Current>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Current {
    fn status(&self, progress: replay::Progress) -> Value {
        let mut status = serde_json::to_value(progress).unwrap_or(Value::Null);
        if let Some(name) = &self.name {
            status["name"] = json!(name);
        }
        status
    }
}

fn idle() -> Value {
    json!({
        "state": "idle", "sent": 0, "total": 0, "skipped": 0, "failed": 0, "speed": null, "elapsed_ms": 0,
        "duration_ms": 0, "error": null,
    })
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    recording: String,
    #[serde(default)]
    speed: Option<f64>,
    #[serde(default)]
    map: BTreeMap<String, String>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

fn refused(refusal: Refusal) -> ApiError {
    ApiError::BadRequest(refusal.to_string())
}

/// The recording's events as they will be published, each checked against this hub: its app exists, its
/// name and data are within the limits. The first that is not refuses the whole recording.
fn checked_events(hub: &Hub, body: &StartBody) -> Result<(Vec<Event>, usize, f64), ApiError> {
    let mut options = Options::with_speed(body.speed.unwrap_or(1.0)).map_err(refused)?;
    for (from, to) in &body.map {
        options.map_channel(from, to).map_err(refused)?;
    }
    if let Some(id) = &body.app_id {
        hub.app_by_id(id).ok_or_else(|| ApiError::NotFound(format!("no app has the id {id:?}")))?;
        options.app_id = Some(id.clone());
    }
    let recording = replay::parse(&body.recording).map_err(refused)?;
    let mut events = options.apply(&recording);
    let default_app = hub.default_app().config.id.clone();
    for event in &mut events {
        let line = |message: String| ApiError::BadRequest(format!("line {}: {message}", event.line));
        let id = event.app_id.get_or_insert_with(|| default_app.clone());
        if hub.app_by_id(id).is_none() {
            return Err(line(format!(
                "no app of this hub has the id {id:?}; give \"app_id\" to replay the recording into one of its apps"
            )));
        }
        super::check_event_name(hub.limits(), &event.event).map_err(|e| line(e.to_string()))?;
        super::check_event_data(hub.limits(), &event.data).map_err(|e| line(e.to_string()))?;
    }
    Ok((events, recording.skipped, options.speed))
}

/// Publishes through the hub, as the dashboard's publish does, marked as a replay. It holds the hub weakly:
/// a replay does not keep a hub that was replaced or stopped alive.
fn publisher(hub: &Hub) -> PublishFn {
    let weak = hub.downgrade();
    Box::new(move |event: &Event| {
        let weak = weak.clone();
        let app_id = event.app_id.clone().unwrap_or_default();
        let publish = Publish::new(vec![event.channel.clone()], &event.event, &event.data, None, EventSource::Replay);
        Box::pin(async move {
            let hub = weak.upgrade().filter(|h| !h.is_shutting_down()).ok_or("the hub is stopping")?;
            let app = hub.app_by_id(&app_id).ok_or_else(|| format!("no app has the id {app_id:?} any more"))?;
            hub.publish(&app, &publish).finish().await.map(drop).map_err(|e| e.to_string())
        })
    })
}

/// `POST /admin/api/replay`: checks the recording whole, then starts playing it.
async fn start(
    State(state): State<AppState>,
    Extension(slot): Extension<Slot>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = super::api::read_body(body, MAX_RECORDING_BYTES).await?;
    let body: StartBody = serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(crate::protocol::from_object)
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "the body must be a JSON object with \"recording\" (the recording's text) and optionally \"speed\", \
                 \"map\", \"app_id\" and \"name\": {e}"
            ))
        })?;
    // Checked off the runtime's threads (a recording may be 32 MiB) and before the slot is locked, so that the
    // status requests of a playing replay never wait for it.
    let hub = state.hub.clone();
    let (body, checked) = tokio::task::spawn_blocking(move || {
        let checked = checked_events(&hub, &body);
        (body, checked)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("checking a recording failed: {e}")))?;
    let (events, skipped, speed) = checked?;
    let mut current = slot.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(running) = current.as_ref().map(|c| c.player.progress()).filter(|p| !p.state.ended()) {
        return Err(ApiError::Conflict(format!(
            "a replay is already {} ({} of {} events sent); stop it before starting another",
            if running.state == replay::State::Paused { "paused" } else { "playing" },
            running.sent,
            running.total
        )));
    }
    let player = Player::start(events, skipped, speed, publisher(&state.hub));
    let started = Arc::new(Current { player, name: body.name.filter(|n| !n.is_empty()) });
    let status = started.status(started.player.progress());
    tracing::info!(total = status["total"].as_u64(), speed, "a replay was started from the admin API");
    *current = Some(started);
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// `GET /admin/api/replay`.
async fn status(Extension(slot): Extension<Slot>) -> Json<Value> {
    Json(slot.current().map(|c| c.status(c.player.progress())).unwrap_or_else(idle))
}

/// The current replay, or 409.
fn current(slot: &Slot) -> Result<Arc<Current>, ApiError> {
    slot.current().ok_or_else(|| ApiError::Conflict("no replay has been started".into()))
}

/// `POST /admin/api/replay/pause`: answers once nothing more is published until resumed.
async fn pause(Extension(slot): Extension<Slot>) -> Result<Json<Value>, ApiError> {
    let current = current(&slot)?;
    let progress = current.player.pause().await.map_err(ApiError::Conflict)?;
    Ok(Json(current.status(progress)))
}

/// `POST /admin/api/replay/resume`.
async fn resume(Extension(slot): Extension<Slot>) -> Result<Json<Value>, ApiError> {
    let current = current(&slot)?;
    let progress = current.player.resume().await.map_err(ApiError::Conflict)?;
    Ok(Json(current.status(progress)))
}

/// `POST /admin/api/replay/stop`: answers once nothing more is published.
async fn stop(Extension(slot): Extension<Slot>) -> Result<Json<Value>, ApiError> {
    let current = current(&slot)?;
    let progress = current.player.stop().await.map_err(ApiError::Conflict)?;
    Ok(Json(current.status(progress)))
}
