//! The writer thread: it owns the store's only connection, commits every append queued meanwhile in one
//! transaction with the evictions it causes, runs the appends' completions in their order, and answers
//! reads and *Clear history* between commits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::store::{self, Store, StoreError};
use super::{AGE_PASS_EVERY, Done, HistoryError, Inner, Job, Position, Recent, lock, now_ms};

/// The writer thread's own state.
pub(super) struct Writer {
    inner: Arc<Inner>,
    store: Store,
    /// Bytes kept per app, for the `max_bytes` bound.
    app_bytes: HashMap<Arc<str>, u64>,
    last_age_pass: Option<Instant>,
}

/// A committed append, waiting for its completion to run.
struct Committed {
    serial: u64,
    epoch: Arc<str>,
    done: Done,
}

impl Writer {
    /// The writer of `store`, which keeps `app_bytes` bytes per app now.
    pub(super) fn new(inner: Arc<Inner>, store: Store, app_bytes: HashMap<Arc<str>, u64>) -> Self {
        Writer { inner, store, app_bytes, last_age_pass: None }
    }

    pub(super) fn run(mut self) {
        loop {
            let jobs = {
                let mut q = lock(&self.inner.queue);
                loop {
                    if !q.jobs.is_empty() || q.closed {
                        break;
                    }
                    let (guard, timeout) =
                        self.inner.wake.wait_timeout(q, AGE_PASS_EVERY).unwrap_or_else(|e| e.into_inner());
                    q = guard;
                    if timeout.timed_out() {
                        break;
                    }
                }
                if q.jobs.is_empty() && q.closed {
                    break;
                }
                std::mem::take(&mut q.jobs)
            };
            self.handle(jobs);
        }
    }

    /// Handles jobs in order: each run of appends (and heads) is one transaction.
    fn handle(&mut self, jobs: Vec<Job>) {
        let mut run: Vec<Job> = Vec::new();
        for job in jobs {
            match job {
                Job::Append { .. } | Job::Head { .. } => run.push(job),
                other => {
                    self.commit(std::mem::take(&mut run));
                    self.answer(other);
                }
            }
        }
        self.commit(run);
    }

    fn answer(&mut self, job: Job) {
        match job {
            Job::Read { app, channel, after, upto, limit, reply } => {
                let _ = reply.send(self.store.read(&app, &channel, after, upto, limit).map_err(store_error));
            }
            Job::Clear { reply } => {
                let result = self.store.clear().map_err(store_error);
                if result.is_ok() {
                    let c = &self.inner.counters;
                    c.evicted.fetch_add(c.events.swap(0, Relaxed), Relaxed);
                    self.app_bytes.clear();
                    lock(&self.inner.counts).clear();
                }
                let _ = reply.send(result);
            }
            Job::Recent { limit, reply } => {
                let recent = self.store.recent(limit).map_err(store_error).map(|rows| {
                    rows.into_iter().map(|((app_id, channel), event)| Recent { app_id, channel, event }).collect()
                });
                let _ = reply.send(recent);
            }
            Job::Query(read) => read(&mut self.store),
            Job::Append { .. } | Job::Head { .. } => self.commit(vec![job]),
        }
    }

    /// Commits a run of appends in one transaction, with the eviction they cause, then runs their
    /// completions in order. On failure, every append still queued fails with them and the heads go back,
    /// so that no serial is left out of a channel's order.
    fn commit(&mut self, run: Vec<Job>) {
        let age_due = self.last_age_pass.is_none_or(|t| t.elapsed() >= AGE_PASS_EVERY);
        if run.is_empty() && !age_due {
            return;
        }
        let mut committed = Vec::with_capacity(run.len());
        let mut rows = Vec::with_capacity(run.len());
        let mut heads = Vec::new();
        for job in run {
            match job {
                Job::Append { entry, serial, epoch, at_ms, done } => {
                    rows.push(store::Row { entry, serial, epoch: epoch.clone(), at_ms });
                    committed.push(Committed { serial, epoch, done });
                }
                Job::Head { app, channel, epoch } => heads.push((app, channel, epoch)),
                _ => {}
            }
        }
        let now = now_ms();
        let ages: Vec<(Arc<str>, u64)> = if age_due {
            self.inner.apps.iter().map(|(app, c)| (app.clone(), now.saturating_sub(c.max_age_secs * 1000))).collect()
        } else {
            Vec::new()
        };
        let outcome = self.store.commit(&rows, &heads, &self.inner.apps, &mut self.app_bytes, &ages);
        let c = &self.inner.counters;
        match outcome {
            Ok(evicted_by) => {
                if age_due {
                    self.last_age_pass = Some(Instant::now());
                }
                let evicted: u64 = evicted_by.values().sum();
                c.commits.fetch_add(1, Relaxed);
                c.written.fetch_add(rows.len() as u64, Relaxed);
                c.events.fetch_add(rows.len() as u64, Relaxed);
                c.events.fetch_sub(evicted.min(c.events.load(Relaxed)), Relaxed);
                c.evicted.fetch_add(evicted, Relaxed);
                {
                    let mut counts = lock(&self.inner.counts);
                    for r in &rows {
                        *counts.entry((r.entry.app.clone(), r.entry.channel.clone())).or_default() += 1;
                    }
                    for (key, n) in evicted_by {
                        if let Some(count) = counts.get_mut(&key) {
                            *count = count.saturating_sub(n);
                            if *count == 0 {
                                counts.remove(&key);
                            }
                        }
                    }
                }
                for Committed { serial, epoch, done } in committed {
                    done(Ok(Position { epoch, serial }));
                }
            }
            Err(e) => {
                let error = store_error(e);
                tracing::error!("{error}; the events of this commit were refused");
                if rows.is_empty() {
                    return;
                }
                c.write_errors.fetch_add(1, Relaxed);
                // Everything queued behind fails too, and each channel's head goes back to before its first
                // failed serial: no later event can have been delivered, since delivery follows the commit.
                let queued: Vec<Job> = {
                    let mut q = lock(&self.inner.queue);
                    let queued = std::mem::take(&mut q.jobs);
                    let mut first: HashMap<(Arc<str>, Arc<str>), u64> = HashMap::new();
                    let failed =
                        rows.iter().map(|r| (&r.entry, r.serial)).chain(queued.iter().filter_map(|j| match j {
                            Job::Append { entry, serial, .. } => Some((entry, *serial)),
                            _ => None,
                        }));
                    for (entry, serial) in failed {
                        let f = first.entry((entry.app.clone(), entry.channel.clone())).or_insert(serial);
                        *f = (*f).min(serial);
                    }
                    for (key, serial) in first {
                        if let Some(h) = q.heads.get_mut(&key) {
                            h.last = serial - 1;
                        }
                    }
                    queued
                };
                for Committed { done, .. } in committed {
                    done(Err(error.clone()));
                }
                for job in queued {
                    match job {
                        Job::Append { done, .. } => done(Err(error.clone())),
                        other => self.answer(other),
                    }
                }
            }
        }
    }
}

fn store_error(e: StoreError) -> HistoryError {
    HistoryError::Store(e.to_string())
}
