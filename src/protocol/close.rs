//! Close codes, written down once with what they tell a Pusher client to do. Every place that closes a
//! socket names one of these; there is no catch-all code.

/// A reason to close a WebSocket, with the Pusher code that tells the client what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum CloseCode {
    /// 1000: a normal close (the client asked for it).
    Normal,
    /// 1007: a text frame that is not valid UTF-8.
    InvalidPayload,
    /// 1009: a frame larger than the hub accepts.
    MessageTooBig,
    /// 4001: no app has the key in the URL. Do not reconnect.
    AppNotFound,
    /// 4003: the app exists but is disabled. Do not reconnect.
    AppDisabled,
    /// 4004: the app (or the hub) is over its connection quota. Do not reconnect.
    OverQuota,
    /// 4005: the WebSocket was opened on a path the hub does not serve. Do not reconnect.
    PathNotFound,
    /// 4006: `protocol=` is not a number. Do not reconnect.
    InvalidVersion,
    /// 4007: the protocol version is not supported. Do not reconnect.
    UnsupportedVersion,
    /// 4008: no `protocol=` in the URL. Do not reconnect.
    NoVersion,
    /// 4009: a signature did not verify (user sign-in). Do not reconnect.
    Unauthorized,
    /// 4009: the operator (dashboard) or the backend (`terminate_connections`) ended this connection; as for
    /// any 40xx code, the client does not reconnect by itself.
    Terminated,
    /// 4100: over capacity, or a slow consumer whose send queue overflowed. Reconnect after a while.
    OverCapacity,
    /// 4200: the hub is restarting or shutting down. Reconnect now.
    Restarting,
    /// 4201: the client did not answer a ping in time. Reconnect now.
    PongTimeout,
    /// 4202: closed after inactivity. Reconnect now.
    Inactive,
    /// 4301: the client sent client events faster than allowed.
    ClientEventRateLimit,
}

impl CloseCode {
    /// The number sent in the close frame and in `pusher:error`.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::InvalidPayload => 1007,
            CloseCode::MessageTooBig => 1009,
            CloseCode::AppNotFound => 4001,
            CloseCode::AppDisabled => 4003,
            CloseCode::OverQuota => 4004,
            CloseCode::PathNotFound => 4005,
            CloseCode::InvalidVersion => 4006,
            CloseCode::UnsupportedVersion => 4007,
            CloseCode::NoVersion => 4008,
            CloseCode::Unauthorized | CloseCode::Terminated => 4009,
            CloseCode::OverCapacity => 4100,
            CloseCode::Restarting => 4200,
            CloseCode::PongTimeout => 4201,
            CloseCode::Inactive => 4202,
            CloseCode::ClientEventRateLimit => 4301,
        }
    }

    /// Its place in the list of codes, for storing a code in an atomic.
    pub(crate) fn index(self) -> u8 {
        ALL.iter().position(|c| *c == self).unwrap_or(0) as u8
    }

    /// The code at `index` (see [`CloseCode::index`]).
    pub(crate) fn from_index(index: u8) -> Option<Self> {
        ALL.get(usize::from(index)).copied()
    }

    /// The code for a number, if it is one the hub uses.
    pub fn from_code(code: u16) -> Option<Self> {
        ALL.iter().copied().find(|c| c.code() == code)
    }

    /// A short reason for the close frame (which allows at most 123 bytes).
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "closed",
            CloseCode::InvalidPayload => "text frame is not valid UTF-8",
            CloseCode::MessageTooBig => "frame too large",
            CloseCode::AppNotFound => "app does not exist",
            CloseCode::AppDisabled => "app disabled",
            CloseCode::OverQuota => "over connection quota",
            CloseCode::PathNotFound => "path not found",
            CloseCode::InvalidVersion => "invalid version format",
            CloseCode::UnsupportedVersion => "unsupported protocol version",
            CloseCode::NoVersion => "no protocol version supplied",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::Terminated => "connection terminated by the operator",
            CloseCode::OverCapacity => "over capacity: retry later",
            CloseCode::Restarting => "server restarting",
            CloseCode::PongTimeout => "pong reply not received",
            CloseCode::Inactive => "closed after inactivity",
            CloseCode::ClientEventRateLimit => "client event rate limit exceeded",
        }
    }
}

/// How a connection ended, as far as close codes go: who closed it and with which code. Carried from the
/// session to the hub's records, the monitor feed and `/metrics` without ever becoming a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClosedBy {
    /// The hub closed it, with one of its own codes.
    Hub(CloseCode),
    /// The client sent a close frame, with this code (`None`: a close frame without a code, which
    /// RFC 6455 reports as 1005).
    Client(Option<u16>),
    /// Nobody sent a close frame: the connection was reset, timed out or went away (RFC 6455's 1006).
    Lost,
}

impl ClosedBy {
    /// The number a close frame carried, if one was sent or received with a code.
    pub fn code(self) -> Option<u16> {
        match self {
            ClosedBy::Hub(code) => Some(code.code()),
            ClosedBy::Client(code) => code,
            ClosedBy::Lost => None,
        }
    }
}

const ALL: [CloseCode; 17] = [
    CloseCode::Normal,
    CloseCode::InvalidPayload,
    CloseCode::MessageTooBig,
    CloseCode::AppNotFound,
    CloseCode::AppDisabled,
    CloseCode::OverQuota,
    CloseCode::PathNotFound,
    CloseCode::InvalidVersion,
    CloseCode::UnsupportedVersion,
    CloseCode::NoVersion,
    CloseCode::Unauthorized,
    CloseCode::Terminated,
    CloseCode::OverCapacity,
    CloseCode::Restarting,
    CloseCode::PongTimeout,
    CloseCode::Inactive,
    CloseCode::ClientEventRateLimit,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_reasons_fit_a_close_frame() {
        for c in ALL {
            assert_eq!(CloseCode::from_code(c.code()).map(CloseCode::code), Some(c.code()));
            assert_eq!(CloseCode::from_index(c.index()), Some(c));
            assert!(c.reason().len() <= 123);
        }
        assert_eq!(CloseCode::from_code(4999), None);
    }

    #[test]
    fn pusher_ranges_tell_the_client_what_to_do() {
        // 4000-4099: do not reconnect; 4100-4199: back off; 4200-4299: reconnect now.
        assert!((4000..4100).contains(&CloseCode::AppNotFound.code()));
        assert!((4100..4200).contains(&CloseCode::OverCapacity.code()));
        assert!((4200..4300).contains(&CloseCode::Restarting.code()));
    }

    #[test]
    fn a_close_names_its_code_whoever_sent_it() {
        assert_eq!(ClosedBy::Hub(CloseCode::OverCapacity).code(), Some(4100));
        assert_eq!(ClosedBy::Client(Some(1001)).code(), Some(1001));
        assert_eq!(ClosedBy::Client(None).code(), None);
        assert_eq!(ClosedBy::Lost.code(), None);
    }
}
