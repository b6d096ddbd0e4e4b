//! The Poussr v1 frame decoder, fed any text a v1 client could send. A decoded frame names a channel
//! that the hub's answers carry back as valid JSON; a refused frame's reason fits in a `poussr:error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poussr::protocol::v1::{self, ClientMessage};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Subscribe { channel } | ClientMessage::Unsubscribe { channel }) => {
            let frame = v1::subscription_succeeded(&channel);
            let back: Value = serde_json::from_str(&frame).expect("subscription_succeeded is JSON");
            assert_eq!(back["channel"], channel.as_str());
        }
        Err(error) => {
            let frame = v1::error(v1::FrameError::CODE, &error.to_string());
            let back: Value = serde_json::from_str(&frame).expect("poussr:error is JSON");
            assert_eq!(back["data"]["code"], v1::FrameError::CODE);
        }
    }
});
