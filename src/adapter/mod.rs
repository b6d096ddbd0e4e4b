//! The adapters: how a hub shares its traffic with other hubs. The hub knows only the
//! [`Adapter`](crate::hub::Adapter) trait; [`build`] makes the adapter a configuration names, and the
//! hub is handed it when it is made.
//!
//! - `local` (the default): the hub is alone ([`Alone`](crate::hub::Alone)).
//! - `redis` (feature `redis`): hubs that share their traffic through Redis pub/sub. What the other hubs
//!   publish arrives through [`Hub::deliver_local`](crate::hub::Hub::deliver_local), the same path as
//!   this hub's own events, and local subscribers are always served first and directly, so a hub whose
//!   cluster link is down keeps serving its own clients.

#[cfg(feature = "redis")]
pub(crate) mod redis;

use crate::config::{AdapterKind, Config, ConfigError};
use crate::hub::{Adapter, Alone, Hub};

/// The adapter `config` asks for.
pub fn build(config: &Config) -> Result<Box<dyn Adapter>, ConfigError> {
    match config.adapter {
        AdapterKind::Local => Ok(Box::new(Alone)),
        #[cfg(feature = "redis")]
        AdapterKind::Redis => {
            let node = format!("{:016x}", rand::random::<u64>());
            redis::Cluster::new(
                config.redis_url.trim(),
                &config.redis_prefix,
                node,
                std::time::Duration::from_millis(config.node_timeout_ms),
                config.tls.ca.as_deref(),
            )
            .map(|c| Box::new(c) as Box<dyn Adapter>)
            .map_err(ConfigError::Invalid)
        }
        #[cfg(not(feature = "redis"))]
        AdapterKind::Redis => Err(ConfigError::Invalid(
            "adapter = \"redis\": this build of Poussr has no Redis adapter (it was built without the `redis` \
             feature)"
                .into(),
        )),
    }
}

/// A hub for `config`, with the adapter it names: what the headless binary and the desktop app run. A
/// cluster that keeps the history keeps it in its server; a hub alone opens its own store.
pub fn hub(config: &Config) -> Result<Hub, ConfigError> {
    config.validate()?;
    let adapter = build(config)?;
    let history = match adapter.history(&config.apps, config.history.dir.is_some()) {
        Some(shared) => Ok(Some(shared)),
        None => crate::history::History::open(&config.history, &config.apps),
    };
    Hub::with_history(config, adapter, history)
}

/// [`hub`] with a history the caller opened and may keep beyond this hub (see `Hub::with_history`); a
/// cluster that keeps the history uses its server's instead.
pub fn hub_with_history(
    config: &Config,
    history: Result<Option<crate::history::History>, String>,
) -> Result<Hub, ConfigError> {
    config.validate()?;
    let adapter = build(config)?;
    let history = match adapter.history(&config.apps, config.history.dir.is_some()) {
        Some(shared) => Ok(Some(shared)),
        None => history,
    };
    Hub::with_history(config, adapter, history)
}
