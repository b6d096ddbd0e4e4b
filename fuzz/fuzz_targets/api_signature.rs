//! The HTTP API's query parser and signature verifier. Any request must be answered without a panic; a
//! request signed the way the Pusher SDKs sign (any key, secret, path, parameters and body) must verify,
//! and the same request must fail with another secret or a changed body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poussr::protocol::signature::{sign_request, verify_request};

const NOW: u64 = 1_790_000_000;

fuzz_target!(|data: &[u8]| {
    // Six fields separated by 0xFF, which never occurs in UTF-8.
    let mut fields = data.split(|&b| b == 0xFF);
    let mut next = || std::str::from_utf8(fields.next().unwrap_or_default()).ok();
    let (Some(key), Some(secret), Some(method), Some(path), Some(query)) = (next(), next(), next(), next(), next())
    else {
        return;
    };
    let body = fields.next().unwrap_or_default();

    // Whatever arrives on the wire.
    let _ = verify_request(key, secret, method, path, query, body, NOW);

    // The query's own parameters, signed by an honest client. Keys are what SDKs send: lower-case names
    // that are not the authentication parameters, each once.
    let mut extra: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let plain = !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if plain && !k.starts_with("auth_") && k != "body_md5" && !extra.iter().any(|(seen, _)| *seen == k) {
            extra.push((k, v));
        }
    }
    let signed = sign_request(key, secret, method, path, &extra, body, NOW);
    if let Err(error) = verify_request(key, secret, method, path, &signed, body, NOW) {
        panic!("an honestly signed request was refused: {error}; query {signed:?}");
    }
    let other = format!("{secret}x");
    assert!(verify_request(key, &other, method, path, &signed, body, NOW).is_err(), "another secret verified");
    let mut changed = body.to_vec();
    changed.push(b'!');
    assert!(verify_request(key, secret, method, path, &signed, &changed, NOW).is_err(), "a changed body verified");
});
