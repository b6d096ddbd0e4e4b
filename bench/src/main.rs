//! `poussr-bench`: see the library documentation.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use poussr_bench::load::{Fleet, FleetConfig, PhaseConfig, Protocol, Target, Via};
use poussr_bench::{baseline, raise_open_file_limit, scenarios, soak};

#[derive(Parser)]
#[command(version, about = "Load generator and baseline for Poussr")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the baseline broadcast server.
    Baseline {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Port (0: any free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Run every scenario against a fresh hub and baseline; print Markdown.
    Run {
        /// The hub binary (a release build).
        #[arg(long, default_value = "target/release/poussr")]
        hub: PathBuf,
        /// Small sizes: checks that every scenario runs, in seconds.
        #[arg(long)]
        quick: bool,
    },
    /// One hub against two hubs sharing their traffic through a local redis-server; prints Markdown.
    Cluster {
        /// The hub binary (a release build).
        #[arg(long, default_value = "target/release/poussr")]
        hub: PathBuf,
        /// Small sizes: checks that the scenario runs, in seconds.
        #[arg(long)]
        quick: bool,
    },
    /// The fan-out scenario alone (the hub and both baselines); prints Markdown (also part of `run`).
    Fanout {
        /// The hub binary (a release build).
        #[arg(long, default_value = "target/release/poussr")]
        hub: PathBuf,
        /// Small sizes: checks that the scenario runs, in seconds.
        #[arg(long)]
        quick: bool,
    },
    /// Presence joins timed on an idle hub and during a fan-out on another channel; prints Markdown (also
    /// part of `run`).
    Joins {
        /// The hub binary (a release build).
        #[arg(long, default_value = "target/release/poussr")]
        hub: PathBuf,
        /// Small sizes: checks that the scenario runs, in seconds.
        #[arg(long)]
        quick: bool,
    },
    /// The cost of keeping history (fan-out and publishing, on and off), disk bytes per event and the time to
    /// recover 1,000 missed events; prints Markdown (also part of `run`).
    History {
        /// The hub binary (a release build).
        #[arg(long, default_value = "target/release/poussr")]
        hub: PathBuf,
        /// Small sizes: checks that the scenario runs, in seconds.
        #[arg(long)]
        quick: bool,
    },
    /// The same hub's subscribers over wss:// against ws://: connect rate, memory per connection, fan-out;
    /// prints Markdown (also part of `run`).
    Tls {
        /// The hub binary (a release build).
        #[arg(long, default_value = "target/release/poussr")]
        hub: PathBuf,
        /// Small sizes: checks that the scenario runs, in seconds.
        #[arg(long)]
        quick: bool,
    },
    /// The Windows build (`poussr.exe`, run with Wine) against the Linux build: connect rate, memory per
    /// connection, fan-out; prints Markdown (not part of `run`: it needs `make windows` and Wine).
    Wine {
        /// The Linux hub binary (a release build).
        #[arg(long, default_value = "target/release/poussr")]
        hub: PathBuf,
        /// The Windows hub binary (a release build from `make windows`).
        #[arg(long, default_value = "target/x86_64-pc-windows-gnu/release/poussr.exe")]
        windows_hub: PathBuf,
        /// Subscribers of the fan-out. Wine 8.0 carries every socket's asynchronous I/O through its one
        /// wineserver process: at 10,000 connections (the other scenarios' size) it used a whole core and
        /// connections were dropped, so this scenario runs smaller, at rates up to 100 events/s.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Small sizes: checks that the scenario runs, in seconds.
        #[arg(long)]
        quick: bool,
    },
    /// One load run against a running hub or baseline; prints a JSON report.
    Load(LoadArgs),
    /// Connection churn against a fresh hub, its memory and open files sampled; prints Markdown and fails
    /// when either grows by 5 % or more after the warm-up.
    Soak {
        /// The hub binary (a release build).
        #[arg(long, default_value = "target/release/poussr")]
        hub: PathBuf,
        /// Length of the run, in minutes.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Warm-up, in minutes (not judged).
        #[arg(long, default_value_t = 5)]
        warmup_minutes: u64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 60)]
        sample_secs: u64,
        /// Clients connected at any time.
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Clients replaced each second.
        #[arg(long, default_value_t = 50)]
        churn: usize,
        /// Events published each second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Pusher,
    V1,
}

#[derive(Clone, Copy, ValueEnum)]
enum ViaArg {
    Api,
    V1,
}

#[derive(clap::Args)]
struct LoadArgs {
    /// The hub's (or baseline's) address.
    #[arg(long, default_value = "127.0.0.1:6001")]
    addr: SocketAddr,
    /// Target the baseline instead of a hub.
    #[arg(long)]
    baseline: bool,
    /// With `--baseline`: publishers wait for the baseline's answer to each event, as SDKs wait for the
    /// HTTP API's.
    #[arg(long)]
    acked: bool,
    /// App id, key and secret of the hub.
    #[arg(long, default_value = "")]
    app_id: String,
    /// App key.
    #[arg(long, default_value = "")]
    app_key: String,
    /// App secret.
    #[arg(long, default_value = "")]
    app_secret: String,
    /// Subscribers' protocol.
    #[arg(long, value_enum, default_value = "pusher")]
    protocol: ProtocolArg,
    /// Connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Channels.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Channels per connection.
    #[arg(long, default_value_t = 1)]
    channels_per_connection: usize,
    /// Publishers.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Events per second, over all publishers.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Publish through the Pusher HTTP API or Poussr v1 REST.
    #[arg(long, value_enum, default_value = "api")]
    via: ViaArg,
    /// Event data size in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Loopback source addresses (127.0.0.1 ... 127.0.0.N).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Subscribers that stop reading.
    #[arg(long, default_value_t = 0)]
    stalled: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    raise_open_file_limit();
    poussr_bench::install_crypto_provider();
    match Cli::parse().command {
        Cmd::Baseline { bind, port } => {
            let listener = tokio::net::TcpListener::bind((bind, port)).await?;
            println!("poussr-bench baseline listening on {}", listener.local_addr()?);
            baseline::serve(listener).await?;
        }
        Cmd::Run { hub, quick } => {
            let scale = if quick { scenarios::Scale::quick() } else { scenarios::Scale::full() };
            print!("{}", scenarios::run(&hub, &scale).await?);
        }
        Cmd::Soak { hub, minutes, warmup_minutes, sample_secs, connections, churn, rate } => {
            let config = soak::SoakConfig {
                duration: Duration::from_secs(minutes * 60),
                warmup: Duration::from_secs(warmup_minutes * 60),
                sample_every: Duration::from_secs(sample_secs.max(1)),
                connections,
                churn_per_sec: churn,
                publish_per_sec: rate,
                ..soak::SoakConfig::full()
            };
            let (markdown, passed) = soak::run(&hub, &config).await?;
            print!("{markdown}");
            if !passed {
                return Err("the soak failed: see the verdict above".into());
            }
        }
        Cmd::Cluster { hub, quick } => {
            let scale = if quick { scenarios::Scale::quick() } else { scenarios::Scale::full() };
            print!("{}", scenarios::cluster(&hub, &scale).await?);
        }
        Cmd::Fanout { hub, quick } => {
            let scale = if quick { scenarios::Scale::quick() } else { scenarios::Scale::full() };
            print!("{}", scenarios::fanout_section(&hub, &scale).await?);
        }
        Cmd::Joins { hub, quick } => {
            let scale = if quick { scenarios::Scale::quick() } else { scenarios::Scale::full() };
            print!("{}", scenarios::joins_section(&hub, &scale).await?);
        }
        Cmd::History { hub, quick } => {
            let scale = if quick { scenarios::Scale::quick() } else { scenarios::Scale::full() };
            print!("{}", poussr_bench::history::section(&hub, &scale).await?);
        }
        Cmd::Tls { hub, quick } => {
            let scale = if quick { scenarios::Scale::quick() } else { scenarios::Scale::full() };
            print!("{}", poussr_bench::tls::section(&hub, &scale).await?);
        }
        Cmd::Wine { hub, windows_hub, subscribers, quick } => {
            let scale = if quick { scenarios::Scale::quick() } else { scenarios::Scale::full() };
            let scale = match quick {
                true => scale,
                false => scenarios::Scale { fanout: subscribers, fanout_rates: vec![10.0, 25.0, 50.0, 100.0], ..scale },
            };
            print!("{}", poussr_bench::wine::section(&hub, &windows_hub, &scale).await?);
        }
        Cmd::Load(a) => {
            let target = if a.baseline {
                Target::Baseline { addr: a.addr, acked: a.acked }
            } else {
                Target::Hub { addr: a.addr, app_id: a.app_id, key: a.app_key, secret: a.app_secret }
            };
            let protocol = match a.protocol {
                ProtocolArg::Pusher => Protocol::Pusher,
                ProtocolArg::V1 => Protocol::V1,
            };
            let mut fleet = Fleet::connect(FleetConfig {
                target,
                protocol,
                connections: a.connections,
                channels: a.channels,
                channels_per_connection: a.channels_per_connection,
                sources: a.sources,
                stalled: a.stalled,
                connect_concurrency: 128,
                channel_prefix: "",
                tls: None,
            })
            .await;
            let connect = fleet.connect.clone();
            let phase = PhaseConfig {
                publishers: a.publishers,
                rate: a.rate,
                via: match a.via {
                    ViaArg::Api => Via::Api,
                    ViaArg::V1 => Via::V1Rest,
                },
                payload: a.payload,
                duration: Duration::from_secs(a.duration),
            };
            let (_, report) = fleet.publish(&phase).await;
            let (reports, stalled) = fleet.close(vec![report]).await;
            let out = serde_json::json!({ "connect": connect, "phase": reports[0], "stalled_endings": stalled });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}
