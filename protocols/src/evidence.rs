//! The evidence type: one identity fact seen on the wire, with where and when it was seen.
//!
//! [`Field`] is the allow-list. A value can only leave this crate attached to one of these
//! variants, so adding a field is a deliberate, reviewable act; none of them can hold patient
//! data (see ARCHITECTURE.md, "Patient data").

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! protocols {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal; )*) => {
        /// Application protocol a fact was extracted from: the id of one registered decoder
        /// ([`crate::registry`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Protocol {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl Protocol {
            /// Every protocol, in declaration order ([`Protocol::index`] is the position here).
            pub const ALL: &'static [Protocol] = &[$(Protocol::$variant,)*];

            /// Stable lowercase name used in JSON, rules, logs and the collector's database
            /// (e.g. `dicom`); also the prefix of its fields' names.
            pub const fn name(self) -> &'static str {
                match self { $( Protocol::$variant => $name, )* }
            }
        }
    };
}

protocols! {
    /// DICOM Upper Layer (PS3.8) and DIMSE.
    Dicom => "dicom";
    /// HL7 version 2 over MLLP.
    Hl7 => "hl7";
    /// DHCPv4.
    Dhcp => "dhcp";
}

impl Protocol {
    /// Number of protocols: the length of per-protocol tables such as
    /// [`crate::dissect::DissectStats::apps`].
    pub const COUNT: usize = Protocol::ALL.len();

    /// Position in [`Protocol::ALL`]: the index of per-protocol tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The protocol called `name` (as [`Protocol::name`] spells it).
    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.iter().copied().find(|p| p.name() == name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! fields {
    ($( $(#[$doc:meta])* $variant:ident => $proto:ident, $name:literal; )*) => {
        /// Every identity field ward extracts. This enum is the extraction allow-list.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Field {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl Field {
            /// Every field, in declaration order.
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];

            /// Stable dotted name used in JSON, rules and logs (e.g. `dicom.calling_ae`).
            pub const fn name(self) -> &'static str {
                match self { $( Field::$variant => $name, )* }
            }

            /// Protocol the field belongs to.
            pub const fn protocol(self) -> Protocol {
                match self { $( Field::$variant => Protocol::$proto, )* }
            }
        }
    };
}

fields! {
    /// A-ASSOCIATE-RQ/AC called AE title (the acceptor's name), trimmed.
    DicomCalledAe => Dicom, "dicom.called_ae";
    /// A-ASSOCIATE-RQ/AC calling AE title (the requestor's name), trimmed.
    DicomCallingAe => Dicom, "dicom.calling_ae";
    /// Application context name UID.
    DicomApplicationContext => Dicom, "dicom.application_context";
    /// Abstract syntax (SOP class UID) proposed in an A-ASSOCIATE-RQ presentation context.
    DicomAbstractSyntax => Dicom, "dicom.abstract_syntax";
    /// Well-known name of a proposed SOP class, e.g. `CT Image Storage`.
    DicomSopClass => Dicom, "dicom.sop_class";
    /// Role hint derived from a proposed SOP class, e.g. `modality_storage_scu`.
    DicomRoleHint => Dicom, "dicom.role_hint";
    /// A-ASSOCIATE-AC presentation context result as `<context id>:<result name>`; when the
    /// RQ was seen, `<abstract syntax>:<result name>`.
    DicomContextResult => Dicom, "dicom.context_result";
    /// Transfer syntax accepted for a presentation context (from the AC).
    DicomTransferSyntax => Dicom, "dicom.transfer_syntax";
    /// User information: implementation class UID.
    DicomImplementationClassUid => Dicom, "dicom.implementation_class_uid";
    /// User information: implementation version name.
    DicomImplementationVersion => Dicom, "dicom.implementation_version";
    /// User information: maximum PDU length the sender can receive.
    DicomMaxPduLength => Dicom, "dicom.max_pdu_length";
    /// A-ASSOCIATE-RJ as `result=…,source=…,reason=…`.
    DicomReject => Dicom, "dicom.reject";
    /// A-ABORT as `source=…,reason=…`.
    DicomAbort => Dicom, "dicom.abort";
    /// A-RELEASE-RQ or A-RELEASE-RP seen.
    DicomRelease => Dicom, "dicom.release";
    /// DIMSE command of a P-DATA command fragment, e.g. `C-STORE-RQ`.
    DicomCommand => Dicom, "dicom.command";
    /// Affected SOP class UID (0000,0002) of a DIMSE command.
    DicomAffectedSopClass => Dicom, "dicom.affected_sop_class";
    /// Dataset (0008,0060) Modality.
    DicomModality => Dicom, "dicom.modality";
    /// Dataset (0008,0070) Manufacturer.
    DicomManufacturer => Dicom, "dicom.manufacturer";
    /// Dataset (0008,1010) Station Name.
    DicomStationName => Dicom, "dicom.station_name";
    /// Dataset (0008,1090) Manufacturer's Model Name.
    DicomModelName => Dicom, "dicom.model_name";
    /// Dataset (0018,1000) Device Serial Number.
    DicomDeviceSerialNumber => Dicom, "dicom.device_serial_number";
    /// Dataset (0018,1020) Software Versions (each value of a multi-valued element).
    DicomSoftwareVersions => Dicom, "dicom.software_versions";

    /// MSH-3 sending application (all components, as sent, unescaped).
    Hl7SendingApplication => Hl7, "hl7.sending_application";
    /// MSH-4 sending facility.
    Hl7SendingFacility => Hl7, "hl7.sending_facility";
    /// MSH-5 receiving application.
    Hl7ReceivingApplication => Hl7, "hl7.receiving_application";
    /// MSH-6 receiving facility.
    Hl7ReceivingFacility => Hl7, "hl7.receiving_facility";
    /// MSH-9 message type, e.g. `ORU^R01^ORU_R01`.
    Hl7MessageType => Hl7, "hl7.message_type";
    /// MSH-11 processing id.
    Hl7ProcessingId => Hl7, "hl7.processing_id";
    /// MSH-12 version id.
    Hl7Version => Hl7, "hl7.version";
    /// MSH-21 message profile identifier (each repetition).
    Hl7Profile => Hl7, "hl7.profile";
    /// OBX-18 equipment instance identifier (each repetition).
    Hl7EquipmentInstance => Hl7, "hl7.equipment_instance";
    /// OBX-3 observation identifier, only when it names a device (`MDC_DEV_*`).
    Hl7DeviceCode => Hl7, "hl7.device_code";
    /// PRT-10 participation device, only for equipment participations.
    Hl7ParticipationDevice => Hl7, "hl7.participation_device";
    /// PRT-16 participation device UDI identifier, only for equipment participations.
    Hl7Udi => Hl7, "hl7.udi";
    /// DEV-5 device manufacturer.
    Hl7DeviceManufacturer => Hl7, "hl7.device_manufacturer";
    /// DEV-7 device model.
    Hl7DeviceModel => Hl7, "hl7.device_model";
    /// DEV-11 device serial number.
    Hl7DeviceSerial => Hl7, "hl7.device_serial";
    /// DEV-16 device software version.
    Hl7DeviceSoftwareVersion => Hl7, "hl7.device_software_version";

    /// DHCP message type (option 53), e.g. `DISCOVER`.
    DhcpMessageType => Dhcp, "dhcp.message_type";
    /// Client hardware address (chaddr) for Ethernet clients, `aa:bb:cc:dd:ee:ff`, in requests
    /// and replies: the device the message is about.
    DhcpClientMac => Dhcp, "dhcp.client_mac";
    /// Option 12 host name.
    DhcpHostname => Dhcp, "dhcp.hostname";
    /// Option 50 requested IP address.
    DhcpRequestedIp => Dhcp, "dhcp.requested_ip";
    /// Option 55 parameter request list in on-wire order, e.g. `1,3,6,15`.
    DhcpParameterRequestList => Dhcp, "dhcp.parameter_request_list";
    /// Option 60 vendor class identifier.
    DhcpVendorClass => Dhcp, "dhcp.vendor_class";
    /// Option 61 client identifier, as lowercase hex of the raw bytes.
    DhcpClientId => Dhcp, "dhcp.client_id";
    /// Option 81 client FQDN (domain name part).
    DhcpFqdn => Dhcp, "dhcp.fqdn";
    /// yiaddr of an OFFER or ACK: the address the server gives the client.
    DhcpYourIp => Dhcp, "dhcp.your_ip";
    /// Codes of all options present, in on-wire order, e.g. `53,61,50,12,55`.
    DhcpOptionOrder => Dhcp, "dhcp.option_order";
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One allow-listed value extracted by a parser, before the flow context is attached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fact {
    /// Which field.
    pub field: Field,
    /// The value, as text.
    pub value: String,
}

impl Fact {
    /// Builds a fact.
    pub fn new(field: Field, value: impl Into<String>) -> Self {
        Fact {
            field,
            value: value.into(),
        }
    }
}

/// Longest value, in characters, that [`clean_text`] keeps: identity fields are short, so
/// anything longer is cut rather than letting one packet allocate without bound.
pub const MAX_VALUE_CHARS: usize = 256;

/// Turns raw protocol bytes into a printable value: bytes are read as Latin-1 (a superset of the
/// ASCII all these fields are meant to be), control characters become U+FFFD so a value can never
/// forge a log line, surrounding spaces and NULs are trimmed, and at most [`MAX_VALUE_CHARS`]
/// characters are kept.
pub fn clean_text(raw: &[u8]) -> String {
    let trimmed = trim_padding(raw);
    // Nearly every value is short printable ASCII: copy it whole instead of char by char.
    if trimmed.len() <= MAX_VALUE_CHARS && trimmed.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        if let Ok(s) = core::str::from_utf8(trimmed) {
            return s.to_owned();
        }
    }
    trimmed
        .iter()
        .take(MAX_VALUE_CHARS)
        .map(|&b| {
            if b < 0x20 || b == 0x7f || (0x80..0xa0).contains(&b) {
                '\u{fffd}'
            } else {
                char::from(b)
            }
        })
        .collect()
}

fn trim_padding(mut raw: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = raw {
        if *first == b' ' || *first == 0 {
            raw = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = raw {
        if *last == b' ' || *last == 0 {
            raw = rest;
        } else {
            break;
        }
    }
    raw
}

/// Direction of the packet that carried a fact, relative to the conversation: known from the
/// TCP handshake, or for a datagram from the message itself (a DHCP BOOTREQUEST is the
/// client's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the side that opened the connection (sent the SYN) or the DICOM requestor, or from
    /// a DHCP client.
    FromClient,
    /// From the side that accepted the connection, or from a DHCP server.
    FromServer,
    /// Not known: a capture that started mid-connection.
    Unknown,
}

/// A MAC address, serialised as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Error parsing a [`MacAddr`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets separated by ':' or '-'")]
pub struct MacParseError(String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for slot in &mut out {
            let part = parts.next().ok_or_else(|| MacParseError(s.to_owned()))?;
            if part.len() != 2 {
                return Err(MacParseError(s.to_owned()));
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| MacParseError(s.to_owned()))?;
        }
        if parts.next().is_some() {
            return Err(MacParseError(s.to_owned()));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a fact was seen: link and network endpoints of the carrying packet (sender first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoints {
    /// Source MAC, when the link type has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_mac: Option<MacAddr>,
    /// Destination MAC, when the link type has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_mac: Option<MacAddr>,
    /// VLAN ids, outermost first (802.1ad S-tag then 802.1Q C-tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<u16>,
    /// Source IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    /// Destination IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    /// Source TCP/UDP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination TCP/UDP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
}

/// One fact with its context: what the agent aggregates into its device table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Capture time of the packet that completed the fact, microseconds since the Unix epoch.
    pub time_us: i64,
    /// Protocol the fact came from.
    pub protocol: Protocol,
    /// Which allow-listed field.
    pub field: Field,
    /// The value.
    pub value: String,
    /// Direction of the carrying packet.
    pub direction: Direction,
    /// Endpoints of the carrying packet.
    pub endpoints: Endpoints,
}

impl Evidence {
    /// Attaches context to a fact.
    pub fn new(fact: Fact, time_us: i64, direction: Direction, endpoints: Endpoints) -> Self {
        Evidence {
            time_us,
            protocol: fact.field.protocol(),
            field: fact.field,
            value: fact.value,
            direction,
            endpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_unique_and_prefixed_by_protocol() {
        let mut seen = std::collections::HashSet::new();
        for f in Field::ALL {
            assert!(seen.insert(f.name()), "duplicate {}", f.name());
            let proto = serde_json::to_string(&f.protocol()).unwrap();
            assert!(
                f.name().starts_with(proto.trim_matches('"')),
                "{}",
                f.name()
            );
            let json = serde_json::to_string(f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.name()));
        }
    }

    #[test]
    fn clean_text_trims_and_neutralises_controls() {
        assert_eq!(clean_text(b"  STORESCU   \0"), "STORESCU");
        assert_eq!(clean_text(b"a\nb"), "a\u{fffd}b");
        assert_eq!(clean_text(&[b'x'; 1000]).len(), MAX_VALUE_CHARS);
        assert_eq!(clean_text(b""), "");
    }

    #[test]
    fn mac_round_trips() {
        let m: MacAddr = "00:A0:37:9a:00:53".parse().unwrap();
        assert_eq!(m.to_string(), "00:a0:37:9a:00:53");
        assert!("00:a0:37".parse::<MacAddr>().is_err());
        assert!("00:a0:37:9a:00:53:01".parse::<MacAddr>().is_err());
    }
}
