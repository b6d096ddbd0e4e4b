//! `poussr-bench`: a load generator for Poussr (Pusher protocol 7 and Poussr v1) and the bare-socket
//! baseline it is compared with. `poussr-bench run` runs every scenario against a fresh hub and a fresh
//! baseline and prints Markdown for `bench/RESULTS.md`.
//!
//! | module | role |
//! |---|---|
//! | [`load`] | the fleet of subscribers, the publishers, and the loss/order/latency accounting |
//! | [`baseline`] | the smallest tokio-tungstenite broadcast server |
//! | [`scenarios`] | the scenarios of `make bench`, written as Markdown |
//! | [`joins`] | presence joins timed on an idle hub and during another channel's fan-out |
//! | [`soak`] | `make soak`: connection churn for half an hour, the hub's memory and files sampled |
//! | [`procfs`] | RSS, CPU time and open files of a process |
//! | [`sign`] | Pusher HTTP API request signing |

pub mod baseline;
pub mod joins;
pub mod load;
pub mod procfs;
pub mod scenarios;
pub mod sign;
pub mod soak;

/// Raises this process's soft open-file limit to the hard one; returns the new soft limit.
pub fn raise_open_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}
