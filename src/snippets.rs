//! Ready-to-paste client snippets for an address and an app, shown by `poussr serve` at start (and, later,
//! by the desktop window and the dashboard): one source, so they never disagree.

use crate::config::AppConfig;

/// The snippets for clients connecting to `host:port`.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Snippets {
    /// pusher-js in a web page, loaded from the hub with its integrity hash.
    pub pusher_js: String,
    /// laravel-echo with the `pusher` broadcaster in a web page, both libraries loaded from the hub.
    pub laravel_echo: String,
    /// The Laravel `.env` lines for the server side.
    pub laravel_env: String,
    /// Publishing with curl, Poussr v1 style.
    pub curl: String,
    /// The original Poussr v1 browser client.
    pub poussr_v1: String,
}

/// Formats `host` for a URL (IPv6 addresses go in brackets).
pub fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() }
}

/// Builds the snippets; with `tls`, for `https://` and `wss://` (the hub serves both on the same port).
pub fn snippets(host: &str, port: u16, app: &AppConfig, tls: bool) -> Snippets {
    let key = &app.key;
    let (scheme, ports, force) =
        if tls { ("https", format!("wssPort: {port}"), "true") } else { ("http", format!("wsPort: {port}"), "false") };
    let url = format!("{scheme}://{}:{port}", url_host(host));
    let pusher_tag = crate::vendor::pusher_js().script_tag(&url);
    let echo_tag = crate::vendor::laravel_echo().script_tag(&url);
    Snippets {
        pusher_js: format!(
            "{pusher_tag}\n<script>\n  const pusher = new Pusher('{key}', {{\n    wsHost: '{host}',\n    {ports},\n    \
             forceTLS: {force},\n    enabledTransports: ['ws', 'wss'],\n    disableStats: true,\n    \
             cluster: 'mt1', // required by the typings, not used\n  }});\n  \
             pusher.subscribe('orders').bind('order-created', (data) => console.log(data));\n</script>"
        ),
        laravel_echo: format!(
            "{pusher_tag}\n{echo_tag}\n<script>\n  // The browser build's class is Echo.default (with a bundler: import Echo from 'laravel-echo').\n  \
             window.echo = new Echo.default({{\n    broadcaster: 'pusher',\n    key: '{key}',\n    wsHost: '{host}',\n    \
             {ports},\n    forceTLS: {force},\n    enabledTransports: ['ws', 'wss'],\n    disableStats: true,\n    \
             cluster: 'mt1',\n  }});\n  \
             echo.channel('orders').listen('.order-created', (data) => console.log(data));\n</script>"
        ),
        laravel_env: format!(
            "BROADCAST_CONNECTION=pusher\nPUSHER_APP_ID={}\nPUSHER_APP_KEY={key}\nPUSHER_APP_SECRET={}\nPUSHER_HOST={host}\n\
             PUSHER_PORT={port}\nPUSHER_SCHEME={scheme}",
            app.id, app.secret
        ),
        curl: format!(
            "curl -X POST -d '{{\"name\": \"Fred\"}}' '{url}/v1/channels/users/events?name=newuser'\n\
             # from another machine, add: -H 'Authorization: Bearer {}'",
            app.secret
        ),
        poussr_v1: format!(
            "<script src=\"{url}/poussr.js\"></script>\n<script>\n  var p = new Poussr('{host}', {port}, 'users');\n  \
             p.connect();\n  p.subscribe('newuser', function (data) {{ console.log(data); }});\n</script>"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_name_the_host_port_and_key() {
        let app = AppConfig::new("1", "abc", "s3");
        let s = snippets("192.168.1.20", 6001, &app, false);
        assert!(s.pusher_js.contains("new Pusher('abc'") && s.pusher_js.contains("wsPort: 6001"));
        assert!(s.laravel_echo.contains("broadcaster: 'pusher'") && s.laravel_echo.contains("wsHost: '192.168.1.20'"));
        let tag = "<script src=\"http://192.168.1.20:6001/vendor/pusher-js@8.6.0/pusher.min.js\" integrity=\"sha384-";
        assert!(s.pusher_js.starts_with(tag) && s.laravel_echo.starts_with(tag));
        assert!(s.laravel_echo.contains("/vendor/laravel-echo@2.5.0/echo.iife.js\" integrity=\"sha384-"));
        assert!(s.laravel_env.contains("PUSHER_APP_SECRET=s3"));
        assert!(s.curl.contains("http://192.168.1.20:6001/v1/channels/users/events?name=newuser"));
        assert!(s.poussr_v1.contains("new Poussr('192.168.1.20', 6001, 'users')"));
        let s = snippets("192.168.1.20", 6001, &app, true);
        assert!(s.pusher_js.contains("wssPort: 6001") && s.pusher_js.contains("forceTLS: true"));
        assert!(s.laravel_env.contains("PUSHER_SCHEME=https"));
        assert!(s.curl.contains("https://192.168.1.20:6001/v1/"));
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_urls() {
        assert_eq!(url_host("fe80::1"), "[fe80::1]");
        assert_eq!(url_host("10.0.0.1"), "10.0.0.1");
    }
}
