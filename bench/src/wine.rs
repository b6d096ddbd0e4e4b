//! The Windows build under Wine against the Linux build, in the same run: the same scenario as the TLS
//! comparison (connect + subscribe rate, hub memory per connection, fan-out peak without loss), plain
//! `ws://`, history off, the two hubs alternately. Wine translates every Windows call the hub makes, so this
//! measures Poussr-under-Wine, not Windows: it says that the Windows build serves, not how fast Windows is.

use std::fmt::Write;
use std::path::Path;

use crate::scenarios::{Scale, Server};
use crate::tls::{Run, measure, median};

/// Runs of each build, alternating; the figures kept are the medians of the runs' ratios.
const RUNS: usize = 3;

async fn one_run(hub_bin: &Path, scale: &Scale) -> std::io::Result<Run> {
    measure(Server::hub_with(hub_bin, &["--no-history"]).await?, scale, None).await
}

/// The section, as Markdown: `windows_hub` (`poussr.exe`, run with `wine`) against `linux_hub`.
pub async fn section(linux_hub: &Path, windows_hub: &Path, scale: &Scale) -> std::io::Result<String> {
    let wine = std::process::Command::new("wine").arg("--version").output()?;
    let mut md = String::new();
    writeln!(
        md,
        "### The Windows build under Wine against the Linux build\n\n`poussr.exe` (x86_64-pc-windows-gnu, release) \
         run with {} and the Linux release build, alternately, {RUNS} times; {} subscribers over `ws://`, \
         `--no-history`, events published through the HTTP API, the fan-out scenario's rising rates, {} s each. \
         **Measured under Wine, not on Windows.**\n\n| run | build | connect + subscribe (conn/s) | connect errors \
         | hub KiB per connection | peak deliveries/s (no loss) | p99 ms at the peak | hub CPU % at the peak \
         |\n|---|---|---|---|---|---|---|---|",
        String::from_utf8_lossy(&wine.stdout).trim(),
        scale.fanout,
        scale.step_secs
    )
    .ok();
    let (mut fanout, mut connect, mut memory) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=RUNS {
        let mut pair = Vec::new();
        for (name, bin) in [("Windows (Wine)", windows_hub), ("Linux", linux_hub)] {
            let r = one_run(bin, scale).await?;
            writeln!(md, "{}", r.row(run, name)).ok();
            pair.push(r);
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        fanout.push(ratio(pair[0].peak, pair[1].peak));
        connect.push(ratio(pair[0].connect_rate, pair[1].connect_rate));
        memory.push(ratio(pair[0].kib_per_connection, pair[1].kib_per_connection));
    }
    let each = |xs: &[f64]| xs.iter().map(|r| format!("{r:.2}×")).collect::<Vec<_>>().join(", ");
    writeln!(
        md,
        "\n**Windows build under Wine / Linux build (medians of {RUNS} pairs): fan-out peak {:.2}× (runs {}); \
         connect + subscribe rate {:.2}× (runs {}); hub memory per connection {:.2}× (runs {}).**\n",
        median(fanout.clone()),
        each(&fanout),
        median(connect.clone()),
        each(&connect),
        median(memory.clone()),
        each(&memory)
    )
    .ok();
    Ok(md)
}
