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
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, patient_data: $phi:literal
        $(, encrypted: $enc:literal)?; )*) => {
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

            /// Whether the protocol carries patient data in clear (a service speaking it is a
            /// cleartext-PHI finding when a contract requires encryption in transit, and a device
            /// speaking it is medical equipment whatever its type).
            pub const fn carries_patient_data(self) -> bool {
                match self { $( Protocol::$variant => $phi, )* }
            }

            /// Whether the protocol encrypts what it carries (TLS): a service seen speaking it
            /// is encrypted in transit, whatever application (DICOM on 2762, HL7, HTTPS) runs
            /// inside, so it is never a cleartext-PHI finding. Rows without `encrypted:` are
            /// cleartext.
            pub const fn encrypts_transport(self) -> bool {
                match self { $( Protocol::$variant => protocols!(@enc $($enc)?), )* }
            }
        }
    };
    (@enc $enc:literal) => { $enc };
    (@enc) => { false };
}

protocols! {
    /// DICOM Upper Layer (PS3.8) and DIMSE.
    Dicom => "dicom", patient_data: true;
    /// HL7 version 2 over MLLP.
    Hl7 => "hl7", patient_data: true;
    /// DHCPv4.
    Dhcp => "dhcp", patient_data: false;
    /// HTTP/1.x message heads. `patient_data: false` although request targets and bodies can
    /// carry patient data: only allow-listed headers are read (and, of bodies, only a UPnP device
    /// description's allow-listed elements, as [`Protocol::Ssdp`] facts), and a device speaking
    /// HTTP is not medical equipment for it.
    Http => "http", patient_data: false;
    /// SSH identification strings (RFC 4253 §4.2).
    Ssh => "ssh", patient_data: false, encrypted: true;
    /// TLS handshake (any version; the application data inside is never read).
    Tls => "tls", patient_data: false, encrypted: true;
    /// Multicast DNS / DNS-SD (RFC 6762/6763): records a device announces about itself; only
    /// allow-listed TXT keys are read.
    Mdns => "mdns", patient_data: false;
    /// SSDP (UPnP discovery): the allow-listed headers of a device's NOTIFY or search answer,
    /// and the allow-listed elements of the UPnP device description its `LOCATION` points to
    /// (an HTTP response body, read by [`crate::upnp`] from the HTTP decoder).
    Ssdp => "ssdp", patient_data: false;
    /// SNMP v1/v2c: three system-group values of an agent's GetResponse. The community string
    /// is never read.
    Snmp => "snmp", patient_data: false;
    /// Link-Local Multicast Name Resolution (RFC 4795): names a device answers for, and (as a
    /// hint only) names it asks for.
    Llmnr => "llmnr", patient_data: false;
    /// NetBIOS name service (RFC 1001/1002): names a host registers and answers for.
    Nbns => "nbns", patient_data: false;
    /// DHCPv6 (RFC 8415): what a client's messages say about it.
    Dhcpv6 => "dhcpv6", patient_data: false;
    /// Unicast DNS (RFC 1035): names a device asks for, names a server answers for.
    Dns => "dns", patient_data: false;
    /// LLDP (IEEE 802.1AB) with the LLDP-MED extensions (ANSI/TIA-1057): what a device
    /// announces about itself to its link neighbour, over Ethernet with no IP layer.
    Lldp => "lldp", patient_data: false;
    /// Cisco Discovery Protocol (802.3 + LLC/SNAP): the same announcement, Cisco's way.
    Cdp => "cdp", patient_data: false;
    /// IEEE 11073 SDC: WS-Discovery over UDP (and, read by the HTTP decoder, the DPWS metadata
    /// of a GetMetadata response). `patient_data: true` for the protocol family: BICEPS carries
    /// patient context states, metric values and reports in the SOAP messages that follow
    /// discovery, so a provider seen in clear is a `cleartext_phi_protocol` finding under a
    /// contract requiring encryption, although the discovery datagrams themselves carry none
    /// (patient scopes are skipped unread).
    Sdc => "sdc", patient_data: true;
    /// ASTM E1381/E1394 (CLSI LIS1-A/LIS2-A2) between lab analyzers and the LIS: patients,
    /// orders and results in clear; only the Header record is read.
    Astm => "astm", patient_data: true;
    /// Philips IntelliVue Data Export (LAN): a patient monitor's Connect Indication and MDS
    /// Create Event Report; polls carry patient demographics and measurements in clear (never
    /// read).
    Intellivue => "intellivue", patient_data: true;
    /// POCT1-A (CLSI POCT1-A2) XML device messaging: a point-of-care analyzer's hello and status;
    /// observations carry patient and operator records in clear (never read).
    Poct1a => "poct1a", patient_data: true;
    /// B. Braun Space communication (BCC): a SpaceCom's answers about the pumps in its rack;
    /// they carry patient identifiers and demographics in clear (never read).
    Bcc => "bcc", patient_data: true;
    /// HL7 FHIR (R4/R5) REST over HTTP: resources as JSON bodies; patients, observations and
    /// orders in clear unless HTTPS. Only `Device`/`DeviceDefinition` identity is read.
    Fhir => "fhir", patient_data: true;
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

/// Which device a fact describes, relative to the message that carried it. The agent attributes
/// each fact with this and the message's [`Direction`]; a field never describes "whoever sent
/// it" by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Describes {
    /// The device that sent the message (an HL7 message's MSH-3/4, a DICOM PDU's user
    /// information: every message speaks for its sender).
    Sender,
    /// The device the message was sent to (HL7 MSH-5/6).
    Receiver,
    /// The side that opened the conversation: the TCP client, the DICOM association requestor
    /// (the calling AE). Needs the direction; dropped when it is unknown.
    Client,
    /// The side that accepted it: the TCP server, the DICOM acceptor (the called AE). Needs the
    /// direction; dropped when it is unknown.
    Server,
    /// The sender, and only in messages the client sent: a dataset pushed with C-STORE by the
    /// requestor describes the modality that made it; one an archive returns for a C-GET describes
    /// some other device and is not attributed.
    SenderIfClient,
    /// The device the message names with its [`Attribute::SubjectMac`] fact (a DHCP message's
    /// chaddr: a relayed request's sender is the relay, not the client), else the sender.
    Named,
    /// Like [`Describes::Named`], but only in messages the client sent: in a server's reply
    /// the fact describes the server's stack, not the client, and is not attributed.
    NamedIfClient,
}

/// The endpoint a [`Describes`] resolves to once the message's direction is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    /// The packet's sender.
    Sender,
    /// The packet's receiver.
    Receiver,
    /// The device the message names (see [`Describes::Named`]); the sender when it names none.
    Named,
}

impl Describes {
    /// The endpoint described, for a message travelling `dir`; `None` when that cannot be told
    /// (or the fact describes no endpoint of this message) and the fact is not attributed.
    pub const fn resolve(self, dir: Direction) -> Option<Party> {
        match (self, dir) {
            (Describes::Sender, _) => Some(Party::Sender),
            (Describes::Receiver, _) => Some(Party::Receiver),
            (Describes::Client, Direction::FromClient)
            | (Describes::Server, Direction::FromServer)
            | (Describes::SenderIfClient, Direction::FromClient) => Some(Party::Sender),
            (Describes::Client, Direction::FromServer)
            | (Describes::Server, Direction::FromClient) => Some(Party::Receiver),
            (Describes::Named, _) | (Describes::NamedIfClient, Direction::FromClient) => {
                Some(Party::Named)
            }
            (Describes::Client | Describes::Server, Direction::Unknown)
            | (Describes::SenderIfClient | Describes::NamedIfClient, _) => None,
        }
    }
}

/// How strongly a field's value identifies one physical device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A manufacturer serial number: merges devices (placeholder serials are refused).
    Serial,
    /// A GS1 UDI (its serial, AI 21, links to asset registers).
    Udi,
    /// A value that may carry an IEEE EUI-64 (`<16 hex digits>^EUI-64`): merges devices when it
    /// does.
    Eui64,
    /// Names a device but is not unique or stable (application titles, host names): recorded
    /// and searched, never merged on.
    Weak,
    /// Not an identity.
    None,
}

impl Identity {
    /// Whether two devices reporting the same value are the same device.
    pub const fn is_strong(self) -> bool {
        matches!(self, Identity::Serial | Identity::Udi | Identity::Eui64)
    }
}

/// What a field's value says about the device it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// The manufacturer, as the device names it.
    Manufacturer,
    /// The model, as the device names it.
    Model,
    /// A version of the device's software (the history patch-SLA review reads).
    SoftwareVersion,
    /// The device's serial number.
    Serial,
    /// A host or station name.
    HostName,
    /// The name of an application on the device (a DICOM AE title, an HL7 application).
    ApplicationName,
    /// Hints at what kind of device it is (modality, role, device code, vendor class).
    TypeHint,
    /// The MAC address of the device the message is about: resolves [`Describes::Named`].
    SubjectMac,
    /// An IP address the device is given: recorded with its addresses, not as a fact.
    AssignedAddress,
    /// A host name the device reached out to (a TLS ClientHello's SNI, a DNS question): says
    /// whom the device talks to — a vendor's cloud, a remote-desktop relay — never who it is.
    /// The collector's remote-access check reads it.
    ContactedName,
    /// None of these.
    None,
}

macro_rules! fields {
    ($(
        $(#[$doc:meta])*
        $variant:ident => $proto:ident, $name:literal,
            $describes:ident, $identity:ident, $attribute:ident, $vendor:ident;
    )*) => {
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

            /// Which device the fact describes.
            pub const fn describes(self) -> Describes {
                match self { $( Field::$variant => Describes::$describes, )* }
            }

            /// How strongly the value identifies the device.
            pub const fn identity(self) -> Identity {
                match self { $( Field::$variant => Identity::$identity, )* }
            }

            /// What the value says about the device.
            pub const fn attribute(self) -> Attribute {
                match self { $( Field::$variant => Attribute::$attribute, )* }
            }

            /// Whether a vendor's token may see the value on its own devices. Nothing that can
            /// name the other end of a conversation (AE titles, HL7 applications and
            /// facilities, peers' addresses) is.
            pub const fn vendor_visible(self) -> bool {
                match self { $( Field::$variant => fields!(@vendor $vendor), )* }
            }
        }
    };
    (@vendor vendor) => { true };
    (@vendor private) => { false };
}

// One row per field: variant => protocol, wire name,
//     which device it describes (`Describes`), identity strength (`Identity`),
//     attribute role (`Attribute`), `vendor` (a vendor token may see it) or `private`.
fields! {
    /// A-ASSOCIATE-RQ/AC called AE title (the acceptor's name), trimmed.
    DicomCalledAe => Dicom, "dicom.called_ae",
        Server, Weak, ApplicationName, private;
    /// A-ASSOCIATE-RQ/AC calling AE title (the requestor's name), trimmed.
    DicomCallingAe => Dicom, "dicom.calling_ae",
        Client, Weak, ApplicationName, private;
    /// Application context name UID.
    DicomApplicationContext => Dicom, "dicom.application_context",
        Sender, None, None, private;
    /// Abstract syntax (SOP class UID) proposed in an A-ASSOCIATE-RQ presentation context.
    DicomAbstractSyntax => Dicom, "dicom.abstract_syntax",
        Sender, None, None, private;
    /// Well-known name of a proposed SOP class, e.g. `CT Image Storage`.
    DicomSopClass => Dicom, "dicom.sop_class",
        Sender, None, None, private;
    /// Role hint derived from a proposed SOP class, e.g. `modality_storage_scu`.
    DicomRoleHint => Dicom, "dicom.role_hint",
        Sender, None, TypeHint, private;
    /// A-ASSOCIATE-AC presentation context result as `<context id>:<result name>`; when the
    /// RQ was seen, `<abstract syntax>:<result name>`.
    DicomContextResult => Dicom, "dicom.context_result",
        Sender, None, None, private;
    /// Transfer syntax accepted for a presentation context (from the AC).
    DicomTransferSyntax => Dicom, "dicom.transfer_syntax",
        Sender, None, None, private;
    /// User information: implementation class UID.
    DicomImplementationClassUid => Dicom, "dicom.implementation_class_uid",
        Sender, None, None, vendor;
    /// User information: implementation version name.
    DicomImplementationVersion => Dicom, "dicom.implementation_version",
        Sender, None, SoftwareVersion, vendor;
    /// User information: maximum PDU length the sender can receive.
    DicomMaxPduLength => Dicom, "dicom.max_pdu_length",
        Sender, None, None, private;
    /// A-ASSOCIATE-RJ as `result=…,source=…,reason=…`.
    DicomReject => Dicom, "dicom.reject",
        Sender, None, None, private;
    /// A-ABORT as `source=…,reason=…`.
    DicomAbort => Dicom, "dicom.abort",
        Sender, None, None, private;
    /// A-RELEASE-RQ or A-RELEASE-RP seen.
    DicomRelease => Dicom, "dicom.release",
        Sender, None, None, private;
    /// DIMSE command of a P-DATA command fragment, e.g. `C-STORE-RQ`.
    DicomCommand => Dicom, "dicom.command",
        Sender, None, None, private;
    /// Affected SOP class UID (0000,0002) of a DIMSE command.
    DicomAffectedSopClass => Dicom, "dicom.affected_sop_class",
        Sender, None, None, private;
    /// Dataset (0008,0060) Modality.
    DicomModality => Dicom, "dicom.modality",
        SenderIfClient, None, TypeHint, vendor;
    /// Dataset (0008,0070) Manufacturer.
    DicomManufacturer => Dicom, "dicom.manufacturer",
        SenderIfClient, None, Manufacturer, vendor;
    /// Dataset (0008,1010) Station Name.
    DicomStationName => Dicom, "dicom.station_name",
        SenderIfClient, None, HostName, private;
    /// Dataset (0008,1090) Manufacturer's Model Name.
    DicomModelName => Dicom, "dicom.model_name",
        SenderIfClient, None, Model, vendor;
    /// Dataset (0018,1000) Device Serial Number.
    DicomDeviceSerialNumber => Dicom, "dicom.device_serial_number",
        SenderIfClient, Serial, Serial, vendor;
    /// Dataset (0018,1020) Software Versions (each value of a multi-valued element).
    DicomSoftwareVersions => Dicom, "dicom.software_versions",
        SenderIfClient, None, SoftwareVersion, vendor;

    /// MSH-3 sending application (all components, as sent, unescaped).
    Hl7SendingApplication => Hl7, "hl7.sending_application",
        Sender, None, ApplicationName, private;
    /// MSH-4 sending facility.
    Hl7SendingFacility => Hl7, "hl7.sending_facility",
        Sender, None, None, private;
    /// MSH-5 receiving application.
    Hl7ReceivingApplication => Hl7, "hl7.receiving_application",
        Receiver, None, ApplicationName, private;
    /// MSH-6 receiving facility.
    Hl7ReceivingFacility => Hl7, "hl7.receiving_facility",
        Receiver, None, None, private;
    /// MSH-9 message type, e.g. `ORU^R01^ORU_R01`.
    Hl7MessageType => Hl7, "hl7.message_type",
        Sender, None, None, private;
    /// MSH-11 processing id.
    Hl7ProcessingId => Hl7, "hl7.processing_id",
        Sender, None, None, private;
    /// MSH-12 version id.
    Hl7Version => Hl7, "hl7.version",
        Sender, None, None, private;
    /// MSH-21 message profile identifier (each repetition).
    Hl7Profile => Hl7, "hl7.profile",
        Sender, None, None, private;
    /// OBX-18 equipment instance identifier (each repetition). Attributed to the sender: the
    /// device reporting its own observations, or the gateway reporting for it.
    Hl7EquipmentInstance => Hl7, "hl7.equipment_instance",
        Sender, Eui64, None, vendor;
    /// OBX-3 observation identifier, only when it names a device (`MDC_DEV_*`).
    Hl7DeviceCode => Hl7, "hl7.device_code",
        Sender, None, TypeHint, vendor;
    /// PRT-10 participation device, only for equipment participations.
    Hl7ParticipationDevice => Hl7, "hl7.participation_device",
        Sender, None, None, private;
    /// PRT-16 participation device UDI identifier, only for equipment participations.
    Hl7Udi => Hl7, "hl7.udi",
        Sender, Udi, None, vendor;
    /// DEV-5 device manufacturer.
    Hl7DeviceManufacturer => Hl7, "hl7.device_manufacturer",
        Sender, None, Manufacturer, vendor;
    /// DEV-7 device model.
    Hl7DeviceModel => Hl7, "hl7.device_model",
        Sender, None, Model, vendor;
    /// DEV-11 device serial number.
    Hl7DeviceSerial => Hl7, "hl7.device_serial",
        Sender, Serial, Serial, vendor;
    /// DEV-16 device software version.
    Hl7DeviceSoftwareVersion => Hl7, "hl7.device_software_version",
        Sender, None, SoftwareVersion, vendor;

    /// DHCP message type (option 53), e.g. `DISCOVER`.
    DhcpMessageType => Dhcp, "dhcp.message_type",
        NamedIfClient, None, None, private;
    /// Client hardware address (chaddr) for Ethernet clients, `aa:bb:cc:dd:ee:ff`, in requests
    /// and replies: the device the message is about.
    DhcpClientMac => Dhcp, "dhcp.client_mac",
        Named, None, SubjectMac, private;
    /// Option 12 host name.
    DhcpHostname => Dhcp, "dhcp.hostname",
        Named, Weak, HostName, vendor;
    /// Option 50 requested IP address.
    DhcpRequestedIp => Dhcp, "dhcp.requested_ip",
        Named, None, None, private;
    /// Option 55 parameter request list in on-wire order, e.g. `1,3,6,15`.
    DhcpParameterRequestList => Dhcp, "dhcp.parameter_request_list",
        Named, None, None, vendor;
    /// Option 60 vendor class identifier.
    DhcpVendorClass => Dhcp, "dhcp.vendor_class",
        Named, None, TypeHint, vendor;
    /// Option 61 client identifier, as lowercase hex of the raw bytes.
    DhcpClientId => Dhcp, "dhcp.client_id",
        Named, None, None, private;
    /// Option 81 client FQDN (domain name part).
    DhcpFqdn => Dhcp, "dhcp.fqdn",
        Named, Weak, HostName, private;
    /// yiaddr of an OFFER or ACK: the address the server gives the client.
    DhcpYourIp => Dhcp, "dhcp.your_ip",
        Named, None, AssignedAddress, private;
    /// Option 77 user class, one fact per class (RFC 3004 instances, or the one plain string
    /// Windows, ISC dhclient and iPXE send): a class the client's software or its administrator
    /// configured (`iPXE`, a site's device group).
    DhcpUserClass => Dhcp, "dhcp.user_class",
        Named, None, TypeHint, vendor;
    /// Codes of the encapsulated sub-options of a client's option 43, in wire order (`1,2`):
    /// the shape of its vendor's format.
    DhcpVendorOptionCodes => Dhcp, "dhcp.vendor_option_codes",
        Named, None, None, vendor;
    /// A printable sub-option value of a client's option 43 as `<code>=<text>`
    /// (`1=WardPump-500`). Private: its meaning is the vendor's, and ward cannot tell a model
    /// string from a site setting.
    DhcpVendorOption => Dhcp, "dhcp.vendor_option",
        Named, None, TypeHint, private;
    /// Codes of all options present, in on-wire order, e.g. `53,61,50,12,55`.
    DhcpOptionOrder => Dhcp, "dhcp.option_order",
        NamedIfClient, None, None, private;

    // HTTP: header values chosen by software, never the request target, body or cookies.
    /// Request `User-Agent`: the client's software, often the device's model and firmware.
    HttpUserAgent => Http, "http.user_agent",
        Client, None, TypeHint, vendor;
    /// The serial number an embedded client names in its `User-Agent` as a key-value pair
    /// (`SN=…`, `Serial: …`, `S/N …`): links the device to the asset register.
    HttpUserAgentSerial => Http, "http.user_agent_serial",
        Client, Serial, Serial, vendor;
    /// Request `Host` as sent (name or address, with the port if given): the name the client
    /// addresses the server by. Private: the client chose it.
    HttpHost => Http, "http.host",
        Server, Weak, HostName, private;
    /// Response `Server`: the server's software (an embedded web server names its device).
    HttpServer => Http, "http.server",
        Server, None, TypeHint, vendor;
    /// Response `X-Powered-By`: the server's application framework.
    HttpPoweredBy => Http, "http.x_powered_by",
        Server, None, TypeHint, vendor;
    /// The `realm` of a response's `WWW-Authenticate` challenge (devices name themselves
    /// there); no other part of the challenge.
    HttpAuthRealm => Http, "http.auth_realm",
        Server, None, TypeHint, vendor;

    /// SSH identification string (`SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5`): each side's
    /// describes that side (the client's the client, the server's the server).
    SshBanner => Ssh, "ssh.banner",
        Sender, None, TypeHint, vendor;
    /// The banner's softwareversion token (`OpenSSH_9.6p1`).
    SshSoftwareVersion => Ssh, "ssh.software_version",
        Sender, None, SoftwareVersion, vendor;
    /// ClientHello server_name (SNI): the host name the client asks for. It names the other
    /// end, so it is the client's "talks to" evidence (vendor clouds, remote-service portals),
    /// never the server's name: one server answers to many names, and an internet server's
    /// packets carry the router's MAC.
    TlsServerName => Tls, "tls.server_name",
        Client, None, ContactedName, private;
    /// ClientHello ALPN protocol names offered, one fact each in wire order (`h2`, `http/1.1`).
    TlsAlpn => Tls, "tls.alpn",
        Client, None, None, vendor;
    /// ClientHello offered versions in wire order without GREASE (`TLS 1.3,TLS 1.2`), from
    /// supported_versions, else the hello's version.
    TlsClientVersions => Tls, "tls.client_versions",
        Client, None, None, vendor;
    /// JA4 TLS client fingerprint (FoxIO, BSD-3-Clause), e.g. `t13d1516h2_8daaf6152771_…`.
    TlsJa4 => Tls, "tls.ja4",
        Client, None, None, vendor;
    /// ServerHello selected version (`TLS 1.2`).
    TlsServerVersion => Tls, "tls.server_version",
        Server, None, None, vendor;
    /// Server leaf certificate subject CN (TLS ≤ 1.2, where the Certificate is in clear). A
    /// server certificate names the server; a client's certificate (which can name a person)
    /// is never read.
    TlsCertSubjectCn => Tls, "tls.cert_subject_cn",
        Server, Weak, HostName, vendor;
    /// Server leaf certificate subject O: the organisation, often the manufacturer.
    TlsCertSubjectO => Tls, "tls.cert_subject_o",
        Server, None, Manufacturer, vendor;
    /// Server leaf certificate subject OU.
    TlsCertSubjectOu => Tls, "tls.cert_subject_ou",
        Server, None, None, vendor;
    /// Server leaf certificate issuer DN (`C=…, O=…, CN=…`). Private: a site CA names the site.
    TlsCertIssuer => Tls, "tls.cert_issuer",
        Server, None, None, private;
    /// Server leaf certificate notBefore, `YYYY-MM-DDTHH:MM:SSZ`.
    TlsCertNotBefore => Tls, "tls.cert_not_before",
        Server, None, None, vendor;
    /// Server leaf certificate notAfter, `YYYY-MM-DDTHH:MM:SSZ`.
    TlsCertNotAfter => Tls, "tls.cert_not_after",
        Server, None, None, vendor;
    /// Server leaf certificate serial number, lowercase hex (a certificate's, not a device's).
    TlsCertSerial => Tls, "tls.cert_serial",
        Server, None, None, vendor;
    /// `true` when the server leaf certificate's issuer is its subject (self-issued).
    TlsCertSelfSigned => Tls, "tls.cert_self_signed",
        Server, None, None, vendor;

    // mDNS / DNS-SD: a responder answers only for its own records (RFC 6762 §6), so what a
    // response or a probe's authority section announces describes its sender. Question names
    // and a query's known answers (other hosts' records) are never read.
    /// DNS-SD service instance name (the first label of a PTR target or SRV/TXT owner under a
    /// service type), e.g. `WardTestMed VM-240 (monitor)`: chosen by the device's software or
    /// its installer to name the device, not a person.
    MdnsInstance => Mdns, "mdns.instance",
        Sender, Weak, ApplicationName, vendor;
    /// Host name the sender claims: A/AAAA owner names, SRV targets, reverse-PTR targets
    /// (`wardtestmed-vm240.local`).
    MdnsHostName => Mdns, "mdns.host_name",
        Sender, Weak, HostName, vendor;
    /// Service type the sender offers, `_service._proto` (`_ipp._tcp`).
    MdnsServiceType => Mdns, "mdns.service_type",
        Sender, None, TypeHint, vendor;
    /// TXT `model`, `md`, `usb_MDL`, `ty` (Bonjour Printing's make and model) or `product`.
    MdnsModel => Mdns, "mdns.model",
        Sender, None, Model, vendor;
    /// TXT `manufacturer` or `usb_MFG`.
    MdnsManufacturer => Mdns, "mdns.manufacturer",
        Sender, None, Manufacturer, vendor;
    /// TXT `fw` or `sw`.
    MdnsSoftwareVersion => Mdns, "mdns.software_version",
        Sender, None, SoftwareVersion, vendor;
    /// TXT `serial`: the device's serial number.
    MdnsSerial => Mdns, "mdns.serial",
        Sender, Serial, Serial, vendor;

    // SSDP: a NOTIFY and a search response describe their sender (the device); an M-SEARCH's
    // search target names what the searcher looks for and is never read. The values are set by
    // the device's firmware (UPnP Device Architecture 2.0 §1.1), not by a user.
    /// `SERVER` header: `OS/version UPnP/1.x product/version`
    /// (`WardTestOS/1.0 UPnP/1.0 WardTestMed-VH300/3.2`).
    SsdpServer => Ssdp, "ssdp.server",
        Sender, None, SoftwareVersion, vendor;
    /// `USN` header: the device's UUID and type (`uuid:…::urn:schemas-upnp-org:device:Basic:1`).
    SsdpUsn => Ssdp, "ssdp.usn",
        Sender, Weak, ApplicationName, vendor;
    /// `NT` of a NOTIFY or `ST` of a search response: the device or service type it offers.
    SsdpType => Ssdp, "ssdp.type",
        Sender, None, TypeHint, vendor;
    /// `LOCATION` header cut to `scheme://host[:port]`, where the device serves its
    /// description; the path and query are dropped (a URL path can carry anything). Private: it
    /// names a site address.
    SsdpLocation => Ssdp, "ssdp.location",
        Sender, None, None, private;

    // UPnP device description (UDA 2.0 §2.3): the XML body of the device's HTTP answer, so every
    // element describes the HTTP server — the device — whichever way the capture saw the
    // handshake. Elements of the root device and of its embedded devices, each set by the
    // manufacturer's firmware (friendlyName possibly by the device's installer); URLs, icons,
    // services and vendor extensions are never read.
    /// `deviceType` URN (`urn:schemas-upnp-org:device:MediaServer:1`).
    SsdpDeviceType => Ssdp, "ssdp.device_type",
        Server, None, TypeHint, vendor;
    /// `friendlyName`: the short name shown to users (`WardTestMed Media Station`), chosen by the
    /// firmware or the installer to name the device, like an mDNS instance name.
    SsdpFriendlyName => Ssdp, "ssdp.friendly_name",
        Server, Weak, ApplicationName, vendor;
    /// `manufacturer`.
    SsdpManufacturer => Ssdp, "ssdp.manufacturer",
        Server, None, Manufacturer, vendor;
    /// `modelDescription`: the manufacturer's one-line description of the model.
    SsdpModelDescription => Ssdp, "ssdp.model_description",
        Server, None, TypeHint, vendor;
    /// `modelName`.
    SsdpModelName => Ssdp, "ssdp.model_name",
        Server, None, Model, vendor;
    /// `modelNumber`: a model number, or in much firmware a version (`1`, `12.0`); rules read
    /// it together with the model name, so it is not a model on its own.
    SsdpModelNumber => Ssdp, "ssdp.model_number",
        Server, None, None, vendor;
    /// `serialNumber`: the device's serial number.
    SsdpSerialNumber => Ssdp, "ssdp.serial_number",
        Server, Serial, Serial, vendor;
    /// `UDN`: the device's unique device name (`uuid:…`), as in its SSDP `USN`.
    SsdpUdn => Ssdp, "ssdp.udn",
        Server, Weak, ApplicationName, vendor;

    // SNMP: a GetResponse's system-group bindings describe the agent that sent it (RFC 3418).
    // Requests and traps are not read; the community string never is.
    /// `sysDescr.0`: the agent's description of itself (hardware, OS, firmware), e.g.
    /// `WardTestNet WX-200 ...`: set by the firmware or the device's administrator.
    SnmpSysDescr => Snmp, "snmp.sys_descr",
        Sender, None, None, vendor;
    /// `sysObjectID.0` as a dotted OID (`1.3.6.1.4.1.<enterprise>.…`): the vendor's
    /// identification of the product; the enterprise number names the vendor (IANA PEN).
    SnmpSysObjectId => Snmp, "snmp.sys_object_id",
        Sender, None, None, vendor;
    /// `sysName.0`: the agent's administratively assigned name (by convention its FQDN).
    SnmpSysName => Snmp, "snmp.sys_name",
        Sender, Weak, HostName, vendor;
    // LLMNR: a responder answers only for names it is authoritative for (RFC 4795 §2.3).
    /// Owner name of an A/AAAA record in a response: a name the responder answers for, i.e.
    /// its own host name (`WARDLLMNR-PUMP7`), chosen by its installer to name a machine.
    LlmnrName => Llmnr, "llmnr.name",
        Sender, Weak, HostName, vendor;
    /// Question name of a query: a host the sender wants to reach. It names the *other* end,
    /// never the sender, so it has no identity or attribute role and a vendor never sees it;
    /// rules may read it as a hint (a vendor's update or cloud host).
    LlmnrQueriedName => Llmnr, "llmnr.queried_name",
        Sender, None, None, private;

    // NetBIOS name service: registrations and refreshes claim the sender's own names (the
    // claimed record carries its own address); positive query responses are read only from the
    // owner (RA clear: RFC 1002 §4.2.1.1 reserves RA for a name server answering for others).
    /// A unique NetBIOS name the host registers or answers for (15 characters, padding
    /// trimmed): its computer name, chosen by its installer to name a machine.
    NbnsName => Nbns, "nbns.name",
        Sender, Weak, HostName, vendor;
    /// The suffix byte of a unique name, two lowercase hex digits: the service registered under
    /// it (`00` workstation, `20` file server, `03` messenger…).
    NbnsSuffix => Nbns, "nbns.suffix",
        Sender, None, TypeHint, vendor;
    /// A group name the host registers or answers for: its workgroup or domain. It names the
    /// site's network, so a vendor never sees it.
    NbnsGroup => Nbns, "nbns.group",
        Sender, None, None, private;

    // DHCPv6: read from client messages only; everything describes the client named by the
    // DUID's link-layer address (a relayed message's sender is the relay), else the sender.
    /// Link-layer address of a DUID-LLT/DUID-LL over Ethernet: the device the message is about.
    Dhcpv6ClientMac => Dhcpv6, "dhcpv6.client_mac",
        Named, None, SubjectMac, private;
    /// Client DUID (option 1), lowercase hex: stable per device but opaque, recorded as an
    /// attribute like DHCPv4's client identifier, never merged on.
    Dhcpv6Duid => Dhcpv6, "dhcpv6.duid",
        Named, None, None, private;
    /// Option 16's IANA enterprise number, decimal (`311` Microsoft): who defined the class.
    Dhcpv6VendorEnterprise => Dhcpv6, "dhcpv6.vendor_enterprise",
        Named, None, TypeHint, vendor;
    /// Option 16's vendor class data strings, as the client's software sets them.
    Dhcpv6VendorClass => Dhcpv6, "dhcpv6.vendor_class",
        Named, None, TypeHint, vendor;
    /// Option 39 client FQDN (`wardpump-500-16.ward.test`).
    Dhcpv6Fqdn => Dhcpv6, "dhcpv6.fqdn",
        Named, Weak, HostName, vendor;

    // Unicast DNS: a query's question is what the client resolves (whom it talks to, never who
    // it is); a response's answer owners are what the server answers for. Names of hosts, not
    // of people: a device's software or its administrator chose them. Answer data is unread.
    /// Question name of a query (`update.wardtestmed.example`): a host the client wants to
    /// reach. It names the other end, so it has no identity role and a vendor never sees it;
    /// rules read it as a hint (a vendor's cloud or update host).
    DnsQueriedName => Dns, "dns.queried_name",
        Client, None, ContactedName, private;
    /// Question type of a query as its mnemonic (`A`, `AAAA`, `HTTPS`, else `TYPE<n>`): which
    /// records the client's resolver asks for.
    DnsQueryType => Dns, "dns.query_type",
        Client, None, None, vendor;
    /// Owner name of an answer record of a response (at most 16 per message): a name the server
    /// answers for. A resolver answers for whatever its clients ask, so this says what it
    /// serves, not what it is: no identity, private.
    DnsAnsweredName => Dns, "dns.answered_name",
        Server, None, None, private;
    // LLDP: an LLDPDU is a station's announcement of itself to its link neighbour (IEEE
    // 802.1AB-2016 §8), sent to a multicast address that bridges do not forward: everything in
    // it describes the sender. The values are set by the device's firmware or its network
    // administrator, never by a patient-facing application; the LLDP-MED location TLV (a civic
    // address or an emergency number) and every other organisationally specific TLV are
    // skipped unread.
    /// Chassis ID (TLV 1): a MAC as `aa:bb:cc:dd:ee:ff`, a network address as an IP, else the
    /// text as sent (a chassis name or serial the firmware chose).
    LldpChassisId => Lldp, "lldp.chassis_id",
        Sender, None, None, vendor;
    /// Chassis ID subtype, by its 802.1AB name: `chassis_component`, `interface_alias`,
    /// `port_component`, `mac_address`, `network_address`, `interface_name`, `local`.
    LldpChassisIdSubtype => Lldp, "lldp.chassis_id_subtype",
        Sender, None, None, vendor;
    /// Port ID (TLV 2): the sender's port, rendered like the chassis ID.
    LldpPortId => Lldp, "lldp.port_id",
        Sender, None, None, vendor;
    /// Port ID subtype: `interface_alias`, `port_component`, `mac_address`, `network_address`,
    /// `interface_name`, `agent_circuit_id`, `local`.
    LldpPortIdSubtype => Lldp, "lldp.port_id_subtype",
        Sender, None, None, vendor;
    /// Time to live (TLV 3), seconds.
    LldpTtl => Lldp, "lldp.ttl",
        Sender, None, None, private;
    /// Port description (TLV 4). Private: administrators describe ports by where they lead
    /// (a room, a wall socket), which names the site.
    LldpPortDescription => Lldp, "lldp.port_description",
        Sender, None, None, private;
    /// System name (TLV 5): the administratively assigned name, by convention the FQDN.
    LldpSystemName => Lldp, "lldp.system_name",
        Sender, Weak, HostName, vendor;
    /// System description (TLV 6): hardware, OS and firmware, like SNMP's `sysDescr`.
    LldpSystemDescription => Lldp, "lldp.system_description",
        Sender, None, None, vendor;
    /// System capabilities (TLV 7), one fact per capability the system has, by its 802.1AB
    /// name: `other`, `repeater`, `bridge`, `wlan_access_point`, `router`, `telephone`,
    /// `docsis_cable_device`, `station_only`, `c_vlan`, `s_vlan`, `two_port_mac_relay`.
    LldpSystemCapabilities => Lldp, "lldp.system_capabilities",
        Sender, None, TypeHint, vendor;
    /// Enabled capabilities (TLV 7), one fact per capability, named as above.
    LldpEnabledCapabilities => Lldp, "lldp.enabled_capabilities",
        Sender, None, TypeHint, vendor;
    /// Management address (TLV 8): an IPv4/IPv6 address as text, else lowercase hex. A fact,
    /// not one of the device's addresses: it is claimed, not observed, and often lives on a
    /// management network other than the one the frame came from. Private: a site address.
    LldpManagementAddress => Lldp, "lldp.management_address",
        Sender, None, None, private;
    /// LLDP-MED device class (TIA-1057 §10.2.2.2): `generic_endpoint` (class I),
    /// `media_endpoint` (II), `communication_endpoint` (III, IP phones),
    /// `network_connectivity` (switches, access points).
    LldpMedDeviceClass => Lldp, "lldp.med_device_class",
        Sender, None, TypeHint, vendor;
    /// LLDP-MED capabilities, one fact each: `capabilities`, `network_policy`, `location`,
    /// `power_pse`, `power_pd`, `inventory`.
    LldpMedCapabilities => Lldp, "lldp.med_capabilities",
        Sender, None, None, vendor;
    /// LLDP-MED inventory hardware revision.
    LldpMedHardwareRevision => Lldp, "lldp.med_hardware_revision",
        Sender, None, None, vendor;
    /// LLDP-MED inventory firmware revision.
    LldpMedFirmwareRevision => Lldp, "lldp.med_firmware_revision",
        Sender, None, SoftwareVersion, vendor;
    /// LLDP-MED inventory software revision.
    LldpMedSoftwareRevision => Lldp, "lldp.med_software_revision",
        Sender, None, SoftwareVersion, vendor;
    /// LLDP-MED inventory serial number: the device's serial.
    LldpMedSerial => Lldp, "lldp.med_serial",
        Sender, Serial, Serial, vendor;
    /// LLDP-MED inventory manufacturer name.
    LldpMedManufacturer => Lldp, "lldp.med_manufacturer",
        Sender, None, Manufacturer, vendor;
    /// LLDP-MED inventory model name.
    LldpMedModel => Lldp, "lldp.med_model",
        Sender, None, Model, vendor;
    /// LLDP-MED inventory asset ID: the site's (or manufacturer's) asset tag, unique per
    /// device like a serial, so identity-grade; placeholder values are refused as for serials.
    LldpMedAssetId => Lldp, "lldp.med_asset_id",
        Sender, Serial, Serial, vendor;

    // CDP: like LLDP, a multicast announcement of the sender about itself (Cisco's CDP
    // specification, as in Wireshark's packet-cdp.c); other TLVs (VTP domain, power, the
    // appliance VLAN of a phone) are skipped unread.
    /// Device ID (TLV 0x0001): the configured host name (a serial on some appliances).
    CdpDeviceId => Cdp, "cdp.device_id",
        Sender, Weak, HostName, vendor;
    /// Platform (TLV 0x0006): the hardware model (`cisco WS-C2960-24TT-L`, `Cisco IP Phone
    /// 7965`).
    CdpPlatform => Cdp, "cdp.platform",
        Sender, None, Model, vendor;
    /// Software version (TLV 0x0005), its first line only (`Cisco IOS Software, C2960 Software
    /// (C2960-LANBASEK9-M), Version 15.0(2)SE11, RELEASE SOFTWARE (fc3)`): the rest is a
    /// copyright banner.
    CdpSoftwareVersion => Cdp, "cdp.software_version",
        Sender, None, SoftwareVersion, vendor;
    /// Port ID (TLV 0x0003): the sender's interface (`GigabitEthernet0/1`).
    CdpPortId => Cdp, "cdp.port_id",
        Sender, None, None, vendor;
    /// Capabilities (TLV 0x0004), one fact each: `router`, `trans_bridge`,
    /// `source_route_bridge`, `switch`, `host`, `igmp`, `repeater`, `phone`, `remote`,
    /// `cvta`, `mac_relay`.
    CdpCapabilities => Cdp, "cdp.capabilities",
        Sender, None, TypeHint, vendor;
    /// An IPv4/IPv6 address of the Addresses TLV (0x0002). Private: a site address.
    CdpAddress => Cdp, "cdp.address",
        Sender, None, None, private;
    /// An IPv4/IPv6 address of the Management Addresses TLV (0x0016). Private.
    CdpManagementAddress => Cdp, "cdp.management_address",
        Sender, None, None, private;
    /// Native VLAN of the sender's port (TLV 0x000a), decimal. Private: site configuration.
    CdpNativeVlan => Cdp, "cdp.native_vlan",
        Sender, None, None, private;
    // IEEE 11073 SDC / WS-Discovery: a Hello, Bye or single ProbeMatch/ResolveMatch describes
    // its sender (the provider); a Probe or Resolve says only that the sender searches. The
    // values are set by the device's software or its installer (IEEE 11073-20701 §9).
    /// The WS-Discovery message kind (`Hello`, `Bye`, `Probe`, `ProbeMatches`, `Resolve`,
    /// `ResolveMatches`): a sender that probes is an SDC consumer, one that announces a provider.
    SdcMessage => Sdc, "sdc.message",
        Sender, None, None, private;
    /// Endpoint reference address (`wsa:EndpointReference/wsa:Address`), a stable
    /// `urn:uuid:…` the provider keeps across restarts and addresses: recorded and searched,
    /// never merged on.
    SdcEpr => Sdc, "sdc.epr",
        Sender, Weak, ApplicationName, vendor;
    /// A `Types` QName, prefix resolved (`dpws:Device`, `mdpws:MedicalDevice`;
    /// `{namespace}local` for a namespace without a conventional prefix).
    SdcType => Sdc, "sdc.type",
        Sender, None, TypeHint, vendor;
    /// An `XAddrs` transport address cut to `scheme://host:port` (the path is dropped).
    /// Private: it names a site address.
    SdcXaddr => Sdc, "sdc.xaddr",
        Sender, None, None, private;
    /// `MetadataVersion`: incremented when the provider's metadata changes.
    SdcMetadataVersion => Sdc, "sdc.metadata_version",
        Sender, None, None, private;
    /// `sdc.cdc.type:` scope: the MDS device class code (`69641` for an MDC code, i.e.
    /// MDC_DEV_ANALY_SAT_O2_MDS; `<coding system>#<code>` for another coding system).
    SdcDeviceClass => Sdc, "sdc.device_class",
        Sender, None, TypeHint, vendor;
    /// `sdc.ctxt.loc:` scope `fac=`: the facility the device is placed in. Location context
    /// places a device (IEEE 11073-20701 §9.4.1.2); it names no person. Private: it names the
    /// site.
    SdcLocationFacility => Sdc, "sdc.location_facility",
        Sender, None, None, private;
    /// Location scope `bldng=`: building.
    SdcLocationBuilding => Sdc, "sdc.location_building",
        Sender, None, None, private;
    /// Location scope `flr=`: floor.
    SdcLocationFloor => Sdc, "sdc.location_floor",
        Sender, None, None, private;
    /// Location scope `rm=`: room.
    SdcLocationRoom => Sdc, "sdc.location_room",
        Sender, None, None, private;
    /// Location scope `bed=`: bed (a place, not its occupant).
    SdcLocationBed => Sdc, "sdc.location_bed",
        Sender, None, None, private;
    /// Location scope `poc=`: point of care (the care unit, e.g. `ICU`).
    SdcLocationPointOfCare => Sdc, "sdc.location_point_of_care",
        Sender, None, None, private;
    // DPWS GetMetadata response (HTTP body, read by `sdc::metadata_facts`): the device's own
    // description, set by its manufacturer (ThisModel) and firmware/installer (ThisDevice).
    /// `dpws:ThisModel/dpws:Manufacturer`.
    SdcManufacturer => Sdc, "sdc.manufacturer",
        Sender, None, Manufacturer, vendor;
    /// `dpws:ThisModel/dpws:ModelName`.
    SdcModelName => Sdc, "sdc.model_name",
        Sender, None, Model, vendor;
    /// `dpws:ThisModel/dpws:ModelNumber`: the manufacturer's model number (rules may turn it
    /// into a model).
    SdcModelNumber => Sdc, "sdc.model_number",
        Sender, None, None, vendor;
    /// `dpws:ThisModel/dpws:ModelUrl`: the manufacturer's page for the model.
    SdcModelUrl => Sdc, "sdc.model_url",
        Sender, None, None, vendor;
    /// `dpws:ThisDevice/dpws:FriendlyName`: a name the installer gives the device (often its
    /// place: `WardOx 300 Bed 7`). Private: it can name the site.
    SdcFriendlyName => Sdc, "sdc.friendly_name",
        Sender, Weak, HostName, private;
    /// `dpws:ThisDevice/dpws:FirmwareVersion`.
    SdcFirmwareVersion => Sdc, "sdc.firmware_version",
        Sender, None, SoftwareVersion, vendor;
    /// `dpws:ThisDevice/dpws:SerialNumber`.
    SdcSerialNumber => Sdc, "sdc.serial_number",
        Sender, Serial, Serial, vendor;
    // ASTM E1394 / LIS2-A2 Header record (H): it names the system that sends the message, an
    // analyzer or the LIS, never a patient (patient, order and result records are not read).
    /// H.5 sender name or ID, all components (written with `^`), first repetition: e.g.
    /// `OCD^VISION^5.13.1.46935^J60009999`. Like HL7's MSH-3 it may hold a site-given
    /// instrument name, so a vendor does not see it whole.
    AstmSender => Astm, "astm.sender",
        Sender, None, ApplicationName, private;
    /// H.5 first component: the manufacturer in LIS2-A2's `manufacturer^product^version^
    /// instrument id` layout. Some vendors put the product name here instead (`ARCHITECT`,
    /// `XN-350`); the rules in `agent/rules/astm.toml` read those layouts.
    AstmSenderManufacturer => Astm, "astm.sender_manufacturer",
        Sender, None, Manufacturer, vendor;
    /// H.5 second component: the product (model) in the LIS2-A2 layout.
    AstmSenderModel => Astm, "astm.sender_model",
        Sender, None, Model, vendor;
    /// H.5 third component: the software version in the LIS2-A2 layout.
    AstmSenderSoftwareVersion => Astm, "astm.sender_software_version",
        Sender, None, SoftwareVersion, vendor;
    /// H.5 fourth component: the instrument identifier (often its serial number, sometimes a
    /// number the site gives it): recorded and searched as a weak identity, never merged on.
    AstmInstrumentId => Astm, "astm.instrument_id",
        Sender, Weak, ApplicationName, vendor;
    /// H.10 receiver ID: the name of the system the message is for (the LIS or the analyzer).
    AstmReceiverId => Astm, "astm.receiver_id",
        Receiver, None, ApplicationName, private;
    /// H.12 processing ID (`P` production, `T` training, `D` debugging, `Q` quality control).
    AstmProcessingId => Astm, "astm.processing_id",
        Sender, None, None, private;
    /// H.13 version of the specification the sender follows (`1`, `LIS2-A2`, `E1394-97`).
    AstmVersion => Astm, "astm.version",
        Sender, None, None, private;
    /// Record types of one message (Header to Terminator) in order of first appearance, e.g.
    /// `H,P,O,R,L`: who sends results (`R`) and who sends orders or queries tells an analyzer
    /// from a LIS. Only each record's first byte is looked at.
    AstmRecordTypes => Astm, "astm.record_types",
        Sender, None, TypeHint, private;
    // IntelliVue: a Connect Indication or MDS Create Event Report describes the monitor that
    // sent it. Only the system model, production specification, system id and protocol support
    // attributes are read: set at the factory or by the monitor's software, never by a user
    // about a patient (patient demographics and the bed label are other attributes, skipped).
    /// `NOM_ATTR_ID_MODEL` manufacturer string (`Philips Medical Systems`).
    IntellivueManufacturer => Intellivue, "intellivue.manufacturer",
        Sender, None, Manufacturer, vendor;
    /// `NOM_ATTR_ID_MODEL` model number string (`M8007A`: Philips' product number of the model).
    IntellivueModel => Intellivue, "intellivue.model",
        Sender, None, Model, vendor;
    /// Production specification `SERIAL_NUMBER` of the product component.
    IntellivueSerial => Intellivue, "intellivue.serial",
        Sender, Serial, Serial, vendor;
    /// Production specification `PART_NUMBER` of the product component.
    IntellivuePartNumber => Intellivue, "intellivue.part_number",
        Sender, None, TypeHint, vendor;
    /// Production specification `SW_REVISION` (the product's, else the first component's).
    IntellivueSwRevision => Intellivue, "intellivue.sw_revision",
        Sender, None, SoftwareVersion, vendor;
    /// Production specification `HW_REVISION`.
    IntellivueHwRevision => Intellivue, "intellivue.hw_revision",
        Sender, None, None, vendor;
    /// Production specification `FW_REVISION`.
    IntellivueFwRevision => Intellivue, "intellivue.fw_revision",
        Sender, None, None, vendor;
    /// Production specification `PROTOCOL_REVISION`: the data export protocol's revision.
    IntellivueProtocolRevision => Intellivue, "intellivue.protocol_revision",
        Sender, None, None, vendor;
    /// `NOM_ATTR_SYS_ID`: the MDS system id, a MAC-like octet string (`00:09:fb:…`).
    IntellivueSystemId => Intellivue, "intellivue.system_id",
        Sender, None, None, vendor;
    /// One `NOM_ATTR_PCOL_SUPPORT` entry: application protocol, transport, port
    /// (`data_out/udp/24105`).
    IntellivueProtocol => Intellivue, "intellivue.protocol",
        Sender, None, None, vendor;

    // POCT1-A: the `V` attribute of allow-listed elements of a device's hello (`HEL.R01`) or
    // status (`DST.R01`), describing the device that sent it. Observation, patient and operator
    // elements are never read; these are set by the manufacturer or the site's device setup.
    /// The root element name of each message (`HEL.R01`, `OBS.R01`, `ACK.R01`…).
    Poct1aMessageType => Poct1a, "poct1a.message_type",
        Sender, None, None, private;
    /// `DEV.vendor_id`: the vendor's short code (`NOVABIO`).
    Poct1aVendorId => Poct1a, "poct1a.vendor_id",
        Sender, None, None, vendor;
    /// `DEV.model_id`: the model (`StatStrip`).
    Poct1aModelId => Poct1a, "poct1a.model_id",
        Sender, None, Model, vendor;
    /// `DEV.serial_id`: the device's serial number.
    Poct1aSerialId => Poct1a, "poct1a.serial_id",
        Sender, Serial, Serial, vendor;
    /// `DEV.device_id` (`V` only): the name the site gave the device; it can name a location,
    /// so a vendor never sees it.
    Poct1aDeviceId => Poct1a, "poct1a.device_id",
        Sender, Weak, HostName, private;
    /// `DEV.manufacturer_name` (`Nova Biomedical`).
    Poct1aManufacturerName => Poct1a, "poct1a.manufacturer_name",
        Sender, None, Manufacturer, vendor;
    /// `DEV.hw_version`.
    Poct1aHwVersion => Poct1a, "poct1a.hw_version",
        Sender, None, None, vendor;
    /// `DEV.sw_version` (`V` only: `3.10.8.0`).
    Poct1aSwVersion => Poct1a, "poct1a.sw_version",
        Sender, None, SoftwareVersion, vendor;
    /// `DST.condition_cd`: the device's readiness code (`R` ready, `N` not ready, `M`
    /// maintenance…).
    Poct1aCondition => Poct1a, "poct1a.condition",
        Sender, None, None, vendor;

    // BCC: a SpaceCom (the pump rack's communication unit) answers for the pumps docked in it,
    // so pump values describe the sender without being its own identity: a pump moved to
    // another rack must not merge two racks, hence no identity role. Only the allow-listed
    // record parameters are read, never patient, nurse or drug records.
    /// The bed id of a frame (`1/1/1`): the rack addressing the site configured. The client's
    /// requests carry it too, addressing the SpaceCom: it describes the server either way.
    BccBedId => Bcc, "bcc.bed_id",
        Server, None, None, private;
    /// `GNMODEL`: the model name of a docked pump (`Perfusor Space`).
    BccPumpModel => Bcc, "bcc.pump_model",
        Sender, None, TypeHint, vendor;
    /// `INSERNUM`: the serial number of a docked pump.
    BccPumpSerial => Bcc, "bcc.pump_serial",
        Sender, None, None, vendor;
    /// `INDTNR`: a docked pump's DiaNet type number.
    BccDianetType => Bcc, "bcc.dianet_type",
        Sender, None, TypeHint, vendor;
    /// `VERSION`: the BCC protocol version the SpaceCom speaks.
    BccProtocolVersion => Bcc, "bcc.protocol_version",
        Sender, None, None, vendor;
    // FHIR: the HTTP decoder hands JSON bodies to fhir::body_facts, which reads `resourceType`
    // first and, of a `Device`/`DeviceDefinition` a client sends, only these members.
    /// `resourceType` of each resource a message carries (`Device`, `Observation`, `Bundle`…):
    /// that the peers speak FHIR, and of what; never a member of the resource.
    FhirResourceType => Fhir, "fhir.resource_type",
        Sender, None, None, private;
    /// `Device.manufacturer` / `DeviceDefinition.manufacturerString` of a resource the device
    /// sent about itself.
    FhirDeviceManufacturer => Fhir, "fhir.device_manufacturer",
        Sender, None, Manufacturer, vendor;
    /// `modelNumber`.
    FhirDeviceModelNumber => Fhir, "fhir.device_model_number",
        Sender, None, Model, vendor;
    /// `Device.serialNumber`.
    FhirDeviceSerialNumber => Fhir, "fhir.device_serial_number",
        Sender, Serial, Serial, vendor;
    /// `version[].value` (R4 Device) or `version[]` (R4 DeviceDefinition).
    FhirDeviceVersion => Fhir, "fhir.device_version",
        Sender, None, SoftwareVersion, vendor;
    /// `udiCarrier[].deviceIdentifier` / `udiDeviceIdentifier[].deviceIdentifier`: the UDI-DI
    /// (the model, not the unit).
    FhirUdiDeviceIdentifier => Fhir, "fhir.udi_device_identifier",
        Sender, None, None, vendor;
    /// `udiCarrier[].carrierHRF`: the UDI's human-readable form, with the unit's serial (AI 21).
    FhirUdiCarrierHrf => Fhir, "fhir.udi_carrier_hrf",
        Sender, Udi, None, vendor;
}

impl Field {
    /// The field called `name` (as [`Field::name`] spells it).
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }
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

/// Turns raw protocol bytes into a printable value: bytes that are valid UTF-8 are read as UTF-8
/// (what DNS-SD, UPnP, SDC and DICOM's ISO_IR 192 send), anything else as Latin-1 (a superset of
/// the ASCII most of these fields are meant to be); control characters, line and paragraph
/// separators and bidirectional overrides become U+FFFD so a value can never forge or disguise a
/// log line; surrounding spaces and NULs are trimmed, and at most [`MAX_VALUE_CHARS`] characters
/// are kept.
pub fn clean_text(raw: &[u8]) -> String {
    let trimmed = trim_padding(raw);
    // Nearly every value is short printable ASCII: copy it whole instead of char by char.
    if trimmed.len() <= MAX_VALUE_CHARS && trimmed.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        if let Ok(s) = core::str::from_utf8(trimmed) {
            return s.to_owned();
        }
    }
    let printable = |c: char| if unsafe_in_logs(c) { '\u{fffd}' } else { c };
    match core::str::from_utf8(trimmed) {
        Ok(s) => s.chars().take(MAX_VALUE_CHARS).map(printable).collect(),
        Err(_) => trimmed
            .iter()
            .take(MAX_VALUE_CHARS)
            .map(|&b| printable(char::from(b)))
            .collect(),
    }
}

/// Characters a value may not carry into a log line or a page: C0/C1 controls and DEL, the
/// Unicode line and paragraph separators, and the bidirectional embedding/override/isolate
/// controls (which can make a log line read differently from what it holds).
fn unsafe_in_logs(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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
/// TCP handshake, or — when the capture missed it — from the messages themselves (an
/// A-ASSOCIATE-RQ always comes from the DICOM requestor; a DHCP BOOTREQUEST from the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the side that opened the connection (sent the SYN), the DICOM requestor, or a DHCP
    /// client.
    FromClient,
    /// From the side that accepted the connection, or a DHCP server.
    FromServer,
    /// Not known: a capture that started mid-connection whose messages do not tell either.
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
    fn patient_data_protocols() {
        assert!(Protocol::Dicom.carries_patient_data());
        assert!(Protocol::Hl7.carries_patient_data());
        assert!(Protocol::Astm.carries_patient_data());
        assert!(!Protocol::Dhcp.carries_patient_data());
        assert!(Protocol::Tls.encrypts_transport());
        assert!(!Protocol::Dicom.encrypts_transport());
        for p in Protocol::ALL {
            assert_eq!(Protocol::from_name(p.name()), Some(*p));
            assert_eq!(serde_json::to_string(p).unwrap(), format!("\"{p}\""));
            // What a protocol carries in clear cannot also be encrypted.
            assert!(!(p.carries_patient_data() && p.encrypts_transport()), "{p}");
        }
    }

    /// The role columns hang together: what consumers of the roles rely on.
    #[test]
    fn field_roles_are_consistent() {
        for &f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f));
            // A strong identity is something a vendor may see on its own device.
            if f.identity().is_strong() {
                assert!(f.vendor_visible(), "{f}");
            }
            if f.identity() == Identity::Serial {
                assert_eq!(f.attribute(), Attribute::Serial, "{f}");
            }
            // Weak identities are names of a kind the collector files them under.
            if f.identity() == Identity::Weak {
                assert!(
                    matches!(
                        f.attribute(),
                        Attribute::HostName | Attribute::ApplicationName
                    ),
                    "{f}"
                );
                assert!(!matches!(f.describes(), Describes::Receiver), "{f}");
            }
            // A contacted name names the other end: never an identity, never vendor-visible.
            if f.attribute() == Attribute::ContactedName {
                assert_eq!(f.identity(), Identity::None, "{f}");
                assert!(!f.vendor_visible(), "{f}");
            }
            // A protocol whose facts describe a named device names it with one field.
            if matches!(f.describes(), Describes::Named | Describes::NamedIfClient) {
                let namers = Field::ALL
                    .iter()
                    .filter(|g| g.protocol() == f.protocol())
                    .filter(|g| g.attribute() == Attribute::SubjectMac)
                    .count();
                assert_eq!(namers, 1, "{f}");
            }
        }
    }

    #[test]
    fn describes_resolves_by_direction() {
        use Direction::*;
        let all = [FromClient, FromServer, Unknown];
        for d in all {
            assert_eq!(Describes::Sender.resolve(d), Some(Party::Sender));
            assert_eq!(Describes::Receiver.resolve(d), Some(Party::Receiver));
            assert_eq!(Describes::Named.resolve(d), Some(Party::Named));
        }
        assert_eq!(Describes::Client.resolve(FromClient), Some(Party::Sender));
        assert_eq!(Describes::Client.resolve(FromServer), Some(Party::Receiver));
        assert_eq!(Describes::Server.resolve(FromClient), Some(Party::Receiver));
        assert_eq!(Describes::Server.resolve(FromServer), Some(Party::Sender));
        assert_eq!(
            Describes::SenderIfClient.resolve(FromClient),
            Some(Party::Sender)
        );
        assert_eq!(
            Describes::NamedIfClient.resolve(FromClient),
            Some(Party::Named)
        );
        for r in [
            Describes::Client,
            Describes::Server,
            Describes::SenderIfClient,
            Describes::NamedIfClient,
        ] {
            assert_eq!(r.resolve(Unknown), None, "{r:?}");
        }
        assert_eq!(Describes::SenderIfClient.resolve(FromServer), None);
        assert_eq!(Describes::NamedIfClient.resolve(FromServer), None);
    }

    #[test]
    fn clean_text_trims_and_neutralises_controls() {
        assert_eq!(clean_text(b"  STORESCU   \0"), "STORESCU");
        assert_eq!(clean_text(b"a\nb"), "a\u{fffd}b");
        assert_eq!(clean_text(&[b'x'; 1000]).len(), MAX_VALUE_CHARS);
        assert_eq!(clean_text(b""), "");
    }

    #[test]
    fn clean_text_reads_utf8_when_valid_and_latin1_otherwise() {
        assert_eq!(clean_text("Dräger Infinity".as_bytes()), "Dräger Infinity");
        assert_eq!(clean_text(b"Dr\xe4ger"), "Dräger");
        // Separators and bidi overrides never reach a log line, in either decoding.
        assert_eq!(
            clean_text("a\u{2028}b\u{202e}c".as_bytes()),
            "a\u{fffd}b\u{fffd}c"
        );
        assert_eq!(clean_text(b"a\x85b"), "a\u{fffd}b");
        // The cap counts characters, not bytes.
        assert_eq!(
            clean_text("ä".repeat(1000).as_bytes()).chars().count(),
            MAX_VALUE_CHARS
        );
    }

    #[test]
    fn mac_round_trips() {
        let m: MacAddr = "00:A0:37:9a:00:53".parse().unwrap();
        assert_eq!(m.to_string(), "00:a0:37:9a:00:53");
        assert!("00:a0:37".parse::<MacAddr>().is_err());
        assert!("00:a0:37:9a:00:53:01".parse::<MacAddr>().is_err());
    }
}
