//! Service scope: one service a device offers or uses, against the terms of the contract in
//! force that covers the device. Subject `device:<id>`, detail `<transport>/<port>/<direction>`
//! (`tcp/104/offered`); a remote-access domain the device reached out to is one too, detail
//! `name/<domain>/contacted` ([`contacted_remote_access`]). A device no contract covers has no
//! terms to break here.

use std::collections::BTreeMap;

use serde_json::json;

use super::remote_names::{self, ContactedRemote, RemoteKind};
use super::{
    carries_patient_data, contract_evidence, device_evidence, flag, service_evidence, service_key,
    time_of, Cover, DeviceFacts, FlagConfig, FlagKind,
};
use crate::import::model::{Direction, RemoteAccessPolicy};
use crate::store::{FlagInstance, ServiceDirection, ServiceView};
use ward_protocols::Protocol;

/// Every service-scope condition that holds for service `s` of `d`.
pub fn service_flags(
    d: &DeviceFacts<'_>,
    s: &ServiceView,
    cfg: &FlagConfig,
    out: &mut Vec<FlagInstance>,
) {
    let Some(c) = &d.contract else { return };
    not_permitted(d, c, s, out);
    cleartext(d, c, s, out);
    remote_access(d, c, s, cfg, out);
}

/// Whether a permitted service's direction admits a service seen in `seen`.
fn direction_admits(permitted: Direction, seen: ServiceDirection) -> bool {
    matches!(
        (permitted, seen),
        (Direction::Both, _)
            | (Direction::Inbound, ServiceDirection::Offered)
            | (Direction::Outbound, ServiceDirection::Used)
    )
}

/// Whether one of the contract's permitted services admits `s`: same transport, port and a
/// direction that admits it, and every known peer inside its peer list (empty = any peer).
fn permitted(c: &Cover<'_>, s: &ServiceView) -> bool {
    c.contract.permitted_services.iter().any(|p| {
        p.transport == s.transport
            && p.port == s.port
            && direction_admits(p.direction, s.direction)
            && (p.peers.is_empty()
                || s.peer_addresses
                    .iter()
                    .all(|a| p.peers.iter().any(|n| n.contains(a))))
    })
}

/// `service_not_permitted`: the contract lists its permitted services and none admits `s`.
/// No list = not stated: nothing is flagged.
fn not_permitted(d: &DeviceFacts<'_>, c: &Cover<'_>, s: &ServiceView, out: &mut Vec<FlagInstance>) {
    if c.contract.permitted_services.is_empty() || permitted(c, s) {
        return;
    }
    let verb = match s.direction {
        ServiceDirection::Offered => "offers",
        ServiceDirection::Used => "uses",
    };
    let app = s
        .app
        .as_deref()
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    out.push(flag(
        FlagKind::ServiceNotPermitted,
        d.subject.clone(),
        service_key(s),
        format!("{}: {verb} {}/{}{app} is not a service contract {} permits", d.name, s.transport, s.port, c.contract.id),
        json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "service": service_evidence(s), "permitted_services": c.contract.permitted_services}),
    ));
}

/// Whether a service was seen encrypted in transit: its protocol is one that encrypts what it
/// carries ([`Protocol::encrypts_transport`], TLS) — DICOM on 2762, HL7 over TLS, HTTPS.
fn encrypted(s: &ServiceView) -> bool {
    s.app
        .as_deref()
        .and_then(Protocol::from_name)
        .is_some_and(Protocol::encrypts_transport)
}

/// `cleartext_phi_protocol`: a protocol that carries patient data, recognised on the wire (so
/// in clear), while the contract requires encryption in transit. A service seen encrypted is
/// never one, whatever runs inside.
fn cleartext(d: &DeviceFacts<'_>, c: &Cover<'_>, s: &ServiceView, out: &mut Vec<FlagInstance>) {
    if !c.contract.encryption_in_transit_required || !carries_patient_data(s) || encrypted(s) {
        return;
    }
    let app = s.app.as_deref().unwrap_or_default().to_uppercase();
    out.push(flag(
        FlagKind::CleartextPhiProtocol,
        d.subject.clone(),
        service_key(s),
        format!("{}: cleartext {app} on {}/{} while contract {} requires encryption in transit", d.name, s.transport, s.port, c.contract.id),
        json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "service": service_evidence(s), "mds2_questions": ["TXCF-2", "TXCF-5", "CONN-7"]}),
    ));
}

/// The peers of a remote-access service the policy does not permit. Peers reported but not
/// named (the agent caps addresses) cannot be shown permitted, so they count against `listed`;
/// under `none` any session counts, named or not.
fn peers_not_permitted(c: &Cover<'_>, s: &ServiceView) -> Vec<String> {
    let unknown = || vec!["(peer addresses not reported)".to_string()];
    let ra = &c.contract.remote_access;
    match ra.policy {
        RemoteAccessPolicy::Unrestricted => Vec::new(),
        RemoteAccessPolicy::None if s.peer_addresses.is_empty() => unknown(),
        RemoteAccessPolicy::None => s.peer_addresses.iter().map(|p| p.to_string()).collect(),
        RemoteAccessPolicy::Listed if s.peer_addresses.is_empty() && s.peers > 0 => unknown(),
        RemoteAccessPolicy::Listed => s
            .peer_addresses
            .iter()
            .filter(|p| !ra.gateways.iter().any(|g| g.contains(*p)))
            .map(|p| p.to_string())
            .collect(),
    }
}

/// `remote_access_not_permitted`: a service on a remote-access port with peers the contract's
/// policy excludes.
fn remote_access(
    d: &DeviceFacts<'_>,
    c: &Cover<'_>,
    s: &ServiceView,
    cfg: &FlagConfig,
    out: &mut Vec<FlagInstance>,
) {
    if !cfg.remote_access_ports.contains(&s.port) {
        return;
    }
    let violating = peers_not_permitted(c, s);
    if violating.is_empty() {
        return;
    }
    out.push(flag(
        FlagKind::RemoteAccessNotPermitted,
        d.subject.clone(),
        service_key(s),
        format!("{}: remote-access service {}/{} ({}) with {} peer(s) contract {} does not permit", d.name, s.transport, s.port, s.direction, violating.len(), c.contract.id),
        json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "service": service_evidence(s), "policy": c.contract.remote_access, "peers_not_permitted": violating, "mds2_questions": ["RMOT-1", "RMOT-2", "RMOT-3"]}),
    ));
}

/// Whether the contract's remote-access policy forbids contacting a domain of `kind`: under
/// `none` every remote-access domain; under `listed` a remote-desktop product's (its relays are
/// never a gateway the contract lists), not a manufacturer's remote-service platform (which the
/// listed gateways may well be: a name cannot be compared with gateway addresses); under
/// `unrestricted` none.
fn name_forbidden(c: &Cover<'_>, kind: RemoteKind) -> bool {
    match c.contract.remote_access.policy {
        RemoteAccessPolicy::Unrestricted => false,
        RemoteAccessPolicy::None => true,
        RemoteAccessPolicy::Listed => kind == RemoteKind::RemoteDesktop,
    }
}

/// `remote_access_not_permitted` from names: the device reached out (a TLS ClientHello's server
/// name, a DNS question — any field with the contacted-name role) to a domain of the
/// remote-access list ([`remote_names`], rule data), and the covering contract's policy forbids
/// it ([`name_forbidden`]). One flag per matched list entry, detail `name/<domain>/contacted`;
/// the evidence names each matched name, the field it came from, the entry and its source.
pub fn contacted_remote_access(d: &DeviceFacts<'_>, cfg: &FlagConfig, out: &mut Vec<FlagInstance>) {
    let Some(c) = &d.contract else { return };
    let mut by_entry: BTreeMap<&str, Vec<ContactedRemote<'_>>> = BTreeMap::new();
    for hit in remote_names::contacted(d.device, &cfg.remote_access_domains) {
        if name_forbidden(c, hit.entry.kind) {
            by_entry
                .entry(hit.entry.domain.as_str())
                .or_default()
                .push(hit);
        }
    }
    for (domain, hits) in by_entry {
        let Some(entry) = hits.first().map(|h| h.entry) else {
            continue;
        };
        let names: Vec<_> = hits
            .iter()
            .map(|h| json!({"name": h.name, "field": h.field.name(), "last_seen": time_of(h.last_us)}))
            .collect();
        out.push(flag(
            FlagKind::RemoteAccessNotPermitted,
            d.subject.clone(),
            format!("name/{domain}/contacted"),
            format!("{}: reached out to {} ({}) while contract {} does not permit it", d.name, hits.first().map_or(domain, |h| h.name), entry.product, c.contract.id),
            json!({"device": device_evidence(d.device), "contract": contract_evidence(c), "policy": c.contract.remote_access, "contacted_names": names, "rule": entry, "mds2_questions": ["RMOT-1", "RMOT-2", "RMOT-3"]}),
        ));
    }
}

#[cfg(test)]
pub(super) fn cases() -> Vec<super::testkit::Case> {
    use super::testkit::*;
    use crate::import::model::{PermittedService, RemoteAccess, Transport};
    use ward_protocols::Protocol;
    use FlagKind::*;
    let clinical = *Protocol::ALL
        .iter()
        .find(|p| p.carries_patient_data())
        .unwrap();
    let with_service =
        |app: Option<Protocol>, port: u16, peers: &'static [&'static str], f: fn(&mut World)| {
            World::covered_with(move |w| {
                let d = w
                    .d()
                    .clone()
                    .service(Dir::Offered, Transport::Tcp, port, app, peers);
                *w.d() = d;
                f(w);
            })
        };
    let only_104 = |w: &mut World| {
        w.c().permitted_services = vec![PermittedService {
            protocol: None,
            transport: Transport::Tcp,
            port: 104,
            direction: Direction::Inbound,
            peers: Vec::new(),
        }]
    };
    vec![
        Case::new(
            "a port the list does not name",
            ServiceNotPermitted,
            with_service(None, 23, &["10.0.0.5"], only_104),
            with_service(None, 104, &["10.0.0.5"], only_104),
        ),
        Case::new(
            "patient data in clear under an encryption term",
            CleartextPhiProtocol,
            with_service(Some(clinical), 104, &["10.0.0.5"], |w| {
                w.c().encryption_in_transit_required = true
            }),
            with_service(Some(clinical), 104, &["10.0.0.5"], |w| {
                w.c().encryption_in_transit_required = false
            }),
        ),
        Case::new(
            "SSH from an address outside the listed gateways",
            RemoteAccessNotPermitted,
            with_service(None, 22, &["203.0.113.5"], |w| {
                w.c().remote_access = RemoteAccess {
                    policy: RemoteAccessPolicy::Listed,
                    gateways: vec!["198.51.100.0/24".parse().unwrap()],
                }
            }),
            with_service(None, 22, &["198.51.100.9"], |w| {
                w.c().remote_access = RemoteAccess {
                    policy: RemoteAccessPolicy::Listed,
                    gateways: vec!["198.51.100.0/24".parse().unwrap()],
                }
            }),
        ),
        Case::new(
            "a remote-desktop relay name under `none`",
            RemoteAccessNotPermitted,
            World::covered_with(|w| {
                let d = w
                    .d()
                    .clone()
                    .attr("dns.queried_name", "router15.teamviewer.com");
                *w.d() = d;
                w.c().remote_access.policy = RemoteAccessPolicy::None;
            }),
            World::covered_with(|w| {
                let d = w
                    .d()
                    .clone()
                    .attr("dns.queried_name", "router15.teamviewer.com");
                *w.d() = d;
                w.c().remote_access.policy = RemoteAccessPolicy::Unrestricted;
            }),
        ),
        Case::new(
            "any remote-access session under `none`",
            RemoteAccessNotPermitted,
            with_service(None, 3389, &["10.0.0.5"], |w| {
                w.c().remote_access.policy = RemoteAccessPolicy::None
            }),
            with_service(None, 3389, &["10.0.0.5"], |w| {
                w.c().remote_access.policy = RemoteAccessPolicy::Unrestricted
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::import::model::{PermittedService, RemoteAccess, Transport};
    use ward_protocols::Protocol;

    fn permit(
        transport: Transport,
        port: u16,
        direction: Direction,
        peers: &[&str],
    ) -> PermittedService {
        PermittedService {
            protocol: None,
            transport,
            port,
            direction,
            peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    fn one_service(
        dir: Dir,
        t: Transport,
        port: u16,
        peers: &[&str],
        permitted: Vec<PermittedService>,
    ) -> World {
        let mut w = World::covered();
        let d = w.d().clone().service(dir, t, port, None, peers);
        *w.d() = d;
        w.c().permitted_services = permitted;
        w
    }

    /// Matching a seen service against the permitted list: transport, port, direction, peers.
    #[test]
    fn permitted_services_match_transport_port_direction_and_peers() {
        use Direction::{Both, Inbound, Outbound};
        use Transport::{Tcp, Udp};
        let p = |t, port, d, peers: &[&str]| vec![permit(t, port, d, peers)];
        let cases: Vec<(&str, World, bool)> = vec![
            (
                "offered, inbound",
                one_service(Dir::Offered, Tcp, 104, &[], p(Tcp, 104, Inbound, &[])),
                false,
            ),
            (
                "offered, outbound",
                one_service(Dir::Offered, Tcp, 104, &[], p(Tcp, 104, Outbound, &[])),
                true,
            ),
            (
                "used, outbound",
                one_service(Dir::Used, Tcp, 104, &[], p(Tcp, 104, Outbound, &[])),
                false,
            ),
            (
                "used, inbound",
                one_service(Dir::Used, Tcp, 104, &[], p(Tcp, 104, Inbound, &[])),
                true,
            ),
            (
                "either, both",
                one_service(Dir::Used, Tcp, 104, &[], p(Tcp, 104, Both, &[])),
                false,
            ),
            (
                "udp is not tcp",
                one_service(Dir::Used, Udp, 104, &[], p(Tcp, 104, Both, &[])),
                true,
            ),
            (
                "another port",
                one_service(Dir::Used, Tcp, 105, &[], p(Tcp, 104, Both, &[])),
                true,
            ),
            (
                "peers inside",
                one_service(
                    Dir::Used,
                    Tcp,
                    104,
                    &["10.1.0.1", "10.1.2.3"],
                    p(Tcp, 104, Both, &["10.1.0.0/16"]),
                ),
                false,
            ),
            (
                "one peer outside",
                one_service(
                    Dir::Used,
                    Tcp,
                    104,
                    &["10.1.0.1", "10.2.0.1"],
                    p(Tcp, 104, Both, &["10.1.0.0/16"]),
                ),
                true,
            ),
            // Peers counted but not named: nothing shows them outside the list.
            (
                "unknown peers",
                one_service(
                    Dir::Used,
                    Tcp,
                    104,
                    &[],
                    p(Tcp, 104, Both, &["10.1.0.0/16"]),
                ),
                false,
            ),
            // An empty list is "not stated", not "nothing".
            (
                "no list",
                one_service(Dir::Used, Tcp, 9999, &["203.0.113.1"], Vec::new()),
                false,
            ),
        ];
        for (name, w, flagged) in cases {
            let f = w.of(FlagKind::ServiceNotPermitted);
            assert_eq!(!f.is_empty(), flagged, "{name}: {f:?}");
            if let Some(f) = f.first() {
                assert_eq!(f.subject, "device:1");
                assert!(f
                    .detail
                    .ends_with(&format!("/{}", w.inv.devices[0].services[0].direction)));
            }
        }
    }

    /// Remote access by policy, including peers reported but not named.
    #[test]
    fn remote_access_policies() {
        use RemoteAccessPolicy::{Listed, None as No, Unrestricted};
        let gw = vec!["198.51.100.0/24".parse().unwrap()];
        let w = |policy, peers: &[&str], counted: u64, port: u16| {
            let mut w = World::covered();
            let mut d = w
                .d()
                .clone()
                .service(Dir::Offered, Transport::Tcp, port, None, peers);
            d.services[0].peers = counted;
            *w.d() = d;
            w.c().remote_access = RemoteAccess {
                policy,
                gateways: if policy == Listed {
                    gw.clone()
                } else {
                    Vec::new()
                },
            };
            w.of(FlagKind::RemoteAccessNotPermitted)
                .first()
                .map(|f| f.evidence["peers_not_permitted"].clone())
        };
        let unknown = json!(["(peer addresses not reported)"]);
        assert_eq!(w(Unrestricted, &["203.0.113.5"], 1, 22), None);
        assert_eq!(w(No, &["10.0.0.5"], 1, 22), Some(json!(["10.0.0.5"])));
        assert_eq!(w(No, &[], 0, 22), Some(unknown.clone()));
        assert_eq!(w(No, &[], 3, 22), Some(unknown.clone()));
        assert_eq!(w(Listed, &["198.51.100.7"], 1, 22), None);
        assert_eq!(
            w(Listed, &["198.51.100.7", "203.0.113.5"], 2, 22),
            Some(json!(["203.0.113.5"]))
        );
        assert_eq!(w(Listed, &[], 4, 22), Some(unknown));
        assert_eq!(w(Listed, &[], 0, 22), None);
        // Not a remote-access port: no flag whatever the policy.
        assert_eq!(w(No, &["203.0.113.5"], 1, 8080), None);
    }

    /// Remote-access names (rule data) against the policy: any under `none`, remote-desktop
    /// products' under `listed`, none under `unrestricted`; only fields with the contacted-name
    /// role count, and the evidence names the name, its field, the rule entry and its source.
    #[test]
    fn remote_access_names_by_policy() {
        use RemoteAccessPolicy::{Listed, None as No, Unrestricted};
        let w = |policy, field: &str, name: &str| {
            let mut w = World::covered();
            let d = w.d().clone().attr(field, name);
            *w.d() = d;
            w.c().remote_access = RemoteAccess {
                policy,
                gateways: if policy == Listed {
                    vec!["198.51.100.0/24".parse().unwrap()]
                } else {
                    Vec::new()
                },
            };
            w.of(FlagKind::RemoteAccessNotPermitted)
        };
        let tv = "router15.teamviewer.com";
        let f = w(No, "tls.server_name", tv);
        assert_eq!(f.len(), 1, "{f:?}");
        let f = &f[0];
        assert_eq!(f.subject, "device:1");
        assert_eq!(f.detail, "name/teamviewer.com/contacted");
        assert!(
            f.summary.contains(tv) && f.summary.contains("TeamViewer"),
            "{}",
            f.summary
        );
        let e = &f.evidence;
        assert_eq!(e["contacted_names"][0]["name"], tv);
        assert_eq!(e["contacted_names"][0]["field"], "tls.server_name");
        assert_eq!(e["rule"]["product"], "TeamViewer");
        assert_eq!(e["rule"]["domain"], "teamviewer.com");
        assert!(e["rule"]["source"].as_str().unwrap().contains("teamviewer"));
        assert_eq!(e["policy"]["policy"], "none");
        // A DNS question counts the same; under `listed` a remote-desktop relay is no gateway.
        assert_eq!(w(Listed, "dns.queried_name", tv).len(), 1);
        assert!(w(Unrestricted, "dns.queried_name", tv).is_empty());
        // A manufacturer's remote-service platform may be the listed gateway: `none` only.
        let vendor = "svc.iitreacts.com";
        assert_eq!(w(No, "dns.queried_name", vendor).len(), 1);
        assert!(w(Listed, "dns.queried_name", vendor).is_empty());
        // Names outside the list, and fields without the contacted-name role, are not evidence.
        assert!(w(No, "dns.queried_name", "update.example-medical.com").is_empty());
        assert!(w(No, "http.host", tv).is_empty());
        assert!(w(No, "dns.answered_name", tv).is_empty());
        // No covering contract: no terms to break.
        let mut nc = World::covered_with(|w| {
            w.c().remote_access.policy = No;
            w.c().end = Some(days(-1));
        });
        let d = nc.d().clone().attr("tls.server_name", tv);
        *nc.d() = d;
        assert!(nc.of(FlagKind::RemoteAccessNotPermitted).is_empty());
    }

    /// Cleartext patient data: only protocols that carry it, only when recognised, only under
    /// an encryption term — and never without a covering contract.
    #[test]
    fn cleartext_patient_data() {
        for p in Protocol::ALL {
            let mut w = World::covered_with(|w| w.c().encryption_in_transit_required = true);
            let d = w
                .d()
                .clone()
                .service(Dir::Used, Transport::Tcp, 4000, Some(*p), &[]);
            *w.d() = d;
            let f = w.of(FlagKind::CleartextPhiProtocol);
            assert_eq!(!f.is_empty(), p.carries_patient_data(), "{p}");
            if let Some(f) = f.first() {
                assert_eq!(f.detail, "tcp/4000/used");
                assert!(
                    f.summary.contains(&p.name().to_uppercase()),
                    "{}",
                    f.summary
                );
            }
        }
        // TLS on DICOM's TLS port: nothing recognised, nothing in clear.
        let mut w = World::covered_with(|w| w.c().encryption_in_transit_required = true);
        let d = w
            .d()
            .clone()
            .service(Dir::Offered, Transport::Tcp, 2762, None, &[]);
        *w.d() = d;
        assert_eq!(w.kinds(), []);

        // No contract in force: no terms.
        let clinical = *Protocol::ALL
            .iter()
            .find(|p| p.carries_patient_data())
            .unwrap();
        let mut w = World::covered_with(|w| {
            w.c().encryption_in_transit_required = true;
            w.c().end = Some(days(-1));
        });
        let d = w
            .d()
            .clone()
            .service(Dir::Used, Transport::Tcp, 104, Some(clinical), &[]);
        *w.d() = d;
        assert_eq!(w.kinds(), [FlagKind::NoContract]);
    }

    /// A service seen speaking an encrypting protocol (TLS) is encrypted in transit: DICOM-TLS
    /// on 2762, HL7 over TLS on any port and HTTPS on 443 are never cleartext patient data,
    /// offered or used, and never make the device medical by themselves.
    #[test]
    fn encrypted_services_are_never_cleartext_patient_data() {
        let encrypting: Vec<Protocol> = Protocol::ALL
            .iter()
            .copied()
            .filter(|p| p.encrypts_transport())
            .collect();
        assert!(!encrypting.is_empty(), "no protocol encrypts its transport");
        for p in encrypting {
            assert!(!p.carries_patient_data(), "{p}");
            for (dir, port) in [(Dir::Offered, 2762), (Dir::Used, 6661), (Dir::Used, 443)] {
                let mut w = World::covered_with(|w| w.c().encryption_in_transit_required = true);
                let d = w
                    .d()
                    .clone()
                    .service(dir, Transport::Tcp, port, Some(p), &["10.0.0.5"]);
                *w.d() = d;
                assert!(
                    w.of(FlagKind::CleartextPhiProtocol).is_empty(),
                    "{p} on {port}: {:?}",
                    w.kinds()
                );
                assert!(!carries_patient_data(&w.inv.devices[0].services[0]), "{p}");
            }
        }
    }
}
