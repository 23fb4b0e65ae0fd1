//! The harness both crates' integration tests share (`agent/tests`, `collector/tests`): what
//! starts real programs and waits for them, as opposed to what a crate's tests check, which
//! stays in that crate's `tests/common/mod.rs`.
//!
//! - [`ports`]: TCP ports leased across every test process, so parallel tests never collide;
//! - [`wait`]: waits on state (a port, a log line, a value), never on guessed sleeps;
//! - [`process`]: child processes with their output captured in a log file, killed on drop;
//! - [`mosquitto`]: a real Mosquitto per test, configured in its temporary directory;
//! - [`nats`]: a real 3-node NATS cluster (JetStream, MQTT listeners) per test;
//! - [`pki`]: a throwaway CA with server and client certificates (the `openssl` command);
//! - [`tools`]: the external programs, found or a failure that says how to install them;
//! - temporary directories ([`temp_dir`]), the repository's paths ([`fixtures`],
//!   [`public_captures`]) and the log check every test applies to what a process printed
//!   ([`assert_no_byte_dump`]).
//!
//! Patient canaries are not here: `ward-canary` is the one scanner for those.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

pub mod mosquitto;
pub mod nats;
pub mod pki;
pub mod ports;
pub mod process;
pub mod tools;
pub mod wait;

pub use mosquitto::{write_passwd, Mosquitto};
pub use nats::NatsCluster;
pub use pki::{make_pki, openssl};
pub use ports::lease_port;
pub use process::{address_in_use, Proc};
pub use tools::find_binary;
pub use wait::{port_open, wait_for, wait_until};

/// A fresh temporary directory (under `$TMPDIR`, named `ward-test-…`), removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ward-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"))
}

/// The workspace root (the checkout).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/fixtures/`: the committed captures and their manifest.
pub fn fixtures() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

/// `../shared/captures/public/` beside the checkout: third-party captures, read in place (never
/// copied into the repository).
pub fn public_captures() -> PathBuf {
    workspace_root().join("../shared/captures/public")
}

/// Panics if `text` holds a run of 8 or more numbers of up to 3 digits separated by commas or
/// white space (`[80, 73, 68, 124, …]`): a byte dump of anything. A dump of patient bytes that
/// are not canaries is a leak the canaries alone cannot show, so every log is checked for it.
pub fn assert_no_byte_dump(what: &str, text: &str) {
    let mut run = 0;
    for token in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if token.is_empty() {
            continue;
        }
        let t = token.trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')');
        if !t.is_empty() && t.len() <= 3 && t.bytes().all(|c| c.is_ascii_digit()) {
            run += 1;
            assert!(
                run < 8,
                "a byte-list dump in {what} (a run of {run} small numbers)"
            );
        } else {
            run = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_point_into_the_checkout() {
        assert!(fixtures().join("manifest.json").is_file());
        assert!(workspace_root().join("Cargo.toml").is_file());
    }

    #[test]
    fn temp_dirs_are_fresh_and_removed() {
        let d = temp_dir();
        let path = d.path().to_path_buf();
        assert!(path.is_dir() && std::fs::read_dir(&path).unwrap().next().is_none());
        drop(d);
        assert!(!path.exists());
    }

    #[test]
    fn short_number_runs_and_prose_pass() {
        assert_no_byte_dump("a log", "port 1883, 2 devices, seq 1 2 3 4 5 6 7 done 8");
    }

    #[test]
    #[should_panic(expected = "a byte-list dump in a log (a run of 8 small numbers)")]
    fn a_byte_list_fails() {
        assert_no_byte_dump("a log", "payload: [80, 73, 68, 124, 49, 124, 124, 67]");
    }
}
