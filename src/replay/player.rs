//! The player: publishes events at `start + (at_ms - first_at_ms) / speed`, an absolute schedule (a late
//! publish makes the next one no later), with time spent paused added to the start. One task per replay;
//! the [`Player`] handle pauses, resumes, stops and reads its progress.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Event;

/// What publishes one event: the caller's path to the hub (the signed HTTP API, the hub itself). An error
/// is the hub's answer, in words; it stops the replay.
pub type PublishFn = Box<dyn FnMut(&Event) -> BoxFuture<'static, Result<(), String>> + Send>;

/// Where a replay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Publishing events on their schedule.
    Playing,
    /// Paused: nothing is published, and the time does not count.
    Paused,
    /// Stopped before its end.
    Stopped,
    /// Every event was published.
    Done,
    /// A publish failed (see [`Progress::error`]); the replay stopped there.
    Failed,
}

impl State {
    /// Whether the replay has ended (stopped, done or failed).
    pub fn ended(self) -> bool {
        matches!(self, State::Stopped | State::Done | State::Failed)
    }
}

/// How far a replay is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// Where it is.
    pub state: State,
    /// Events published.
    pub sent: usize,
    /// Events to publish in all.
    pub total: usize,
    /// Entries of other types in the recording, not published.
    pub skipped: usize,
    /// Events whose publish failed (the replay stops at the first).
    pub failed: usize,
    /// The speed (2 is twice as fast as recorded).
    pub speed: f64,
    /// Time spent playing so far, pauses not counted.
    pub elapsed_ms: u64,
    /// How long the whole replay takes at this speed, from its first event to its last.
    pub duration_ms: u64,
    /// Why it failed: the line of the event and the hub's answer.
    pub error: Option<String>,
}

/// What the handle asks of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Play,
    Pause,
    Stop,
}

#[derive(Debug)]
struct Inner {
    state: State,
    sent: usize,
    failed: usize,
    error: Option<String>,
    started: Instant,
    /// Time spent paused, before the current pause if any.
    paused_total: Duration,
    paused_at: Option<Instant>,
    ended_at: Option<Instant>,
}

impl Inner {
    fn elapsed(&self) -> Duration {
        let now = self.ended_at.or(self.paused_at).unwrap_or_else(Instant::now);
        now.saturating_duration_since(self.started).saturating_sub(self.paused_total)
    }
}

#[derive(Debug)]
struct Shared {
    inner: watch::Sender<Inner>,
    /// Held by the task while it publishes, so that pause and stop return once no publish is in flight.
    gate: tokio::sync::Mutex<()>,
    total: usize,
    skipped: usize,
    speed: f64,
    duration: Duration,
}

impl Shared {
    fn progress(&self) -> Progress {
        let inner = self.inner.borrow();
        Progress {
            state: inner.state,
            sent: inner.sent,
            total: self.total,
            skipped: self.skipped,
            failed: inner.failed,
            speed: self.speed,
            elapsed_ms: inner.elapsed().as_millis() as u64,
            duration_ms: self.duration.as_millis() as u64,
            error: inner.error.clone(),
        }
    }

    /// Ends the replay as `state`, unless it has ended already; the time stops at the pause, if paused.
    fn end(&self, state: State) {
        self.inner.send_if_modified(|inner| {
            if inner.state.ended() {
                return false;
            }
            inner.state = state;
            inner.ended_at = Some(inner.paused_at.take().unwrap_or_else(Instant::now));
            true
        });
    }
}

/// A gap of `ms` recorded milliseconds, played at `speed`, to the microsecond.
pub(super) fn offset(ms: u64, speed: f64) -> Duration {
    Duration::from_micros((ms as f64 * 1000.0 / speed).round() as u64)
}

/// A replay in progress. Dropping it stops the replay.
#[derive(Debug)]
pub struct Player {
    shared: Arc<Shared>,
    control: watch::Sender<Control>,
}

impl Player {
    /// Starts publishing `events` (checked and mapped, oldest first) at `speed` through `publish`, in a
    /// task of the current runtime. `skipped` is only reported.
    pub fn start(events: Vec<Event>, skipped: usize, speed: f64, publish: PublishFn) -> Player {
        let inner = Inner {
            state: State::Playing,
            sent: 0,
            failed: 0,
            error: None,
            started: Instant::now(),
            paused_total: Duration::ZERO,
            paused_at: None,
            ended_at: None,
        };
        let shared = Arc::new(Shared {
            inner: watch::channel(inner).0,
            gate: tokio::sync::Mutex::new(()),
            total: events.len(),
            skipped,
            speed,
            duration: super::duration(&events, speed),
        });
        let (control, rx) = watch::channel(Control::Play);
        tokio::spawn(run(shared.clone(), events, publish, rx));
        Player { shared, control }
    }

    /// How far it is.
    pub fn progress(&self) -> Progress {
        self.shared.progress()
    }

    /// Pauses; returns once no publish is in flight, so nothing more is sent until [`Player::resume`].
    pub async fn pause(&self) -> Result<Progress, String> {
        self.change(State::Playing, "nothing is playing", |inner, now| {
            inner.state = State::Paused;
            inner.paused_at = Some(now);
        })?;
        self.control.send_replace(Control::Pause);
        drop(self.shared.gate.lock().await);
        Ok(self.progress())
    }

    /// Resumes a paused replay where it was: the time spent paused does not count.
    pub async fn resume(&self) -> Result<Progress, String> {
        self.change(State::Paused, "nothing is paused", |inner, now| {
            if let Some(at) = inner.paused_at.take() {
                inner.paused_total += now.saturating_duration_since(at);
            }
            inner.state = State::Playing;
        })?;
        self.control.send_replace(Control::Play);
        Ok(self.progress())
    }

    /// Stops a playing or paused replay; returns once no publish is in flight.
    pub async fn stop(&self) -> Result<Progress, String> {
        let state = self.progress().state;
        if state.ended() {
            return Err(format!("nothing is playing or paused (the replay is {})", name(state)));
        }
        self.control.send_replace(Control::Stop);
        drop(self.shared.gate.lock().await);
        // The task may have ended on its own meanwhile (done, failed): that stays.
        self.shared.end(State::Stopped);
        Ok(self.progress())
    }

    /// Waits until the replay has ended, and says how it ended.
    pub async fn finished(&self) -> Progress {
        let mut rx = self.shared.inner.subscribe();
        // The sender lives in `shared`, which this handle holds: the wait ends only with the replay.
        let _ = rx.wait_for(|inner| inner.state.ended()).await;
        self.progress()
    }

    fn change(&self, from: State, nothing: &str, apply: impl FnOnce(&mut Inner, Instant)) -> Result<(), String> {
        let mut refused = None;
        self.shared.inner.send_if_modified(|inner| {
            if inner.state != from {
                refused = Some(inner.state);
                return false;
            }
            apply(inner, Instant::now());
            true
        });
        match refused {
            Some(state) => Err(format!("{nothing} (the replay is {})", name(state))),
            None => Ok(()),
        }
    }
}

/// A state as the progress names it.
fn name(state: State) -> &'static str {
    match state {
        State::Playing => "playing",
        State::Paused => "paused",
        State::Stopped => "stopped",
        State::Done => "done",
        State::Failed => "failed",
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.control.send_replace(Control::Stop);
    }
}

/// The replay's task: each event at its time, while playing.
async fn run(shared: Arc<Shared>, events: Vec<Event>, mut publish: PublishFn, mut control: watch::Receiver<Control>) {
    let first = events.first().map(|e| e.at_ms).unwrap_or(0);
    for event in &events {
        let offset = offset(event.at_ms - first, shared.speed);
        let gate = loop {
            let asked = *control.borrow_and_update();
            match asked {
                Control::Stop => return shared.end(State::Stopped),
                Control::Pause => {
                    if control.changed().await.is_err() {
                        return shared.end(State::Stopped);
                    }
                    continue;
                }
                Control::Play => {}
            }
            let due = {
                let inner = shared.inner.borrow();
                inner.started.checked_add(inner.paused_total + offset)
            };
            let wait = async {
                match due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    // Beyond what the clock can tell: only a pause or a stop ends the wait.
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = control.changed() => {
                    if changed.is_err() {
                        return shared.end(State::Stopped);
                    }
                    continue;
                }
                () = wait => {}
            }
            let gate = shared.gate.lock().await;
            // A pause or a stop asked while this task waited for the gate wins.
            if *control.borrow() == Control::Play {
                break gate;
            }
        };
        let result = publish(event).await;
        match result {
            Ok(()) => shared.inner.send_modify(|inner| inner.sent += 1),
            Err(e) => {
                shared.inner.send_modify(|inner| {
                    inner.failed += 1;
                    inner.error = Some(format!(
                        "line {}: the event {:?} on {} was not published: {e}",
                        event.line,
                        event.event,
                        event.channel.as_str()
                    ));
                });
                drop(gate);
                return shared.end(State::Failed);
            }
        }
        drop(gate);
    }
    shared.end(State::Done);
}
