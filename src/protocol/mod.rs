//! The wire protocols, with no I/O and no async: frames in and out, channel names, signatures and close
//! codes. Everything here is a pure function over bytes and JSON, so it is tested without a runtime.

pub mod channel;
pub mod close;
pub mod pusher;
pub mod signature;
pub mod v1;

pub use channel::{ChannelKind, ChannelName, InvalidChannelName};
pub use close::CloseCode;
