//! The limits that protect the hub and its clients, each with a default that suits a LAN hub.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Limits, each with a default that suits a LAN hub. Every one that is crossed is answered with a clear
/// error: a close code on WebSockets, an HTTP status with a JSON body on the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most WebSocket connections at once (over: 4004).
    pub max_connections: usize,
    /// Most WebSocket connections at once from one IP address (over: 4100, so clients retry later).
    pub max_connections_per_address: usize,
    /// Seconds a new TCP connection has to send its request headers (the WebSocket handshake included),
    /// and an idle keep-alive connection to send its next request; then it is closed without an answer.
    /// This is what stops slow-loris clients that open connections and send their headers byte by byte.
    pub handshake_timeout_secs: u64,
    /// Seconds an HTTP request has to send its body and be answered (over: 408).
    pub http_request_timeout_secs: u64,
    /// Events each app may publish per second through the HTTP API and Poussr v1 publishing, with bursts
    /// up to one second's worth (over: 429 with `Retry-After`). A batch counts each of its events.
    pub max_publish_per_second: u32,
    /// Largest WebSocket message a client may send, in bytes (over: `pusher:error`, close 1009).
    pub max_message_bytes: usize,
    /// Largest event `data`, in bytes, on the API and Poussr v1 publish (over: 413).
    pub max_event_data_bytes: usize,
    /// Largest HTTP request body, in bytes (over: 413).
    pub max_body_bytes: usize,
    /// Most channels one event may be published to.
    pub max_channels_per_event: usize,
    /// Most events in one `batch_events` request.
    pub max_batch_events: usize,
    /// Longest event name.
    pub max_event_name_len: usize,
    /// Most channels one connection may join.
    pub max_channels_per_connection: usize,
    /// Frames queued for one connection before it counts as a slow consumer and is closed with 4100.
    pub send_queue_frames: usize,
    /// Seconds a connection's socket may accept nothing while the hub has something to write to it; then
    /// the connection counts as a slow consumer and is closed with 4100, even if its queue is not full.
    pub write_timeout_secs: u64,
    /// Seconds of silence before the hub pings a connection (sent to Pusher clients as `activity_timeout`).
    pub activity_timeout_secs: u64,
    /// Seconds to wait for the pong before closing with 4201.
    pub pong_timeout_secs: u64,
    /// Most distinct users in one presence channel (over: `pusher:subscription_error` 403).
    pub max_presence_members: usize,
    /// Largest `user_info` of a presence member, in bytes of JSON (over: `pusher:subscription_error` 400).
    pub max_presence_user_info_bytes: usize,
    /// Longest presence `user_id`, in characters (over: `pusher:subscription_error` 400).
    pub max_presence_user_id_chars: usize,
    /// Most `client-*` events one connection may send per second (over: `pusher:error` and close 4301).
    pub client_events_per_second: u32,
    /// How long a cache channel keeps its last event, in seconds.
    pub cache_ttl_secs: u64,
    /// Webhook events waiting to be sent, per target; beyond it new events are dropped and counted.
    pub webhook_queue_events: usize,
    /// Most events in one webhook request.
    pub webhook_batch_events: usize,
    /// How long one webhook request may take, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// Tries per webhook request (the first one included), with a doubling pause from 0.5 s between them.
    pub webhook_attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 100_000,
            max_connections_per_address: 5_000,
            handshake_timeout_secs: 10,
            http_request_timeout_secs: 30,
            max_publish_per_second: 10_000,
            max_message_bytes: 16 * 1024,
            max_event_data_bytes: 10 * 1024,
            max_body_bytes: 256 * 1024,
            max_channels_per_event: 100,
            max_batch_events: 10,
            max_event_name_len: 200,
            max_channels_per_connection: 100,
            send_queue_frames: 1024,
            write_timeout_secs: 10,
            activity_timeout_secs: 120,
            pong_timeout_secs: 30,
            max_presence_members: 100,
            max_presence_user_info_bytes: 1024,
            max_presence_user_id_chars: 128,
            client_events_per_second: 10,
            cache_ttl_secs: 30 * 60,
            webhook_queue_events: 10_000,
            webhook_batch_events: 100,
            webhook_timeout_ms: 5_000,
            webhook_attempts: 6,
        }
    }
}

impl Limits {
    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_address", self.max_connections_per_address as u64),
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            ("http_request_timeout_secs", self.http_request_timeout_secs),
            ("max_publish_per_second", u64::from(self.max_publish_per_second)),
            ("max_message_bytes", self.max_message_bytes as u64),
            ("max_event_data_bytes", self.max_event_data_bytes as u64),
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_channels_per_event", self.max_channels_per_event as u64),
            ("max_batch_events", self.max_batch_events as u64),
            ("max_event_name_len", self.max_event_name_len as u64),
            ("max_channels_per_connection", self.max_channels_per_connection as u64),
            ("send_queue_frames", self.send_queue_frames as u64),
            ("write_timeout_secs", self.write_timeout_secs),
            ("activity_timeout_secs", self.activity_timeout_secs),
            ("pong_timeout_secs", self.pong_timeout_secs),
            ("max_presence_members", self.max_presence_members as u64),
            ("max_presence_user_info_bytes", self.max_presence_user_info_bytes as u64),
            ("max_presence_user_id_chars", self.max_presence_user_id_chars as u64),
            ("client_events_per_second", u64::from(self.client_events_per_second)),
            ("cache_ttl_secs", self.cache_ttl_secs),
            ("webhook_queue_events", self.webhook_queue_events as u64),
            ("webhook_batch_events", self.webhook_batch_events as u64),
            ("webhook_timeout_ms", self.webhook_timeout_ms),
            ("webhook_attempts", u64::from(self.webhook_attempts)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("limits.{name} must be greater than 0")));
            }
        }
        Ok(())
    }
}
