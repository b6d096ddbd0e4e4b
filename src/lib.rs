//! Poussr: a real-time push hub for networks without Internet. Backends publish over HTTP; browsers
//! receive over WebSocket. It speaks the original Poussr v1 protocol and the Pusher Channels protocol 7 on
//! one port, so `pusher-js`, `laravel-echo` and the Pusher server SDKs work against it unchanged.
//!
//! # Layout
//!
//! Data flows one way: bytes in → [`protocol`] (pure) → [`hub`] state → fan-out → bytes out, and each
//! step reports to the [`monitor`] feed. Modules depend on each other in one direction only (a test,
//! `tests/module_graph.rs`, keeps it so): `server` → `http` → `ws` → `hub` → `webhook` → `monitor` →
//! `protocol`, with `adapter` beside `http` (it calls into the hub; the hub knows only its trait) and
//! `config` and `net` below them all.
//!
//! | module | role |
//! |---|---|
//! | [`protocol`] | no I/O: Pusher and Poussr v1 frames, channel names and kinds, signatures, close codes |
//! | [`hub`] | the state: apps → channels → subscribers, connection records, counters; the adapter trait |
//! | [`history`] | positions and the on-disk history of events, for recovery and the history API |
//! | [`monitor`] | the live feed of what happens (connections, subscriptions, events, errors) |
//! | [`ws`] | one task per connection: read frames, ask the hub, write from a bounded queue, heartbeat |
//! | [`http`] | the axum router: WebSocket endpoints, Poussr v1 publish, the Pusher HTTP API, `/health`, access |
//! | [`adapter`] | the adapters: this hub alone, or a cluster of hubs through Redis (feature `redis`) |
//! | [`config`] | settings, limits and credentials |
//! | [`server`] | `run(listener, hub, shutdown)`: the one entry used by the binary, the desktop and tests |
//! | [`tls`] | the certificate the hub presents (checked, reloaded when its files change), outgoing trust |
//! | [`cert`] | `poussr cert create`: a local CA and a server certificate naming this machine |
//! | [`proxy`] | the client's real address behind the `trusted_proxies` |
//! | [`net`] | this machine's addresses and names (LAN addresses, the admin API's `Host` check) |
//! | [`snippets`] | ready-to-paste client code for an address and an app |
//! | [`webhook`] | signed, batched, retried webhooks, each target behind its own bounded queue |
//!
//! The headless binary is `src/main.rs` (`poussr serve`).

pub mod adapter;
pub mod cert;
pub mod config;
pub mod discovery;
pub mod history;
pub mod http;
pub mod hub;
pub mod monitor;
pub mod net;
pub mod protocol;
pub mod proxy;
pub mod replay;
pub mod server;
pub mod snippets;
pub mod tls;
pub mod vendor;
pub mod webhook;
pub mod ws;

pub use config::{AppConfig, Config, Limits};
pub use hub::Hub;
