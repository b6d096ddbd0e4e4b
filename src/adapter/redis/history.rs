//! The cluster's history, kept in Redis: one stream per channel (`{prefix}:history:{app}:{channel}`,
//! entry ids `{serial}-0`) and its head (`{prefix}:head:{app}:{channel}`: `epoch`, `last`, `at`).
//!
//! Positions are given by a script that runs as the event is published: it takes the channel's next serial,
//! adds the event to the stream, evicts what the app's bounds say, and publishes the event with its
//! positions, all at once. So positions follow the order in which every hub delivers, and an event is
//! kept before any hub delivers it. A sync that needs a channel's head (a subscription that counts
//! positions) reads it the same way, in the cluster's order of events.
//!
//! What a script publishes is the positions as a JSON array, a newline, then the message.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::tasks::COMMAND_TIMEOUT;
use crate::history::{HistoryError, Pending, Position, Remote, Stored};

/// Gives an event its positions, keeps it, evicts, and publishes it with its positions.
///
/// KEYS: the pub/sub channel, then a head and a stream per channel, then the sending hub's last message
/// positioned. ARGV: the message, the most events per channel, the longest age (ms), the event, its data,
/// its user id and socket id (`""`: none), a new epoch per channel (used by a channel that has none), then
/// the message's number. A message sent again after a failed connection, that Redis had already handled,
/// is not kept twice. Times are Redis's clock, so that hubs whose clocks differ agree on ages.
const KEEP: &str = r"
local n = (#KEYS - 2) / 2
local seq = tonumber(ARGV[#ARGV])
if seq <= tonumber(redis.call('GET', KEYS[#KEYS]) or -1) then return end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local max_age = tonumber(ARGV[3])
local positions = {}
for i = 1, n do
  local head, stream = KEYS[2 * i], KEYS[2 * i + 1]
  local epoch = redis.call('HGET', head, 'epoch')
  if not epoch then
    epoch = ARGV[7 + i]
    redis.call('DEL', stream)
    redis.call('HSET', head, 'epoch', epoch, 'last', 0, 'at', 0)
  end
  local serial = redis.call('HINCRBY', head, 'last', 1)
  local at = math.max(now, tonumber(redis.call('HGET', head, 'at')) or 0)
  redis.call('HSET', head, 'at', string.format('%d', at))
  local fields = {'e', ARGV[4], 'd', ARGV[5], 't', string.format('%d', at)}
  if ARGV[6] ~= '' then fields[#fields + 1] = 'u'; fields[#fields + 1] = ARGV[6] end
  if ARGV[7] ~= '' then fields[#fields + 1] = 'x'; fields[#fields + 1] = ARGV[7] end
  redis.call('XADD', stream, 'MAXLEN', ARGV[2], string.format('%d-0', serial), unpack(fields))
  -- The oldest first (a channel's times never go backwards), one entry at a time, at most 64.
  local cutoff = at - max_age
  for _ = 1, 64 do
    local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if not oldest then break end
    local t
    for j = 1, #oldest[2], 2 do if oldest[2][j] == 't' then t = tonumber(oldest[2][j + 1]) end end
    if t and t < cutoff then redis.call('XDEL', stream, oldest[1]) else break end
  end
  redis.call('PEXPIRE', head, ARGV[3])
  redis.call('PEXPIRE', stream, ARGV[3])
  positions[i] = {epoch, serial}
end
redis.call('PUBLISH', KEYS[1], cjson.encode(positions) .. '\n' .. ARGV[1])
-- Last, so that a script that failed on the way is run again in full when the message is sent again.
redis.call('SET', KEYS[#KEYS], ARGV[#ARGV], 'PX', 3600000)
";

/// Reads heads (giving an epoch to a channel that has none, its stream emptied) and publishes the message
/// with them.
///
/// KEYS: the pub/sub channel, then a head and a stream per channel. ARGV: the message, the longest age (ms)
/// per channel, then a new epoch per channel.
const HEADS: &str = r"
local n = (#KEYS - 1) / 2
local heads = {}
for i = 1, n do
  local head, stream = KEYS[2 * i], KEYS[2 * i + 1]
  local epoch = redis.call('HGET', head, 'epoch')
  local last = 0
  if epoch then
    last = tonumber(redis.call('HGET', head, 'last'))
  else
    epoch = ARGV[1 + n + i]
    redis.call('DEL', stream)
    redis.call('HSET', head, 'epoch', epoch, 'last', 0, 'at', 0)
    redis.call('PEXPIRE', head, ARGV[1 + i])
  end
  heads[i] = {epoch, last}
end
redis.call('PUBLISH', KEYS[1], cjson.encode(heads) .. '\n' .. ARGV[1])
";

/// Which script publishes a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Keep,
    Heads,
}

/// A message published by a script, with the script's keys and arguments (after the channel and the
/// message, which the publisher adds).
#[derive(Debug)]
pub(super) struct Call {
    pub(super) kind: Kind,
    pub(super) keys: Vec<String>,
    pub(super) args: Vec<String>,
}

/// The scripts, loaded on a connection.
#[derive(Debug, Clone)]
pub(super) struct Scripts {
    keep: String,
    heads: String,
}

impl Scripts {
    /// Loads both scripts on `conn` (again after each reconnection: a Redis restarted has none).
    pub(super) async fn load(conn: &mut ::redis::aio::MultiplexedConnection) -> ::redis::RedisResult<Scripts> {
        let keep = ::redis::cmd("SCRIPT").arg("LOAD").arg(KEEP).query_async(conn).await?;
        let heads = ::redis::cmd("SCRIPT").arg("LOAD").arg(HEADS).query_async(conn).await?;
        Ok(Scripts { keep, heads })
    }

    /// Adds the call that publishes `message` on `channel` to `pipe`.
    pub(super) fn add(&self, pipe: &mut ::redis::Pipeline, channel: &str, message: &str, call: &Call) {
        let sha = match call.kind {
            Kind::Keep => &self.keep,
            Kind::Heads => &self.heads,
        };
        pipe.cmd("EVALSHA").arg(sha).arg(call.keys.len() + 1).arg(channel).arg(&call.keys).arg(message).arg(&call.args);
        pipe.ignore();
    }
}

impl Call {
    /// Names the message: its hub and number (the positioning script keeps a message once).
    pub(super) fn numbered(mut self, keys: &Keys, node: &str, seq: u64) -> Call {
        if self.kind == Kind::Keep {
            self.keys.push(format!("{}:positioned:{node}", keys.prefix));
            self.args.push(seq.to_string());
        }
        self
    }
}

/// The names of the cluster's history keys.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn head(&self, app: &str, channel: &str) -> String {
        format!("{}:head:{app}:{channel}", self.prefix)
    }

    pub(super) fn stream(&self, app: &str, channel: &str) -> String {
        format!("{}:history:{app}:{channel}", self.prefix)
    }
}

/// A new epoch: 16 random hexadecimal digits.
fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The call that gives an event of `app` on `channels` its positions.
pub(super) fn keep(keys: &Keys, app: &crate::hub::App, channels: &[String], event: &crate::hub::Publish) -> Call {
    let settings = &app.config.history;
    let mut names = Vec::with_capacity(channels.len() * 2);
    for c in channels {
        names.push(keys.head(&app.config.id, c));
        names.push(keys.stream(&app.config.id, c));
    }
    let mut args = vec![
        settings.max_events_per_channel.to_string(),
        settings.max_age_secs.saturating_mul(1000).to_string(),
        event.event.to_string(),
        event.data.to_string(),
        event.user_id.as_deref().unwrap_or("").to_owned(),
        event.except.as_deref().unwrap_or("").to_owned(),
    ];
    args.extend(channels.iter().map(|_| new_epoch()));
    Call { kind: Kind::Keep, keys: names, args }
}

/// The call that reads the heads of `channels` (app id, channel, longest age in seconds).
pub(super) fn heads(keys: &Keys, channels: &[(String, String, u64)]) -> Call {
    let names = channels.iter().flat_map(|(a, c, _)| [keys.head(a, c), keys.stream(a, c)]).collect();
    let mut args: Vec<String> = channels.iter().map(|(_, _, age)| age.saturating_mul(1000).to_string()).collect();
    args.extend(channels.iter().map(|_| new_epoch()));
    Call { kind: Kind::Heads, keys: names, args }
}

/// Splits what a script published into its positions and the message; a message published as is has
/// none.
pub(super) fn split(payload: &[u8]) -> (Option<Vec<Position>>, &[u8]) {
    if payload.first() != Some(&b'[') {
        return (None, payload);
    }
    let Some(end) = payload.iter().position(|&b| b == b'\n') else { return (None, payload) };
    let positions: Option<Vec<(String, u64)>> = serde_json::from_slice(&payload[..end]).ok();
    let positions =
        positions.map(|p| p.into_iter().map(|(epoch, serial)| Position { epoch: Arc::from(epoch), serial }).collect());
    (positions, &payload[end + 1..])
}

/// The cluster's history as the hub reads it.
pub(super) struct RedisHistory {
    client: ::redis::Client,
    keys: Keys,
    conn: Slot,
}

/// The connection reads go through, made when first needed and made again after a failure.
type Slot = Arc<Mutex<Option<::redis::aio::MultiplexedConnection>>>;

impl RedisHistory {
    pub(super) fn new(client: ::redis::Client, keys: Keys) -> Self {
        RedisHistory { client, keys, conn: Slot::default() }
    }
}

/// A connection to read with (made when first needed, made again after a failure).
async fn connection(
    client: &::redis::Client,
    slot: &Slot,
) -> Result<::redis::aio::MultiplexedConnection, HistoryError> {
    let mut slot = slot.lock().await;
    if let Some(conn) = slot.as_ref() {
        return Ok(conn.clone());
    }
    let config = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    let conn = client.get_multiplexed_async_connection_with_config(&config).await.map_err(unreachable)?;
    *slot = Some(conn.clone());
    Ok(conn)
}

fn unreachable(e: ::redis::RedisError) -> HistoryError {
    HistoryError::Unreachable(e.to_string())
}

/// One stream entry as Redis gives it: its id and its fields and values.
type Entry = (String, Vec<String>);

fn stored(entry: Entry) -> Option<Stored> {
    let (id, fields) = entry;
    let serial = id.split('-').next()?.parse().ok()?;
    let mut event = Stored { serial, at_ms: 0, event: String::new(), data: String::new(), user_id: None, except: None };
    for pair in fields.chunks(2) {
        let [name, value] = pair else { continue };
        match name.as_str() {
            "e" => event.event = value.clone(),
            "d" => event.data = value.clone(),
            "t" => event.at_ms = value.parse().unwrap_or(0),
            "u" => event.user_id = Some(value.clone()),
            "x" => event.except = Some(value.clone()),
            _ => {}
        }
    }
    Some(event)
}

impl Remote for RedisHistory {
    fn read(
        &self,
        app: &str,
        channel: &str,
        after: u64,
        upto: u64,
        limit: u64,
        max_age_secs: u64,
    ) -> Pending<Result<Vec<Stored>, HistoryError>> {
        let stream = self.keys.stream(app, channel);
        let (client, slot) = (self.client.clone(), self.conn.clone());
        Box::pin(async move {
            if after >= upto {
                return Ok(Vec::new());
            }
            let mut conn = connection(&client, &slot).await?;
            let read = ::redis::cmd("XRANGE")
                .arg(&stream)
                .arg(format!("{}-0", after + 1))
                .arg(format!("{upto}-0"))
                .arg("COUNT")
                .arg(limit)
                .query_async::<Vec<Entry>>(&mut conn)
                .await;
            let entries = match read {
                Ok(entries) => entries,
                Err(e) => {
                    *slot.lock().await = None;
                    return Err(unreachable(e));
                }
            };
            let oldest = crate::monitor::now_ms().saturating_sub(max_age_secs.saturating_mul(1000));
            Ok(entries.into_iter().filter_map(stored).filter(|e| e.at_ms >= oldest).collect())
        })
    }

    /// Deletes every channel's stream; the heads stay, so positions go on and a client that resumes from
    /// before is told its events were evicted (as with a hub's own store).
    fn clear(&self) -> Pending<Result<(), HistoryError>> {
        let (client, slot) = (self.client.clone(), self.conn.clone());
        let pattern = format!("{}:history:*", self.keys.prefix);
        Box::pin(async move {
            let mut conn = connection(&client, &slot).await?;
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(unreachable)?;
                if !keys.is_empty() {
                    let _: i64 = ::redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await.map_err(unreachable)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
    }

    fn location(&self) -> String {
        format!("redis ({}:history:*)", self.keys.prefix)
    }
}
