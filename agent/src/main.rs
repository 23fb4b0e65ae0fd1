//! `ward-agent`: passive device fingerprinting. This first cut reads capture files and prints
//! evidence as JSON lines; live capture and MQTT streaming follow (issue 3).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ward_protocols::dissect::DissectorConfig;

#[derive(Debug, Parser)]
#[command(
    name = "ward-agent",
    version,
    about = "Passive medical-device fingerprinting agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read pcap/pcapng files ("-" for stdin) and print every evidence record as a JSON line.
    Read {
        /// Capture files; "-" reads standard input (e.g. `tcpdump -w - | ward-agent read -`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Read { files } => {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            for path in files {
                let result = if path.as_os_str() == "-" {
                    ward_agent::pipeline::evidence_from_capture(
                        io::stdin(),
                        DissectorConfig::default(),
                    )
                } else {
                    let f = File::open(&path)
                        .with_context(|| format!("opening capture {}", path.display()))?;
                    ward_agent::pipeline::evidence_from_capture(f, DissectorConfig::default())
                }
                .with_context(|| format!("reading capture {}", path.display()))?;
                for e in &result.evidence {
                    serde_json::to_writer(&mut out, e)?;
                    out.write_all(b"\n")?;
                }
                eprintln!(
                    "{}: {} packets, {} evidence, {} DICOM flows, {} HL7 flows, {} DHCP messages",
                    path.display(),
                    result.read.packets,
                    result.evidence.len(),
                    result.dissect.dicom_flows,
                    result.dissect.hl7_flows,
                    result.dissect.dhcp_messages
                );
            }
            out.flush()?;
        }
    }
    Ok(())
}
