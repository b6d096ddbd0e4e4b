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
//! | [`history`] | the fan-out and publishing with history on and off, disk bytes per event, recovery time |
//! | [`tls`] | the same hub's subscribers over `wss://` against `ws://`: connect rate, memory, fan-out |
//! | [`soak`] | `make soak`: connection churn for half an hour, the hub's memory and files sampled |
//! | [`procfs`] | RSS, CPU time and open files of a process |
//! | [`sign`] | Pusher HTTP API request signing |

pub mod baseline;
pub mod history;
pub mod joins;
pub mod load;
pub mod procfs;
pub mod scenarios;
pub mod sign;
pub mod soak;
pub mod tls;
pub mod wine;

/// Runs the future `make` builds on a thread and single-threaded runtime of their own, named `name`, and
/// returns its output: work timed or paced there does not wait behind the caller's runtime's tasks (the
/// fleet's 10,000 subscribers), as a client on another machine would not.
pub async fn on_own_thread<T, F, Fut>(name: &str, make: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let (answer, answered) = tokio::sync::oneshot::channel();
    let thread = name.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => {
                let _ = answer.send(Ok(runtime.block_on(make())));
            }
            Err(e) => {
                let _ = answer.send(Err(format!("the {thread} runtime: {e}")));
            }
        })
        .map_err(|e| format!("the {name} thread: {e}"))?;
    answered.await.map_err(|_| format!("the {name} thread ended without an answer"))?
}

/// Makes ring the process's rustls provider. The bench's HTTP client (reqwest, built without a provider of
/// its own, as the hub's is) and its wss:// subscribers need one; harmless when called again.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Raises this process's soft open-file limit to the hard one; returns the new soft limit.
pub fn raise_open_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}
