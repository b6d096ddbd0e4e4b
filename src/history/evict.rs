//! The store's bounds in SQL: the events past the age bound, and an app's oldest events when it is over
//! its byte bound. Both walk each channel from its oldest event along the table's key (channel, serial),
//! so no index on time is kept up to date by every commit.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rusqlite::{OptionalExtension, params};

/// The channels of `app`, by row id.
fn channels_of(tx: &rusqlite::Transaction<'_>, app: &str) -> Result<Vec<i64>, rusqlite::Error> {
    tx.prepare_cached("SELECT id FROM channels WHERE app = ?1")?.query_map(params![app], |r| r.get(0))?.collect()
}

/// A channel's newest or oldest event: its serial and time.
fn end_of(tx: &rusqlite::Transaction<'_>, id: i64, newest: bool) -> Result<Option<(i64, i64)>, rusqlite::Error> {
    let sql = if newest {
        "SELECT serial, at_ms FROM events WHERE channel = ?1 ORDER BY serial DESC LIMIT 1"
    } else {
        "SELECT serial, at_ms FROM events WHERE channel = ?1 ORDER BY serial LIMIT 1"
    };
    tx.prepare_cached(sql)?.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?))).optional()
}

/// Writes a channel's last serial and time into its row, before its last event goes.
fn pin_head(tx: &rusqlite::Transaction<'_>, id: i64, serial: i64, at_ms: i64) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "UPDATE channels SET last_serial = max(last_serial, ?2), last_at_ms = max(last_at_ms, ?3) WHERE id = ?1",
    )?
    .execute(params![id, serial, at_ms])?;
    Ok(())
}

/// Deletes the events of `app` older than `cutoff`; returns each one's channel and size. A channel's
/// times never go backwards, so its expired events are a run from its oldest: each channel costs a look
/// at its newest event and a walk over what expired.
pub(super) fn expire(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    cutoff: u64,
) -> Result<Vec<(i64, u64)>, rusqlite::Error> {
    let cutoff = cutoff.min(i64::MAX as u64) as i64;
    let mut gone = Vec::new();
    for id in channels_of(tx, app)? {
        let Some((serial, at_ms)) = end_of(tx, id, true)? else { continue };
        let sizes: Vec<i64> = if at_ms < cutoff {
            // Everything goes: the row keeps the last serial.
            pin_head(tx, id, serial, at_ms)?;
            tx.prepare_cached("DELETE FROM events WHERE channel = ?1 RETURNING size")?
                .query_map(params![id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        } else {
            tx.prepare_cached(
                "DELETE FROM events WHERE channel = ?1 AND serial <
                     (SELECT serial FROM events WHERE channel = ?1 AND at_ms >= ?2 ORDER BY serial LIMIT 1)
                 RETURNING size",
            )?
            .query_map(params![id, cutoff], |r| r.get(0))?
            .collect::<Result<_, _>>()?
        };
        gone.extend(sizes.into_iter().map(|size| (id, size.max(0) as u64)));
    }
    Ok(gone)
}

/// Deletes the oldest events of `app`, whatever their channel, until `kept` (its bytes) is at most
/// `target`; returns the channel of each one deleted. The channels are merged by their oldest event.
pub(super) fn shed(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    kept: &mut u64,
    target: u64,
) -> Result<Vec<i64>, rusqlite::Error> {
    let mut oldest = BinaryHeap::new();
    for id in channels_of(tx, app)? {
        if let Some((serial, at_ms)) = end_of(tx, id, false)? {
            oldest.push(Reverse((at_ms, serial, id)));
        }
    }
    let mut gone = Vec::new();
    while *kept > target {
        let Some(Reverse((at_ms, serial, id))) = oldest.pop() else {
            // Nothing left to delete: the count was off.
            *kept = 0;
            break;
        };
        let next: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT serial, at_ms FROM events WHERE channel = ?1 AND serial > ?2 ORDER BY serial LIMIT 1",
            )?
            .query_row(params![id, serial], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if next.is_none() {
            pin_head(tx, id, serial, at_ms)?;
        }
        let size: i64 = tx
            .prepare_cached("DELETE FROM events WHERE channel = ?1 AND serial = ?2 RETURNING size")?
            .query_row(params![id, serial], |r| r.get(0))?;
        *kept = kept.saturating_sub(size.max(0) as u64);
        gone.push(id);
        if let Some((serial, at_ms)) = next {
            oldest.push(Reverse((at_ms, serial, id)));
        }
    }
    Ok(gone)
}
