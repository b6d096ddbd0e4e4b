//! Private, presence, encrypted, cache and per-user channels, client events and sign-in, over real
//! WebSockets, asserting the exact frames. (The same features are tested with pusher-js, laravel-echo and
//! the `pusher` SDK in tests/clients.)

mod common;

use std::time::Duration;

use common::*;
use poussr::protocol::signature::sign;
use serde_json::{Value, json};

/// The `auth` value the app's backend would return for `signed`.
fn auth(signed: &str) -> String {
    format!("{}:{}", test_app().key, sign(&test_app().secret, signed.as_bytes()))
}

/// Joins a presence channel as `user` and returns the subscription_succeeded data.
async fn join(ws: &mut Ws, socket: &str, channel: &str, user: &str) -> Value {
    let data = json!({"user_id": user, "user_info": {"name": user.to_uppercase()}}).to_string();
    send_json(
        ws,
        json!({"event":"pusher:subscribe","data":{
            "channel": channel, "auth": auth(&format!("{socket}:{channel}:{data}")), "channel_data": data}}),
    )
    .await;
    let ok = next_json(ws).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded", "{ok}");
    serde_json::from_str(ok["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn private_channels_need_a_valid_signature_for_this_socket() {
    let hub = TestHub::start().await;
    let (mut ws, socket) = hub.pusher().await;
    for (channel, auth_value) in [
        ("private-a", None),
        ("private-a", Some("testkey:00ff".to_owned())),
        ("private-a", Some(auth("9.9:private-a"))),
        ("private-a", Some(format!("otherkey:{}", sign("testsecret", format!("{socket}:private-a").as_bytes())))),
        ("private-encrypted-a", Some(auth(&format!("{socket}:private-a")))),
        ("presence-a", Some(auth(&format!("{socket}:presence-a")))),
    ] {
        let mut data = json!({"channel": channel});
        if let Some(a) = auth_value {
            data["auth"] = a.into();
        }
        send_json(&mut ws, json!({"event":"pusher:subscribe","data":data})).await;
        let err = next_json(&mut ws).await;
        assert_eq!(err["event"], "pusher:subscription_error", "{channel}: {err}");
        assert_eq!(err["channel"], channel);
        let status = err["data"]["status"].as_u64().unwrap();
        assert!(status == 401 || (channel.starts_with("presence-") && status == 400), "{err}");
    }
    // The socket is still fine, and a good signature works.
    let channel = "private-a";
    send_json(
        &mut ws,
        json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth(&format!("{socket}:{channel}"))}}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"event":"pusher_internal:subscription_succeeded","channel":"private-a","data":"{}"})
    );
    hub.trigger("private-a", "e", "x").await;
    assert_eq!(next_json(&mut ws).await, json!({"event":"e","channel":"private-a","data":"x"}));
    hub.stop().await;
}

#[tokio::test]
async fn presence_counts_users_not_connections() {
    let hub = TestHub::start().await;
    let (mut bob, bob_id) = hub.pusher().await;
    let data = join(&mut bob, &bob_id, "presence-room", "bob").await;
    assert_eq!(data, json!({"presence":{"ids":["bob"],"hash":{"bob":{"name":"BOB"}},"count":1}}));

    let (mut ann1, ann1_id) = hub.pusher().await;
    let data = join(&mut ann1, &ann1_id, "presence-room", "ann").await;
    assert_eq!(data["presence"]["count"], 2);
    assert_eq!(data["presence"]["ids"], json!(["ann", "bob"]));
    let added = next_json(&mut bob).await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(added["data"], r#"{"user_id":"ann","user_info":{"name":"ANN"}}"#);

    // Ann's second tab is not a new member: its join (answered above) queued no member_added for Bob.
    let (mut ann2, ann2_id) = hub.pusher().await;
    assert_eq!(join(&mut ann2, &ann2_id, "presence-room", "ann").await["presence"]["count"], 2);
    let sentinel = hub.sentinel_on("presence-room");
    assert_next_is_sentinel(&mut bob, &sentinel).await;
    let (status, users) = hub.api("GET", "/apps/4242/channels/presence-room/users", &[], "").await;
    assert_eq!((status.as_u16(), users), (200, json!({"users":[{"id":"ann"},{"id":"bob"}]})));
    let (_, info) =
        hub.api("GET", "/apps/4242/channels/presence-room", &[("info", "user_count,subscription_count")], "").await;
    assert_eq!(info, json!({"occupied":true,"user_count":2,"subscription_count":3}));

    // Closing one of Ann's tabs removes nobody; closing the other removes Ann. Once the hub has let the
    // first tab go, a member_removed for it would already be queued for Bob, ahead of the sentinel.
    drop(ann1);
    eventually("the hub to let Ann's first tab go", || hub.hub.connection(&ann1_id).is_none()).await;
    let sentinel = hub.sentinel_on("presence-room");
    assert_next_is_sentinel(&mut bob, &sentinel).await;
    let (_, info) =
        hub.api("GET", "/apps/4242/channels/presence-room", &[("info", "user_count,subscription_count")], "").await;
    assert_eq!(info, json!({"occupied":true,"user_count":2,"subscription_count":2}));
    drop(ann2);
    let removed = next_json(&mut bob).await;
    assert_eq!(
        removed,
        json!({"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"ann\"}"})
    );
    hub.stop().await;
}

#[tokio::test]
async fn presence_limits_answer_with_a_subscription_error() {
    let hub = TestHub::with(|c| c.limits.max_presence_members = 2).await;
    let (mut a, a_id) = hub.pusher().await;
    join(&mut a, &a_id, "presence-full", "u1").await;
    let (mut b, b_id) = hub.pusher().await;
    join(&mut b, &b_id, "presence-full", "u2").await;
    let (mut c, c_id) = hub.pusher().await;
    let data = json!({"user_id": "u3"}).to_string();
    let signed = format!("{c_id}:presence-full:{data}");
    send_json(
        &mut c,
        json!({"event":"pusher:subscribe","data":{"channel":"presence-full","auth":auth(&signed),"channel_data":data}}),
    )
    .await;
    let err = next_json(&mut c).await;
    assert_eq!(err["data"]["status"], 403, "{err}");
    assert!(err["data"]["error"].as_str().unwrap().contains("2 members"), "{err}");
    // An existing member's second connection still joins.
    join(&mut c, &c_id, "presence-full", "u1").await;

    for (data, why) in [
        ("not json".to_owned(), "not valid JSON"),
        (json!({"user_info": {}}).to_string(), "no user_id"),
        (json!({"user_id": "x".repeat(129)}).to_string(), "129 characters"),
        (json!({"user_id": "x", "user_info": "y".repeat(1100)}).to_string(), "limit is 1024"),
    ] {
        let signed = format!("{c_id}:presence-other:{data}");
        send_json(&mut c, json!({"event":"pusher:subscribe","data":{"channel":"presence-other","auth":auth(&signed),"channel_data":data}})).await;
        let err = next_json(&mut c).await;
        assert_eq!(err["event"], "pusher:subscription_error");
        assert_eq!(err["data"]["status"], 400, "{err}");
        assert!(err["data"]["error"].as_str().unwrap().contains(why), "{why}: {err}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn cache_channels_give_the_last_event_or_a_miss() {
    let hub = TestHub::start().await;
    let (mut first, first_id) = hub.pusher().await;
    send_json(&mut first, json!({"event":"pusher:subscribe","data":{"channel":"cache-x"}})).await;
    assert_eq!(next_json(&mut first).await["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(next_json(&mut first).await, json!({"event":"pusher:cache_miss","channel":"cache-x"}));
    hub.trigger("cache-x", "price", "1").await;
    hub.trigger("cache-x", "price", "2").await;
    assert_eq!(next_json(&mut first).await["data"], "1");
    assert_eq!(next_json(&mut first).await["data"], "2");
    drop(first);
    // The cache outlives the channel's last subscriber: the hub lets `first` go, and the channel with it.
    eventually("the hub to let the cache channel's only subscriber go", || hub.hub.connection(&first_id).is_none())
        .await;
    let app = hub.hub.default_app();
    assert!(hub.hub.channel(&app, &poussr::protocol::ChannelName::parse("cache-x").unwrap()).is_none());
    let (mut late, _) = hub.pusher().await;
    send_json(&mut late, json!({"event":"pusher:subscribe","data":{"channel":"cache-x"}})).await;
    assert_eq!(next_json(&mut late).await["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(next_json(&mut late).await, json!({"event":"price","channel":"cache-x","data":"2"}));
    // Once, from the cache: the same event was not queued live as well.
    let sentinel = hub.sentinel_on("cache-x");
    assert_next_is_sentinel(&mut late, &sentinel).await;
    hub.stop().await;
}

#[tokio::test]
async fn client_events_reach_the_others_with_the_user_id_and_are_rate_limited() {
    let hub = TestHub::start().await;
    let (mut ann, ann_id) = hub.pusher().await;
    let (mut bob, bob_id) = hub.pusher().await;
    join(&mut ann, &ann_id, "presence-chat", "ann").await;
    join(&mut bob, &bob_id, "presence-chat", "bob").await;
    next_json(&mut ann).await; // member_added bob
    send_json(&mut ann, json!({"event":"client-typing","channel":"presence-chat","data":{"on":true}})).await;
    assert_eq!(
        next_json(&mut bob).await,
        json!({"event":"client-typing","channel":"presence-chat","data":"{\"on\":true}","user_id":"ann"})
    );
    // Not back to Ann, the sender (it was queued for Bob, so it would have been for Ann by now), and only
    // once to Bob.
    let sentinel = hub.sentinel_on("presence-chat");
    assert_next_is_sentinel(&mut ann, &sentinel).await;
    assert_next_is_sentinel(&mut bob, &sentinel).await;

    // Refused without closing: a public channel, an encrypted one, one not joined, a pusher_internal event.
    for frame in [
        json!({"event":"client-x","channel":"public","data":{}}),
        json!({"event":"client-x","channel":"private-encrypted-x","data":{}}),
        json!({"event":"client-x","channel":"private-notjoined","data":{}}),
        json!({"event":"pusher_internal:member_added","channel":"presence-chat","data":{}}),
    ] {
        send_json(&mut ann, frame.clone()).await;
        let err = next_json(&mut ann).await;
        assert_eq!(err["event"], "pusher:error", "{frame}");
        assert_eq!(err["data"]["code"], Value::Null, "{frame}");
    }
    // Ann has her answers, so the hub has handled the refused frames: none of them was relayed to Bob,
    // and Ann got nothing but the errors.
    let sentinel = hub.sentinel_on("presence-chat");
    assert_next_is_sentinel(&mut bob, &sentinel).await;
    assert_next_is_sentinel(&mut ann, &sentinel).await;

    // After a pause (a fresh one-second window), eleven at once: the eleventh closes the connection with 4301.
    // Time must pass here: the limit counts client events per one-second window, and the events above
    // count in the current one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..11 {
        send_json(&mut ann, json!({"event":"client-x","channel":"presence-chat","data":{}})).await;
    }
    let (frames, code) = read_until_close(&mut ann).await;
    assert_eq!(code, Some(4301));
    assert_eq!(frames.last().unwrap()["data"]["code"], 4301);
    // Bob got the ten allowed in the fresh window, and then Ann left: the eleventh was not relayed. (Ann's
    // socket goes now; the hub, waiting for her answer to its close frame, lets her go at once.)
    drop(ann);
    for i in 0..10 {
        let relayed = next_json(&mut bob).await;
        assert_eq!((relayed["event"].as_str(), relayed["user_id"].as_str()), (Some("client-x"), Some("ann")), "{i}");
    }
    let removed = next_json(&mut bob).await;
    assert_eq!(removed["event"], "pusher_internal:member_removed", "{removed}");
    hub.stop().await;
}

#[tokio::test]
async fn sign_in_opens_the_users_own_channel_only() {
    let hub = TestHub::start().await;
    let (mut ws, socket) = hub.pusher().await;
    let user_data = json!({"id": "ann", "name": "Ann"}).to_string();
    send_json(&mut ws, json!({"event":"pusher:subscribe","data":{"channel":"#server-to-user-ann"}})).await;
    assert_eq!(next_json(&mut ws).await["data"]["status"], 403);
    let signed = format!("{socket}::user::{user_data}");
    send_json(&mut ws, json!({"event":"pusher:signin","data":{"auth":auth(&signed),"user_data":user_data}})).await;
    let ok = next_json(&mut ws).await;
    assert_eq!(ok["event"], "pusher:signin_success");
    assert_eq!(serde_json::from_str::<Value>(ok["data"].as_str().unwrap()).unwrap()["user_data"], user_data);
    send_json(&mut ws, json!({"event":"pusher:subscribe","data":{"channel":"#server-to-user-ann"}})).await;
    assert_eq!(next_json(&mut ws).await["event"], "pusher_internal:subscription_succeeded");
    send_json(&mut ws, json!({"event":"pusher:subscribe","data":{"channel":"#server-to-user-bob"}})).await;
    assert_eq!(next_json(&mut ws).await["data"]["status"], 403);

    // terminate_connections closes Ann's connections with 4009.
    let (status, body) = hub.api("POST", "/apps/4242/users/ann/terminate_connections", &[], "{}").await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let (frames, code) = read_until_close(&mut ws).await;
    assert_eq!(code, Some(4009), "{frames:?}");

    // A bad sign-in signature closes with 4009 too.
    let (mut bad, _) = hub.pusher().await;
    send_json(&mut bad, json!({"event":"pusher:signin","data":{"auth":"testkey:00","user_data":user_data}})).await;
    let (frames, code) = read_until_close(&mut bad).await;
    assert_eq!(code, Some(4009));
    assert_eq!(frames[0]["data"]["code"], 4009);
    hub.stop().await;
}
