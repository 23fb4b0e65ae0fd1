//! Philips IntelliVue Data Export (LAN, UDP): what a patient monitor says about itself.
//!
//! Layouts follow the *Data Export Interface Programming Guide* (Philips 4535 642 59271) as the
//! public open-source clients implement it (xeonfusion/VSCaptureMP, mdpnp's OpenICE IntelliVue
//! driver, the DICES MP70 driver). Every integer is big-endian.
//!
//! Two monitor messages carry identity, both as an `AttributeList` (count, length, then
//! `AVAType { attribute_id: u16, length: u16, value }`):
//!
//! - the **Connect Indication** the monitor broadcasts to UDP 24005: `Nomenclature` (4 bytes),
//!   `ROapdus`, `ROIVapdu`, `EventReportArgument` (event type `NOM_NOTI_CONN_INDIC`), then the
//!   attribute list at offset 28;
//! - the **MDS Create Event Report** the monitor sends once a client associated (UDP 24105):
//!   `SPpdu` (session id 0xE100, context id), the same three headers (event type
//!   `NOM_NOTI_MDS_CREAT`), a `ManagedObjectId`, then the attribute list at offset 34.
//!
//! From those lists only four attributes are read: `NOM_ATTR_ID_MODEL` (manufacturer and model
//! strings), `NOM_ATTR_ID_PROD_SPECN` (serial and part number, hardware / software / firmware /
//! protocol revisions), `NOM_ATTR_SYS_ID` (the MDS system id, a MAC-like octet string) and
//! `NOM_ATTR_PCOL_SUPPORT` (the protocols and ports the monitor offers). Every other attribute —
//! bed label, patient demographics, metrics, alarms — is stepped over by its length, unread. Any
//! other data export message (poll requests and their replies, which carry patient demographics
//! and measurements) is recognised by its headers and never read beyond them; association
//! control (session connect / finish / disconnect SPDUs) is recognised and yields nothing.
//!
//! Recognised by structure, never by port: the nested lengths of `ROapdus`, `ROIVapdu` and
//! `EventReportArgument` must agree with each other and with the datagram, the managed object
//! must be the MDS, and the event type one of the two above; session SPDUs by their length
//! indicator and the fixed session data the guide prescribes.

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, MacAddr, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Intellivue);
/// Attributes looked at per list.
pub const MAX_ATTRIBUTES: usize = 64;
/// Production specification entries looked at.
pub const MAX_PROD_SPEC_ENTRIES: usize = 32;
/// Protocol support entries looked at.
pub const MAX_PROTOCOLS: usize = 16;
/// UDP ports of the data export (connect indication, protocol). For reference only: detection
/// is by structure.
pub const PORTS: [u16; 2] = [24005, 24105];

/// IntelliVue's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Intellivue,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction,
    },
};

/// Byte offsets shared by the Connect Indication and the data export messages: a 4-byte
/// prefix (`Nomenclature` or `SPpdu`), then the remote operation headers.
mod field {
    pub const RO_TYPE: usize = 4;
    pub const RO_LENGTH: usize = 6;
    /// Start of the `ROapdus` contents (its length counts from here).
    pub const RO_BODY: usize = 8;
    pub const COMMAND_TYPE: usize = 10;
    pub const ROIV_LENGTH: usize = 12;
    /// Start of the `ROIVapdu` contents.
    pub const ROIV_BODY: usize = 14;
    pub const OBJ_CLASS: usize = 14;
    pub const EVENT_TYPE: usize = 24;
    pub const EVENT_LENGTH: usize = 26;
    /// Start of the `EventReportArgument` contents: a Connect Indication's attribute list.
    pub const EVENT_BODY: usize = 28;
    /// An MDS Create Event Report's attribute list (after a 6-byte `ManagedObjectId`).
    pub const MDS_CREATE_LIST: usize = 34;
}

/// Data export `SPpdu.session_id`.
const SESSION_ID: [u8; 2] = [0xe1, 0x00];
const ROIV_APDU: u16 = 1;
const RORS_APDU: u16 = 2;
const ROER_APDU: u16 = 3;
const ROLRS_APDU: u16 = 5;
const CMD_EVENT_REPORT: u16 = 0;
const CMD_CONFIRMED_EVENT_REPORT: u16 = 1;
/// Highest command type the guide defines (`CMD_CONFIRMED_ACTION`).
const CMD_MAX: u16 = 7;
/// `NOM_MOC_VMS_MDS`: the medical device system object.
const NOM_MOC_VMS_MDS: u16 = 0x0021;
const NOM_NOTI_MDS_CREAT: u16 = 0x0d06;
const NOM_NOTI_CONN_INDIC: u16 = 0x0d17;

mod attr {
    pub const ID_MODEL: u16 = 0x0928;
    pub const ID_PROD_SPECN: u16 = 0x092d;
    pub const SYS_ID: u16 = 0x0984;
    pub const PCOL_SUPPORT: u16 = 0xf101;
}

/// Session SPDU identifiers of association control (connect, finish, disconnect).
mod spdu {
    pub const CN: u8 = 0x0d;
    pub const FN: u8 = 0x09;
    pub const DN: u8 = 0x0a;
}
/// The session data every association request carries after its length indicator (the
/// guide's fixed encoding; VSCaptureMP's `aarq_msg` sends exactly these bytes).
const CN_SESSION_DATA: [u8; 14] = [
    0x05, 0x08, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x80, 0x00, 0x14, 0x02, 0x00, 0x02,
];

/// What a datagram is, from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Connect Indication: attribute list at [`field::EVENT_BODY`].
    ConnectIndication,
    /// MDS Create Event Report: attribute list at [`field::MDS_CREATE_LIST`].
    MdsCreate,
    /// Another data export message from the monitor (result or error): never read.
    Result,
    /// A client's data export message (poll, get, set, its result to the MDS create): never
    /// read.
    Request,
    /// Association control SPDU from the client (connect request, release).
    AssociationRequest,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, DecodeError> {
    b.get(at..at + 2)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map(u16::from_be_bytes)
        .ok_or_else(|| DecodeError::truncated(LAYER, at, 2, b.len().saturating_sub(at)))
}

fn invalid(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Invalid {
        layer: LAYER,
        offset,
        what,
    }
}

/// Classifies an association control SPDU: its length indicator (one byte, or 0xff and two)
/// must span exactly the rest of the datagram.
fn session(b: &[u8]) -> Result<Kind, DecodeError> {
    let si = *b
        .first()
        .ok_or_else(|| DecodeError::truncated(LAYER, 0, 2, 0))?;
    let li = *b
        .get(1)
        .ok_or_else(|| DecodeError::truncated(LAYER, 1, 1, 0))?;
    let (len, body) = if li == 0xff {
        (usize::from(u16_at(b, 2)?), 4)
    } else {
        (usize::from(li), 2)
    };
    if body + len != b.len() {
        return Err(invalid(
            1,
            "session length indicator (not the whole datagram)",
        ));
    }
    match si {
        spdu::CN if b.get(body..body + CN_SESSION_DATA.len()) == Some(&CN_SESSION_DATA[..]) => {
            Ok(Kind::AssociationRequest)
        }
        // Release request / response: the presentation PDU (0xc1) and its own one-byte length
        // spanning the rest.
        spdu::FN | spdu::DN
            if b.get(body) == Some(&0xc1)
                && b.get(body + 1).map(|&l| body + 2 + usize::from(l)) == Some(b.len()) =>
        {
            Ok(Kind::AssociationRequest)
        }
        _ => Err(invalid(0, "session SPDU")),
    }
}

/// Classifies a datagram by its headers; see the module documentation.
fn kind(b: &[u8]) -> Result<Kind, DecodeError> {
    match b.first() {
        Some(&(spdu::CN | spdu::FN | spdu::DN)) => return session(b),
        None => return Err(DecodeError::truncated(LAYER, 0, field::RO_BODY, 0)),
        _ => {}
    }
    if b.len() < field::RO_BODY {
        return Err(DecodeError::truncated(LAYER, 0, field::RO_BODY, b.len()));
    }
    let ro_type = u16_at(b, field::RO_TYPE)?;
    let ro_len = usize::from(u16_at(b, field::RO_LENGTH)?);
    if field::RO_BODY + ro_len != b.len() {
        return Err(invalid(
            field::RO_LENGTH,
            "ROapdus length (not the whole datagram)",
        ));
    }
    let data_export = b.get(..2) == Some(&SESSION_ID[..]);
    if ro_type != ROIV_APDU {
        // Results from the monitor: only inside a data export session.
        return match ro_type {
            // A result to the monitor's confirmed event report (the MDS create) is the
            // client's; results to polls, gets and sets are the monitor's.
            RORS_APDU if data_export && ro_len >= 6 => {
                if u16_at(b, field::COMMAND_TYPE)? == CMD_CONFIRMED_EVENT_REPORT {
                    Ok(Kind::Request)
                } else {
                    Ok(Kind::Result)
                }
            }
            ROER_APDU | ROLRS_APDU if data_export && ro_len >= 6 => Ok(Kind::Result),
            _ => Err(invalid(field::RO_TYPE, "ROapdus type")),
        };
    }
    let command = u16_at(b, field::COMMAND_TYPE)?;
    let roiv_len = usize::from(u16_at(b, field::ROIV_LENGTH)?);
    if command > CMD_MAX {
        return Err(invalid(field::COMMAND_TYPE, "command type"));
    }
    if field::ROIV_BODY + roiv_len != b.len() {
        return Err(invalid(
            field::ROIV_LENGTH,
            "ROIVapdu length (not the rest of the message)",
        ));
    }
    if u16_at(b, field::OBJ_CLASS)? != NOM_MOC_VMS_MDS {
        return Err(invalid(
            field::OBJ_CLASS,
            "managed object class (not the MDS)",
        ));
    }
    let is_event = matches!(command, CMD_EVENT_REPORT | CMD_CONFIRMED_EVENT_REPORT);
    if !is_event {
        // Poll, get, set and action requests go from the client to the monitor.
        return if data_export {
            Ok(Kind::Request)
        } else {
            Err(invalid(
                field::COMMAND_TYPE,
                "command outside a data export session",
            ))
        };
    }
    let event = u16_at(b, field::EVENT_TYPE)?;
    let event_len = usize::from(u16_at(b, field::EVENT_LENGTH)?);
    if field::EVENT_BODY + event_len != b.len() {
        return Err(invalid(
            field::EVENT_LENGTH,
            "EventReportArgument length (not the rest of the message)",
        ));
    }
    match (data_export, event) {
        (true, NOM_NOTI_MDS_CREAT) => Ok(Kind::MdsCreate),
        (false, NOM_NOTI_CONN_INDIC) => Ok(Kind::ConnectIndication),
        _ => Err(invalid(field::EVENT_TYPE, "event type")),
    }
}

/// Structure test: see the module documentation.
pub fn probe(payload: &[u8]) -> Probe {
    if kind(payload).is_ok() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// The monitor is the data export server: it answers a client's association and polls. Its
/// broadcast Connect Indication has no client, and its facts describe the sender anyway.
fn direction(payload: &[u8]) -> Direction {
    match kind(payload) {
        Ok(Kind::MdsCreate | Kind::Result) => Direction::FromServer,
        Ok(Kind::Request | Kind::AssociationRequest) => Direction::FromClient,
        Ok(Kind::ConnectIndication) | Err(_) => Direction::Unknown,
    }
}

/// A `VariableLabel` (u16 length, then that many octets) at `at`, ending by `end`: its
/// contents and where it ends.
fn label(b: &[u8], at: usize, end: usize) -> Result<(&[u8], usize), DecodeError> {
    let len = usize::from(u16_at(b, at)?);
    let stop = at + 2 + len;
    if stop > end {
        return Err(DecodeError::truncated(
            LAYER,
            at,
            2 + len,
            end.saturating_sub(at),
        ));
    }
    Ok((b.get(at + 2..stop).unwrap_or_default(), stop))
}

fn push_text(facts: &mut Vec<Fact>, field: Field, raw: &[u8]) {
    let v = clean_text(raw);
    if !v.is_empty() {
        facts.push(Fact::new(field, v));
    }
}

/// `ProdSpecEntry.spec_type` values and the fields they fill.
fn spec_field(spec_type: u16) -> Option<Field> {
    match spec_type {
        1 => Some(Field::IntellivueSerial),
        2 => Some(Field::IntellivuePartNumber),
        3 => Some(Field::IntellivueHwRevision),
        4 => Some(Field::IntellivueSwRevision),
        5 => Some(Field::IntellivueFwRevision),
        6 => Some(Field::IntellivueProtocolRevision),
        _ => None,
    }
}

/// `ComponentId` of the product as a whole (`ID_COMP_PRODUCT`): its serial and part number
/// name the monitor; other components (boards, boot code) have their own.
const ID_COMP_PRODUCT: u16 = 0x0008;

/// `ProductionSpec`: count, length, then `{spec_type, component_id, prod_spec label}`. Serial
/// and part number are read only for the product component; revisions for the product, or
/// else the first component that has one.
fn production_spec(
    b: &[u8],
    at: usize,
    end: usize,
    facts: &mut Vec<Fact>,
) -> Result<(), DecodeError> {
    let count = usize::from(u16_at(b, at)?);
    let len = usize::from(u16_at(b, at + 2)?);
    let list_end = at + 4 + len;
    if list_end > end {
        return Err(DecodeError::truncated(
            LAYER,
            at,
            4 + len,
            end.saturating_sub(at),
        ));
    }
    let mut chosen: [Option<(bool, &[u8])>; 6] = [None; 6];
    let mut pos = at + 4;
    for _ in 0..count.min(MAX_PROD_SPEC_ENTRIES) {
        if pos >= list_end {
            break;
        }
        let spec_type = u16_at(b, pos)?;
        let component = u16_at(b, pos + 2)?;
        let (value, next) = label(b, pos + 4, list_end)?;
        let product = component == ID_COMP_PRODUCT;
        if let Some(slot) = usize::from(spec_type)
            .checked_sub(1)
            .and_then(|i| chosen.get_mut(i))
        {
            let identity = spec_type <= 2;
            let better = match slot {
                None => product || !identity,
                Some((was_product, _)) => product && !*was_product,
            };
            if better {
                *slot = Some((product, value));
            }
        }
        pos = next;
    }
    for (i, v) in chosen.iter().enumerate() {
        if let (Some((_, raw)), Some(f)) = (v, spec_field(i as u16 + 1)) {
            push_text(facts, f, raw);
        }
    }
    Ok(())
}

/// `ProtoSupport`: count, length, then `{appl_proto, trans_proto, port, options}` (8 bytes).
fn protocol_support(
    b: &[u8],
    at: usize,
    end: usize,
    facts: &mut Vec<Fact>,
) -> Result<(), DecodeError> {
    let count = usize::from(u16_at(b, at)?);
    let len = usize::from(u16_at(b, at + 2)?);
    if at + 4 + len > end {
        return Err(DecodeError::truncated(
            LAYER,
            at,
            4 + len,
            end.saturating_sub(at),
        ));
    }
    for i in 0..count.min(MAX_PROTOCOLS).min(len / 8) {
        let e = at + 4 + i * 8;
        let appl = match u16_at(b, e)? {
            1 => "acse".to_owned(),
            5 => "data_out".to_owned(),
            n => n.to_string(),
        };
        let trans = match u16_at(b, e + 2)? {
            1 => "udp".to_owned(),
            n => n.to_string(),
        };
        let port = u16_at(b, e + 4)?;
        facts.push(Fact::new(
            Field::IntellivueProtocol,
            format!("{appl}/{trans}/{port}"),
        ));
    }
    Ok(())
}

/// Walks an `AttributeList` at `at` (the rest of the datagram), reading only the allow-listed
/// attributes.
fn attributes(b: &[u8], at: usize, facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let count = usize::from(u16_at(b, at)?);
    let len = usize::from(u16_at(b, at + 2)?);
    let end = at + 4 + len;
    if end > b.len() {
        return Err(DecodeError::truncated(LAYER, at, 4 + len, b.len() - at));
    }
    if count > MAX_ATTRIBUTES {
        return Err(invalid(at, "too many attributes"));
    }
    let mut pos = at + 4;
    for _ in 0..count {
        let id = u16_at(b, pos)?;
        let alen = usize::from(u16_at(b, pos + 2)?);
        let vstart = pos + 4;
        let vend = vstart + alen;
        if vend > end {
            return Err(DecodeError::truncated(
                LAYER,
                pos,
                4 + alen,
                end.saturating_sub(pos),
            ));
        }
        match id {
            attr::ID_MODEL => {
                let (manufacturer, next) = label(b, vstart, vend)?;
                push_text(facts, Field::IntellivueManufacturer, manufacturer);
                let (model, _) = label(b, next, vend)?;
                push_text(facts, Field::IntellivueModel, model);
            }
            attr::ID_PROD_SPECN => production_spec(b, vstart, vend, facts)?,
            attr::SYS_ID => {
                let (id, _) = label(b, vstart, vend)?;
                if let Ok(mac) = <[u8; 6]>::try_from(id) {
                    facts.push(Fact::new(
                        Field::IntellivueSystemId,
                        MacAddr(mac).to_string(),
                    ));
                }
            }
            attr::PCOL_SUPPORT => protocol_support(b, vstart, vend, facts)?,
            // Everything else (bed label, patient demographics, metrics, time…): unread.
            _ => {}
        }
        pos = vend;
    }
    Ok(())
}

/// Pushes the identity attributes of a Connect Indication or an MDS Create Event Report, in
/// wire order. Any other message yields nothing.
pub fn extract(payload: &[u8], facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    match kind(payload)? {
        Kind::ConnectIndication => attributes(payload, field::EVENT_BODY, facts),
        Kind::MdsCreate => attributes(payload, field::MDS_CREATE_LIST, facts),
        Kind::Result | Kind::Request | Kind::AssociationRequest => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Sources (see protocols/testdata/intellivue/README.md):
    // - connect-indication.bin, mds-create.bin: built by tests/captures/intellivue_peers.py in
    //   the layouts of the Programming Guide as VSCaptureMP / mdpnp / DICES parse them, with
    //   canary patient attributes in the MDS create list.
    // - aarq.bin, mds-create-result.bin, poll-request.bin: VSCaptureMP's public byte arrays
    //   (`aarq_msg`, `mds_create_resp_msg`, `poll_request_msg`) as a C++ port of it lists them.
    const CONNECT_INDICATION: &[u8] =
        include_bytes!("../testdata/intellivue/connect-indication.bin");
    const MDS_CREATE: &[u8] = include_bytes!("../testdata/intellivue/mds-create.bin");
    const AARQ: &[u8] = include_bytes!("../testdata/intellivue/aarq.bin");
    const MDS_CREATE_RESULT: &[u8] = include_bytes!("../testdata/intellivue/mds-create-result.bin");
    const POLL_REQUEST: &[u8] = include_bytes!("../testdata/intellivue/poll-request.bin");
    const ALL: [&[u8]; 5] = [
        CONNECT_INDICATION,
        MDS_CREATE,
        AARQ,
        MDS_CREATE_RESULT,
        POLL_REQUEST,
    ];

    fn facts(b: &[u8]) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    #[test]
    fn connect_indication_names_the_monitor() {
        assert_eq!(
            facts(CONNECT_INDICATION),
            vec![
                (Field::IntellivueSerial, "DE71234567".to_owned()),
                (Field::IntellivuePartNumber, "M8007A".to_owned()),
                (Field::IntellivueHwRevision, "A.01".to_owned()),
                (Field::IntellivueSwRevision, "M.00.03".to_owned()),
                (Field::IntellivueProtocolRevision, "DX-EXP 2.0".to_owned()),
                (Field::IntellivueProtocol, "data_out/udp/24105".to_owned()),
            ]
        );
        assert_eq!(direction(CONNECT_INDICATION), Direction::Unknown);
    }

    #[test]
    fn mds_create_names_the_monitor_and_skips_patient_attributes() {
        let got = facts(MDS_CREATE);
        assert_eq!(
            got,
            vec![
                (
                    Field::IntellivueManufacturer,
                    "Philips Medical Systems".to_owned()
                ),
                (Field::IntellivueModel, "M8007A".to_owned()),
                (Field::IntellivueSystemId, "00:09:fb:12:34:56".to_owned()),
                (Field::IntellivueSerial, "DE71234567".to_owned()),
                (Field::IntellivuePartNumber, "M8007A".to_owned()),
                (Field::IntellivueSwRevision, "M.00.03".to_owned()),
            ]
        );
        for (_, v) in &got {
            assert!(!v.contains("CANARY"), "{v}");
        }
        assert_eq!(direction(MDS_CREATE), Direction::FromServer);
    }

    #[test]
    fn client_messages_are_recognised_and_unread() {
        for b in [AARQ, MDS_CREATE_RESULT, POLL_REQUEST] {
            assert_eq!(probe(b), Probe::Certain);
            assert!(facts(b).is_empty());
        }
        assert_eq!(direction(AARQ), Direction::FromClient);
        assert_eq!(direction(POLL_REQUEST), Direction::FromClient);
        assert_eq!(direction(MDS_CREATE_RESULT), Direction::FromClient);
    }

    #[test]
    fn probe_is_strict() {
        assert_eq!(probe(CONNECT_INDICATION), Probe::Certain);
        assert_eq!(probe(MDS_CREATE), Probe::Certain);
        for other in [
            &include_bytes!("../testdata/snmp/v2c-response.bin")[..],
            &include_bytes!("../testdata/dhcp/discover.bin")[..],
            &include_bytes!("../testdata/nbns/query.bin")[..],
            b"NOTIFY * HTTP/1.1\r\n\r\n",
            &[],
        ] {
            assert_eq!(probe(other), Probe::NotMine);
        }
        // A length that disagrees with the datagram.
        let mut b = MDS_CREATE.to_vec();
        b.push(0);
        assert_eq!(probe(&b), Probe::NotMine);
    }

    proptest! {
        #[test]
        fn truncations_and_mutations_never_panic(
            which in 0usize..ALL.len(), cut in 0usize..400, at in 0usize..400, byte: u8,
        ) {
            let base = ALL[which];
            let mut b = base[..cut.min(base.len())].to_vec();
            if let Some(x) = b.get_mut(at) {
                *x = byte;
            }
            let mut out = Vec::new();
            let _ = extract(&b, &mut out);
            let _ = probe(&b);
            let _ = direction(&b);
        }
    }

    #[test]
    fn every_truncation_errs_or_is_not_mine() {
        for base in ALL {
            for cut in 0..base.len() {
                let mut out = Vec::new();
                assert!(extract(&base[..cut], &mut out).is_err(), "cut {cut}");
            }
        }
    }
}
