//! What TLS costs: the same hub (its certificate configured, plain and TLS on one port) with its
//! subscribers on `wss://` against `ws://`, alternately: the connect + subscribe rate, the hub's memory per
//! connection, and the fan-out's peak deliveries/s without loss.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::load::{Fleet, FleetConfig, PhaseConfig};
use crate::scenarios::{Scale, Server, fleet_config, health, ms, phase};

/// Runs of each scheme, alternating; the figures kept are the medians of the runs' ratios.
const RUNS: usize = 3;

/// Publishers in flight in the fan-out steps (as in the history scenario).
const FANOUT_PUBLISHERS: usize = 64;

/// TLS settings that trust only the CA in the PEM file `ca` (ring, TLS 1.2 and 1.3).
pub fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        roots.add(der.map_err(|e| format!("{}: {e}", ca.display()))?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A folder with a CA and a certificate for 127.0.0.1 made by the hub's own `poussr cert create`; removed
/// when dropped.
struct Certificates(PathBuf);

impl Certificates {
    fn make(hub_bin: &Path) -> std::io::Result<Certificates> {
        let dir = std::env::temp_dir().join(format!("poussr-bench-tls-{}", std::process::id()));
        let status = std::process::Command::new(hub_bin)
            .args(["cert", "create", "--name", "127.0.0.1", "--dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other("poussr cert create failed"));
        }
        Ok(Certificates(dir))
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// What one run of one scheme measured.
pub(crate) struct Run {
    pub(crate) connect_rate: f64,
    pub(crate) connect_errors: usize,
    pub(crate) kib_per_connection: f64,
    pub(crate) peak: f64,
    pub(crate) peak_p99_us: u64,
    pub(crate) hub_cpu_at_peak: f64,
}

/// The ratios of each run's pair of builds or schemes (the first over the second), and their medians.
#[derive(Default)]
pub(crate) struct Ratios {
    fanout: Vec<f64>,
    connect: Vec<f64>,
    memory: Vec<f64>,
}

impl Ratios {
    /// Adds one pair: `a` over `b`.
    pub(crate) fn push(&mut self, a: &Run, b: &Run) {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        self.fanout.push(ratio(a.peak, b.peak));
        self.connect.push(ratio(a.connect_rate, b.connect_rate));
        self.memory.push(ratio(a.kib_per_connection, b.kib_per_connection));
    }

    /// The medians, each with every run's ratio.
    pub(crate) fn summary(&self) -> String {
        let each = |xs: &[f64]| xs.iter().map(|r| format!("{r:.2}×")).collect::<Vec<_>>().join(", ");
        format!(
            "fan-out peak {:.2}× (runs {}); connect + subscribe rate {:.2}× (runs {}); hub memory per connection \
             {:.2}× (runs {})",
            median(self.fanout.clone()),
            each(&self.fanout),
            median(self.connect.clone()),
            each(&self.connect),
            median(self.memory.clone()),
            each(&self.memory)
        )
    }
}

impl Run {
    /// This run as a row of the section's table: `| run | name | figures… |`.
    pub(crate) fn row(&self, run: usize, name: &str) -> String {
        format!(
            "| {run} | {name} | {:.0} | {} | {:.1} | {:.0} | {} | {:.0} |",
            self.connect_rate,
            self.connect_errors,
            self.kib_per_connection,
            self.peak,
            ms(self.peak_p99_us),
            self.hub_cpu_at_peak
        )
    }
}

async fn one_run(
    hub_bin: &Path,
    certs: &Certificates,
    scale: &Scale,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> std::io::Result<Run> {
    let (cert, key) = (certs.file("cert.pem"), certs.file("key.pem"));
    let server = Server::hub_with(hub_bin, &["--tls-cert", &cert, "--tls-key", &key, "--no-history"]).await?;
    measure(server, scale, tls).await
}

/// Connects the fan-out's subscribers to `server` (over TLS with `tls`), samples its memory before and after,
/// runs the fan-out's rising rates and keeps the best one without loss; stops the server.
pub(crate) async fn measure(
    server: Server,
    scale: &Scale,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> std::io::Result<Run> {
    // The idle figure once the hub has answered a request (its HTTP side is set up).
    health(&server.target).await;
    let idle = server.sample();
    let mut f = Fleet::connect(FleetConfig { tls, ..fleet_config(&server.target, scale.fanout) }).await;
    // The loaded figure once the hub counts every connection the fleet made: every session is set up.
    let connected = f.connect.connected.max(1);
    for _ in 0..100 {
        let counted = health(&server.target).await.and_then(|h| h["connections"].as_u64()).unwrap_or(0);
        if counted >= f.connect.connected as u64 {
            break;
        }
    }
    let loaded = server.sample();
    let kib_per_connection = loaded.rss_kib.saturating_sub(idle.rss_kib) as f64 / connected as f64;
    let (mut reports, mut cpus) = (Vec::new(), Vec::new());
    for rate in &scale.fanout_rates {
        let before = server.sample();
        let step = PhaseConfig { publishers: FANOUT_PUBLISHERS, ..phase(*rate, 100, scale.step_secs) };
        reports.push(f.publish(&step).await.1);
        cpus.push(crate::procfs::cpu_percent(&before, &server.sample()));
    }
    let (connect_rate, connect_errors) = (f.connect.rate, f.connect.errors);
    // The latencies are gathered from the subscribers when the fleet closes.
    let (reports, _) = f.close(reports).await;
    server.stop().await;
    let mut best = (0.0f64, 0u64, 0.0f64);
    for (r, cpu) in reports.iter().zip(cpus) {
        if r.lost == 0 && r.deliveries_per_sec > best.0 {
            best = (r.deliveries_per_sec, r.latency.p99, cpu);
        }
    }
    Ok(Run {
        connect_rate,
        connect_errors,
        kib_per_connection,
        peak: best.0,
        peak_p99_us: best.1,
        hub_cpu_at_peak: best.2,
    })
}

/// The section, as Markdown.
pub async fn section(hub_bin: &Path, scale: &Scale) -> std::io::Result<String> {
    let certs = Certificates::make(hub_bin)?;
    let tls = client_config(Path::new(&certs.file("ca.pem"))).map_err(std::io::Error::other)?;
    let mut md = String::new();
    writeln!(
        md,
        "### TLS: wss:// against ws:// on the same hub\n\nOne hub binary with a certificate configured (ECDSA P-256 \
         from `poussr cert create`; plain and TLS on one port; `--no-history`), its {} subscribers connecting \
         over `wss://` or `ws://`, alternately, {RUNS} times. Events are published through the plain HTTP API \
         ({FANOUT_PUBLISHERS} publishers), the fan-out scenario's rising rates, {} s each. The subscribers' TLS \
         (rustls, TLS 1.3) runs in the load generator on the same 2 cores.\n\n| run | scheme | connect + \
         subscribe (conn/s) | connect errors | hub KiB per connection | peak deliveries/s (no loss) | p99 ms at the \
         peak | hub CPU % at the peak |\n|---|---|---|---|---|---|---|---|",
        scale.fanout, scale.step_secs
    )
    .ok();
    let mut ratios = Ratios::default();
    for run in 1..=RUNS {
        let mut pair = Vec::new();
        for secure in [true, false] {
            let r = one_run(hub_bin, &certs, scale, secure.then(|| tls.clone())).await?;
            writeln!(md, "{}", r.row(run, if secure { "wss" } else { "ws" })).ok();
            pair.push(r);
        }
        ratios.push(&pair[0], &pair[1]);
    }
    writeln!(md, "\n**wss / ws (medians of {RUNS} pairs): {}.**\n", ratios.summary()).ok();
    Ok(md)
}
