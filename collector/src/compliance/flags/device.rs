//! Device scope: a device as a whole — whether a contract in force covers it, whether the
//! register knows it, its support dates and software against the covering contract, where it
//! is seen and whom it talks to. Subject `device:<id>`.

use std::net::IpAddr;

use serde_json::json;

use super::{
    contract_evidence, device_evidence, flag, internal, service_key, time_of, At, DeviceFacts,
    FlagConfig, FlagKind, DAY_US,
};
use crate::store::FlagInstance;

/// Every device-scope condition that holds for `d`.
pub fn device_flags(d: &DeviceFacts<'_>, cfg: &FlagConfig, at: At, out: &mut Vec<FlagInstance>) {
    cover(d, at, out);
    asset_register(d, out);
    software_changed(d, cfg, at, out);
    end_of_support(d, cfg, at, out);
    software_version(d, out);
    external_communication(d, cfg, out);
    segments(d, out);
}

/// `no_contract`: no contract in force covers the device. A medical device never covered; or
/// any device whose contract ended (the contract named it, so someone expects it covered) —
/// then the evidence names that contract and its end date.
fn cover(d: &DeviceFacts<'_>, at: At, out: &mut Vec<FlagInstance>) {
    if d.contract.is_some() {
        return;
    }
    let name = &d.name;
    let asset = d.asset.map(|a| &a.target);
    match &d.lapsed {
        Some(l) => {
            let end = l.contract.end;
            let days_past = end.map(|e| (at.today - e).num_days());
            out.push(flag(
                FlagKind::NoContract,
                d.subject.clone(),
                String::new(),
                format!(
                    "{name}: contract {} ended on {} ({} days ago); no contract in force covers this device",
                    l.contract.id,
                    end.map(|e| e.to_string()).unwrap_or_default(),
                    days_past.unwrap_or_default()
                ),
                json!({
                    "device": device_evidence(d.device),
                    "asset": asset,
                    "lapsed_contract": contract_evidence(l),
                    "contract_end": end,
                    "days_past": days_past,
                }),
            ));
        }
        None if d.medical => out.push(flag(
            FlagKind::NoContract,
            d.subject.clone(),
            String::new(),
            format!("{name}: no contract covers this device (by asset, serial or model)"),
            json!({"device": device_evidence(d.device), "asset": asset}),
        )),
        None => {}
    }
}

/// `not_in_asset_register`: a medical device no register row matches.
fn asset_register(d: &DeviceFacts<'_>, out: &mut Vec<FlagInstance>) {
    if d.medical && d.asset.is_none() {
        out.push(flag(
            FlagKind::NotInAssetRegister,
            d.subject.clone(),
            String::new(),
            format!("{}: not in the asset register (no asset matches its MAC, serial, EUI-64, UDI or IP + host name)", d.name),
            json!({"device": device_evidence(d.device)}),
        ));
    }
}

/// `software_changed`, for any device (the change itself is the evidence): one flag per
/// change whose new version was first seen within the review window.
fn software_changed(d: &DeviceFacts<'_>, cfg: &FlagConfig, at: At, out: &mut Vec<FlagInstance>) {
    let Some(hist) = d.device.attributes.get("software_version") else {
        return;
    };
    let mut h: Vec<_> = hist.iter().collect();
    h.sort_by_key(|v| (v.first_us, v.last_us));
    for w in h.windows(2) {
        let [old, new] = w else { continue };
        let changed = new.first_us;
        if new.first_us > old.first_us
            && at.now_us.saturating_sub(changed) <= cfg.software_change_window_days * DAY_US
        {
            out.push(flag(
                FlagKind::SoftwareChanged,
                d.subject.clone(),
                format!("{}->{}", old.value, new.value),
                format!(
                    "{}: software changed from {} to {} at {} (review against the patch SLA)",
                    d.name,
                    old.value,
                    new.value,
                    time_of(changed)
                ),
                json!({
                    "device": device_evidence(d.device),
                    "from": old.value, "from_last_seen": time_of(old.last_us),
                    "to": new.value, "to_first_seen": time_of(new.first_us),
                    "reported_by": new.agent_id,
                    "patch_sla_days": d.contract.map(|c| c.contract.patch_sla_days),
                }),
            ));
        }
    }
}

/// `end_of_support_passed` / `end_of_support_within`. The end-of-support date is the last
/// supported day: on it, support ends "in 0 days"; it has passed from the next day.
fn end_of_support(d: &DeviceFacts<'_>, cfg: &FlagConfig, at: At, out: &mut Vec<FlagInstance>) {
    let Some(c) = &d.contract else { return };
    let Some(eos) = c.contract.end_of_support else {
        return;
    };
    let (name, id) = (&d.name, &c.contract.id);
    if eos < at.today {
        let days_past = (at.today - eos).num_days();
        out.push(flag(
            FlagKind::EndOfSupportPassed,
            d.subject.clone(),
            String::new(),
            format!("{name}: end of support {eos} passed {days_past} days ago (contract {id})"),
            json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "end_of_support": eos, "days_past": days_past}),
        ));
    } else {
        let days_left = (eos - at.today).num_days();
        if days_left <= cfg.end_of_support_warning_days {
            out.push(flag(
                FlagKind::EndOfSupportWithin,
                d.subject.clone(),
                String::new(),
                format!("{name}: end of support {eos} in {days_left} days (contract {id})"),
                json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "end_of_support": eos, "days_left": days_left, "warning_days": cfg.end_of_support_warning_days}),
            ));
        }
    }
}

/// `software_version_unsupported`: the current version matches none of the contract's
/// supported patterns. No patterns = not stated; no version seen = nothing to compare.
fn software_version(d: &DeviceFacts<'_>, out: &mut Vec<FlagInstance>) {
    let Some(c) = &d.contract else { return };
    let supported = &c.contract.supported_software_versions;
    if supported.is_empty() {
        return;
    }
    let Some(v) = d.device.current("software_version") else {
        return;
    };
    if !supported
        .iter()
        .any(|p| crate::import::pattern::matches(p, v))
    {
        out.push(flag(
            FlagKind::SoftwareVersionUnsupported,
            d.subject.clone(),
            v.to_string(),
            format!(
                "{}: software {v} is not among the versions contract {} supports",
                d.name, c.contract.id
            ),
            json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "software_version": v, "supported": supported}),
        ));
    }
}

/// `external_communication_not_permitted`: peers outside `internal_networks`, on any service,
/// while the contract permits none. One flag per device, listing the peers.
fn external_communication(d: &DeviceFacts<'_>, cfg: &FlagConfig, out: &mut Vec<FlagInstance>) {
    let Some(c) = &d.contract else { return };
    if c.contract.external_communication_permitted {
        return;
    }
    let mut external: Vec<(IpAddr, String)> = d
        .device
        .services
        .iter()
        .flat_map(|s| {
            s.peer_addresses
                .iter()
                .filter(|p| !internal(cfg, p))
                .map(move |p| (*p, service_key(s)))
        })
        .collect();
    if external.is_empty() {
        return;
    }
    external.sort();
    external.dedup();
    out.push(flag(
        FlagKind::ExternalCommunicationNotPermitted,
        d.subject.clone(),
        String::new(),
        format!("{}: talks to {} peer(s) outside the hospital's networks while contract {} permits no external communication", d.name, external.len(), c.contract.id),
        json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "external_peers": external.iter().take(50).map(|(p, s)| json!({"peer": p.to_string(), "service": s})).collect::<Vec<_>>(), "mds2_questions": ["CONN-3", "CONN-4", "CONN-6", "TXCF-3"]}),
    ));
}

/// `segment_not_permitted`: seen at a site or on a VLAN outside the contract's lists (an empty
/// list permits any). One flag per segment (`site:<name>`, `vlan:<id>`).
fn segments(d: &DeviceFacts<'_>, out: &mut Vec<FlagInstance>) {
    let Some(c) = &d.contract else { return };
    let (sites, vlans) = (&c.contract.sites, &c.contract.vlans);
    let mut bad: Vec<String> = Vec::new();
    for s in &d.device.sightings {
        if !sites.is_empty() && !sites.contains(&s.site) {
            bad.push(format!("site:{}", s.site));
        }
        if let Some(v) = s.vlan {
            if !vlans.is_empty() && !vlans.contains(&v) {
                bad.push(format!("vlan:{v}"));
            }
        }
    }
    bad.sort();
    bad.dedup();
    for seg in bad {
        out.push(flag(
            FlagKind::SegmentNotPermitted,
            d.subject.clone(),
            seg.clone(),
            format!(
                "{}: seen on {seg}, outside the sites/VLANs contract {} permits",
                d.name, c.contract.id
            ),
            json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "segment": seg, "permitted_sites": sites, "permitted_vlans": vlans}),
        ));
    }
}

#[cfg(test)]
pub(super) fn cases() -> Vec<super::testkit::Case> {
    use super::testkit::*;
    use FlagKind::*;
    let eos = |n: i64| World::covered_with(|w| w.c().end_of_support = Some(days(n)));
    let version = |v: &str, supported: &[&str]| {
        let (v, supported) = (
            v.to_string(),
            supported.iter().map(|s| s.to_string()).collect(),
        );
        World::covered_with(move |w| {
            let d = w.d().clone().attr("software_version", &v);
            *w.d() = d;
            w.c().supported_software_versions = supported;
        })
    };
    let peer = |ip: &'static str, permitted: bool| {
        World::covered_with(move |w| {
            let d = w
                .d()
                .clone()
                .service(Dir::Used, Transport::Tcp, 443, None, &[ip]);
            *w.d() = d;
            w.c().external_communication_permitted = permitted;
        })
    };
    let seen = |site: &'static str, vlan: Option<u16>| {
        World::covered_with(move |w| {
            let d = w.d().clone().seen_at(site, vlan);
            *w.d() = d;
            w.c().sites = vec!["main".into(), "north".into()];
            w.c().vlans = vec![110];
        })
    };
    let changed = |ago_days: i64| {
        World::covered_with(move |w| {
            let n = now_us();
            let d = w
                .d()
                .clone()
                .attr_at(
                    "software_version",
                    "1.0",
                    n - 100 * DAY_US,
                    n - ago_days * DAY_US,
                )
                .attr_at(
                    "software_version",
                    "1.1",
                    n - ago_days * DAY_US,
                    n - HOUR_US,
                );
            *w.d() = d;
        })
    };
    vec![
        Case::new(
            "no contract at all",
            NoContract,
            World::covered_with(|w| w.inv.contracts.clear()),
            World::covered(),
        ),
        Case::new(
            "the only contract ended yesterday",
            NoContract,
            World::covered_with(|w| w.c().end = Some(days(-1))),
            World::covered_with(|w| w.c().end = Some(days(0))),
        ),
        Case::new(
            "no register row",
            NotInAssetRegister,
            World::covered_with(|w| w.inv.assets.clear()),
            World::covered(),
        ),
        Case::new(
            "end of support yesterday",
            EndOfSupportPassed,
            eos(-1),
            eos(0),
        ),
        Case::new("end of support today", EndOfSupportWithin, eos(0), eos(-1)),
        Case::new(
            "end of support in 180 days",
            EndOfSupportWithin,
            eos(180),
            eos(181),
        ),
        Case::new(
            "a version no pattern matches",
            SoftwareVersionUnsupported,
            version("2.0", &["1.*"]),
            version("1.7", &["1.*"]),
        ),
        Case::new(
            "an external peer",
            ExternalCommunicationNotPermitted,
            peer("203.0.113.7", false),
            peer("203.0.113.7", true),
        ),
        Case::new(
            "a site outside the list",
            SegmentNotPermitted,
            seen("south", None),
            seen("north", None),
        ),
        Case::new(
            "a VLAN outside the list",
            SegmentNotPermitted,
            seen("north", Some(120)),
            seen("north", Some(110)),
        ),
        Case::new(
            "changed 30 days ago",
            SoftwareChanged,
            changed(30),
            changed(31),
        ),
        Case::new(
            "a contract with no end stays in force",
            NoContract,
            World::covered_with(|w| w.c().end = Some(days(-30))),
            World::covered_with(|w| w.c().end = None),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::import::model::Contract;
    use ward_protocols::Protocol;

    fn eos_at(n: i64) -> World {
        World::covered_with(|w| w.c().end_of_support = Some(days(n)))
    }

    /// End of support: the day before, the day itself and the day after; the 180-day window's
    /// edges, with the default and a configured window.
    #[test]
    fn end_of_support_boundaries() {
        use FlagKind::{EndOfSupportPassed as P, EndOfSupportWithin as W};
        let cases: &[(i64, &[FlagKind], Option<i64>)] = &[
            // (days from today to end of support, kinds, days_left or days_past)
            (-400, &[P], Some(400)),
            (-1, &[P], Some(1)),
            (0, &[W], Some(0)),
            (1, &[W], Some(1)),
            (179, &[W], Some(179)),
            (180, &[W], Some(180)),
            (181, &[], None),
        ];
        for (n, kinds, count) in cases {
            let w = eos_at(*n);
            assert_eq!(w.kinds(), *kinds, "end of support in {n} days");
            if let (Some(f), Some(count)) = (w.flags().first(), count) {
                let key = if *n < 0 { "days_past" } else { "days_left" };
                assert_eq!(f.evidence[key], *count, "{n}: {f:?}");
                assert_eq!(f.evidence["contract"]["contract_id"], "C-1");
                assert_eq!(f.evidence["end_of_support"], days(*n).to_string());
            }
        }
        // The time of day does not matter: the date does (UTC).
        for at in [0, 12 * HOUR_US - 1] {
            let mut w = eos_at(0);
            w.now_us += at;
            assert_eq!(w.kinds(), [W]);
        }
        let mut w = eos_at(-1);
        w.now_us -= 12 * HOUR_US + 1; // 23:59:59.999999 the day before: the last supported day
        assert_eq!(w.kinds(), [W]);
        // A 30-day window.
        for (n, kinds) in [(30, &[W][..]), (31, &[][..])] {
            let mut w = eos_at(n);
            w.cfg.end_of_support_warning_days = 30;
            assert_eq!(w.kinds(), kinds, "{n} days, 30-day window");
        }
        // No end of support stated: nothing.
        assert_eq!(World::covered().kinds(), []);
    }

    /// A contract covers through its end date and not a day longer; an expired contract says
    /// so in `no_contract`, and its terms no longer apply.
    #[test]
    fn an_ended_contract_no_longer_covers() {
        let ended = |n: i64| {
            World::covered_with(|w| {
                w.c().end = Some(days(n));
                w.c().end_of_support = Some(days(-10));
                w.c().sites = vec!["elsewhere".into()];
            })
        };
        // Ends today: still covers, its terms apply.
        assert_eq!(
            ended(0).kinds(),
            [FlagKind::EndOfSupportPassed, FlagKind::SegmentNotPermitted]
        );
        // Ended yesterday: not covered; the flag names the contract and its end; its terms are
        // not evaluated.
        let w = ended(-1);
        assert_eq!(w.kinds(), [FlagKind::NoContract]);
        let f = &w.flags()[0];
        assert_eq!(f.evidence["lapsed_contract"]["contract_id"], "C-1");
        assert_eq!(
            f.evidence["lapsed_contract"]["link_method"],
            "model_coverage"
        );
        assert_eq!(f.evidence["contract_end"], days(-1).to_string());
        assert_eq!(f.evidence["days_past"], 1);
        assert!(
            f.summary
                .contains("contract C-1 ended on 2026-06-14 (1 days ago)"),
            "{}",
            f.summary
        );
        // A non-medical device under a contract that ended is flagged too: the contract named
        // it.
        let mut w = ended(-1);
        let d = dev(1).typed("workstation").made("ACME", "Scan 1");
        *w.d() = d;
        assert_eq!(w.kinds(), [FlagKind::NoContract]);
        // A renewal in force covers; the ended contract is not mentioned.
        let mut w = ended(-1);
        w.inv.contracts.push(Contract {
            end: Some(days(365)),
            ..contract("C-2")
        });
        w.inv.contracts[1].products = w.inv.contracts[0].products.clone();
        assert_eq!(w.kinds(), []);
        // A contract with no end never ends; start is not evaluated.
        let w = World::covered_with(|w| w.c().start = Some(days(30)));
        assert_eq!(w.kinds(), []);
    }

    /// A lapsed contract is found by every linking method, the latest-ending first.
    #[test]
    fn a_lapsed_contract_is_found_like_a_covering_one() {
        let mut w = World::covered_with(|w| {
            w.c().end = Some(days(-100));
            w.c().products.clear();
            w.c().asset_tags = vec![" a-1 ".into()];
        });
        w.inv.contracts.push(Contract {
            end: Some(days(-5)),
            asset_tags: vec!["A-1".into()],
            ..contract("C-0")
        });
        let f = w.of(FlagKind::NoContract);
        assert_eq!(f[0].evidence["lapsed_contract"]["contract_id"], "C-0");
        assert_eq!(
            f[0].evidence["lapsed_contract"]["link_method"],
            "contract_asset_tag"
        );
        assert_eq!(f[0].evidence["asset"], "A-1");
    }

    /// Who counts as medical (expected under contract and in the register).
    #[test]
    fn medical_devices() {
        let nothing = |d: crate::store::DeviceView| {
            let mut w = World::new();
            w.inv.devices.push(d);
            w.kinds()
        };
        let flagged = [FlagKind::NoContract, FlagKind::NotInAssetRegister];
        // By type.
        assert_eq!(nothing(dev(1).typed("infusion_pump")), flagged);
        for t in [
            "unknown",
            "workstation",
            "printer",
            "network_infra",
            "mobile_device",
        ] {
            assert_eq!(nothing(dev(1).typed(t)), [], "{t}");
        }
        // No type at all is `unknown`.
        assert_eq!(nothing(dev(1)), []);
        // A patient-data protocol makes any type medical: offered or used, TCP or UDP — an EHR
        // typed unknown, a DICOM printer, a viewing workstation.
        for p in Protocol::ALL.iter().filter(|p| p.carries_patient_data()) {
            for (dir, t) in [
                (Dir::Offered, Transport::Tcp),
                (Dir::Used, Transport::Tcp),
                (Dir::Used, Transport::Udp),
            ] {
                for ty in ["unknown", "printer", "workstation"] {
                    let d = dev(1)
                        .typed(ty)
                        .service(dir, t, 4000, Some(*p), &["10.0.0.9"]);
                    assert_eq!(nothing(d), flagged, "{p} {dir} {t} on {ty}");
                }
            }
        }
        // A protocol that carries none does not.
        for p in Protocol::ALL.iter().filter(|p| !p.carries_patient_data()) {
            let d = dev(1).service(Dir::Used, Transport::Udp, 67, Some(*p), &[]);
            assert_eq!(nothing(d), [], "{p}");
        }
        // A server whose clinical traffic is all TLS (port 2762, no protocol recognised): ward
        // cannot see what it carries, so its type decides (docs/contracts.md).
        let tls = dev(1).service(Dir::Offered, Transport::Tcp, 2762, None, &["10.0.0.9"]);
        assert_eq!(nothing(tls.clone()), []);
        assert_eq!(nothing(tls.typed("pacs")), flagged);
        // The configured list decides.
        let mut w = World::new();
        w.inv.devices.push(dev(1).typed("ct"));
        w.cfg.non_medical_types.push("ct".into());
        assert_eq!(w.kinds(), []);
    }

    /// Empty lists in a contract mean "not stated": no flag.
    #[test]
    fn empty_lists_are_not_stated() {
        let w = World::covered_with(|w| {
            let d = w
                .d()
                .clone()
                .attr("software_version", "9.9")
                .seen_at("anywhere", Some(4000));
            *w.d() = d;
            w.c().external_communication_permitted = true;
        });
        assert_eq!(w.kinds(), []);
        // No version seen: nothing to compare.
        let w = World::covered_with(|w| w.c().supported_software_versions = vec!["1.*".into()]);
        assert_eq!(w.kinds(), []);
    }

    /// Software changes: each change within the window is its own flag; older ones are not.
    #[test]
    fn software_changes() {
        let n = now_us();
        let mut w = World::covered();
        let d = w
            .d()
            .clone()
            .attr_at("software_version", "1", n - 90 * DAY_US, n - 60 * DAY_US)
            .attr_at("software_version", "2", n - 60 * DAY_US, n - 10 * DAY_US)
            .attr_at("software_version", "3", n - 10 * DAY_US, n);
        *w.d() = d;
        let details: Vec<String> = w
            .of(FlagKind::SoftwareChanged)
            .iter()
            .map(|f| f.detail.clone())
            .collect();
        assert_eq!(details, ["2->3"]);
        // Any device, covered or not, medical or not.
        let mut w = World::new();
        w.inv.devices.push(
            dev(2)
                .typed("printer")
                .attr_at("software_version", "a", n - 5 * DAY_US, n - 2 * DAY_US)
                .attr_at("software_version", "b", n - 2 * DAY_US, n),
        );
        assert_eq!(w.kinds(), [FlagKind::SoftwareChanged]);
    }

    /// External peers: internal ones never count; the evidence lists the external ones once.
    #[test]
    fn external_peers() {
        let w = World::covered_with(|w| {
            let d = w
                .d()
                .clone()
                .service(
                    Dir::Used,
                    Transport::Tcp,
                    443,
                    None,
                    &["10.1.2.3", "203.0.113.7"],
                )
                .service(
                    Dir::Used,
                    Transport::Udp,
                    123,
                    None,
                    &["192.168.1.1", "fe80::1"],
                );
            *w.d() = d;
        });
        let f = w.of(FlagKind::ExternalCommunicationNotPermitted);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].evidence["external_peers"],
            json!([{"peer": "203.0.113.7", "service": "tcp/443/used"}])
        );
    }
}
