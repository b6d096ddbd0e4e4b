//! This hub's own messages to the cluster, and what waits for them to come back.
//!
//! Every message a hub sends gets the next number of that hub (`seq`). While both the publisher and the
//! subscriber connection work, an event published here is **not** delivered here at once: it waits until
//! it comes back through the subscriber connection, in the order Redis gives every hub, and is delivered
//! then, so every hub delivers the cluster's events in one order. A sync waits the same way: when it comes
//! back, everything Redis accepted before it has been applied here.
//!
//! While a connection is down, nothing would come back: what waits is delivered here at once (in order),
//! and later events are delivered here when they are published and marked so (`here`), so that their
//! copy coming back later is not delivered twice. Except the events the cluster's history keeps: they need
//! the position the cluster gives them, so they go on waiting; the publisher sends them again once it is
//! connected, and they are delivered here when they come back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::history::{HistoryError, Position};
use crate::hub::{Delivery, Hub, Publish};

/// How long a message may take to come back before the subscriber connection is taken for broken.
pub(super) const ECHO_TIMEOUT: Duration = Duration::from_secs(3);

/// A message for the publisher connection.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// Its number.
    pub(super) seq: u64,
    /// For this hub's own channel (a sync) rather than the cluster's.
    pub(super) to_self: bool,
    /// The serialized envelope.
    pub(super) message: String,
    /// Published by one of the history's scripts (which give positions or read heads first), not as is.
    pub(super) script: Option<super::history::Call>,
}

/// What waits for one of this hub's messages to come back.
pub(super) enum Waiter {
    /// An event published here: delivered here when it comes back, then answered. With `kept`, it gets
    /// its positions from the cluster's history, and waits for them even while the links are down.
    Deliver { app: String, event: Box<Publish>, kept: bool, answer: oneshot::Sender<Result<usize, HistoryError>> },
    /// A sync: answered when it comes back.
    Sync(oneshot::Sender<()>),
}

impl Waiter {
    /// Does what waited: delivers the event here (at the positions the cluster's history gave it, if it
    /// gave some) and answers its publisher, or answers the sync.
    pub(super) fn resolve(self, hub: Option<&Hub>, positions: Option<&[Option<Position>]>) {
        match self {
            Waiter::Sync(answer) => {
                let _ = answer.send(());
            }
            Waiter::Deliver { app, event, answer, .. } => {
                let Some(hub) = hub else { return };
                let Some(app) = hub.app_by_id(&app) else {
                    let _ = answer.send(Ok(0));
                    return;
                };
                if let Some(positions) = positions {
                    let _ = answer.send(Ok(hub.deliver_positioned(&app, &event, positions)));
                    return;
                }
                match hub.deliver_local(&app, &event) {
                    Delivery::Done(n) => {
                        let _ = answer.send(Ok(n));
                    }
                    // Kept in the history first: its order is fixed already (serials are given as
                    // `deliver_local` is called); the answer waits for the store.
                    pending => {
                        tokio::spawn(async move {
                            let _ = answer.send(pending.finish().await);
                        });
                    }
                }
            }
        }
    }
}

impl Waiter {
    /// What waited for a message that went round the cluster while this hub's subscription was lost: the
    /// other hubs had it, this one never will. A kept event is answered as published (it is in the
    /// cluster's history; this hub's clients that count positions recover it), a sync as done.
    pub(super) fn missed(self) {
        match self {
            Waiter::Sync(answer) => {
                let _ = answer.send(());
            }
            Waiter::Deliver { answer, .. } => {
                let _ = answer.send(Ok(0));
            }
        }
    }

    /// What waited when the hub stops: a kept event still waiting for its positions is answered with an
    /// error (the cluster may or may not have it); anything else is done here.
    pub(super) fn stopped(self, hub: Option<&Hub>) {
        match self {
            Waiter::Deliver { kept: true, answer, .. } => {
                let why = "the hub stopped before the cluster confirmed the event (it may have been kept)";
                let _ = answer.send(Err(HistoryError::Unreachable(why.into())));
            }
            other => other.resolve(hub, None),
        }
    }
}

/// How a message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// Queued; its waiter waits for it to come back.
    Waiting,
    /// Queued, marked as delivered at its origin: the links are down, so the caller delivers it here.
    Here,
    /// Not queued: the outbox is full (counted). The caller delivers it here.
    Dropped,
    /// Not queued: it may only be sent while ordered, and the links are down.
    Unordered,
}

struct Pending {
    seq: u64,
    at: Instant,
    waiter: Waiter,
}

#[derive(Default)]
struct State {
    /// The number of the next message.
    next: u64,
    /// Whether messages come back (both connections work), and since when.
    ordered: bool,
    ordered_since: Option<Instant>,
    /// What waits, by increasing number.
    pending: VecDeque<Pending>,
}

/// The numbering of this hub's messages and what waits for them.
#[derive(Default)]
pub(super) struct Own {
    state: Mutex<State>,
}

impl std::fmt::Debug for Own {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Own").field("next", &s.next).field("ordered", &s.ordered).finish_non_exhaustive()
    }
}

impl Own {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers a message, has `make(seq, here)` write it, and queues it, all under one lock so that the
    /// numbers leave in order. With the links up, `waiter` waits for the message to come back; otherwise
    /// it is dropped and the message is marked as delivered here.
    pub(super) fn send(
        &self,
        outbox: &mpsc::Sender<Outgoing>,
        make: impl FnOnce(u64, bool) -> Outgoing,
        waiter: Option<Waiter>,
        only_ordered: bool,
    ) -> Sent {
        let mut s = self.lock();
        let ordered = s.ordered;
        if only_ordered && !ordered {
            return Sent::Unordered;
        }
        let seq = s.next;
        s.next += 1;
        if outbox.try_send(make(seq, !ordered)).is_err() {
            return Sent::Dropped;
        }
        if !ordered {
            return Sent::Here;
        }
        if let Some(waiter) = waiter {
            s.pending.push_back(Pending { seq, at: Instant::now(), waiter });
        }
        Sent::Waiting
    }

    /// Whether messages come back now.
    pub(super) fn is_ordered(&self) -> bool {
        self.lock().ordered
    }

    /// Message `seq` came back: what waited for it, and for any earlier message that did not come back
    /// (lost while a connection was replaced), in order, each with its number.
    pub(super) fn came_back(&self, seq: u64) -> Vec<(u64, Waiter)> {
        let mut s = self.lock();
        let mut out = Vec::new();
        while s.pending.front().is_some_and(|p| p.seq <= seq) {
            out.extend(s.pending.pop_front().map(|p| (p.seq, p.waiter)));
        }
        out
    }

    /// Sets whether messages come back. Turning it off gives back what waits, in order, for the caller to
    /// deliver here, except (with `keep_kept`) the events the cluster's history keeps: those go on waiting
    /// for their positions.
    #[must_use]
    pub(super) fn set_ordered(&self, ordered: bool, keep_kept: bool) -> Vec<Waiter> {
        let mut s = self.lock();
        s.ordered = ordered;
        s.ordered_since = ordered.then(Instant::now);
        if ordered {
            return Vec::new();
        }
        let (kept, out): (VecDeque<Pending>, VecDeque<Pending>) =
            s.pending.drain(..).partition(|p| keep_kept && matches!(p.waiter, Waiter::Deliver { kept: true, .. }));
        s.pending = kept;
        out.into_iter().map(|p| p.waiter).collect()
    }

    /// What waits for messages that Redis confirmed (numbers up to `confirmed`) before messages began to
    /// come back again, and that still have not, [`ECHO_TIMEOUT`] after: they went round the cluster while
    /// this hub's subscription was lost.
    pub(super) fn unreturned(&self, confirmed: u64) -> Vec<Waiter> {
        let mut s = self.lock();
        let Some(since) = s.ordered_since.filter(|t| t.elapsed() > ECHO_TIMEOUT) else { return Vec::new() };
        let mut out = Vec::new();
        while s.pending.front().is_some_and(|p| p.seq <= confirmed && p.at < since) {
            out.extend(s.pending.pop_front().map(|p| p.waiter));
        }
        out
    }

    /// How long the oldest waiting message has waited for its return while messages come back (counted
    /// from when they began to, at the earliest); `None` while they do not (a kept event then waits for the
    /// links as long as they take).
    pub(super) fn oldest_wait(&self) -> Option<Duration> {
        let s = self.lock();
        let since = s.ordered_since?;
        s.pending.front().map(|p| p.at.max(since).elapsed())
    }
}

/// Whether another hub's message is new: its number is past the last one seen from that hub (a message
/// sent again after a publisher connection failed may have got through the first time).
#[derive(Debug, Default)]
pub(super) struct Seen(Mutex<std::collections::HashMap<Arc<str>, u64>>);

impl Seen {
    pub(super) fn first_time(&self, node: &str, seq: u64) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get_mut(node) {
            Some(last) if *last >= seq => false,
            Some(last) => {
                *last = seq;
                true
            }
            None => {
                seen.insert(Arc::from(node), seq);
                true
            }
        }
    }

    /// Forgets a hub that left the cluster.
    pub(super) fn forget(&self, node: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync_waiter() -> (Waiter, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Waiter::Sync(tx), rx)
    }

    fn outgoing(seq: u64, here: bool) -> Outgoing {
        Outgoing { seq, to_self: false, message: format!("{seq}:{here}"), script: None }
    }

    #[test]
    fn messages_wait_only_while_ordered_and_leave_numbered_in_order() {
        let own = Own::default();
        let (tx, mut rx) = mpsc::channel(8);
        let (w, _) = sync_waiter();
        assert_eq!(own.send(&tx, outgoing, Some(w), false), Sent::Here, "links down: delivered here");
        assert!(own.set_ordered(true, true).is_empty());
        let (w, _) = sync_waiter();
        assert_eq!(own.send(&tx, outgoing, Some(w), false), Sent::Waiting);
        assert_eq!(rx.try_recv().unwrap().message, "0:true");
        assert_eq!(rx.try_recv().unwrap().message, "1:false");
        assert!(own.oldest_wait().is_some());
    }

    #[test]
    fn a_message_back_answers_it_and_any_earlier_one_lost() {
        let own = Own::default();
        let (tx, _rx) = mpsc::channel(8);
        let _ = own.set_ordered(true, true);
        let (w0, r0) = sync_waiter();
        let (w1, r1) = sync_waiter();
        let (w2, mut r2) = sync_waiter();
        own.send(&tx, outgoing, Some(w0), false);
        own.send(&tx, outgoing, Some(w1), false);
        own.send(&tx, outgoing, Some(w2), false);
        let back = own.came_back(1);
        assert_eq!(back.len(), 2, "0 was lost, 1 came back");
        assert_eq!(back.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [0, 1]);
        back.into_iter().for_each(|(_, w)| w.resolve(None, None));
        assert!(r0.blocking_recv().is_ok() && r1.blocking_recv().is_ok());
        assert!(r2.try_recv().is_err(), "2 still waits");
        // The links go down: what waits is given back to be done here.
        assert_eq!(own.set_ordered(false, true).len(), 1);
        assert!(own.oldest_wait().is_none());
    }

    #[test]
    fn a_kept_event_waits_for_its_positions_across_a_link_failure() {
        let own = Own::default();
        let (tx, _rx) = mpsc::channel(8);
        let _ = own.set_ordered(true, true);
        let deliver = |kept| {
            let (answer, _) = oneshot::channel();
            let event = Publish::new(Vec::new(), "e", "{}", None, crate::monitor::EventSource::Api);
            Waiter::Deliver { app: "1".into(), event: Box::new(event), kept, answer }
        };
        own.send(&tx, outgoing, Some(deliver(true)), true);
        own.send(&tx, outgoing, Some(deliver(false)), false);
        assert_eq!(own.set_ordered(false, true).len(), 1, "the event without a position is delivered here");
        assert!(own.oldest_wait().is_none(), "the kept one waits, for as long as the links take");
        assert_eq!(own.lock().pending.len(), 1);
        let _ = own.set_ordered(true, true);
        assert_eq!(own.came_back(0).len(), 1, "and is done when it comes back");
        // When the hub stops, nothing waits any more.
        own.send(&tx, outgoing, Some(deliver(true)), true);
        assert_eq!(own.set_ordered(false, false).len(), 1);
    }

    #[test]
    fn what_needs_the_order_is_not_sent_without_it() {
        let own = Own::default();
        let (tx, mut rx) = mpsc::channel(8);
        assert_eq!(own.send(&tx, outgoing, None, true), Sent::Unordered);
        assert!(rx.try_recv().is_err(), "nothing queued");
        let _ = own.set_ordered(true, true);
        assert_eq!(own.send(&tx, outgoing, None, true), Sent::Waiting);
        assert_eq!(rx.try_recv().unwrap().message, "0:false", "the refused one took no number");
    }

    #[test]
    fn a_full_outbox_drops_and_says_so() {
        let own = Own::default();
        let (tx, _rx) = mpsc::channel(1);
        let _ = own.set_ordered(true, true);
        assert_eq!(own.send(&tx, outgoing, None, false), Sent::Waiting);
        assert_eq!(own.send(&tx, outgoing, None, false), Sent::Dropped);
    }

    #[test]
    fn a_message_sent_twice_counts_once() {
        let seen = Seen::default();
        assert!(seen.first_time("b", 0));
        assert!(seen.first_time("b", 1));
        assert!(!seen.first_time("b", 1), "sent again after a failed connection");
        assert!(!seen.first_time("b", 0));
        assert!(seen.first_time("c", 0), "numbers are per hub");
        seen.forget("b");
        assert!(seen.first_time("b", 0));
    }
}
