//! The Windows build under Wine against the Linux build, in the same run: the same scenario as the TLS
//! comparison (connect + subscribe rate, hub memory per connection, fan-out peak without loss), plain
//! `ws://`, history off, the two hubs alternately. Wine translates every Windows call the hub makes, so this
//! measures Poussr-under-Wine, not Windows: it says that the Windows build serves, not how fast Windows is.

use std::fmt::Write;
use std::path::Path;

use crate::scenarios::{Scale, Server};
use crate::tls::{Ratios, Run, measure};

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
         `--no-history`, events published through the HTTP API at rising rates ({}), {} s each. **Measured under \
         Wine, not on Windows**, and smaller than the other scenarios: Wine 8.0 carries every socket's I/O \
         through its one wineserver process, which used a whole core and dropped connections at 10,000.\n\n| run | build | connect + subscribe (conn/s) | connect errors \
         | hub KiB per connection | peak deliveries/s (no loss) | p99 ms at the peak | hub CPU % at the peak \
         |\n|---|---|---|---|---|---|---|---|",
        String::from_utf8_lossy(&wine.stdout).trim(),
        scale.fanout,
        scale.fanout_rates.iter().map(|r| format!("{r}/s")).collect::<Vec<_>>().join(", "),
        scale.step_secs
    )
    .ok();
    let mut ratios = Ratios::default();
    for run in 1..=RUNS {
        let mut pair = Vec::new();
        for (name, bin) in [("Windows (Wine)", windows_hub), ("Linux", linux_hub)] {
            let r = one_run(bin, scale).await?;
            writeln!(md, "{}", r.row(run, name)).ok();
            pair.push(r);
        }
        ratios.push(&pair[0], &pair[1]);
    }
    writeln!(md, "\n**Windows build under Wine / Linux build (medians of {RUNS} pairs): {}.**\n", ratios.summary())
        .ok();
    Ok(md)
}
