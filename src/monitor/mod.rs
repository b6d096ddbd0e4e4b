//! The monitor feed: what happens in the hub, as events the dashboard shows live and the journal keeps.
//! The hub, the HTTP layer and the webhooks report to it, and it knows none of them.
//!
//! It is a bounded broadcast: a viewer that falls behind loses the oldest events (and is told how many)
//! rather than slowing the hub. When nobody watches and no journal is attached, events are not even built
//! ([`Monitor::is_watched`]). Published events go to viewers only: the history keeps them, and the journal
//! ([`journal`]) keeps every other kind.

mod event;
pub mod journal;

pub use event::{EventSource, Kind, MAX_NAME, MAX_TEXT, MonitorEvent, WebhookOutcome};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{broadcast, mpsc};

/// How many monitor events wait for a slow viewer before the oldest are skipped.
pub const MONITOR_CAPACITY: usize = 8192;

/// Most channels remembered as "every subscriber was refused" for [`Monitor::publish_hint`].
const REFUSED_REMEMBERED: usize = 1024;

/// The sending side of the feed. Clones share one feed, one journal and one memory of refusals.
#[derive(Debug, Clone)]
pub struct Monitor {
    tx: broadcast::Sender<MonitorEvent>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Where journaled kinds go, once a journal is attached.
    journal: OnceLock<mpsc::Sender<MonitorEvent>>,
    /// Events the journal's queue had no room for.
    journal_dropped: AtomicU64,
    /// Private and presence channels whose last subscription attempt was refused, by app and name; the
    /// publish hint reads it.
    refused: Mutex<HashMap<(Arc<str>, String), u16>>,
    any_refused: AtomicBool,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor { tx: broadcast::channel(MONITOR_CAPACITY).0, shared: Arc::default() }
    }
}

impl Monitor {
    /// Whether any viewer listens. Published events are built only then, so an unwatched hub pays one
    /// atomic load per event and nothing else.
    pub fn is_watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Whether an event of a journaled kind is wanted by anyone (a viewer or the journal).
    pub fn is_watched_or_journaled(&self) -> bool {
        self.is_watched() || self.shared.journal.get().is_some()
    }

    /// Sends an event to every viewer, and to the journal if it keeps its kind; never waits. What a client
    /// sent is clipped first ([`MonitorEvent::clip`]).
    pub fn send(&self, mut event: MonitorEvent) {
        event.clip();
        if event.kind().journaled()
            && let Some(journal) = self.shared.journal.get()
            && journal.try_send(event.clone()).is_err()
        {
            self.shared.journal_dropped.fetch_add(1, Relaxed);
        }
        // An error only means nobody is watching, which is fine.
        let _ = self.tx.send(event);
    }

    /// Sends the event built by `make` if anyone wants it. For published events, which only viewers want,
    /// check [`Monitor::is_watched`] instead.
    pub fn emit(&self, make: impl FnOnce() -> MonitorEvent) {
        if self.is_watched_or_journaled() {
            self.send(make());
        }
    }

    /// A new viewer. A viewer that lags gets `RecvError::Lagged(n)` with the number of events it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<MonitorEvent> {
        self.tx.subscribe()
    }

    /// Gives journaled kinds to `journal` from now on (once; a second journal is refused).
    pub fn attach_journal(&self, journal: mpsc::Sender<MonitorEvent>) -> bool {
        self.shared.journal.set(journal).is_ok()
    }

    /// Journaled events dropped because the journal's queue was full.
    pub fn journal_dropped(&self) -> u64 {
        self.shared.journal_dropped.load(Relaxed)
    }

    /// Remembers that a subscription to a private or presence channel was refused with `status`.
    pub fn subscription_refused(&self, app: &Arc<str>, channel: &str, status: u16) {
        let mut refused = self.shared.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.len() >= REFUSED_REMEMBERED {
            refused.clear();
        }
        refused.insert((app.clone(), channel.to_owned()), status);
        self.shared.any_refused.store(true, Relaxed);
    }

    /// Forgets a refusal once a subscription to the channel succeeds.
    pub fn subscription_succeeded(&self, app: &Arc<str>, channel: &str) {
        if self.shared.any_refused.load(Relaxed) {
            let mut refused = self.shared.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.remove(&(app.clone(), channel.to_owned()));
            self.shared.any_refused.store(!refused.is_empty(), Relaxed);
        }
    }

    /// The classic mistake a published event shows, if any: a PHP class as the event name, nobody
    /// subscribed, or a private channel whose subscribers were all refused. `excluded` is the connection the
    /// event was not for (the sender of a client event, or an API publish's `socket_id`): `delivered` does
    /// not count it.
    pub fn publish_hint(
        &self,
        app: &Arc<str>,
        channel: &str,
        event: &str,
        excluded: Option<&str>,
        delivered: usize,
    ) -> Option<Arc<str>> {
        if delivered == 0 {
            if let Some(status) = self.refused_status(app, channel) {
                return Some(Arc::from(format!(
                    "nobody received it: every subscription to {channel} was refused ({status}); check the page's \
                     auth endpoint and that it signs with this app's secret"
                )));
            }
            return Some(Arc::from(match excluded {
                Some(socket) if event.starts_with("client-") => format!(
                    "nobody else received it: its sender ({socket}) was the only connection to this hub subscribed \
                     to the channel"
                ),
                Some(socket) => format!(
                    "nobody received it: no connection to this hub but {socket} (which it was not for) was \
                     subscribed to the channel when it was published"
                ),
                None => "nobody received it: no connection to this hub was subscribed to the channel when it was \
                         published"
                    .to_owned(),
            }));
        }
        php_class_hint(event).map(Arc::from)
    }

    fn refused_status(&self, app: &Arc<str>, channel: &str) -> Option<u16> {
        if !self.shared.any_refused.load(Relaxed) {
            return None;
        }
        let refused = self.shared.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.get(&(app.clone(), channel.to_owned())).copied()
    }
}

/// The hint for an event named like a PHP class (`App\Events\OrderShipped`): what Laravel broadcasts
/// without `broadcastAs`, which laravel-echo finds only under its namespace or with a leading dot.
pub fn php_class_hint(event: &str) -> Option<String> {
    let (_, short) = event.rsplit_once('\\')?;
    if short.is_empty() {
        return None;
    }
    Some(format!(
        "{event:?} looks like a PHP class name: laravel-echo's .listen('{short}') finds it only with Echo's \
         default namespace (App\\Events); otherwise listen to '.{event}' (a leading dot means the full name), or \
         give the event a broadcastAs() name and listen to '.' followed by that name"
    ))
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_class_names_get_a_hint_and_plain_names_do_not() {
        let hint = php_class_hint(r"App\Events\OrderShipped").unwrap();
        assert!(hint.contains(".listen('OrderShipped')"), "{hint}");
        assert!(hint.contains(r"'.App\Events\OrderShipped'"), "{hint}");
        assert_eq!(php_class_hint("order.shipped"), None);
        assert_eq!(php_class_hint(r"Trailing\"), None);
    }

    #[test]
    fn a_refused_private_channel_is_named_until_a_subscription_succeeds() {
        let monitor = Monitor::default();
        let app: Arc<str> = Arc::from("1");
        let hint = monitor.publish_hint(&app, "private-a", "e", None, 0).unwrap();
        assert!(hint.contains("no connection to this hub was subscribed"), "{hint}");
        let hint = monitor.publish_hint(&app, "private-a", "client-e", Some("1.2"), 0).unwrap();
        assert!(hint.contains("its sender (1.2) was the only connection"), "{hint}");
        let hint = monitor.publish_hint(&app, "private-a", "e", Some("1.2"), 0).unwrap();
        assert!(hint.contains("but 1.2 (which it was not for)"), "{hint}");
        monitor.subscription_refused(&app, "private-a", 401);
        let hint = monitor.publish_hint(&app, "private-a", "e", None, 0).unwrap();
        assert!(hint.contains("every subscription to private-a was refused (401)"), "{hint}");
        assert!(monitor.publish_hint(&app, "private-a", "e", None, 1).is_none());
        monitor.subscription_succeeded(&app, "private-a");
        assert!(monitor.publish_hint(&app, "private-a", "e", None, 0).unwrap().contains("no connection"));
    }

    #[test]
    fn what_a_client_sent_is_clipped_on_a_character_boundary() {
        let monitor = Monitor::default();
        let mut feed = monitor.subscribe();
        let key = "é".repeat(10_000);
        monitor.send(MonitorEvent::ConnectionRefused {
            at_ms: 1,
            remote: "127.0.0.1:1".into(),
            app_key: Some(key.clone()),
            origin: None,
            code: 4001,
            reason: format!("no app has the key {key:?}"),
            hint: Some(format!("the key {key:?} belongs to no app")),
        });
        let MonitorEvent::ConnectionRefused { app_key, reason, hint, .. } = feed.try_recv().unwrap() else {
            panic!("not a refused connection")
        };
        let (app_key, hint) = (app_key.unwrap(), hint.unwrap());
        assert!(app_key.len() <= MAX_NAME + '…'.len_utf8() && app_key.ends_with("é…"), "{app_key}");
        assert!(reason.len() <= MAX_TEXT + 3 && reason.starts_with("no app has the key \"éé"), "{reason}");
        assert!(hint.len() <= MAX_TEXT + 3 && hint.ends_with('…'));
    }

    #[test]
    fn the_journal_gets_every_kind_but_published_events() {
        let monitor = Monitor::default();
        assert!(!monitor.is_watched_or_journaled());
        let (tx, mut rx) = mpsc::channel(1);
        assert!(monitor.attach_journal(tx.clone()));
        assert!(!monitor.attach_journal(tx));
        assert!(monitor.is_watched_or_journaled() && !monitor.is_watched());
        let error = || MonitorEvent::Error { at_ms: 1, socket_id: None, code: None, message: String::new() };
        monitor.emit(error);
        monitor.emit(error);
        assert_eq!(rx.try_recv().unwrap().kind(), Kind::Refusal);
        assert_eq!(monitor.journal_dropped(), 1, "a full queue drops and counts");
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert!(!Kind::Event.journaled() && !Kind::ClientEvent.journaled() && Kind::Webhook.journaled());
    }
}
