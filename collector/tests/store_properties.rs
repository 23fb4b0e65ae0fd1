//! Ingest is idempotent and order-safe: any permutation of a set of observations, with any
//! messages replayed, leaves the same inventory — the same devices (merges included), the same
//! identities, attribute histories, services and sightings.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use ward_collector::store::{Message, Store};
use ward_protocols::schema::observation::{
    AddressRecord, ClassificationRecord, DeviceRecord, FactRecord, Kind, MacKind, Observation,
    Seen, ServiceRecord, SCHEMA,
};
use ward_protocols::{Field, MacAddr, Protocol};

/// Times two minutes apart: well beyond the store's 60 s time resolution.
const SLOT_US: i64 = 120_000_000;
const BASE_US: i64 = 1_767_225_600_000_000;

#[derive(Debug, Clone)]
struct Spec {
    agent: u8,
    mac: u8,
    vlan: Option<u16>,
    serial: Option<u8>,
    version: u8,
    slot: i64,
    ip: u8,
}

fn record(s: &Spec) -> DeviceRecord {
    let t = BASE_US + s.slot * SLOT_US;
    let seen = Seen {
        first_us: t,
        last_us: t + 1000,
        count: 1,
    };
    let mac = MacAddr([0, 0x1b, 0x21, 0, 0, s.mac]);
    let mut facts = vec![FactRecord {
        field: Field::DicomSoftwareVersions,
        protocol: Protocol::Dicom,
        value: format!("V{}", s.version),
        seen,
    }];
    if let Some(n) = s.serial {
        facts.push(FactRecord {
            field: Field::DicomDeviceSerialNumber,
            protocol: Protocol::Dicom,
            value: format!("SN-{n:04}"),
            seen,
        });
    }
    DeviceRecord {
        key: match s.vlan {
            Some(v) => format!("mac:{mac}@{v}"),
            None => format!("mac:{mac}"),
        },
        mac: Some(mac),
        vlan: s.vlan,
        mac_kind: Some(MacKind::Universal),
        oui_vendor: None,
        seen,
        addresses: vec![AddressRecord {
            ip: std::net::IpAddr::from([10, 0, 0, s.ip]),
            source: "ip".into(),
            seen,
        }],
        facts,
        services_offered: vec![],
        services_used: vec![ServiceRecord {
            transport: "tcp".into(),
            port: 104,
            app: Some(Protocol::Dicom),
            peers: 1,
            peer_addresses: vec![std::net::IpAddr::from([10, 0, 0, 200])],
            seen,
        }],
        roles: vec![],
        classification: Some(ClassificationRecord {
            manufacturer: Some("ACME".into()),
            model: Some("Scanner".into()),
            device_type: "ct".into(),
            software_version: Some(format!("V{}", s.version)),
            confidence: 0.9,
            matches: vec![],
            candidates: vec![],
            explanation: None,
        }),
    }
}

fn message(seq: u64, s: &Spec) -> Message {
    Message::Observation(Observation {
        schema: SCHEMA.into(),
        site: "site".into(),
        agent_id: format!("agent-{}", s.agent),
        instance: "i".into(),
        seq,
        kind: Kind::Delta,
        time_us: BASE_US + s.slot * SLOT_US,
        devices: vec![record(s)],
    })
}

/// The inventory with device ids replaced by each device's MAC set (ids depend on arrival
/// order; what a device *is* does not).
fn normalized(store: &dyn Store) -> BTreeMap<Vec<String>, String> {
    let inv = store.inventory().unwrap();
    let mut out = BTreeMap::new();
    for d in inv.devices {
        let mut macs: Vec<String> = d.macs.iter().map(|m| m.to_string()).collect();
        macs.sort();
        let attrs: BTreeMap<_, Vec<(String, i64, i64)>> = d
            .attributes
            .iter()
            .map(|(k, v)| {
                let mut v: Vec<_> = v
                    .iter()
                    .map(|a| (a.value.clone(), a.first_us, a.last_us))
                    .collect();
                v.sort();
                (k.clone(), v)
            })
            .collect();
        let mut ids = d.identities.clone();
        ids.values_mut().for_each(|v| v.sort());
        let mut sightings: Vec<_> = d
            .sightings
            .iter()
            .map(|s| {
                (
                    s.site.clone(),
                    s.agent_id.clone(),
                    s.key.clone(),
                    s.vlan,
                    s.first_us,
                    s.last_us,
                )
            })
            .collect();
        sightings.sort();
        let services: Vec<_> = d
            .services
            .iter()
            .map(|s| {
                (
                    s.direction,
                    s.port,
                    s.first_us,
                    s.last_us,
                    s.peer_addresses.clone(),
                )
            })
            .collect();
        out.insert(
            macs,
            format!(
                "{} {} {:?} {:?} {:?} {:?} current={:?}",
                d.first_us,
                d.last_us,
                attrs,
                ids,
                sightings,
                services,
                d.current("software_version")
            ),
        );
    }
    out
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..2,
        0u8..4,
        prop::option::of(100u16..102),
        prop::option::of(0u8..2),
        0u8..3,
        0i64..6,
        1u8..4,
    )
        .prop_map(|(agent, mac, vlan, serial, version, slot, ip)| Spec {
            agent,
            mac,
            vlan,
            serial,
            version,
            slot,
            ip,
        })
}

proptest! {
    // 64 cases on SQLite; 16 on PostgreSQL, where each case opens two schemas (the property is
    // about the SQL both backends run, which 16 random streams exercise; CI time is shared).
    #![proptest_config(ProptestConfig::with_cases(if common::sqlite() { 64 } else { 16 }))]

    #[test]
    fn any_order_and_any_replay_give_the_same_inventory(
        specs in prop::collection::vec(spec(), 1..10),
        order in any::<prop::sample::Index>(),
        replays in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        batch in 1usize..4,
    ) {
        // Each spec is one message with its own sequence number (per agent, as agents number them).
        let mut per_agent: BTreeMap<u8, u64> = BTreeMap::new();
        let msgs: Vec<Message> = specs
            .iter()
            .map(|s| {
                let n = per_agent.entry(s.agent).or_insert(0);
                *n += 1;
                message(*n, s)
            })
            .collect();

        let mut forward = common::fresh_store();
        forward.ingest(&msgs, 0).unwrap();

        // A rotation and a reversal of the arrival order, in batches, with replays.
        let mut shuffled: Vec<Message> = msgs.clone();
        shuffled.rotate_left(order.index(msgs.len()));
        shuffled.reverse();
        for r in &replays {
            shuffled.push(msgs[r.index(msgs.len())].clone());
        }
        let mut other = common::fresh_store();
        let mut duplicates = 0;
        for chunk in shuffled.chunks(batch) {
            duplicates += other.ingest(chunk, 0).unwrap().duplicates;
        }
        prop_assert_eq!(duplicates, replays.len() as u64);
        prop_assert_eq!(normalized(&*forward), normalized(&*other));

        // Replaying everything again changes nothing.
        let before = normalized(&*other);
        let st = other.ingest(&msgs, 0).unwrap();
        prop_assert_eq!(st.messages, 0);
        prop_assert_eq!(normalized(&*other), before);
    }
}

/// An MR at 10.0.0.1 (MAC …:01, software V1) stores its images on a PACS at 10.0.0.2 (MAC …:02,
/// software V2), both seen in slot 0. The PACS forwards them, and its C-STORE requests carry the
/// MR's serial, so both records report `SN-0001`. With `talking` false the two never exchange
/// packets (a second network card of one device, say).
fn mr_and_pacs(talking: bool) -> (Message, Message) {
    let spec = |mac, version, ip| Spec {
        agent: 0,
        mac,
        vlan: None,
        serial: Some(1),
        version,
        slot: 0,
        ip,
    };
    let mut mr = record(&spec(1, 1, 1));
    let mut pacs = record(&spec(2, 2, 2));
    if talking {
        mr.services_used[0].peer_addresses = vec![std::net::IpAddr::from([10, 0, 0, 2])];
        let mut offered = pacs.services_used.remove(0);
        offered.peer_addresses = vec![std::net::IpAddr::from([10, 0, 0, 1])];
        pacs.services_offered.push(offered);
    }
    let msg = |seq, rec: DeviceRecord| {
        Message::Observation(Observation {
            schema: SCHEMA.into(),
            site: "site".into(),
            agent_id: "agent-0".into(),
            instance: "i".into(),
            seq,
            kind: Kind::Delta,
            time_us: BASE_US,
            devices: vec![rec],
        })
    };
    (msg(1, mr), msg(2, pacs))
}

/// Every arrival the two messages can have: MR first or PACS first, in one batch or two.
fn arrivals((mr, pacs): (Message, Message)) -> Vec<Vec<Vec<Message>>> {
    vec![
        vec![vec![mr.clone(), pacs.clone()]],
        vec![vec![pacs.clone(), mr.clone()]],
        vec![vec![mr.clone()], vec![pacs.clone()]],
        vec![vec![pacs], vec![mr]],
    ]
}

#[test]
fn devices_that_talk_to_each_other_stay_two_whatever_serial_they_share() {
    for batches in arrivals(mr_and_pacs(true)) {
        let mut store = common::fresh_store();
        for b in &batches {
            store.ingest(b, 0).unwrap();
        }
        assert!(store.merges().unwrap().is_empty());
        let devices = store.inventory().unwrap().devices;
        assert_eq!(devices.len(), 2);
        for d in &devices {
            // Each keeps its own software version: no software_changed between two machines.
            let want = if d.macs == [MacAddr([0, 0x1b, 0x21, 0, 0, 1])] {
                "V1"
            } else {
                "V2"
            };
            assert_eq!(d.current("software_version"), Some(want), "{d:?}");
            assert_eq!(d.attributes["software_version"].len(), 1, "{d:?}");
            assert_eq!(d.ids("serial"), ["SN-0001"], "{d:?}");
            // No device offers or uses a service with itself.
            let own: Vec<String> = d.ids("ip").to_vec();
            for s in &d.services {
                for p in &s.peer_addresses {
                    assert!(!own.contains(&p.to_string()), "{d:?}");
                }
            }
        }
    }
}

#[test]
fn a_shared_serial_without_traffic_merges_and_the_explanation_names_both_macs() {
    for batches in arrivals(mr_and_pacs(false)) {
        let mut store = common::fresh_store();
        for b in &batches {
            store.ingest(b, 0).unwrap();
        }
        let devices = store.inventory().unwrap().devices;
        assert_eq!(devices.len(), 1);
        let merges = store.merges().unwrap();
        assert_eq!(merges.len(), 1);
        let e = &merges[0].explanation;
        assert!(!e.contains("no MAC"), "{e}");
        for mac in ["00:1b:21:00:00:01", "00:1b:21:00:00:02"] {
            assert!(e.contains(mac), "{e}");
        }
        assert!(e.contains("both report serial \"SN-0001\""), "{e}");
    }
}

/// Two collectors resolving the same device at once (PostgreSQL: two stores on one database,
/// on two threads, each ingesting one of the two records that share a serial, in both orders,
/// many rounds): one device and the merge explained once, whoever commits first. On SQLite the
/// same holds through its file lock; the test runs on both.
#[test]
fn two_writers_resolving_one_device_at_once_merge_it_once() {
    let (mr, pacs) = mr_and_pacs(false);
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ward.db");
        // Both open before either writes (SQLite: a file, not in memory, so they share it).
        let stores = [common::open_store(&db), common::open_store(&db)];
        let msgs = if round % 2 == 0 {
            [mr.clone(), pacs.clone()]
        } else {
            [pacs.clone(), mr.clone()]
        };
        let barrier = std::sync::Barrier::new(2);
        let mut back: Vec<Box<dyn Store>> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .into_iter()
                .zip(msgs)
                .map(|(mut store, m)| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        store.ingest(&[m], 0).unwrap();
                        store
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let store = back.remove(0);
        assert_eq!(store.inventory().unwrap().devices.len(), 1, "round {round}");
        let merges = store.merges().unwrap();
        assert_eq!(merges.len(), 1, "round {round}: {merges:#?}");
    }
}
