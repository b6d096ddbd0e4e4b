//! The clean-up of a hub that died (a crash, a SIGKILL, a cable): its key expired without it saying it
//! left. Its clients never left on their own, so nobody sent the `member_removed` and `channel_vacated`
//! webhooks of the members and channels that left the cluster with it.
//!
//! Every hub that sees the key expire tries to take the dead hub's lease (`{prefix}:cleanup:{id}`, `SET NX`
//! with an expiry). The one that gets it sends those webhooks, then marks the hub done
//! (`{prefix}:cleaned:{id}`). The others wait for the lease to expire and look again: if the holder died
//! before it was done, one of them takes over. A hub that stops on purpose marks itself done as it leaves,
//! since its clients' leaving sent their webhooks already.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::watch;

use super::tasks::{COMMAND_TIMEOUT, FIRST_BACKOFF, back_off, connect, stopped};
use super::view::{Link, NodeRecord};
use crate::hub::WeakHub;

/// How long a clean-up lease lasts: the time to queue a dead hub's webhooks, many times over.
const LEASE: Duration = Duration::from_secs(10);
/// How long the done mark stays: longer than any hub takes to notice a key expired.
const DONE_FOR: Duration = Duration::from_secs(3600);
/// How many leases a hub waits out before it gives up on a dead hub (when Redis stays away).
const ROUNDS: usize = 30;

fn done_key(prefix: &str, node: &str) -> String {
    format!("{prefix}:cleaned:{node}")
}

fn lease_key(prefix: &str, node: &str) -> String {
    format!("{prefix}:cleanup:{node}")
}

/// Marks this hub as leaving on purpose: nobody cleans up after it.
pub(super) async fn left(
    conn: &mut ::redis::aio::MultiplexedConnection,
    prefix: &str,
    node: &str,
) -> ::redis::RedisResult<()> {
    let ms = DONE_FOR.as_millis() as u64;
    ::redis::cmd("SET").arg(done_key(prefix, node)).arg("left").arg("PX").arg(ms).query_async(conn).await
}

/// One hub's part in cleaning up after a dead one.
pub(super) struct Reaper {
    pub(super) client: ::redis::Client,
    pub(super) prefix: String,
    /// This hub's node id (the lease's holder).
    pub(super) me: String,
    pub(super) hub: WeakHub,
    pub(super) link: Arc<Link>,
}

/// What one round found.
enum Round {
    /// Somebody (maybe this hub) cleaned up: nothing more to do.
    Done,
    /// Another hub holds the lease, for this long still.
    Held(Duration),
}

impl Reaper {
    /// Cleans up after `dead` (as this hub last knew it), or leaves it to the hub that holds the lease.
    pub(super) async fn run(self, dead: NodeRecord, mut stop: watch::Receiver<bool>) {
        if dead.apps.values().all(|a| a.channels.is_empty() && a.presence.is_empty()) {
            return; // It held nothing: no webhook to send.
        }
        let mut delay = FIRST_BACKOFF;
        let mut conn = None;
        for _ in 0..ROUNDS {
            if conn.is_none() {
                let up = std::sync::atomic::AtomicBool::new(false);
                conn = connect(&self.client, &self.link, &up, "cleaning up after a hub", &mut delay, &mut stop).await;
            }
            let Some(c) = conn.as_mut() else { return };
            let wait = match tokio::time::timeout(COMMAND_TIMEOUT * 2, self.round(c, &dead)).await {
                Ok(Ok(Round::Done)) => return,
                Ok(Ok(Round::Held(left))) => left,
                Ok(Err(e)) => {
                    self.link.failed("cleaning up after a hub", e);
                    conn = None;
                    if !back_off(&mut delay, &mut stop).await {
                        return;
                    }
                    continue;
                }
                Err(_) => {
                    self.link.failed("cleaning up after a hub", "Redis did not answer in time");
                    conn = None;
                    continue;
                }
            };
            // Until the holder's lease runs out (a little after, so that it has), then look again.
            tokio::select! {
                () = tokio::time::sleep(wait + Duration::from_millis(100)) => {}
                () = stopped(&mut stop) => return,
            }
        }
        tracing::warn!(node = %dead.id, "gave up cleaning up after a hub that left the cluster: Redis stayed away");
    }

    async fn round(
        &self,
        conn: &mut ::redis::aio::MultiplexedConnection,
        dead: &NodeRecord,
    ) -> ::redis::RedisResult<Round> {
        let done = done_key(&self.prefix, &dead.id);
        let marked: Option<String> = ::redis::cmd("GET").arg(&done).query_async(conn).await?;
        if marked.is_some() {
            return Ok(Round::Done);
        }
        let lease = lease_key(&self.prefix, &dead.id);
        let ms = LEASE.as_millis() as u64;
        let got: Option<String> =
            ::redis::cmd("SET").arg(&lease).arg(&self.me).arg("NX").arg("PX").arg(ms).query_async(conn).await?;
        if got.is_none() {
            let left: i64 = ::redis::cmd("PTTL").arg(&lease).query_async(conn).await?;
            let left = u64::try_from(left).map_or(Duration::ZERO, Duration::from_millis).min(LEASE);
            return Ok(Round::Held(left));
        }
        let Some(hub) = self.hub.upgrade() else { return Ok(Round::Done) };
        let (mut members, mut vacated) = (0, 0);
        for (app, snapshot) in &dead.apps {
            let (m, v) = hub.departed_webhooks(app, snapshot);
            members += m;
            vacated += v;
        }
        tracing::info!(
            node = %dead.id,
            name = %dead.name,
            "a hub left the cluster without leaving its channels: sent {members} member_removed and {vacated} \
             channel_vacated webhooks for it"
        );
        self.link.cleaned_up.fetch_add(1, Relaxed);
        let ms = DONE_FOR.as_millis() as u64;
        let () = ::redis::cmd("SET").arg(&done).arg(&self.me).arg("PX").arg(ms).query_async(conn).await?;
        Ok(Round::Done)
    }
}
