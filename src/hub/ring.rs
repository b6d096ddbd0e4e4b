//! A channel's ring: the frames published to the channel that some subscriber has yet to take, in the
//! channel's one order.
//!
//! Publishing appends one slot, whatever the number of subscribers, and wakes only the sessions that had
//! taken everything and were waiting. A session takes every frame it has not yet read when it is ready to
//! write, so a subscriber that is behind catches up with several frames in one write instead of being
//! handed one frame per event. A slot goes as soon as every subscriber it is for has taken it.
//!
//! A subscriber that falls a whole ring (`send_queue_frames`) behind is what holds the oldest slot when
//! the ring is full: it is taken out of the ring, and the caller closes it with 4100. The others never
//! wait for it, and the memory a channel holds stays bounded.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::task::Waker;

use super::Frame;

/// Slots an emptied ring keeps room for; a burst can leave a larger buffer behind.
const KEPT: usize = 16;

/// One published frame.
#[derive(Debug)]
struct Slot {
    /// Its place among every frame published to the app's channels, so that a session reading several
    /// channels writes their frames in the order they were published.
    seq: u64,
    /// The frame.
    frame: Frame,
    /// The connection it is not for (the sender of a client event, the API's `socket_id`).
    except: Option<u64>,
    /// What that connection gets in its place if it counts the channel's positions (a kept event): a
    /// `pusher_internal:poussr_position` naming the event's position, so that its count stays right.
    skip: Option<Frame>,
    /// The subscribers that have yet to take it.
    remaining: usize,
}

impl Slot {
    /// Whether subscriber `number` takes this slot: the frame, or the skip frame in its place if it
    /// counts positions.
    fn is_for(&self, number: u64, positioned: bool) -> bool {
        self.except != Some(number) || (positioned && self.skip.is_some())
    }
}

/// The frames of one channel that its subscribers have yet to take.
#[derive(Debug, Default)]
pub(super) struct Ring {
    /// The channel's serial of `slots[0]`; of the next frame when there is none.
    first: u64,
    /// The frames, oldest first: serials `first ..`.
    slots: VecDeque<Slot>,
    /// The subscribers, by connection number: the serial of the next frame each takes.
    readers: HashMap<u64, u64>,
    /// The subscribers that have taken everything and wait for the next frame.
    waiters: HashMap<u64, Waker>,
    /// The subscribers that count the channel's positions (they asked to resume): an event not for one
    /// of them is replaced by its `skip` frame instead of left out.
    positioned: HashSet<u64>,
}

/// What an append did.
#[derive(Debug, Default)]
pub(super) struct Appended {
    /// The subscribers the frame is for.
    pub(super) delivered: usize,
    /// The sessions to wake (done once no lock is held).
    pub(super) wake: Vec<Waker>,
    /// Subscribers taken out of the ring for being a whole ring behind: the caller closes them (4100).
    pub(super) dropped: Vec<u64>,
}

impl Appended {
    /// Wakes the sessions that were waiting for the frame.
    pub(super) fn wake(self) {
        for waker in self.wake {
            waker.wake();
        }
    }
}

impl Ring {
    /// The serial the next frame gets.
    fn head(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    /// Where in `slots` a reader whose next frame is `cursor` starts. A cursor can be behind `first`: the
    /// frames between were let go because everyone they were for took them, so none was for this reader.
    fn index(&self, cursor: u64) -> usize {
        cursor.saturating_sub(self.first) as usize
    }

    /// Adds a subscriber: it reads what is published from now on.
    pub(super) fn join(&mut self, number: u64) {
        let head = self.head();
        self.readers.insert(number, head);
    }

    /// Marks a subscriber as counting the channel's positions (see `positioned`).
    pub(super) fn count_positions(&mut self, number: u64) {
        if self.readers.contains_key(&number) {
            self.positioned.insert(number);
        }
    }

    /// Whether a subscriber counts the channel's positions.
    pub(super) fn counts_positions(&self, number: u64) -> bool {
        self.positioned.contains(&number)
    }

    /// Removes a subscriber, giving up its claim on the frames it had not taken. Harmless if it is not
    /// one (it was dropped for being too far behind).
    pub(super) fn leave(&mut self, number: u64) {
        self.waiters.remove(&number);
        let positioned = self.positioned.remove(&number);
        if let Some(cursor) = self.readers.remove(&number) {
            let left = self.readers.len();
            shrink(&mut self.readers, left);
            let from = self.index(cursor);
            for slot in self.slots.range_mut(from..) {
                if slot.is_for(number, positioned) {
                    slot.remaining -= 1;
                }
            }
            self.trim();
        }
    }

    /// Appends `frame`, numbered `seq`, for every subscriber but `except`. When the ring already holds
    /// `capacity` frames, the subscribers that have not taken the oldest are dropped first.
    #[cfg(test)]
    pub(super) fn append(&mut self, seq: u64, frame: Frame, except: Option<u64>, capacity: usize) -> Appended {
        self.append_kept(seq, frame, except, None, capacity)
    }

    /// [`Ring::append`] for a kept event: `skip` is what `except` gets in its place if it counts positions.
    pub(super) fn append_kept(
        &mut self,
        seq: u64,
        frame: Frame,
        except: Option<u64>,
        skip: Option<Frame>,
        capacity: usize,
    ) -> Appended {
        let mut done = Appended::default();
        if self.slots.len() >= capacity {
            let first = self.first;
            done.dropped = self.readers.iter().filter(|&(_, &cursor)| cursor <= first).map(|(&n, _)| n).collect();
            for &number in &done.dropped {
                self.leave(number);
            }
        }
        let excluded = except.is_some_and(|n| self.readers.contains_key(&n));
        done.delivered = self.readers.len() - usize::from(excluded);
        // The excluded subscriber takes the slot too when it gets the skip frame in its place.
        let skipping = excluded && skip.is_some() && except.is_some_and(|n| self.positioned.contains(&n));
        let remaining = done.delivered + usize::from(skipping);
        self.slots.push_back(Slot { seq, frame, except, skip, remaining });
        self.trim();
        if remaining > 0 {
            let kept = except.filter(|_| !skipping).and_then(|n| self.waiters.remove(&n).map(|w| (n, w)));
            done.wake = self.waiters.drain().map(|(_, waker)| waker).collect();
            // Room for about as many as waited this time: a channel whose crowd has gone does not keep
            // the table it needed then.
            shrink(&mut self.waiters, done.wake.len());
            if let Some((n, waker)) = kept {
                self.waiters.insert(n, waker);
            }
        }
        done
    }

    /// Hands subscriber `number` the frames it has not taken, oldest first, up to the first numbered
    /// `below` or higher. False if it is not a subscriber (any more).
    pub(super) fn take(&mut self, number: u64, below: u64, mut put: impl FnMut(u64, &Frame)) -> bool {
        let Some(&cursor) = self.readers.get(&number) else { return false };
        let mut at = self.index(cursor);
        while let Some(slot) = self.slots.get_mut(at) {
            if slot.seq >= below {
                break;
            }
            if slot.except != Some(number) {
                put(slot.seq, &slot.frame);
                slot.remaining -= 1;
            } else if let Some(skip) = slot.skip.as_ref().filter(|_| self.positioned.contains(&number)) {
                put(slot.seq, skip);
                slot.remaining -= 1;
            }
            at += 1;
        }
        self.readers.insert(number, self.first + at as u64);
        self.trim();
        true
    }

    /// Whether subscriber `number` has frames to take; if not, `waker` is woken by the next append.
    /// False, with nothing registered, if it is not a subscriber (any more).
    pub(super) fn poll(&mut self, number: u64, waker: &Waker) -> bool {
        let Some(&cursor) = self.readers.get(&number) else { return false };
        if cursor < self.head() {
            return true;
        }
        match self.waiters.entry(number) {
            Entry::Occupied(e) if e.get().will_wake(waker) => {}
            Entry::Occupied(mut e) => {
                e.insert(waker.clone());
            }
            Entry::Vacant(e) => {
                e.insert(waker.clone());
            }
        }
        false
    }

    /// The frames held (what no subscriber it is for has yet to take is gone).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Lets go of the frames every subscriber they were for has taken.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|s| s.remaining == 0) {
            self.slots.pop_front();
            self.first += 1;
        }
        if self.slots.is_empty() && self.slots.capacity() > KEPT {
            self.slots.shrink_to(KEPT);
        }
    }
}

/// Gives back a map's room when it holds far fewer than it has room for (a quarter), keeping twice what
/// it holds; halving at most as often as it was filled, this costs each insert a constant at most.
fn shrink<V>(map: &mut HashMap<u64, V>, used: usize) {
    if map.capacity() > 4 * used.max(KEPT) {
        map.shrink_to(2 * used.max(KEPT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Frame {
        Frame::text(&format!("f{n}"))
    }

    fn take_all(ring: &mut Ring, number: u64) -> Option<Vec<String>> {
        let mut got = Vec::new();
        ring.take(number, u64::MAX, |_, f| got.push(f.to_text().to_string())).then_some(got)
    }

    #[test]
    fn each_reader_takes_what_was_published_after_it_joined_once_and_in_order() {
        let mut ring = Ring::default();
        ring.join(1);
        assert_eq!(ring.append(0, frame(0), None, 8).delivered, 1);
        ring.join(2);
        assert_eq!(ring.append(1, frame(1), None, 8).delivered, 2);
        assert_eq!(take_all(&mut ring, 1).unwrap(), ["f0", "f1"]);
        assert_eq!(take_all(&mut ring, 1).unwrap(), Vec::<String>::new());
        assert_eq!(ring.len(), 1, "f1 stays until reader 2 takes it");
        assert_eq!(take_all(&mut ring, 2).unwrap(), ["f1"]);
        assert_eq!(ring.len(), 0, "taken by everyone it was for: gone");
    }

    #[test]
    fn an_excluded_reader_that_counts_positions_takes_the_skip_frame_in_its_place() {
        let mut ring = Ring::default();
        ring.join(1);
        ring.join(2);
        ring.count_positions(2);
        let waker = futures_util::task::noop_waker();
        assert!(!ring.poll(2, &waker));
        let done = ring.append_kept(0, frame(0), Some(2), Some(Frame::text("skip0")), 8);
        assert_eq!(done.delivered, 1, "the event itself goes to reader 1 only");
        assert_eq!(done.wake.len(), 1, "reader 2 is woken for its skip frame");
        assert_eq!(take_all(&mut ring, 1).unwrap(), ["f0"]);
        assert_eq!(ring.len(), 1, "kept until reader 2 has taken its skip frame");
        assert_eq!(take_all(&mut ring, 2).unwrap(), ["skip0"]);
        assert_eq!(ring.len(), 0);
        // A reader that does not count positions skips the event as before; leaving settles its claims.
        ring.join(3);
        ring.append_kept(1, frame(1), Some(3), Some(Frame::text("skip1")), 8);
        ring.append_kept(2, frame(2), Some(2), Some(Frame::text("skip2")), 8);
        assert_eq!(take_all(&mut ring, 3).unwrap(), ["f2"]);
        ring.leave(2);
        assert_eq!(take_all(&mut ring, 1).unwrap(), ["f1", "f2"]);
        assert_eq!(ring.len(), 0, "nothing waits for the reader that left");
    }

    #[test]
    fn the_excluded_reader_skips_its_frame_and_it_does_not_wait_for_it() {
        let mut ring = Ring::default();
        ring.join(1);
        ring.join(2);
        assert_eq!(ring.append(0, frame(0), Some(2), 8).delivered, 1);
        assert_eq!(ring.append(1, frame(1), Some(9), 8).delivered, 2, "a non-subscriber excludes nobody");
        assert_eq!(take_all(&mut ring, 2).unwrap(), ["f1"]);
        assert_eq!(take_all(&mut ring, 1).unwrap(), ["f0", "f1"]);
        assert_eq!(ring.len(), 0);
    }

    #[test]
    fn a_reader_whose_next_frames_were_not_for_it_and_are_gone_reads_on() {
        let mut ring = Ring::default();
        ring.join(1);
        ring.join(2);
        ring.append(0, frame(0), Some(2), 8);
        ring.append(1, frame(1), None, 8);
        assert_eq!(take_all(&mut ring, 1).unwrap(), ["f0", "f1"]);
        assert_eq!(ring.len(), 1, "f0 was for reader 1 alone and is gone");
        assert_eq!(take_all(&mut ring, 2).unwrap(), ["f1"]);
        ring.append(2, frame(2), Some(1), 8);
        ring.leave(1);
        ring.append(3, frame(3), Some(1), 8);
        assert_eq!(take_all(&mut ring, 2).unwrap(), ["f2", "f3"]);
        assert_eq!(ring.len(), 0);
    }

    #[test]
    fn a_reader_that_leaves_gives_up_its_frames() {
        let mut ring = Ring::default();
        ring.join(1);
        ring.join(2);
        ring.append(0, frame(0), None, 8);
        ring.append(1, frame(1), Some(2), 8);
        take_all(&mut ring, 1);
        ring.leave(2);
        ring.leave(2);
        assert_eq!(ring.len(), 0);
        assert!(take_all(&mut ring, 2).is_none());
    }

    #[test]
    fn a_reader_a_whole_ring_behind_is_dropped_and_the_others_go_on() {
        let mut ring = Ring::default();
        ring.join(1);
        ring.join(2);
        for n in 0..3 {
            let done = ring.append(n, frame(n), None, 3);
            assert!(done.dropped.is_empty());
            take_all(&mut ring, 1);
        }
        let done = ring.append(3, frame(3), None, 3);
        assert_eq!((done.dropped, done.delivered), (vec![2], 1));
        assert_eq!(take_all(&mut ring, 1).unwrap(), ["f3"]);
        assert_eq!(ring.len(), 0, "the dropped reader's frames went with it");
        assert!(take_all(&mut ring, 2).is_none());
    }

    #[test]
    fn a_take_stops_at_the_bound_it_is_given() {
        let mut ring = Ring::default();
        ring.join(1);
        for n in 0..4 {
            ring.append(10 + n, frame(n), None, 8);
        }
        let mut got = Vec::new();
        ring.take(1, 12, |seq, _| got.push(seq));
        assert_eq!(got, [10, 11]);
        ring.take(1, u64::MAX, |seq, _| got.push(seq));
        assert_eq!(got, [10, 11, 12, 13]);
    }

    #[test]
    fn only_a_reader_that_has_taken_everything_waits_and_only_waiters_are_woken() {
        let waker = Waker::noop();
        let mut ring = Ring::default();
        ring.join(1);
        ring.join(2);
        assert!(!ring.poll(1, waker));
        assert!(!ring.poll(1, waker));
        assert_eq!(ring.waiters.len(), 1, "registered once, however often polled");
        let done = ring.append(0, frame(0), None, 8);
        assert_eq!(done.wake.len(), 1, "reader 1 waited; reader 2 never polled");
        assert!(ring.poll(1, waker) && ring.poll(2, waker));
        take_all(&mut ring, 1);
        assert!(!ring.poll(1, waker));
        // The excluded reader is not woken for a frame it skips, and stays registered.
        let done = ring.append(1, frame(1), Some(1), 8);
        assert!(done.wake.is_empty());
        assert!(ring.waiters.contains_key(&1));
        assert!(!ring.poll(99, waker), "not a reader: nothing to take, nothing registered");
        assert!(!ring.waiters.contains_key(&99));
    }

    #[test]
    fn a_crowd_that_has_gone_does_not_leave_its_tables_behind() {
        let waker = Waker::noop();
        let mut ring = Ring::default();
        for n in 0..10_000 {
            ring.join(n);
            ring.poll(n, waker);
        }
        ring.append(0, frame(0), None, 8);
        for n in 0..10_000 {
            take_all(&mut ring, n);
        }
        for n in 10..10_000 {
            ring.leave(n);
        }
        assert!(ring.readers.capacity() < 200, "readers: room for {}", ring.readers.capacity());
        for n in 0..10 {
            ring.poll(n, waker);
        }
        assert_eq!(ring.append(1, frame(1), None, 8).wake.len(), 10);
        assert!(ring.waiters.capacity() < 200, "waiters: room for {}", ring.waiters.capacity());
        assert_eq!(ring.len(), 1);
    }
}
