//! The README's first command: `ward-collector demo` on the bundled sample site — the real agent
//! over MQTT to the embedded broker, the sample contracts and CMMS export — shows every flag kind,
//! and no patient canary (the sample capture carries 54) reaches its output.

mod common;

use std::process::Command;

use common::*;

#[test]
fn demo_shows_every_flag_kind_and_no_canary() {
    agent_bin();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(collector_bin())
        .args(["demo", "--no-serve", "--http", "127.0.0.1:0"])
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}\n{stdout}");
    for kind in ward_collector::flags::KINDS {
        assert!(
            stdout.contains(kind),
            "flag kind {kind} missing from the demo:\n{stdout}"
        );
    }
    for step in 1..=6 {
        assert!(stderr.contains(&format!("[demo {step}/6]")), "{stderr}");
    }
    assert!(!stdout.to_ascii_lowercase().contains("canary"));
    assert!(!stderr.to_ascii_lowercase().contains("canary"));
}
