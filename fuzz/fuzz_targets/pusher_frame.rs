//! The Pusher frame decoder, fed any text a client could send, plus the presence and sign-in payloads it
//! carries. Beyond "never panics", it checks what the session relies on: a decoded client event is named
//! `client-*`, a user id accepted at sign-in makes a valid `#server-to-user-` channel name, and the frames
//! the hub builds from what it decoded are JSON that reads back to the same strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poussr::protocol::ChannelName;
use poussr::protocol::pusher::{self, ClientMessage};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ClientMessage::parse(text) {
        Ok(ClientMessage::ClientEvent { event, channel, data }) => {
            assert!(event.starts_with("client-"), "a client event named {event:?} was accepted");
            let payload = data.to_string();
            let frame = pusher::event(&event, &channel, &payload, Some("u"));
            let back: Value = serde_json::from_str(&frame).expect("the relayed frame is JSON");
            assert_eq!(back["event"], event.as_str());
            assert_eq!(back["channel"], channel.as_str());
            assert_eq!(back["data"], payload.as_str());
        }
        Ok(ClientMessage::Subscribe(subscribe)) => {
            if let Some(channel_data) = subscribe.channel_data.as_deref()
                && let Ok(member) = pusher::parse_channel_data(channel_data, 128, 1024)
            {
                assert!(!member.user_id.is_empty());
                assert!(member.user_id.chars().count() <= 128);
                let added = pusher::member_added(&subscribe.channel, &member.user_id, &member.user_info);
                let back: Value = serde_json::from_str(&added).expect("member_added is JSON");
                let inner: Value = serde_json::from_str(back["data"].as_str().expect("data is a string"))
                    .expect("member_added data is JSON");
                assert_eq!(inner["user_id"], member.user_id.as_str());
            }
        }
        Ok(ClientMessage::Signin { user_data, .. }) => {
            if let Ok(id) = pusher::parse_user_id(&user_data, 128) {
                let channel = format!("{}{id}", poussr::protocol::channel::SERVER_TO_USER_PREFIX);
                assert!(ChannelName::parse(&channel).is_ok(), "signed-in id {id:?} gives a bad channel name");
            }
        }
        Ok(ClientMessage::Unsubscribe { .. } | ClientMessage::Ping | ClientMessage::Pong) => {}
        Err(error) => {
            // The reason goes back to the client in a pusher:error frame, which must be JSON.
            let frame = pusher::error(Some(4000), &error.to_string());
            let _: Value = serde_json::from_str(&frame).expect("the error frame is JSON");
        }
    }
    // The same text straight into the payload parsers, as a hostile auth endpoint could send it.
    let _ = pusher::parse_channel_data(text, 128, 1024);
    let _ = pusher::parse_user_id(text, 128);
});
