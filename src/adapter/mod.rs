//! The fan-out seam. An adapter decides where a published event goes: with the local adapter (the
//! default) straight to this hub's subscribers; with a cluster adapter, to every hub, each of which then
//! delivers to its own subscribers through the same [`Hub::deliver_local`] path. The hub never knows which
//! adapter runs.

use crate::hub::{App, Hub, Publish};

/// Where published events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Adapter {
    /// A single hub: deliver to the local subscribers.
    #[default]
    Local,
}

impl Adapter {
    /// Sends an event on its way; returns how many local connections it was queued to.
    pub(crate) fn publish(&self, hub: &Hub, app: &App, event: &Publish) -> usize {
        match self {
            Adapter::Local => hub.deliver_local(app, event),
        }
    }
}
