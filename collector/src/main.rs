//! `ward-collector`: the inventory, contract and flag service. Only its command-line surface
//! exists so far; ingest, storage and contracts arrive with issue 4.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "ward-collector",
    version,
    about = "ward collector: device inventory, contract linkage and support flags (not yet implemented; see issue 4)"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("ward-collector is not implemented yet (issue 4); the agent works offline: `ward-agent read FILE`")
}
