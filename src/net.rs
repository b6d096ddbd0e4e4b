//! The machine's own addresses: what LAN clients should connect to, and which `Host` headers name this
//! machine (the admin API refuses the others, against DNS rebinding).

use std::net::IpAddr;

/// Every address of this machine's interfaces.
pub fn interface_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs().unwrap_or_default().into_iter().map(|i| i.ip()).collect()
}

/// The addresses LAN clients should use for a hub bound to `bind`: every non-loopback address when bound
/// to all interfaces (IPv4 only for `0.0.0.0`), else `bind` itself. Loopback stands in when the machine has
/// no other address.
pub fn client_addresses(bind: IpAddr) -> Vec<IpAddr> {
    if !bind.is_unspecified() {
        return vec![bind];
    }
    let mut out: Vec<IpAddr> = interface_addresses()
        .into_iter()
        .filter(|ip| !ip.is_loopback() && (bind.is_ipv6() || ip.is_ipv4()))
        // Link-local IPv6 addresses need a zone id that browsers do not accept in URLs.
        .filter(|ip| !is_link_local_v6(*ip))
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push(if bind.is_ipv4() { IpAddr::from([127, 0, 0, 1]) } else { IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]) });
    }
    out
}

/// Whether `ip` is a link-local IPv6 address (fe80::/10), which needs a zone id that URLs and certificates
/// cannot carry.
pub fn is_link_local_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// This machine's host name, if the OS tells it.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
}

/// This machine's name as one DNS label: lower case letters, digits and dashes (`Lab PC` → `lab-pc`).
pub fn machine_label() -> String {
    let name = host_name().unwrap_or_default();
    let first = name.split('.').next().unwrap_or("");
    let mut label: String =
        first.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    label.truncate(50);
    let label = label.trim_matches('-').to_owned();
    if label.is_empty() { "hub".to_owned() } else { label }
}

/// The name the hub announces for this machine over mDNS (see `discovery`): `poussr-<machine>.local`.
pub fn mdns_host_name() -> String {
    format!("poussr-{}.local", machine_label())
}

/// The host of a `Host` header value (or of an origin without its scheme), lower case, without the port or
/// the brackets of an IPv6 address: `[::1]:6001` → `::1`, `Name:6001` → `name`.
pub fn host_part(host_header: &str) -> String {
    let host = host_header.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_owned();
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h.to_owned(),
        _ => host,
    }
}

/// Whether a `Host` header value names this machine: `localhost`, a loopback address, one of the
/// interfaces' addresses, the host name (with or without `.local`), or the name announced over mDNS by
/// default (a name taken after a conflict is added by `discovery::is_own_host`).
pub fn is_own_host(host_header: &str) -> bool {
    let name = host_part(host_header);
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip.to_canonical().is_loopback() || interface_addresses().contains(&ip);
    }
    name == mdns_host_name() || host_name().is_some_and(|h| name == h || name == format!("{h}.local"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_hosts() {
        for h in ["localhost", "localhost:6001", "127.0.0.1:6001", "[::1]:6001", "127.0.0.1", "LOCALHOST:1"] {
            assert!(is_own_host(h), "{h}");
        }
        for h in ["evil.example", "evil.example:6001", "8.8.8.8:6001", "", "[2001:db8::1]:80"] {
            assert!(!is_own_host(h), "{h}");
        }
        for ip in interface_addresses() {
            let h = if ip.is_ipv6() { format!("[{ip}]:6001") } else { format!("{ip}:6001") };
            assert!(is_own_host(&h), "{h}");
        }
        if let Some(name) = host_name() {
            assert!(is_own_host(&format!("{name}:6001")));
        }
    }

    #[test]
    fn client_addresses_skip_loopback_unless_alone() {
        let all = client_addresses(IpAddr::from([0, 0, 0, 0]));
        assert!(!all.is_empty());
        assert!(all.iter().all(|ip| ip.is_ipv4()));
        assert!(all.len() == 1 || all.iter().all(|ip| !ip.is_loopback()));
        assert_eq!(client_addresses(IpAddr::from([10, 1, 2, 3])), vec![IpAddr::from([10, 1, 2, 3])]);
    }
}

/// Checks one entry of `allowed_origins`: `*`, or `scheme://host[:port]` where the host may start with
/// `*.` to admit its subdomains. Returns the entry in the form it is compared in (lower case, no trailing
/// slash), or why it is not an origin.
pub fn normalize_origin_rule(entry: &str) -> Result<String, String> {
    let rule = entry.trim().trim_end_matches('/').to_ascii_lowercase();
    if rule == "*" {
        return Ok(rule);
    }
    let Some((scheme, rest)) = rule.split_once("://") else {
        return Err(format!("allowed origin {entry:?} needs a scheme, as in http://intranet.lan:8080"));
    };
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return Err(format!("allowed origin {entry:?} has an invalid scheme"));
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    let valid = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !host.starts_with(['.', ':']);
    if !valid {
        return Err(format!("allowed origin {entry:?} is not scheme://host[:port] (no path, no query)"));
    }
    Ok(rule)
}

/// Whether the `Origin` header `origin` is admitted by `rules` (already normalized): an empty list admits
/// everyone; `*.lan.example` admits `lan.example`'s subdomains but not `lan.example` itself.
pub fn origin_allowed(rules: &[String], origin: &str) -> bool {
    if rules.is_empty() {
        return true;
    }
    let origin = origin.trim().to_ascii_lowercase();
    rules.iter().any(|rule| {
        if rule == "*" || *rule == origin {
            return true;
        }
        let Some((scheme, host)) = rule.split_once("://") else { return false };
        let Some(suffix) = host.strip_prefix("*.") else { return false };
        let Some(rest) = origin.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) else { return false };
        rest.strip_suffix(suffix)
            .and_then(|sub| sub.strip_suffix('.'))
            .is_some_and(|sub| !sub.is_empty() && sub.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)))
    })
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<String> {
        list.iter().map(|r| normalize_origin_rule(r).expect("valid rule")).collect()
    }

    #[test]
    fn an_empty_list_admits_every_origin() {
        assert!(origin_allowed(&[], "http://anything.example"));
    }

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let r = rules(&["http://Intranet.lan:8080/"]);
        assert!(origin_allowed(&r, "http://intranet.lan:8080"));
        assert!(!origin_allowed(&r, "http://intranet.lan"));
        assert!(!origin_allowed(&r, "https://intranet.lan:8080"));
        assert!(!origin_allowed(&r, "http://intranet.lan:8080.evil.example"));
        assert!(!origin_allowed(&r, "null"));
    }

    #[test]
    fn wildcards_admit_subdomains_only() {
        let r = rules(&["https://*.plant.example"]);
        assert!(origin_allowed(&r, "https://line1.plant.example"));
        assert!(origin_allowed(&r, "https://a.b.plant.example"));
        assert!(!origin_allowed(&r, "https://plant.example"));
        assert!(!origin_allowed(&r, "https://evilplant.example"));
        assert!(!origin_allowed(&r, "http://line1.plant.example"));
        assert!(origin_allowed(&rules(&["*"]), "null"));
    }

    #[test]
    fn bad_rules_are_explained() {
        assert!(normalize_origin_rule("intranet.lan").unwrap_err().contains("needs a scheme"));
        assert!(normalize_origin_rule("http://intranet.lan/path").unwrap_err().contains("no path"));
        assert!(normalize_origin_rule("http://").is_err());
    }
}
