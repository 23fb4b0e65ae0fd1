//! Identity policy: which facts identify a device, when two device records are the same device,
//! how a merge is explained, and which times a reported software version carries.
//!
//! Why apart from the store: these are decisions about medical devices, not about SQL. Every
//! `Store` backend applies the same rules by calling these functions on plain values, so a second
//! backend reuses them instead of copying them, and each rule is unit-tested without a database.
//!
//! The rules:
//! - A device's *primary* identity is its MAC, or for a MAC-less record (raw IP capture) its
//!   site and record key ([`primary_identity`]).
//! - *Strong* identities (serial numbers, EUI-64 equipment instances, UDIs: [`STRONG_KINDS`]) may
//!   merge two device records; placeholder serials never do ([`plausible_serial`]).
//! - *Weak* identities (AE titles, host names, IP addresses) are remembered but never merge.
//! - A shared strong identity is not enough when the two records are visibly two machines
//!   talking to each other ([`distinct_by_traffic`]); [`merge_decision`] says which one is kept.

use std::net::IpAddr;

use ward_protocols::schema::observation::{DeviceRecord, FactRecord};
use ward_protocols::{Attribute, Identity, MacAddr};

/// Identity kinds strong enough to merge two MACs into one device.
pub const STRONG_KINDS: &[&str] = &["serial", "eui64", "udi"];

/// An identity taken from a device record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// `serial`, `eui64`, `udi` (strong); `hostname`, `ae_title`, `ip` (weak).
    pub kind: &'static str,
    /// Normalised value (EUI-64 upper case, host names lower case, others trimmed).
    pub value: String,
    /// The evidence field it came from (`address` for IP addresses), for explanations.
    pub field: &'static str,
}

/// A record's identities, by strength.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identities {
    /// Identities that may merge two device records.
    pub strong: Vec<Ident>,
    /// Identities kept for search and linking only.
    pub weak: Vec<Ident>,
}

/// Serial numbers some devices send when they have none; merging on them would join strangers.
pub fn plausible_serial(s: &str) -> bool {
    let t = s.trim();
    if t.len() < 3 {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "n/a" | "na" | "none" | "null" | "unknown" | "serial" | "0000" | "000000" | "123456"
    ) {
        return false;
    }
    let first = t.chars().next();
    !t.chars().all(|c| Some(c) == first)
}

/// `0012211839000001^EUI-64` (IEEE 11073 equipment instance): the 16 hex digits before an
/// `EUI-64` component.
pub fn eui64(v: &str) -> Option<String> {
    let comps: Vec<&str> = v.split('^').collect();
    for w in comps.windows(2) {
        if let [id, kind] = w {
            if kind.eq_ignore_ascii_case("EUI-64")
                && id.len() == 16
                && id.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Some(id.to_ascii_uppercase());
            }
        }
    }
    None
}

/// The identities a device record states, from its fields' identity roles in the allow-list
/// (never from field names) and its addresses.
pub fn identities_of(rec: &DeviceRecord) -> Identities {
    let mut out = Identities::default();
    for f in &rec.facts {
        let v = f.value.trim();
        if v.is_empty() {
            continue;
        }
        let field = f.field.name();
        match (f.field.identity(), f.field.attribute()) {
            (Identity::Serial, _) if plausible_serial(v) => out.strong.push(Ident {
                kind: "serial",
                value: v.to_string(),
                field,
            }),
            (Identity::Udi, _) => out.strong.push(Ident {
                kind: "udi",
                value: v.to_string(),
                field,
            }),
            (Identity::Eui64, _) => {
                if let Some(e) = eui64(v) {
                    out.strong.push(Ident {
                        kind: "eui64",
                        value: e,
                        field,
                    })
                }
            }
            (Identity::Weak, Attribute::HostName) => out.weak.push(Ident {
                kind: "hostname",
                value: v.to_ascii_lowercase(),
                field,
            }),
            // Application entity / application names (DICOM AE titles).
            (Identity::Weak, _) => out.weak.push(Ident {
                kind: "ae_title",
                value: v.to_string(),
                field,
            }),
            _ => {}
        }
    }
    for a in &rec.addresses {
        out.weak.push(Ident {
            kind: "ip",
            value: a.ip.to_string(),
            field: "address",
        });
    }
    out
}

/// The identity a record is first looked up by: `("mac", mac)`, or for a MAC-less record (raw
/// IP captures) `("ipkey", "site|key")` — such records are only ever one device per site and
/// address, and never meet a MAC-keyed record this way.
pub fn primary_identity(site: &str, rec: &DeviceRecord) -> (&'static str, String) {
    match rec.mac {
        Some(m) => ("mac", m.to_string()),
        None => ("ipkey", format!("{site}|{}", rec.key)),
    }
}

/// What a store knows about one device when two records share a strong identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeCandidate {
    /// Store id.
    pub id: i64,
    /// Its MACs (empty: MAC-less captures only).
    pub macs: Vec<MacAddr>,
    /// When it was seen at all.
    pub first_us: i64,
    /// When it was seen at all.
    pub last_us: i64,
    /// Its own addresses.
    pub ips: Vec<IpAddr>,
    /// The addresses of every peer of every service it offered or used.
    pub peers: Vec<IpAddr>,
}

/// The guard against merging two machines that talk to each other: true when `a` and `b` are
/// visibly two devices whatever identity they appear to share.
///
/// It holds when all of these hold:
/// - both have MACs and no MAC in common (a MAC-less record proves nothing about hardware);
/// - their seen periods overlap (a replaced network card is the same device seen *after*);
/// - one has a service peer that is an address of the other and not one of its own — the two
///   exchanged packets, which one machine does not do with itself on the wire.
///
/// Why: a system that forwards another's data carries the other's identity attributes (a PACS
/// forwarding an MR's images sends the MR's serial number in its C-STORE requests). Merging on
/// that serial made one device out of two: it then "offered tcp/104 to its own IP" and its
/// software version flipped between the two machines' versions.
///
/// Limits, because a merge is never undone: the guard sees what the store holds when the shared
/// identity is found. Traffic reported only after the two records merged cannot separate them,
/// nor can agents that report no peer addresses (before schema v1.1) or peers beyond the agent's
/// per-service cap. Where three or more devices share an identity and only some of them talk to
/// each other, which ones merge can depend on arrival order.
pub fn distinct_by_traffic(a: &MergeCandidate, b: &MergeCandidate) -> bool {
    let macs_apart =
        !a.macs.is_empty() && !b.macs.is_empty() && !a.macs.iter().any(|m| b.macs.contains(m));
    let together = a.first_us <= b.last_us && b.first_us <= a.last_us;
    let talks_to = |x: &MergeCandidate, y: &MergeCandidate| {
        x.peers
            .iter()
            .any(|p| y.ips.contains(p) && !x.ips.contains(p))
    };
    macs_apart && together && (talks_to(a, b) || talks_to(b, a))
}

/// What to do with two devices that share a strong identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeDecision {
    /// Fold `absorbed` into `kept`: the older id stays, whichever record arrived first.
    Merge {
        /// The surviving device.
        kept: i64,
        /// The device folded into it.
        absorbed: i64,
    },
    /// Two devices: [`distinct_by_traffic`] holds.
    Distinct,
}

/// Whether two devices sharing a strong identity are merged, and which one survives.
pub fn merge_decision(a: &MergeCandidate, b: &MergeCandidate) -> MergeDecision {
    if distinct_by_traffic(a, b) {
        MergeDecision::Distinct
    } else {
        MergeDecision::Merge {
            kept: a.id.min(b.id),
            absorbed: a.id.max(b.id),
        }
    }
}

fn fmt_macs(macs: &[MacAddr]) -> String {
    if macs.is_empty() {
        return "no MAC".to_string();
    }
    let mut v: Vec<String> = macs.iter().map(MacAddr::to_string).collect();
    v.sort();
    v.join(", ")
}

fn fmt_time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| us.to_string())
}

/// The explanation recorded with a merge: both devices' MACs, the identity they share and
/// where it was seen.
pub fn merge_explanation(
    kept: &MergeCandidate,
    absorbed: &MergeCandidate,
    why: &Ident,
    site: &str,
    agent: &str,
    at_us: i64,
) -> String {
    format!(
        "device {} ({}) merged into device {} ({}): both report {} {:?} ({}); seen by agent {agent} at site {site} at {}",
        absorbed.id,
        fmt_macs(&absorbed.macs),
        kept.id,
        fmt_macs(&kept.macs),
        why.kind,
        why.value,
        why.field,
        fmt_time(at_us)
    )
}

/// The software version a record states and the period it was seen in: `(version, first_us,
/// last_us)`. The classification chooses the version; its times come from the facts that
/// carried it (patch-SLA review needs when the version changed, not when the device was seen),
/// and from the record as a whole when no fact did.
pub fn software_version(rec: &DeviceRecord) -> Option<(&str, i64, i64)> {
    let v = rec.classification.as_ref()?.software_version.as_deref()?;
    let carried =
        |f: &&FactRecord| f.field.attribute() == Attribute::SoftwareVersion && f.value.contains(v);
    let (first, last) = rec
        .facts
        .iter()
        .filter(carried)
        .fold(None, |acc: Option<(i64, i64)>, f| {
            Some(match acc {
                None => (f.seen.first_us, f.seen.last_us),
                Some((a, b)) => (a.min(f.seen.first_us), b.max(f.seen.last_us)),
            })
        })
        .unwrap_or((rec.seen.first_us, rec.seen.last_us));
    Some((v, first, last))
}

/// The allow-list names of the fields of `rec` that carried its software version `v` (the
/// version timeline's source); empty when the classification rules inferred it.
pub fn software_version_fields(rec: &DeviceRecord, v: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = rec
        .facts
        .iter()
        .filter(|f| f.field.attribute() == Attribute::SoftwareVersion && f.value.contains(v))
        .map(|f| f.field.name())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_protocols::schema::observation::{AddressRecord, ClassificationRecord, Seen};
    use ward_protocols::{Field, Protocol};

    fn seen(first_us: i64, last_us: i64) -> Seen {
        Seen {
            first_us,
            last_us,
            count: 1,
        }
    }

    fn record(facts: Vec<(Field, &str, Seen)>) -> DeviceRecord {
        let rec: DeviceRecord = serde_json::from_value(serde_json::json!({
            "key": "mac:02:00:00:00:00:01",
            "seen": {"first_us": 1, "last_us": 2, "count": 1},
            "addresses": [], "facts": [], "services_offered": [], "services_used": [],
        }))
        .unwrap();
        DeviceRecord {
            facts: facts
                .into_iter()
                .map(|(field, value, seen)| FactRecord {
                    field,
                    protocol: field.protocol(),
                    value: value.into(),
                    seen,
                })
                .collect(),
            ..rec
        }
    }

    /// Identities are read from the fields' roles; these are the kinds the collector derived by
    /// field name before issue 14, for every field of the protocols that existed then (a new
    /// protocol's fields are filed by their roles alone).
    #[test]
    fn identity_kinds_from_roles_match_the_former_table() {
        let former = |f: Field| -> Option<(&str, bool)> {
            use Field::*;
            Some(match f {
                DicomDeviceSerialNumber | Hl7DeviceSerial => ("serial", true),
                Hl7Udi => ("udi", true),
                Hl7EquipmentInstance => ("eui64", true),
                DicomCallingAe | DicomCalledAe => ("ae_title", false),
                DhcpHostname | DhcpFqdn => ("hostname", false),
                _ => return None,
            })
        };
        let then = [Protocol::Dicom, Protocol::Hl7, Protocol::Dhcp];
        for &field in Field::ALL.iter().filter(|f| then.contains(&f.protocol())) {
            let value = match field {
                Field::Hl7EquipmentInstance => "0012211839000001^EUI-64",
                _ => "SN-0042",
            };
            let ids = identities_of(&record(vec![(field, value, seen(1, 2))]));
            let got = ids
                .strong
                .iter()
                .map(|i| (i.kind, true))
                .chain(
                    ids.weak
                        .iter()
                        .filter(|i| i.kind != "ip")
                        .map(|i| (i.kind, false)),
                )
                .next();
            assert_eq!(got, former(field), "{field}");
        }
    }

    #[test]
    fn identities_are_normalised_and_addresses_are_weak() {
        let mut rec = record(vec![
            (Field::DicomDeviceSerialNumber, "  SN-0042 ", seen(1, 2)),
            (Field::DicomDeviceSerialNumber, "N/A", seen(1, 2)),
            (
                Field::Hl7EquipmentInstance,
                "abcdefabcdefabcd^EUI-64",
                seen(1, 2),
            ),
            (Field::DhcpHostname, "CT-Room1", seen(1, 2)),
            (Field::DicomCallingAe, "   ", seen(1, 2)),
        ]);
        rec.addresses.push(AddressRecord {
            ip: IpAddr::from([10, 0, 0, 7]),
            source: "ip".into(),
            seen: seen(1, 2),
        });
        let ids = identities_of(&rec);
        let strong: Vec<(&str, &str)> = ids
            .strong
            .iter()
            .map(|i| (i.kind, i.value.as_str()))
            .collect();
        assert_eq!(
            strong,
            [("serial", "SN-0042"), ("eui64", "ABCDEFABCDEFABCD")]
        );
        let weak: Vec<(&str, &str, &str)> = ids
            .weak
            .iter()
            .map(|i| (i.kind, i.value.as_str(), i.field))
            .collect();
        assert_eq!(
            weak,
            [
                ("hostname", "ct-room1", Field::DhcpHostname.name()),
                ("ip", "10.0.0.7", "address")
            ]
        );
        assert!(ids.strong.iter().all(|i| STRONG_KINDS.contains(&i.kind)));
        assert!(ids.weak.iter().all(|i| !STRONG_KINDS.contains(&i.kind)));
    }

    #[test]
    fn the_primary_identity_is_the_mac_or_the_site_and_key() {
        let mut rec = record(vec![]);
        rec.mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            primary_identity("s", &rec),
            ("mac", "02:00:00:00:00:01".to_string())
        );
        rec.mac = None;
        rec.key = "ip:10.0.0.7".into();
        assert_eq!(
            primary_identity("s", &rec),
            ("ipkey", "s|ip:10.0.0.7".to_string())
        );
    }

    #[test]
    fn eui64_needs_the_marker_and_sixteen_hex_digits() {
        assert_eq!(
            eui64("0012211839000001^EUI-64").as_deref(),
            Some("0012211839000001")
        );
        assert_eq!(
            eui64("abcdefabcdefabcd^EUI-64^IEEE").as_deref(),
            Some("ABCDEFABCDEFABCD")
        );
        assert_eq!(eui64("0012211839000001"), None);
        assert_eq!(eui64("00122118390000^EUI-64"), None);
        assert_eq!(eui64("001221183900000g^EUI-64"), None);
        assert_eq!(eui64("EUI-64^0012211839000001"), None);
        assert_eq!(eui64(""), None);
    }

    #[test]
    fn placeholder_serials_never_merge() {
        for s in [
            "", "0", "N/A", "unknown", "0000", "XXXXXX", "123456", "  na  ", "NULL",
        ] {
            assert!(!plausible_serial(s), "{s}");
        }
        assert!(plausible_serial("SN-0042"));
        assert!(plausible_serial("A1B"));
    }

    const MR: [u8; 6] = [0, 0x1b, 0x21, 0, 0, 1];
    const PACS: [u8; 6] = [0, 0x1b, 0x21, 0, 0, 2];

    /// An MR at 10.0.0.1 sending to a PACS at 10.0.0.2, both seen 100..200.
    fn mr_and_pacs() -> (MergeCandidate, MergeCandidate) {
        let mr = MergeCandidate {
            id: 1,
            macs: vec![MacAddr(MR)],
            first_us: 100,
            last_us: 200,
            ips: vec![IpAddr::from([10, 0, 0, 1])],
            peers: vec![IpAddr::from([10, 0, 0, 2])],
        };
        let pacs = MergeCandidate {
            id: 2,
            macs: vec![MacAddr(PACS)],
            first_us: 150,
            last_us: 300,
            ips: vec![IpAddr::from([10, 0, 0, 2])],
            peers: vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 9])],
        };
        (mr, pacs)
    }

    #[test]
    fn two_macs_talking_to_each_other_at_the_same_time_are_two_devices() {
        let (mr, pacs) = mr_and_pacs();
        assert!(distinct_by_traffic(&mr, &pacs));
        assert!(distinct_by_traffic(&pacs, &mr));
        assert_eq!(merge_decision(&pacs, &mr), MergeDecision::Distinct);
        // One direction of the traffic is enough.
        let one_way = MergeCandidate {
            peers: vec![],
            ..mr.clone()
        };
        assert!(distinct_by_traffic(&one_way, &pacs));
        assert!(distinct_by_traffic(&pacs, &one_way));
    }

    #[test]
    fn the_guard_needs_every_one_of_its_conditions() {
        let (mr, pacs) = mr_and_pacs();
        let merged = MergeDecision::Merge {
            kept: 1,
            absorbed: 2,
        };
        // No traffic between them: a device with two network cards.
        let quiet = (
            MergeCandidate {
                peers: vec![IpAddr::from([10, 0, 0, 9])],
                ..mr.clone()
            },
            MergeCandidate {
                peers: vec![IpAddr::from([10, 0, 0, 9])],
                ..pacs.clone()
            },
        );
        // Not at the same time: a replaced network card.
        let later = MergeCandidate {
            first_us: 201,
            last_us: 400,
            ..pacs.clone()
        };
        // A MAC in common: one device whatever it talks to.
        let shared_mac = MergeCandidate {
            macs: vec![MacAddr(PACS), MacAddr(MR)],
            ..pacs.clone()
        };
        // No MAC on one side: a raw-IP capture says nothing about hardware.
        let macless = MergeCandidate {
            macs: vec![],
            ..pacs.clone()
        };
        // The peer address is its own too: the same address on both sides is no evidence of
        // two machines.
        let same_ip = (
            MergeCandidate {
                ips: vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])],
                peers: vec![IpAddr::from([10, 0, 0, 2])],
                ..mr.clone()
            },
            MergeCandidate {
                ips: vec![IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 1])],
                peers: vec![IpAddr::from([10, 0, 0, 1])],
                ..pacs.clone()
            },
        );
        for (what, a, b) in [
            ("quiet", &quiet.0, &quiet.1),
            ("later", &mr, &later),
            ("shared MAC", &mr, &shared_mac),
            ("MAC-less", &mr, &macless),
            ("same address", &same_ip.0, &same_ip.1),
        ] {
            assert!(!distinct_by_traffic(a, b), "{what}");
            assert!(!distinct_by_traffic(b, a), "{what}");
            assert_eq!(merge_decision(b, a), merged, "{what}");
        }
        // Touching periods overlap.
        let touching = MergeCandidate {
            first_us: 200,
            ..pacs
        };
        assert!(distinct_by_traffic(&mr, &touching));
    }

    #[test]
    fn the_older_device_is_kept_whichever_asks() {
        let a = MergeCandidate {
            id: 7,
            ..MergeCandidate::default()
        };
        let b = MergeCandidate {
            id: 3,
            ..MergeCandidate::default()
        };
        let want = MergeDecision::Merge {
            kept: 3,
            absorbed: 7,
        };
        assert_eq!(merge_decision(&a, &b), want);
        assert_eq!(merge_decision(&b, &a), want);
    }

    #[test]
    fn the_explanation_names_both_devices_macs() {
        let (mr, pacs) = mr_and_pacs();
        let why = Ident {
            kind: "serial",
            value: "SN-0042".into(),
            field: Field::DicomDeviceSerialNumber.name(),
        };
        let e = merge_explanation(&mr, &pacs, &why, "site-a", "agent-1", 0);
        assert!(
            e.starts_with("device 2 (00:1b:21:00:00:02) merged into device 1 (00:1b:21:00:00:01): both report serial \"SN-0042\""),
            "{e}"
        );
        assert!(
            e.ends_with("agent agent-1 at site site-a at 1970-01-01T00:00:00Z"),
            "{e}"
        );
        let bare = MergeCandidate {
            macs: vec![],
            ..pacs
        };
        assert!(merge_explanation(&mr, &bare, &why, "s", "a", 0).contains("device 2 (no MAC)"));
    }

    #[test]
    fn the_software_version_takes_its_times_from_the_facts_that_carry_it() {
        let mut rec = record(vec![
            (Field::DicomSoftwareVersions, "VX 2.1\\SR 4", seen(10, 20)),
            (Field::DicomSoftwareVersions, "VX 2.1", seen(5, 15)),
            (Field::DicomSoftwareVersions, "VX 1.0", seen(1, 30)),
            // Carries the text, but is no version.
            (Field::DicomCallingAe, "VX 2.1", seen(0, 40)),
        ]);
        assert_eq!(software_version(&rec), None);
        rec.classification = Some(ClassificationRecord {
            manufacturer: None,
            model: None,
            device_type: "mr".into(),
            software_version: Some("VX 2.1".into()),
            confidence: 0.9,
            matches: vec![],
            candidates: vec![],
            explanation: None,
        });
        assert_eq!(software_version(&rec), Some(("VX 2.1", 5, 20)));
        // Stated by the classification alone: the record's times.
        rec.facts.clear();
        rec.seen = seen(100, 200);
        assert_eq!(software_version(&rec), Some(("VX 2.1", 100, 200)));
    }
}
