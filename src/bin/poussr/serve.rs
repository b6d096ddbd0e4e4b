//! `poussr serve`: the flags, the configuration they make, the banner, and the run until the end.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Args;
use poussr::config::{AppConfig, Config, load_or_create_credentials};
use poussr::http::Frontend;
use poussr::{adapter, server, snippets};
use poussr_os::Ending;

/// Flags win over environment variables, which win over the config file, which wins over the defaults.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on [default: 0.0.0.0, the whole LAN].
    #[arg(long, env = "POUSSR_BIND")]
    bind: Option<IpAddr>,
    /// The port; 0 picks a free one and prints it [default: 6001].
    #[arg(long, env = "POUSSR_PORT")]
    pub(crate) port: Option<u16>,
    /// The default app's id (with --app-key and --app-secret).
    #[arg(long, env = "POUSSR_APP_ID")]
    app_id: Option<String>,
    /// The default app's key.
    #[arg(long, env = "POUSSR_APP_KEY")]
    app_key: Option<String>,
    /// The default app's secret.
    #[arg(long, env = "POUSSR_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// A TOML file with these settings, a list of apps and the limits.
    #[arg(long, env = "POUSSR_CONFIG")]
    config: Option<PathBuf>,
    /// Where generated credentials and the history of events are kept [default: the OS data folder].
    #[arg(long, env = "POUSSR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The folder of the history store [default: `history` in the data folder].
    #[arg(long, env = "POUSSR_HISTORY_DIR")]
    history_dir: Option<PathBuf>,
    /// Keep no history of events: reconnecting clients cannot recover what they missed.
    #[arg(long, env = "POUSSR_NO_HISTORY", conflicts_with = "history_dir")]
    no_history: bool,
    /// When a publish is answered: once the event is on the disk (full: survives a power cut) or once
    /// the operating system has it (normal: survives the hub being killed) [default: full].
    #[arg(long, env = "POUSSR_HISTORY_SYNC", value_enum)]
    history_sync: Option<poussr::config::SyncPolicy>,
    /// Accept Poussr v1 publishing from other machines without the app secret.
    #[arg(long, env = "POUSSR_ALLOW_ANONYMOUS_PUBLISH")]
    allow_anonymous_publish: bool,
    /// The admin API token (at least 16 characters) [default: a random one at each start].
    #[arg(long, env = "POUSSR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Let the admin API answer other machines (they still need the token).
    #[arg(long, env = "POUSSR_ALLOW_REMOTE_DASHBOARD")]
    allow_remote_dashboard: bool,
    /// Let the check page (/check) of any device publish its test event to a public channel.
    #[arg(long, env = "POUSSR_ALLOW_CHECK_PUBLISH")]
    allow_check_publish: bool,
    /// Do not announce the hub on the LAN over mDNS / DNS-SD (it never is when listening on loopback).
    #[arg(long, env = "POUSSR_NO_MDNS", value_parser = clap::builder::BoolishValueParser::new())]
    no_mdns: bool,
    /// How this hub shares its traffic: alone (local) or with the other hubs on the same Redis (redis)
    /// [default: local].
    #[arg(long, env = "POUSSR_ADAPTER", value_enum)]
    adapter: Option<poussr::config::AdapterKind>,
    /// The cluster's Redis server [default: redis://127.0.0.1:6379].
    #[arg(long, env = "POUSSR_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// What the cluster's Redis keys and channels start with, so that clusters can share a Redis
    /// [default: poussr].
    #[arg(long, env = "POUSSR_REDIS_PREFIX")]
    redis_prefix: Option<String>,
    /// Serve https:// and wss:// with the certificate in the data folder's `tls` folder, made for this
    /// machine now if there is none (see `poussr cert create`).
    #[arg(long, env = "POUSSR_TLS", conflicts_with_all = ["tls_cert", "tls_key"])]
    tls: bool,
    /// Serve https:// and wss:// with this certificate chain (PEM), with --tls-key.
    #[arg(long, env = "POUSSR_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "POUSSR_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A CA (PEM) trusted for webhooks and Redis beside the system's, and offered at /poussr-ca.crt.
    #[arg(long, env = "POUSSR_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Refuse plain ws:// and http:// (they are served beside TLS on the same port by default).
    #[arg(long, env = "POUSSR_TLS_ONLY")]
    tls_only: bool,
    /// A reverse proxy (address or network, as 127.0.0.1 or 10.0.0.0/8) whose Forwarded or
    /// X-Forwarded-For header names the client. Repeat, or separate with commas.
    #[arg(long = "trusted-proxy", env = "POUSSR_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<String>,
    /// The header the trusted proxies write (only that one is read) [default: x-forwarded-for].
    #[arg(long, env = "POUSSR_TRUSTED_PROXY_HEADER", value_enum)]
    trusted_proxy_header: Option<poussr::proxy::ForwardedHeader>,
}

pub(crate) fn data_dir(args: &ServeArgs) -> Result<PathBuf, String> {
    data_dir_or_default(args.data_dir.as_deref())
}

pub(crate) fn data_dir_or_default(given: Option<&std::path::Path>) -> Result<PathBuf, String> {
    if let Some(dir) = given {
        return Ok(dir.to_owned());
    }
    directories::ProjectDirs::from("io", "Poussr", "Poussr")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| "no home folder was found for the data folder; pass --data-dir".to_owned())
}

/// Builds the configuration from the file, the environment and the flags. Returns it with a note on
/// where the default app's credentials came from.
fn configure(args: &ServeArgs) -> Result<(Config, String), String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(port) = args.port {
        config.port = port;
    }
    config.allow_anonymous_publish |= args.allow_anonymous_publish;
    config.allow_remote_dashboard |= args.allow_remote_dashboard;
    config.allow_check_publish |= args.allow_check_publish;
    config.mdns &= !args.no_mdns;
    if let Some(token) = &args.admin_token {
        config.admin_token = Some(token.clone());
    }
    if let Some(adapter) = args.adapter {
        config.adapter = adapter;
    }
    if let Some(url) = &args.redis_url {
        config.redis_url = url.clone();
    }
    if let Some(prefix) = &args.redis_prefix {
        config.redis_prefix = prefix.clone();
    }
    if args.no_history {
        config.history.dir = None;
    } else if let Some(dir) = &args.history_dir {
        config.history.dir = Some(dir.clone());
    } else if config.history.dir.is_none() {
        config.history.dir = Some(data_dir(args)?.join("history"));
    }
    if let Some(sync) = args.history_sync {
        config.history.sync = sync;
    }
    if args.tls {
        // Poussr's own certificate for this machine: made the first time, and made again (same CA) when it
        // nears its end or the machine has a new address.
        let dir = data_dir(args)?.join("tls");
        if let Some((made, why)) = poussr::cert::ensure_for_machine(&dir)? {
            tracing::info!("made a certificate for this machine in {} ({why})", dir.display());
            eprint!("{}", poussr::cert::describe(&made));
        }
        let files = poussr::cert::CertFiles::in_dir(&dir);
        config.tls.cert = Some(files.cert);
        config.tls.key = Some(files.key);
        config.tls.ca.get_or_insert(files.ca);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls.cert = Some(cert.clone());
        config.tls.key = Some(key.clone());
    }
    if let Some(ca) = &args.tls_ca {
        config.tls.ca = Some(ca.clone());
    }
    if args.tls_only {
        config.tls.plain = false;
    }
    if !args.trusted_proxies.is_empty() {
        config.trusted_proxies = args.trusted_proxies.iter().map(|p| p.trim().to_owned()).collect();
    }
    if let Some(header) = args.trusted_proxy_header {
        config.trusted_proxy_header = header;
    }

    let origin = match (&args.app_id, &args.app_key, &args.app_secret) {
        (Some(id), Some(key), Some(secret)) => {
            // An app of the config file with the same id keeps its switches and webhooks; the command line
            // gives the credentials.
            let mut app = match config.apps.iter().position(|a| a.id == *id) {
                Some(i) => config.apps.remove(i),
                None => AppConfig::new(id.clone(), key.clone(), secret.clone()),
            };
            app.key = key.clone();
            app.secret = secret.clone();
            config.apps.retain(|a| a.key != app.key);
            config.apps.insert(0, app);
            "from the command line".to_owned()
        }
        (None, None, None) if !config.apps.is_empty() => "from the config file".to_owned(),
        (None, None, None) => {
            let dir = data_dir(args)?;
            let (app, created) = load_or_create_credentials(&dir).map_err(|e| e.to_string())?;
            config.apps.push(app);
            let file = dir.join("credentials.toml");
            if created {
                format!("generated on first start and saved to {}", file.display())
            } else {
                format!("from {}", file.display())
            }
        }
        _ => return Err("--app-id, --app-key and --app-secret go together: give all three or none".into()),
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok((config, origin))
}

fn banner(local: SocketAddr, config: &Config, origin: &str, admin_token: &str) -> String {
    let app = &config.apps[0];
    let addrs = poussr::net::client_addresses(local.ip());
    let schemes: &[(&str, &str)] = match (config.tls.enabled(), config.tls.plain) {
        (false, _) => &[("http", "ws")],
        (true, true) => &[("http", "ws"), ("https", "wss")],
        (true, false) => &[("https", "wss")],
    };
    let listening: Vec<String> = schemes.iter().map(|(http, _)| format!("{http}://{}", url_for(local))).collect();
    let mut out = format!("Poussr {} listening on {}\n\n", env!("CARGO_PKG_VERSION"), listening.join(" and "));
    out += "Clients connect to:\n";
    for ip in &addrs {
        for (http, ws) in schemes {
            let at = url_for(SocketAddr::new(*ip, local.port()));
            out += &format!("  {http}://{at}  ({ws}://{at}/app/{})\n", app.key);
        }
    }
    if let Some(ca) = &config.tls.ca {
        let at = url_for(SocketAddr::new(addrs[0], local.port()));
        out += &format!("\nDevices install the CA from http://{at}/poussr-ca.crt (file: {})\n", ca.display());
    }
    out += &format!(
        "\nApp credentials ({origin}):\n  app id:     {}\n  app key:    {}\n  app secret: {}\n",
        app.id, app.key, app.secret
    );
    out += &format!("  admin token: {admin_token}\n");
    if config.adapter == poussr::config::AdapterKind::Redis {
        // A password in the URL is not printed.
        let url = match config.redis_url.split_once('@') {
            Some((scheme_and_user, host)) => {
                format!("{}***@{host}", &scheme_and_user[..scheme_and_user.find("//").map_or(0, |i| i + 2)])
            }
            None => config.redis_url.clone(),
        };
        out += &format!("\nCluster: sharing traffic through {url} (prefix {})\n", config.redis_prefix);
    }
    let local_url = match local.ip() {
        ip if ip.is_unspecified() => format!("127.0.0.1:{}", local.port()),
        _ => url_for(local),
    };
    out += &format!("\nDashboard (this machine): http://{local_url}/dashboard/?token={admin_token}\n");
    let (scheme, _) = schemes[0];
    out += &format!(
        "Check page (open it on any device): {scheme}://{}/check\n",
        url_for(SocketAddr::new(addrs[0], local.port()))
    );
    let host = addrs[0].to_string();
    let s = snippets::snippets(&host, local.port(), app, config.tls.enabled());
    out += &format!(
        "\npusher-js:\n{}\n\nlaravel-echo:\n{}\n\nLaravel .env:\n{}\n",
        s.pusher_js, s.laravel_echo, s.laravel_env
    );
    out += &format!("\nPublish with curl (Poussr v1):\n{}\n\nPoussr v1 page:\n{}\n", s.curl, s.poussr_v1);
    out
}

fn url_for(addr: SocketAddr) -> String {
    format!("{}:{}", snippets::url_host(&addr.ip().to_string()), addr.port())
}

/// The listening socket a service manager passed (systemd socket activation: `LISTEN_FDS`, the socket as
/// file descriptor 3). With it the port stays open while the hub restarts: clients that reconnect at once
/// wait in the socket's queue for the new process instead of being refused. Read before any thread starts,
/// because it clears those variables from the environment.
pub(crate) fn inherited_listener() -> Result<Option<std::net::TcpListener>, String> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    if fds.len() > 1 {
        tracing::warn!("{} sockets were passed (LISTEN_FDS); Poussr uses the first one", fds.len());
    }
    match fds.take_tcp_listener(0) {
        Ok(Some(listener)) => Ok(Some(listener)),
        Ok(None) => Err("LISTEN_FDS is set but no socket was passed as file descriptor 3".into()),
        Err(e) => {
            Err(format!("the socket passed by the service manager (LISTEN_FDS) is not a listening TCP socket: {e}"))
        }
    }
}

/// Runs the hub until `ending` ends: clients are then closed with 4200 so that they reconnect. `ready` gets
/// the banner (addresses, credentials, admin token, snippets) once the hub listens: printed in a terminal,
/// logged by the service, which reports itself running then.
pub(crate) async fn serve(
    args: ServeArgs,
    inherited: Option<std::net::TcpListener>,
    ending: Ending,
    ready: &dyn Fn(&str),
) -> Result<(), String> {
    let (config, origin) = configure(&args)?;
    if let Some(limit) = server::raise_open_file_limit() {
        tracing::debug!(limit, "open-file limit");
        if (limit as usize) < config.limits.max_connections.min(65_536) {
            tracing::info!(
                "the open-file limit is {limit}: at most about that many clients can connect; raise the hard limit \
                 (ulimit -Hn, LimitNOFILE=) to serve more"
            );
        }
    }
    let tls = poussr::tls::Tls::from_config(&config.tls)?;
    let hub = adapter::hub(&config).map_err(|e| e.to_string())?;
    let frontend = Frontend::new(&config).with_tls(tls);
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = match inherited {
        Some(listener) => {
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(
                "serving the socket passed by the service manager ({local}); --bind and --port are not used"
            );
            listener.set_nonblocking(true).map_err(|e| format!("cannot use the passed socket: {e}"))?;
            tokio::net::TcpListener::from_std(listener).map_err(|e| format!("cannot use the passed socket: {e}"))?
        }
        None => server::bind(addr).await?,
    };
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    ready(&banner(local, &config, &origin, frontend.access().admin_token()));
    let shutdown = async move {
        let reason = ending.ended().await;
        tracing::info!("shutting down, {}: closing clients with 4200 so that they reconnect", reason.describe());
    };
    server::run(listener, hub.clone(), frontend, shutdown).await.map_err(|e| format!("the server stopped: {e}"))?;
    // The webhooks of the last moments (channel_vacated as clients were closed, say) still go out, briefly.
    let left = hub.flush_webhooks(WEBHOOK_FLUSH_TIMEOUT).await;
    if left > 0 {
        tracing::warn!("{left} webhook event(s) not sent: the webhook target did not answer before exit");
    }
    Ok(())
}

/// How long `poussr serve` waits at exit for webhooks still queued.
const WEBHOOK_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            bind: None,
            port: None,
            app_id: None,
            app_key: None,
            app_secret: None,
            config: None,
            data_dir: None,
            history_dir: None,
            no_history: false,
            history_sync: None,
            allow_anonymous_publish: false,
            admin_token: None,
            allow_remote_dashboard: false,
            allow_check_publish: false,
            no_mdns: false,
            adapter: None,
            redis_url: None,
            redis_prefix: None,
            tls: false,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_only: false,
            trusted_proxies: Vec::new(),
            trusted_proxy_header: None,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("poussr-main-{tag}-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rand_suffix() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }

    #[test]
    fn with_no_credentials_an_app_is_generated_once_and_kept() {
        let dir = temp_dir("gen");
        let a = ServeArgs { data_dir: Some(dir.clone()), ..args() };
        let (first, origin) = configure(&a).unwrap();
        assert!(origin.contains("generated"), "{origin}");
        let (second, origin) = configure(&a).unwrap();
        assert!(origin.starts_with("from "), "{origin}");
        assert_eq!(first.apps, second.apps);
        assert_eq!((first.bind, first.port), (IpAddr::from([0, 0, 0, 0]), 6001));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_history_is_kept_in_the_data_folder_unless_told_otherwise() {
        let dir = temp_dir("hist");
        let a = ServeArgs { data_dir: Some(dir.clone()), ..args() };
        assert_eq!(configure(&a).unwrap().0.history.dir, Some(dir.join("history")));
        let elsewhere = ServeArgs { history_dir: Some(dir.join("kept")), ..a };
        assert_eq!(configure(&elsewhere).unwrap().0.history.dir, Some(dir.join("kept")));
        let none = ServeArgs { data_dir: Some(dir.clone()), no_history: true, ..args() };
        assert_eq!(configure(&none).unwrap().0.history.dir, None);
        let normal =
            ServeArgs { data_dir: Some(dir.clone()), history_sync: Some(poussr::config::SyncPolicy::Normal), ..args() };
        assert_eq!(configure(&normal).unwrap().0.history.sync, poussr::config::SyncPolicy::Normal);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tls_makes_a_certificate_for_this_machine_once_and_uses_it() {
        let dir = temp_dir("tls");
        let a =
            ServeArgs { data_dir: Some(dir.clone()), tls: true, trusted_proxies: vec![" 10.0.0.0/8".into()], ..args() };
        let (config, _) = configure(&a).unwrap();
        let tls = dir.join("tls");
        assert_eq!(config.tls.cert, Some(tls.join("cert.pem")));
        assert_eq!(config.tls.key, Some(tls.join("key.pem")));
        assert_eq!(config.tls.ca, Some(tls.join("ca.pem")));
        assert!(config.tls.plain);
        assert_eq!(config.trusted_proxies, ["10.0.0.0/8"]);
        let first = std::fs::read(tls.join("cert.pem")).unwrap();
        let (config, _) = configure(&ServeArgs { tls_only: true, ..a }).unwrap();
        assert!(!config.tls.plain);
        assert_eq!(std::fs::read(tls.join("cert.pem")).unwrap(), first, "kept, not made again");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let dir = temp_dir("cfg");
        let file = dir.join("poussr.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1\"\nport = 7000\n[[apps]]\nid = \"1\"\nkey = \"k1\"\nsecret = \"s1\"\n[limits]\nmax_connections = 9\n",
        )
        .unwrap();
        let (config, origin) = configure(&ServeArgs { config: Some(file.clone()), ..args() }).unwrap();
        assert_eq!((config.port, config.apps[0].key.as_str(), config.limits.max_connections), (7000, "k1", 9));
        assert!(origin.contains("config file"));
        let (config, _) = configure(&ServeArgs {
            config: Some(file),
            port: Some(7100),
            app_id: Some("2".into()),
            app_key: Some("k2".into()),
            app_secret: Some("s2".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(config.port, 7100);
        assert_eq!(config.bind, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(config.apps.iter().map(|a| a.key.as_str()).collect::<Vec<_>>(), ["k2", "k1"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn partial_credentials_and_bad_files_are_clear_errors() {
        let err = configure(&ServeArgs { app_key: Some("k".into()), ..args() }).unwrap_err();
        assert!(err.contains("go together"), "{err}");
        let dir = temp_dir("bad");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "port = \"many\"\n").unwrap();
        let err = configure(&ServeArgs { config: Some(file), ..args() }).unwrap_err();
        assert!(err.contains("bad.toml") && err.contains("port"), "{err}");
        let err = configure(&ServeArgs { config: Some(dir.join("missing.toml")), ..args() }).unwrap_err();
        assert!(err.contains("missing.toml"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_banner_names_the_address_credentials_and_snippets() {
        let app = AppConfig::new("9", "kk", "ss");
        let config = Config { apps: vec![app], ..Config::default() };
        let text = banner("127.0.0.1:6001".parse().unwrap(), &config, "from test", "tok");
        assert!(text.starts_with("Poussr ") && text.contains("listening on http://127.0.0.1:6001"));
        for needle in ["app key:    kk", "app secret: ss", "new Pusher('kk'", "broadcaster: 'pusher'", "curl -X POST"] {
            assert!(text.contains(needle), "{needle}");
        }
    }
}
