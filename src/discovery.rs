//! The hub on the LAN by name: it announces itself over mDNS / DNS-SD (RFC 6762, 6763) as a
//! `_poussr._tcp` service, with a host name of its own (`poussr-<machine>.local`), on the interfaces its
//! listener serves, and withdraws (a goodbye with TTL 0) when it stops or moves.
//!
//! One responder per process ([`mdns_sd::ServiceDaemon`], its own thread, no tokio), shared by whatever
//! serves. Each listener is announced when the server is made for it, under the same name: a newer
//! announcement replaces an older one, and withdrawing the older one afterwards is a no-op ([`Announcement`]
//! carries a generation), so whatever order the desktop starts and stops listeners in when it moves the hub,
//! the last one stays announced. It knows nothing of the hub: the server gives it an address and the TXT
//! values.
//!
//! Nothing is announced when the listener is on loopback: no other machine could use it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceInfo};

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_poussr._tcp.local.";

/// Version of the TXT record's keys, as DNS-SD advises (`txtvers`).
const TXT_VERSION: &str = "1";

/// How long stopping waits for the goodbye to be sent.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(1);

/// What the LAN sees of the announced hub.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// The host name devices can type, without the trailing dot: `poussr-lab-pc.local`.
    pub host: String,
    /// The service instance a browser lists: `Poussr on lab-pc`.
    pub instance: String,
    /// The port.
    pub port: u16,
}

/// What the TXT record says.
#[derive(Debug, Clone)]
pub struct Txt {
    /// The default app's key (public: every client holds it).
    pub key: String,
    /// Whether the port serves TLS too.
    pub tls: bool,
}

/// One announcement; give it back to [`withdraw`] when the listener stops.
#[derive(Debug)]
pub struct Announcement {
    generation: u64,
}

struct Responder {
    daemon: ServiceDaemon,
    /// The current announcement: its generation and full service name.
    current: Option<(u64, String)>,
    generation: u64,
    published: Option<Published>,
}

static RESPONDER: Mutex<Option<Responder>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Responder>> {
    RESPONDER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The host name announced for this machine, with the trailing dot.
fn host_name() -> String {
    format!("{}.", crate::net::mdns_host_name())
}

/// Whether a `Host` header value names this machine ([`crate::net::is_own_host`]) or the name announced now,
/// which another device may have made the responder change (`poussr-<machine>-2.local`).
pub fn is_own_host(host_header: &str) -> bool {
    crate::net::is_own_host(host_header)
        || published().is_some_and(|p| p.host == crate::net::host_part(host_header).trim_end_matches('.'))
}

/// What is announced now, if anything.
pub fn published() -> Option<Published> {
    lock().as_ref().and_then(|r| r.published.clone())
}

/// Announces a listener at `listen` (its actual address: `0.0.0.0` or `::` for every interface). Returns
/// `Ok(None)` for a loopback listener, which is never announced.
pub fn announce(listen: SocketAddr, txt: &Txt) -> Result<Option<Announcement>, String> {
    let ip = listen.ip().to_canonical();
    if ip.is_loopback() {
        return Ok(None);
    }
    let mut guard = lock();
    if guard.is_none() {
        let daemon = ServiceDaemon::new().map_err(|e| format!("cannot start the mDNS responder: {e}"))?;
        watch(&daemon)?;
        *guard = Some(Responder { daemon, current: None, generation: 0, published: None });
    }
    let Some(responder) = guard.as_mut() else { return Err("the mDNS responder is gone".into()) };
    select_interfaces(&responder.daemon, ip)?;
    let instance = format!("Poussr on {}", crate::net::machine_label());
    let properties = [
        ("txtvers", TXT_VERSION.to_owned()),
        ("key", txt.key.clone()),
        // The Pusher Channels protocol version its clients speak, and Poussr v1's endpoint.
        ("protocol", "7".to_owned()),
        ("v1", "/v1/ws".to_owned()),
        ("tls", if txt.tls { "1" } else { "0" }.to_owned()),
        ("check", "/check".to_owned()),
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
    ];
    let addresses: Vec<IpAddr> = if ip.is_unspecified() { Vec::new() } else { vec![ip] };
    let info = ServiceInfo::new(SERVICE_TYPE, &instance, &host_name(), &addresses[..], listen.port(), &properties[..])
        .map_err(|e| format!("cannot describe the mDNS service: {e}"))?;
    let info = if ip.is_unspecified() { info.enable_addr_auto() } else { info };
    let fullname = info.get_fullname().to_owned();
    responder.daemon.register(info).map_err(|e| format!("cannot announce the hub over mDNS: {e}"))?;
    responder.generation += 1;
    responder.current = Some((responder.generation, fullname));
    responder.published =
        Some(Published { host: host_name().trim_end_matches('.').to_owned(), instance, port: listen.port() });
    tracing::info!("announced on the LAN over mDNS as {} ({})", host_name().trim_end_matches('.'), SERVICE_TYPE);
    Ok(Some(Announcement { generation: responder.generation }))
}

/// The interfaces the listener at `ip` serves: every IPv4 one but loopback for `0.0.0.0`, every one but
/// loopback for `::`, else the one holding `ip`.
fn select_interfaces(daemon: &ServiceDaemon, ip: IpAddr) -> Result<(), String> {
    let fail = |e: mdns_sd::Error| format!("cannot choose the interfaces to announce on: {e}");
    daemon.disable_interface(IfKind::All).map_err(fail)?;
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => daemon.enable_interface(IfKind::IPv4).map_err(fail)?,
        IpAddr::V6(v6) if v6.is_unspecified() => daemon.enable_interface(IfKind::All).map_err(fail)?,
        ip => daemon.enable_interface(IfKind::Addr(ip)).map_err(fail)?,
    }
    daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6]).map_err(fail)
}

/// Logs what the responder reports: a name taken by another machine (it then picks another, which the
/// Overview shows), and errors such as an interface where multicast is not allowed.
fn watch(daemon: &ServiceDaemon) -> Result<(), String> {
    let events = daemon.monitor().map_err(|e| format!("cannot watch the mDNS responder: {e}"))?;
    std::thread::Builder::new()
        .name("poussr-mdns-events".into())
        .spawn(move || {
            while let Ok(event) = events.recv() {
                match event {
                    DaemonEvent::NameChange(change) => {
                        tracing::warn!(
                            "another device on the LAN uses the mDNS name {}: announced as {} instead (on {})",
                            change.original,
                            change.new_name,
                            change.intf_name
                        );
                        if change.new_name.ends_with(".local.")
                            && !change.new_name.contains("._")
                            && let Some(published) = lock().as_mut().and_then(|r| r.published.as_mut())
                        {
                            published.host = change.new_name.trim_end_matches('.').to_owned();
                        }
                    }
                    DaemonEvent::Error(e) => tracing::warn!("mDNS: {e}"),
                    other => tracing::debug!("mDNS: {other:?}"),
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the mDNS event thread: {e}"))
}

/// Withdraws `announcement` (sends its goodbye, waiting at most a second), unless a newer one replaced it.
pub async fn withdraw(announcement: Announcement) {
    let receiver = {
        let mut guard = lock();
        let Some(responder) = guard.as_mut() else { return };
        match responder.current.take() {
            Some((generation, fullname)) if generation == announcement.generation => {
                responder.published = None;
                responder.daemon.unregister(&fullname)
            }
            newer => {
                responder.current = newer;
                return;
            }
        }
    };
    match receiver {
        Ok(status) => {
            let waited = tokio::task::spawn_blocking(move || status.recv_timeout(WITHDRAW_TIMEOUT)).await;
            match waited {
                Ok(Ok(_)) => tracing::info!("withdrew the mDNS announcement"),
                _ => tracing::warn!("the mDNS goodbye was not confirmed within {WITHDRAW_TIMEOUT:?}"),
            }
        }
        Err(e) => tracing::warn!("cannot withdraw the mDNS announcement: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_label_is_one_dns_label() {
        let label = crate::net::machine_label();
        assert!(!label.is_empty() && label.len() <= 50);
        assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{label}");
        assert!(!label.starts_with('-') && !label.ends_with('-'));
        assert_eq!(host_name(), format!("poussr-{label}.local."));
        // The admin API's Host check admits the announced name (with a port, as browsers send it).
        assert!(crate::net::is_own_host(&format!("poussr-{label}.local:6001")));
        assert!(!crate::net::is_own_host("poussr-elsewhere-else.local:6001") || label == "elsewhere-else");
    }

    #[test]
    fn a_loopback_listener_is_never_announced() {
        let txt = Txt { key: "k".into(), tls: false };
        assert!(announce("127.0.0.1:6001".parse().unwrap(), &txt).unwrap().is_none());
        assert!(announce("[::1]:6001".parse().unwrap(), &txt).unwrap().is_none());
        assert!(announce("[::ffff:127.0.0.1]:6001".parse().unwrap(), &txt).unwrap().is_none());
        assert!(lock().is_none(), "no responder was started");
    }
}
