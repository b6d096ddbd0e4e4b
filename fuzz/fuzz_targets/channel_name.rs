//! The channel-name parser. An accepted name is the input unchanged, within the length limit, made of the
//! allowed characters (after the `#server-to-user-` prefix), and its kind matches its prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poussr::protocol::ChannelName;
use poussr::protocol::channel::{ChannelKind, MAX_CHANNEL_NAME_LEN, SERVER_TO_USER_PREFIX};

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-=@,.;".contains(c)
}

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else { return };
    match ChannelName::parse(name) {
        Ok(parsed) => {
            assert_eq!(parsed.as_str(), name);
            assert!(!name.is_empty() && name.chars().count() <= MAX_CHANNEL_NAME_LEN);
            let rest = name.strip_prefix(SERVER_TO_USER_PREFIX);
            assert!(rest.unwrap_or(name).chars().all(allowed), "{name:?} was accepted");
            let kind = parsed.kind();
            match rest {
                Some(id) => {
                    assert!(!id.is_empty());
                    assert_eq!(kind, ChannelKind::ServerToUser);
                }
                None if name.starts_with("private-encrypted-") => assert_eq!(kind, ChannelKind::Encrypted),
                None if name.starts_with("private-") => assert_eq!(kind, ChannelKind::Private),
                None if name.starts_with("presence-") => assert_eq!(kind, ChannelKind::Presence),
                None => assert_eq!(kind, ChannelKind::Public),
            }
            assert_eq!(kind.needs_auth(), kind != ChannelKind::Public);
        }
        Err(error) => {
            assert!(
                name.is_empty()
                    || name.chars().count() > MAX_CHANNEL_NAME_LEN
                    || !name.chars().all(allowed)
                    || name.starts_with('#')
            );
            assert!(!error.to_string().is_empty());
        }
    }
});
