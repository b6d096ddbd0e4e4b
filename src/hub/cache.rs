//! The last event of each cache channel (`cache-`, `private-cache-`, ...), kept for `cache_ttl_secs`
//! whether or not the channel is occupied, so that a new subscriber gets it at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Frame;
use crate::protocol::ChannelName;

/// How often a cache is swept of expired events (a lookup never returns one in any case).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What a new subscriber gets from a cache channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The last event, as a frame ready to send.
    Hit(Frame),
    /// Nothing cached (or expired): the client gets `pusher:cache_miss`.
    Miss,
}

/// The last events of an app's cache channels.
#[derive(Debug, Default)]
pub(super) struct Cache {
    /// Each channel's last frame and when it was stored.
    events: HashMap<ChannelName, (Frame, Instant)>,
    /// When expired entries were last removed.
    swept: Option<Instant>,
}

impl Cache {
    /// The cached event of `channel`, if it has one younger than `ttl`.
    pub(super) fn get(&mut self, channel: &ChannelName, ttl: Duration) -> Cached {
        match self.events.get(channel) {
            Some((frame, at)) if at.elapsed() < ttl => Cached::Hit(frame.clone()),
            Some(_) => {
                self.events.remove(channel);
                Cached::Miss
            }
            None => Cached::Miss,
        }
    }

    /// Keeps `frame` as the last event of `channel`, and now and then forgets expired ones.
    pub(super) fn store(&mut self, channel: &ChannelName, frame: Frame, ttl: Duration) {
        let now = Instant::now();
        if self.swept.is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY) {
            self.events.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            self.swept = Some(now);
        }
        self.events.insert(channel.clone(), (frame, now));
    }
}
