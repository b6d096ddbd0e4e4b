//! Signatures: HMAC-SHA256 for channel auth, user sign-in, the HTTP API and webhooks; MD5 for request
//! bodies. Every comparison of a signature is done in constant time (`Mac::verify_slice`), so an attacker
//! cannot find a valid signature byte by byte from response times.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far `auth_timestamp` may be from the hub's clock, in seconds.
pub const MAX_TIMESTAMP_SKEW_SECS: u64 = 600;

fn mac(secret: &str, message: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(message);
    mac
}

/// The lower-case hex HMAC-SHA256 of `message` keyed with `secret`.
pub fn sign(secret: &str, message: &[u8]) -> String {
    hex::encode(mac(secret, message).finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC-SHA256 of `message`, compared in constant time.
pub fn verify(secret: &str, message: &[u8], signature_hex: &str) -> bool {
    match hex::decode(signature_hex) {
        Ok(sig) => mac(secret, message).verify_slice(&sig).is_ok(),
        Err(_) => false,
    }
}

/// The lower-case hex MD5 of a request body, as `body_md5` carries it.
pub fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Checks a channel `auth` value (`"{app_key}:{hex}"`) against the string the app's backend signed.
pub fn verify_channel_auth(app_key: &str, secret: &str, auth: &str, signed: &str) -> bool {
    match auth.split_once(':') {
        Some((key, sig)) => key == app_key && verify(secret, signed.as_bytes(), sig),
        None => false,
    }
}

/// Why a signed HTTP API request was refused (all answered with 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    /// A required `auth_*` parameter is missing.
    #[error("the query parameter {0} is missing; requests must be signed (see the Pusher HTTP API)")]
    Missing(&'static str),
    /// `auth_key` is not this app's key.
    #[error("auth_key does not match this app's key")]
    WrongKey,
    /// `auth_version` is not 1.0.
    #[error("auth_version {0:?} is not supported; use 1.0")]
    Version(String),
    /// `auth_timestamp` is not a number.
    #[error("auth_timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    /// `auth_timestamp` is too far from the hub's clock.
    #[error("auth_timestamp is {0} s away from the server's clock (the limit is 600 s); check the clocks")]
    Stale(u64),
    /// `body_md5` is missing for a request with a body.
    #[error("body_md5 is missing for a request with a body")]
    NoBodyMd5,
    /// `body_md5` does not match the body received.
    #[error("body_md5 does not match the body received")]
    BodyMd5,
    /// The signature does not match.
    #[error("invalid signature: auth_signature does not match the request (check the app secret)")]
    Signature,
}

/// One query parameter as received and as decoded.
struct Param {
    key: String,
    raw: String,
    decoded: String,
}

fn params(raw_query: &str) -> Vec<Param> {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Param { key: decode(k).to_ascii_lowercase(), raw: v.to_owned(), decoded: decode(v) }
        })
        .collect()
}

/// The string an HTTP API request is signed over: `METHOD\nPATH\nk=v&k=v`, every parameter but
/// `auth_signature`, keys lower-cased and sorted. `raw` selects the values as received (URL-encoded) rather
/// than decoded; SDKs differ, so the verifier accepts either.
fn string_to_sign(method: &str, path: &str, params: &[&Param], raw: bool) -> String {
    let query: Vec<String> =
        params.iter().map(|p| format!("{}={}", p.key, if raw { &p.raw } else { &p.decoded })).collect();
    format!("{method}\n{path}\n{}", query.join("&"))
}

/// Signs a request the way a Pusher server SDK does: returns the query string to append to `path`,
/// `auth_signature` included. `extra` are the request's own parameters. Used by the tests and the
/// load generator; the verifier below is the hub's side.
pub fn sign_request(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    timestamp: u64,
) -> String {
    let mut pairs: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
    pairs.push(("auth_key".into(), key.into()));
    pairs.push(("auth_timestamp".into(), timestamp.to_string()));
    pairs.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        pairs.push(("body_md5".into(), md5_hex(body)));
    }
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query = query.join("&");
    let signature = sign(secret, format!("{method}\n{path}\n{query}").as_bytes());
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        .collect();
    format!("{}&auth_signature={signature}", encoded.join("&"))
}

/// Verifies a signed HTTP API request: key, version, timestamp within [`MAX_TIMESTAMP_SKEW_SECS`] of
/// `now_secs`, `body_md5` against the raw body, and the signature, compared in constant time.
pub fn verify_request(
    app_key: &str,
    secret: &str,
    method: &str,
    path: &str,
    raw_query: &str,
    body: &[u8],
    now_secs: u64,
) -> Result<(), ApiAuthError> {
    let all = params(raw_query);
    let get = |name: &str| all.iter().find(|p| p.key == name).map(|p| p.decoded.as_str());

    let key = get("auth_key").ok_or(ApiAuthError::Missing("auth_key"))?;
    if key != app_key {
        return Err(ApiAuthError::WrongKey);
    }
    let signature = get("auth_signature").ok_or(ApiAuthError::Missing("auth_signature"))?;
    if let Some(version) = get("auth_version")
        && version != "1.0"
    {
        return Err(ApiAuthError::Version(version.to_owned()));
    }
    let ts = get("auth_timestamp").ok_or(ApiAuthError::Missing("auth_timestamp"))?;
    let ts: u64 = ts.parse().map_err(|_| ApiAuthError::BadTimestamp(ts.to_owned()))?;
    let skew = now_secs.abs_diff(ts);
    if skew > MAX_TIMESTAMP_SKEW_SECS {
        return Err(ApiAuthError::Stale(skew));
    }
    match get("body_md5") {
        Some(md5) if !md5.eq_ignore_ascii_case(&md5_hex(body)) => return Err(ApiAuthError::BodyMd5),
        None if !body.is_empty() => return Err(ApiAuthError::NoBodyMd5),
        _ => {}
    }

    let mut signed: Vec<&Param> = all.iter().filter(|p| p.key != "auth_signature").collect();
    signed.sort_by(|a, b| a.key.cmp(&b.key));
    let ok = [false, true]
        .into_iter()
        .any(|raw| verify(secret, string_to_sign(method, path, &signed, raw).as_bytes(), signature));
    if ok { Ok(()) } else { Err(ApiAuthError::Signature) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn md5_matches_a_known_vector() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn pusher_documented_channel_auth_example() {
        // The worked example from Pusher's authentication docs.
        let signed = "1234.1234:private-foobar";
        let auth = format!("{KEY}:{}", sign(SECRET, signed.as_bytes()));
        assert_eq!(auth, "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
        assert!(verify_channel_auth(KEY, SECRET, &auth, signed));
        assert!(!verify_channel_auth(KEY, SECRET, &auth, "1234.1234:private-other"));
        assert!(!verify_channel_auth("otherkey", SECRET, &auth, signed));
        assert!(!verify_channel_auth(KEY, SECRET, "no-colon", signed));
        assert!(!verify_channel_auth(KEY, SECRET, &format!("{KEY}:zz"), signed));
    }

    fn signed(body: &[u8], ts: u64) -> String {
        sign_request(KEY, SECRET, "POST", "/apps/3/events", &[], body, ts)
    }

    #[test]
    fn a_correctly_signed_request_verifies() {
        let body = br#"{"name":"e","channel":"a","data":"{}"}"#;
        let q = signed(body, 1_700_000_000);
        assert_eq!(verify_request(KEY, SECRET, "POST", "/apps/3/events", &q, body, 1_700_000_100), Ok(()));
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let q = signed(b"{\"a\":1}", 1_700_000_000);
        assert_eq!(
            verify_request(KEY, SECRET, "POST", "/apps/3/events", &q, b"{\"a\":2}", 1_700_000_000),
            Err(ApiAuthError::BodyMd5)
        );
    }

    #[test]
    fn a_stale_timestamp_is_refused() {
        let q = signed(b"x", 1_700_000_000);
        assert_eq!(
            verify_request(KEY, SECRET, "POST", "/apps/3/events", &q, b"x", 1_700_000_601),
            Err(ApiAuthError::Stale(601))
        );
        assert!(verify_request(KEY, SECRET, "POST", "/apps/3/events", &q, b"x", 1_699_999_400).is_ok());
    }

    #[test]
    fn a_wrong_key_or_secret_is_refused() {
        let q = signed(b"x", 1_700_000_000);
        assert_eq!(
            verify_request("otherkey", SECRET, "POST", "/apps/3/events", &q, b"x", 1_700_000_000),
            Err(ApiAuthError::WrongKey)
        );
        assert_eq!(
            verify_request(KEY, "othersecret", "POST", "/apps/3/events", &q, b"x", 1_700_000_000),
            Err(ApiAuthError::Signature)
        );
    }

    #[test]
    fn the_signature_covers_method_path_and_query() {
        let q = signed(b"x", 1_700_000_000);
        assert_eq!(
            verify_request(KEY, SECRET, "PUT", "/apps/3/events", &q, b"x", 1_700_000_000),
            Err(ApiAuthError::Signature)
        );
        assert_eq!(
            verify_request(KEY, SECRET, "POST", "/apps/4/events", &q, b"x", 1_700_000_000),
            Err(ApiAuthError::Signature)
        );
        let extra = format!("{q}&info=user_count");
        assert_eq!(
            verify_request(KEY, SECRET, "POST", "/apps/3/events", &extra, b"x", 1_700_000_000),
            Err(ApiAuthError::Signature)
        );
    }

    #[test]
    fn query_values_are_signed_decoded() {
        let q =
            sign_request(KEY, SECRET, "GET", "/apps/3/channels", &[("info", "user_count,subscription_count")], b"", 5);
        assert!(q.contains("info=user_count%2Csubscription_count"));
        assert_eq!(verify_request(KEY, SECRET, "GET", "/apps/3/channels", &q, b"", 5), Ok(()));
    }

    #[test]
    fn missing_parameters_are_named() {
        assert_eq!(
            verify_request(KEY, SECRET, "GET", "/apps/3/channels", "", b"", 5),
            Err(ApiAuthError::Missing("auth_key"))
        );
        let q = format!("auth_key={KEY}&auth_timestamp=5&auth_version=1.0");
        assert_eq!(
            verify_request(KEY, SECRET, "GET", "/apps/3/channels", &q, b"", 5),
            Err(ApiAuthError::Missing("auth_signature"))
        );
        let q = format!("auth_key={KEY}&auth_timestamp=5&auth_signature=00");
        assert_eq!(verify_request(KEY, SECRET, "POST", "/apps/3/events", &q, b"body", 5), Err(ApiAuthError::NoBodyMd5));
    }
}
