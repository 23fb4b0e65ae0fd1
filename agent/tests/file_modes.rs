//! Files the agent writes observations into are private whatever the umask (issue 12,
//! finding 14): spool directory 0700, spool files 0600, JSON-lines output 0600; a directory
//! or output file left too open by an earlier run is tightened.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn capture(dir: &Path) -> std::path::PathBuf {
    let mut cap = pcap_header();
    for i in 0..20u8 {
        cap.extend(pcap_record(
            1_000_000 + u64::from(i),
            &arp_frame([0x02, 0x10, 0, 0, 0, i], [10, 3, 0, i]),
        ));
    }
    let file = dir.join("devices.pcap");
    std::fs::write(&file, &cap).unwrap();
    file
}

/// Runs the agent under `umask 000`, as a service with a careless unit file might.
fn agent_with_umask_000(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(AGENT)
        .args(args)
        .env_remove("WARD_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn spool_is_private_under_a_permissive_umask() {
    let dir = tempfile::tempdir().unwrap();
    let file = capture(dir.path());
    let spool = dir.path().join("var/lib/ward-agent/spool");
    // A broker that is not there: every message stays in the spool.
    let port = lease_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    agent_with_umask_000(&[
        "read".as_ref(),
        file.as_os_str(),
        "--output".as_ref(),
        url.as_ref(),
        "--spool-dir".as_ref(),
        spool.as_os_str(),
    ]);
    assert_eq!(mode(&spool), 0o700, "spool directory");
    let mut files = 0;
    for e in std::fs::read_dir(&spool).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(files >= 2, "expected spooled messages and the id lease");
}

#[test]
fn existing_spool_directory_that_is_too_open_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let file = capture(dir.path());
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o777)).unwrap();
    // A message file from an earlier version, world-readable.
    let old = spool.join("next-id");
    std::fs::write(&old, "1\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o666)).unwrap();
    let port = lease_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    agent_with_umask_000(&[
        "read".as_ref(),
        file.as_os_str(),
        "--output".as_ref(),
        url.as_ref(),
        "--spool-dir".as_ref(),
        spool.as_os_str(),
    ]);
    assert_eq!(mode(&spool), 0o700, "spool directory");
    for e in std::fs::read_dir(&spool).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

#[test]
fn jsonl_output_is_private_under_a_permissive_umask() {
    let dir = tempfile::tempdir().unwrap();
    let file = capture(dir.path());
    let new = dir.path().join("new.jsonl");
    let existing = dir.path().join("existing.jsonl");
    std::fs::write(&existing, "").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o666)).unwrap();
    for out in [&new, &existing] {
        let target = format!("jsonl:{}", out.display());
        agent_with_umask_000(&[
            "read".as_ref(),
            file.as_os_str(),
            "--output".as_ref(),
            target.as_ref(),
            "--spool-dir".as_ref(),
            dir.path().join("spool").as_os_str(),
        ]);
        assert!(std::fs::read_to_string(out)
            .unwrap()
            .contains("mac:02:10:00:00:00:13"));
        assert_eq!(mode(out), 0o600, "{}", out.display());
    }
}
