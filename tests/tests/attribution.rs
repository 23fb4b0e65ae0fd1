//! Every identity fact lands on a device (issue 14, point 3): the agent attributes each fact by
//! the role its field has in the allow-list and the direction of the message that carried it,
//! and when a capture missed the TCP handshake the messages themselves say which way they
//! travel (an A-ASSOCIATE-RQ goes from the calling AE to the called AE; an HL7 message from
//! MSH-3/4 to MSH-5/6). A fact may stay unattributed only when its role says it describes no
//! endpoint of a message going that way (a dataset an archive returns for a C-GET), never
//! because the direction was unknown.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use ward_agent::devices::subject;
use ward_agent::engine::{Engine, EngineConfig};
use ward_agent::observation::DeviceRecord;
use ward_agent::rules::RuleSet;
use ward_protocols::Direction;
use ward_tests::{fixture_path, manifest, public_captures_dir, run_capture};

fn devices(path: &Path) -> Vec<DeviceRecord> {
    let mut engine = Engine::new(EngineConfig::default(), RuleSet::bundled().unwrap());
    let f = File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    ward_agent::pcap::read_packets(f, |p| engine.process(p.time_us, p.link, p.data)).unwrap();
    engine.snapshot_all()
}

fn public_captures() -> Vec<PathBuf> {
    let dir = public_captures_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 9,
        "public captures missing in {}",
        dir.display()
    );
    files
}

/// Facts of `path` that no device record holds, though their role and direction say which
/// device they describe.
fn unattributed(path: &Path) -> Vec<String> {
    let evidence = run_capture(path).evidence;
    assert!(!evidence.is_empty(), "{}: no evidence", path.display());
    let held: BTreeSet<(String, String)> = devices(path)
        .iter()
        .flat_map(|d| d.facts.iter())
        .map(|f| (f.field.name().to_owned(), f.value.clone()))
        .collect();
    let mut missing = BTreeSet::new();
    for e in &evidence {
        // Deliberately unattributed: the role names no endpoint of a message going this way.
        if e.direction != Direction::Unknown && subject(e.field, e.direction).is_none() {
            continue;
        }
        // DHCP's assigned address becomes an address, not a fact.
        if e.field.attribute() == ward_protocols::Attribute::AssignedAddress {
            continue;
        }
        if !held.contains(&(e.field.name().to_owned(), e.value.clone())) {
            missing.insert(format!(
                "{}: {}={:?} ({:?})",
                path.display(),
                e.field,
                e.value,
                e.direction
            ));
        }
    }
    missing.into_iter().collect()
}

#[test]
fn every_fact_of_every_public_capture_lands_on_a_device() {
    let missing: Vec<String> = public_captures()
        .iter()
        .flat_map(|p| unattributed(p))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_fact_of_every_fixture_lands_on_a_device() {
    let missing: Vec<String> = manifest()
        .fixtures
        .iter()
        .filter(|fx| !fx.file.starts_with("public/"))
        .flat_map(|fx| unattributed(&fixture_path(&fx.file)))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// One packet, one A-ASSOCIATE-RQ, no handshake: both AE titles land, on the ends the RQ
/// travelled between (both 127.0.0.1 in this loopback capture), and the called end offers the
/// DICOM service.
#[test]
fn a_lone_associate_rq_names_both_ends() {
    let path = public_captures_dir().join("dicom_arq_1_find_testclient.pcap");
    let devs = devices(&path);
    let has = |field: &str, value: &str| {
        devs.iter().any(|d| {
            d.facts
                .iter()
                .any(|f| f.field.name() == field && f.value == value)
        })
    };
    assert!(has("dicom.calling_ae", "testclient"), "{devs:#?}");
    assert!(has("dicom.called_ae", "testserver"), "{devs:#?}");
    assert!(
        devs.iter().any(|d| d
            .services_offered
            .iter()
            .any(|s| s.port == 104 && s.app.is_some())),
        "{devs:#?}"
    );
}
