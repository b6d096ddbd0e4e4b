//! Channel names and kinds. The kind of a channel is decided once, from its name's prefix, exactly as
//! Pusher does, so that every other module matches on [`ChannelKind`] instead of comparing strings.

use std::fmt;
use std::sync::Arc;

/// The longest channel name Pusher accepts.
pub const MAX_CHANNEL_NAME_LEN: usize = 164;

/// The prefix of the per-user channels that exist after `pusher:signin`.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What a channel is, as told by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelKind {
    /// No prefix: anyone may subscribe.
    Public,
    /// `private-`: subscribing needs a signature from the app's backend.
    Private,
    /// `presence-`: private, plus the list of members.
    Presence,
    /// `private-encrypted-`: private, and the payload is end-to-end encrypted (the hub relays it opaque).
    Encrypted,
    /// `#server-to-user-{id}`: only the signed-in user `{id}` receives it.
    ServerToUser,
}

impl ChannelKind {
    /// Whether subscribing needs an `auth` signature.
    pub fn needs_auth(self) -> bool {
        !matches!(self, ChannelKind::Public)
    }

    /// The name used in the dashboard and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Public => "public",
            ChannelKind::Private => "private",
            ChannelKind::Presence => "presence",
            ChannelKind::Encrypted => "encrypted",
            ChannelKind::ServerToUser => "server-to-user",
        }
    }
}

/// A channel name that has been validated: 1 to 164 characters from `A-Z a-z 0-9 _ - = @ , . ;`, or a
/// `#server-to-user-` name. Cloning is cheap (a shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

/// Why a channel name was refused; the message is meant for the client that sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidChannelName {
    /// The name was empty.
    #[error("the channel name is empty")]
    Empty,
    /// The name was longer than [`MAX_CHANNEL_NAME_LEN`].
    #[error("the channel name is {0} characters long; the limit is 164")]
    TooLong(usize),
    /// The name held a character outside the allowed set.
    #[error("the channel name contains {0:?}; allowed are A-Z a-z 0-9 and _ - = @ , . ;")]
    BadCharacter(char),
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

impl ChannelName {
    /// Validates `name`.
    pub fn parse(name: &str) -> Result<Self, InvalidChannelName> {
        if name.is_empty() {
            return Err(InvalidChannelName::Empty);
        }
        let chars = name.chars().count();
        if chars > MAX_CHANNEL_NAME_LEN {
            return Err(InvalidChannelName::TooLong(chars));
        }
        let rest = name.strip_prefix(SERVER_TO_USER_PREFIX).unwrap_or(name);
        if let Some(bad) = rest.chars().find(|&c| !allowed(c)) {
            return Err(InvalidChannelName::BadCharacter(bad));
        }
        if rest.len() == name.len() || !rest.is_empty() {
            Ok(ChannelName(Arc::from(name)))
        } else {
            // "#server-to-user-" with no user id names nobody.
            Err(InvalidChannelName::BadCharacter('#'))
        }
    }

    /// The name as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind told by the prefix.
    pub fn kind(&self) -> ChannelKind {
        let n = self.as_str();
        if n.starts_with(SERVER_TO_USER_PREFIX) {
            ChannelKind::ServerToUser
        } else if n.starts_with("private-encrypted-") {
            ChannelKind::Encrypted
        } else if n.starts_with("private-") {
            ChannelKind::Private
        } else if n.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// Whether this is a cache channel (`cache-`, `private-cache-`, `presence-cache-`,
    /// `private-encrypted-cache-`), whose last event is kept for new subscribers.
    pub fn is_cache(&self) -> bool {
        let n = self.as_str();
        ["cache-", "private-cache-", "presence-cache-", "private-encrypted-cache-"].iter().any(|p| n.starts_with(p))
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for ChannelName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character() {
        let name = "AZaz09_-=@,.;";
        assert_eq!(ChannelName::parse(name).unwrap().as_str(), name);
    }

    #[test]
    fn refuses_empty_long_and_bad_names() {
        assert_eq!(ChannelName::parse(""), Err(InvalidChannelName::Empty));
        assert_eq!(ChannelName::parse(&"a".repeat(165)), Err(InvalidChannelName::TooLong(165)));
        assert!(ChannelName::parse(&"a".repeat(164)).is_ok());
        assert_eq!(ChannelName::parse("bad name"), Err(InvalidChannelName::BadCharacter(' ')));
        assert_eq!(ChannelName::parse("a/b"), Err(InvalidChannelName::BadCharacter('/')));
        assert_eq!(ChannelName::parse("#room"), Err(InvalidChannelName::BadCharacter('#')));
        assert!(ChannelName::parse("#server-to-user-").is_err());
        assert!(ChannelName::parse("é").is_err());
    }

    #[test]
    fn kind_comes_from_the_prefix() {
        let kind = |n: &str| ChannelName::parse(n).unwrap().kind();
        assert_eq!(kind("orders"), ChannelKind::Public);
        assert_eq!(kind("cache-orders"), ChannelKind::Public);
        assert_eq!(kind("private-chat"), ChannelKind::Private);
        assert_eq!(kind("private-cache-chat"), ChannelKind::Private);
        assert_eq!(kind("presence-room"), ChannelKind::Presence);
        assert_eq!(kind("private-encrypted-x"), ChannelKind::Encrypted);
        assert_eq!(kind("#server-to-user-7"), ChannelKind::ServerToUser);
    }

    #[test]
    fn cache_prefixes() {
        for n in ["cache-a", "private-cache-a", "presence-cache-a", "private-encrypted-cache-a"] {
            assert!(ChannelName::parse(n).unwrap().is_cache(), "{n}");
        }
        assert!(!ChannelName::parse("private-a").unwrap().is_cache());
        assert!(!ChannelName::parse("cachex").unwrap().is_cache());
    }
}
