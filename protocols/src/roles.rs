//! Behavioural roles: what a device *does* on the network, derived from the facts and services
//! the agent has collected for it, as evidence the fingerprint rules can use (the `role`
//! pseudo-field; `agent/rules/roles.toml` maps roles to device types).
//!
//! A name or a MAC vendor says what a device claims to be; a role says how it behaves — it
//! answers DHCP, it accepts HL7 feeds from several senders, it reports for several bedside
//! devices — which holds for products no rule has ever named. Each role carries the
//! observations behind it, so a classification built on it explains itself.
//!
//! This module is the one place that knows which protocol facts and ports make a role (the
//! agent asks for roles, it does not name protocol fields). Evidence strings name only field
//! names, ports, counts and allow-listed protocol values (HL7 message types), never a payload.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::evidence::{Field, Protocol};

/// The role vocabulary, with what derives each (documented in `agent/rules/README.md`).
pub const ROLES: &[&str] = &[
    "dhcp_server",
    "dns_server",
    "ntp_server",
    "print_server",
    "hl7_order_sender",
    "hl7_result_sender",
    "hl7_listener",
    "hl7_hub",
    "device_gateway",
    "device_data_client",
    "lab_middleware",
    "fhir_server",
    "router",
];

/// One service a device offered or used, as roles read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceUse {
    /// TCP (`true`) or UDP.
    pub tcp: bool,
    /// Server port.
    pub port: u16,
    /// Application protocol seen on it, when decoded.
    pub app: Option<Protocol>,
    /// Distinct peer addresses (clients for an offered service, servers for a used one).
    pub peers: u64,
}

/// What a device did, as the agent knows it.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour<'a> {
    /// Distinct (field, value) facts describing the device.
    pub facts: &'a [(Field, &'a str)],
    /// Services it answered on.
    pub offered: &'a [ServiceUse],
    /// Services it connected to.
    pub used: &'a [ServiceUse],
    /// Distinct unicast IP addresses it sent packets from (a router forwards for many).
    pub source_addresses: usize,
}

/// One behavioural role and the observations behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// One of [`ROLES`].
    pub role: String,
    /// What was observed (`offered udp/67 (DHCP replies) to 3 clients`, `sent hl7.message_type ADT^A01`).
    pub evidence: Vec<String>,
}

/// A device sending packets from at least this many of its own unicast source addresses is
/// forwarding for others (hosts normally use one or two, plus an IPv6 link-local).
const ROUTER_SOURCE_ADDRESSES: usize = 6;

/// Listeners acknowledging at least this many distinct senders are hubs.
const HUB_SENDERS: u64 = 2;

/// Distinct OBX-18 equipment instances from one sender that make it a gateway.
const GATEWAY_INSTANCES: usize = 2;

/// HL7 v2 message types (MSH-9.1) an ordering or registration system sends: ADT (patient
/// administration), ORM/OMG/OML/OMI (orders), SIU (scheduling), MDM (documents), DFT/BAR
/// (financial), RDE/RDS (pharmacy orders). HL7 v2.5.1 Chapter 2 Table 0076.
const ORDER_EVENTS: &[&str] = &[
    "ADT", "ORM", "OMG", "OML", "OMI", "SIU", "MDM", "DFT", "BAR", "RDE", "RDS",
];

/// Result messages: ORU (observations), OUL (lab automation results), MDM excluded.
const RESULT_EVENTS: &[&str] = &["ORU", "OUL"];

/// Well-known ports whose answers are a role: DHCPv4/DHCPv6 servers (RFC 2131, RFC 8415), DNS
/// (RFC 1035), NTP (RFC 5905), raw printing (9100), IPP (RFC 8011), LPD (RFC 1179).
const PORT_ROLES: &[(bool, u16, &str, &str)] = &[
    (false, 67, "dhcp_server", "DHCP replies"),
    (false, 547, "dhcp_server", "DHCPv6 replies"),
    (false, 53, "dns_server", "DNS answers"),
    (true, 53, "dns_server", "DNS over TCP"),
    (false, 123, "ntp_server", "NTP answers"),
    (true, 9100, "print_server", "raw printing"),
    (true, 631, "print_server", "IPP"),
    (true, 515, "print_server", "LPD"),
];

/// The roles `b` shows, in [`ROLES`] order, each with its evidence.
pub fn derive(b: &Behaviour<'_>) -> Vec<RoleRecord> {
    let mut found: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut add =
        |role: &'static str, evidence: String| match found.iter_mut().find(|(r, _)| *r == role) {
            Some((_, ev)) => {
                if !ev.contains(&evidence) {
                    ev.push(evidence);
                }
            }
            None => found.push((role, vec![evidence])),
        };

    for s in b.offered {
        for &(tcp, port, role, what) in PORT_ROLES {
            if s.tcp == tcp && s.port == port {
                add(
                    role,
                    format!(
                        "offered {}/{port} ({what}) to {} peer(s)",
                        transport(tcp),
                        s.peers
                    ),
                );
            }
        }
    }

    // HL7: what it sends (message types land on the sender), whom it accepts feeds from.
    let mut order_types = BTreeSet::new();
    let mut result_types = BTreeSet::new();
    let mut acks = false;
    let mut instances = BTreeSet::new();
    for &(field, value) in b.facts {
        match field {
            Field::Hl7MessageType => {
                let event = value.split('^').next().unwrap_or_default();
                if ORDER_EVENTS.contains(&event) {
                    order_types.insert(value);
                } else if RESULT_EVENTS.contains(&event) {
                    result_types.insert(value);
                } else if event == "ACK" {
                    acks = true;
                }
            }
            Field::Hl7EquipmentInstance => {
                instances.insert(value);
            }
            _ => {}
        }
    }
    for t in order_types.iter().take(4) {
        add(
            "hl7_order_sender",
            format!("sent {} {t}", Field::Hl7MessageType.name()),
        );
    }
    for t in result_types.iter().take(4) {
        add(
            "hl7_result_sender",
            format!("sent {} {t}", Field::Hl7MessageType.name()),
        );
    }
    if !result_types.is_empty() && instances.len() >= GATEWAY_INSTANCES {
        add(
            "device_gateway",
            format!(
                "reported results for {} distinct devices ({})",
                instances.len(),
                Field::Hl7EquipmentInstance.name()
            ),
        );
    }
    let listens: Vec<&ServiceUse> = b
        .offered
        .iter()
        .filter(|s| s.app == Some(Protocol::Hl7))
        .collect();
    let sends = b.used.iter().any(|s| s.app == Some(Protocol::Hl7));
    for s in &listens {
        let ack = if acks { ", acknowledging (ACK)" } else { "" };
        add(
            "hl7_listener",
            format!(
                "accepted HL7 on {}/{} from {} sender(s){ack}",
                transport(s.tcp),
                s.port,
                s.peers
            ),
        );
    }
    let senders: u64 = listens.iter().map(|s| s.peers).sum();
    if senders >= HUB_SENDERS {
        add(
            "hl7_hub",
            format!("accepted HL7 feeds from {senders} senders"),
        );
    }
    if !listens.is_empty() && sends {
        add(
            "hl7_hub",
            "accepted HL7 feeds and sent HL7 to another system (relay)".to_owned(),
        );
    }
    // Device data: a client of a bedside device's data-export protocol (B. Braun BCC, IHE
    // PCD / IEEE 11073 SDC discovery) is what collects device data — a gateway, central station
    // or PDMS — not a bedside device itself.
    for s in b.used {
        if let Some(app @ (Protocol::Bcc | Protocol::Intellivue)) = s.app {
            add(
                "device_data_client",
                format!(
                    "polled a device's {} data export on {}/{}",
                    app.name(),
                    transport(s.tcp),
                    s.port
                ),
            );
        }
    }
    let announces_device = b
        .facts
        .iter()
        .any(|&(f, v)| f == Field::SdcType && v.ends_with("MedicalDevice"));
    if !announces_device
        && b.facts
            .iter()
            .any(|&(f, v)| f == Field::SdcMessage && (v == "Probe" || v == "Resolve"))
    {
        add(
            "device_data_client",
            format!(
                "searched for SDC medical devices ({} Probe/Resolve) without announcing one",
                Field::SdcMessage.name()
            ),
        );
    }
    // Lab: accepting ASTM or POCT1-A connections is what a LIS, lab middleware or a
    // point-of-care data manager does (analyzers connect to it).
    for s in b.offered {
        if let Some(app @ (Protocol::Astm | Protocol::Poct1a)) = s.app {
            add(
                "lab_middleware",
                format!(
                    "accepted {} from {} analyzer(s) on {}/{}",
                    app.name(),
                    s.peers,
                    transport(s.tcp),
                    s.port
                ),
            );
        }
        if s.app == Some(Protocol::Fhir) {
            add(
                "fhir_server",
                format!(
                    "served HL7 FHIR on {}/{} to {} client(s)",
                    transport(s.tcp),
                    s.port,
                    s.peers
                ),
            );
        }
    }
    if b.source_addresses >= ROUTER_SOURCE_ADDRESSES {
        add(
            "router",
            format!(
                "sent packets from {} different source addresses",
                b.source_addresses
            ),
        );
    }

    let mut out: Vec<RoleRecord> = found
        .into_iter()
        .map(|(role, evidence)| RoleRecord {
            role: role.to_owned(),
            evidence,
        })
        .collect();
    out.sort_by_key(|r| ROLES.iter().position(|x| *x == r.role));
    out
}

fn transport(tcp: bool) -> &'static str {
    if tcp {
        "tcp"
    } else {
        "udp"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(b: &Behaviour<'_>) -> Vec<String> {
        derive(b).into_iter().map(|r| r.role).collect()
    }

    const NONE: Behaviour<'static> = Behaviour {
        facts: &[],
        offered: &[],
        used: &[],
        source_addresses: 1,
    };

    #[test]
    fn a_dhcp_server_answers_from_port_67() {
        let offered = [ServiceUse {
            tcp: false,
            port: 67,
            app: None,
            peers: 2,
        }];
        let b = Behaviour {
            offered: &offered,
            ..NONE
        };
        let r = derive(&b);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].role, "dhcp_server");
        assert_eq!(
            r[0].evidence,
            ["offered udp/67 (DHCP replies) to 2 peer(s)"]
        );
        assert!(roles(&NONE).is_empty());
    }

    #[test]
    fn hl7_senders_listeners_hubs_and_gateways() {
        let facts = [
            (Field::Hl7MessageType, "ADT^A01^ADT_A01"),
            (Field::Hl7MessageType, "ORU^R01^ORU_R01"),
            (Field::Hl7EquipmentInstance, "00A0379AFFFE5303^EUI-64"),
            (Field::Hl7EquipmentInstance, "00A0379AFFFE5304^EUI-64"),
        ];
        let b = Behaviour {
            facts: &facts,
            ..NONE
        };
        assert_eq!(
            roles(&b),
            ["hl7_order_sender", "hl7_result_sender", "device_gateway"]
        );

        let one = [ServiceUse {
            tcp: true,
            port: 2575,
            app: Some(Protocol::Hl7),
            peers: 1,
        }];
        let ack = [(Field::Hl7MessageType, "ACK^A01^ACK")];
        let b = Behaviour {
            facts: &ack,
            offered: &one,
            ..NONE
        };
        let r = derive(&b);
        assert_eq!(roles(&b), ["hl7_listener"]);
        assert_eq!(
            r[0].evidence,
            ["accepted HL7 on tcp/2575 from 1 sender(s), acknowledging (ACK)"]
        );
        let b = Behaviour {
            facts: &ack,
            offered: &one,
            used: &one,
            ..NONE
        };
        assert_eq!(roles(&b), ["hl7_listener", "hl7_hub"]);
        let two = [ServiceUse { peers: 3, ..one[0] }];
        let b = Behaviour {
            offered: &two,
            ..NONE
        };
        assert_eq!(roles(&b), ["hl7_listener", "hl7_hub"]);
    }

    #[test]
    fn one_equipment_instance_is_not_a_gateway_and_many_addresses_are_a_router() {
        let facts = [
            (Field::Hl7MessageType, "ORU^R01^ORU_R01"),
            (Field::Hl7EquipmentInstance, "00A0379AFFFE5303^EUI-64"),
        ];
        let b = Behaviour {
            facts: &facts,
            source_addresses: ROUTER_SOURCE_ADDRESSES,
            ..NONE
        };
        assert_eq!(roles(&b), ["hl7_result_sender", "router"]);
    }

    #[test]
    fn every_role_is_in_the_vocabulary() {
        for &(_, _, role, _) in PORT_ROLES {
            assert!(ROLES.contains(&role), "{role}");
        }
    }
}
