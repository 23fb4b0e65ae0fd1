//! Philips IntelliVue Data Export (LAN, UDP): what a patient monitor says about itself.
//!
//! Layouts follow the *Data Export Interface Programming Guide* (Philips 4535 642 59271) as the
//! public open-source clients implement it (xeonfusion/VSCaptureMP, mdpnp's OpenICE IntelliVue
//! driver, the DICES MP70 driver), checked against public byte dumps of real monitors' messages
//! (protocols/testdata/intellivue/README.md). Every integer is big-endian.
//!
//! Two monitor messages carry identity, both as an `AttributeList` (count, length, then
//! `AVAType { attribute_id: u16, length: u16, value }`):
//!
//! - the **Connect Indication** the monitor broadcasts to UDP 24005: `Nomenclature` (4 bytes),
//!   `ROapdus`, `ROIVapdu`, `EventReportArgument` (event type `NOM_NOTI_CONN_INDIC`), then the
//!   attribute list at offset 28. Its managed object is the bed's composite MDS
//!   (`NOM_MOC_MDS_COMPOS_SINGLE_BED`) in both real dumps (an MP70's and an 866062's), not the MDS
//!   object the data export messages name;
//! - the **MDS Create Event Report** the monitor sends once a client associated (UDP 24105):
//!   `SPpdu` (session id 0xE100, context id), the same three headers (event type
//!   `NOM_NOTI_MDS_CREAT`), a `ManagedObjectId`, then the attribute list at offset 34.
//!
//! From those lists only four attributes are read: `NOM_ATTR_ID_MODEL` (manufacturer and model
//! strings), `NOM_ATTR_ID_PROD_SPECN` (serial and part number, hardware / software / firmware /
//! protocol revisions), `NOM_ATTR_SYS_ID` (the MDS system id: the MAC address, 6 octets, or an
//! EUI-64 built from it, 8 octets, as the 866062 sends) and `NOM_ATTR_PCOL_SUPPORT` (the protocols
//! and ports the monitor offers). Strings are read up to their first NUL: real monitors pad a
//! label's fixed length with stale bytes after it (a serial `DE22713007\0\t`), and a revision of
//! dashes only (`--------`) means none. Every other attribute — bed label, patient
//! demographics, metrics, alarms — is stepped over by its length, unread. Any other data export
//! message (poll requests and their replies, which carry patient demographics and measurements)
//! is recognised by its headers and never read beyond them; association control (session
//! connect / finish / disconnect SPDUs) is recognised and yields nothing.
//!
//! Recognised by structure, never by port: the nested lengths of `ROapdus`, `ROIVapdu` and
//! `EventReportArgument` must agree with each other and with the datagram, the managed object
//! must be the MDS (or, for a Connect Indication, the composite single-bed MDS), and the event
//! type one of the two above; session SPDUs by their length indicator and the fixed session data
//! the guide prescribes.

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
/// `NOM_MOC_MDS_COMPOS_SINGLE_BED`: the managed object of the Connect Indications real monitors
/// send (somno/einstein's MP70 sample, Koshsky/Intellivue-api's 866062 capture).
const NOM_MOC_MDS_COMPOS_SINGLE_BED: u16 = 0x0023;
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
    match u16_at(b, field::OBJ_CLASS)? {
        NOM_MOC_VMS_MDS => {}
        // Only the broadcast Connect Indication names the composite MDS; it is checked to be
        // one below (event type, no data export session).
        NOM_MOC_MDS_COMPOS_SINGLE_BED if !data_export => {}
        _ => {
            return Err(invalid(
                field::OBJ_CLASS,
                "managed object class (not the MDS)",
            ))
        }
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

/// Pushes a label's text: up to its first NUL (what follows is padding, which real monitors
/// fill with stale bytes), surrounding ASCII whitespace trimmed (`" B.00.05"`, `"L.01.18\n"`),
/// nothing when empty or only dashes (how a monitor fills a revision it does not have).
fn push_text(facts: &mut Vec<Fact>, field: Field, raw: &[u8]) {
    let text = raw
        .split(|&b| b == 0)
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if text.iter().all(|&b| b == b'-') {
        return;
    }
    let v = clean_text(text);
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
                } else if id.len() == 8 {
                    // An EUI-64 (the 866062 sends 00:09:fb:ff:ff:88:c1:bd for its MAC address
                    // 00:09:fb:88:c1:bd): kept whole, in the same notation.
                    let hex: Vec<String> = id.iter().map(|b| format!("{b:02x}")).collect();
                    facts.push(Fact::new(Field::IntellivueSystemId, hex.join(":")));
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

    // Sources (protocols/testdata/intellivue/README.md has them in full):
    // - connect-indication-mp70.bin: somno/einstein `einstein/test_intellivue.py` (commit
    //   03472be42e1a16cfdca0cececec6733a482b3111), `SAMPLE_CONNECT_INDICATION`, verbatim.
    // - connect-indication-866062.bin: Koshsky/Intellivue-api `my_assoc` (commit
    //   8c5e68865e477212f0f1d3ac5067356bc7a79612), a Wireshark hex dump; its UDP payload.
    // - mds-create-m8000.bin: the `alerts_resp` literal of a public Python IntelliVue client
    //   (the search index did not name its repository), verbatim.
    // - mds-create.bin, demographics-result.bin: what the capture scenario's monitor sends,
    //   built by tests/captures/intellivue_peers.py from that MDS create and that client's
    //   `demo_resp` poll result with the MP70's identity and canary patient values.
    // - aarq.bin, mds-create-result.bin, poll-request.bin: VSCaptureMP's public byte arrays
    //   (`aarq_msg`, `mds_create_resp_msg`, `poll_request_msg`) as a C++ port of it lists them.
    const CI_MP70: &[u8] = include_bytes!("../testdata/intellivue/connect-indication-mp70.bin");
    const CI_866062: &[u8] = include_bytes!("../testdata/intellivue/connect-indication-866062.bin");
    const MDS_CREATE_M8000: &[u8] = include_bytes!("../testdata/intellivue/mds-create-m8000.bin");
    const MDS_CREATE: &[u8] = include_bytes!("../testdata/intellivue/mds-create.bin");
    const DEMOGRAPHICS_RESULT: &[u8] =
        include_bytes!("../testdata/intellivue/demographics-result.bin");
    const AARQ: &[u8] = include_bytes!("../testdata/intellivue/aarq.bin");
    const MDS_CREATE_RESULT: &[u8] = include_bytes!("../testdata/intellivue/mds-create-result.bin");
    const POLL_REQUEST: &[u8] = include_bytes!("../testdata/intellivue/poll-request.bin");
    const ALL: [&[u8]; 8] = [
        CI_MP70,
        CI_866062,
        MDS_CREATE_M8000,
        MDS_CREATE,
        DEMOGRAPHICS_RESULT,
        AARQ,
        MDS_CREATE_RESULT,
        POLL_REQUEST,
    ];

    fn facts(b: &[u8]) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    fn fact(field: Field, v: &str) -> (Field, String) {
        (field, v.to_owned())
    }

    /// A real MP70's Connect Indication (somno/einstein, `SAMPLE_CONNECT_INDICATION`): managed
    /// object `NOM_MOC_MDS_COMPOS_SINGLE_BED`, a serial label with stale bytes after its NUL
    /// (`DE22713007\0\t`), revisions padded with spaces, a firmware revision of dashes, the
    /// software revision only on the application software component, and 116 stale bytes
    /// after the production specification inside its attribute.
    #[test]
    fn real_mp70_connect_indication_names_the_monitor() {
        assert_eq!(u16_at(CI_MP70, field::OBJ_CLASS).unwrap(), 0x0023);
        assert_eq!(
            facts(CI_MP70),
            vec![
                fact(Field::IntellivueProtocol, "acse/3/24000"),
                fact(Field::IntellivueProtocol, "2/3/24000"),
                fact(Field::IntellivueProtocol, "acse/udp/24105"),
                fact(Field::IntellivueProtocol, "data_out/udp/24105"),
                fact(Field::IntellivueProtocol, "8/udp/33333"),
                fact(Field::IntellivueSerial, "DE22713007"),
                fact(Field::IntellivuePartNumber, "M8007A"),
                fact(Field::IntellivueHwRevision, "B.00.05"),
                fact(Field::IntellivueSwRevision, "G.01.78"),
                fact(Field::IntellivueManufacturer, "Philips"),
                fact(Field::IntellivueModel, "M8007A"),
            ]
        );
        assert_eq!(probe(CI_MP70), Probe::Certain);
        assert_eq!(direction(CI_MP70), Direction::Unknown);
    }

    /// A real Connect Indication of a monitor with product number 866062 (Koshsky/Intellivue-api `my_assoc`): a system id of
    /// 8 octets (an EUI-64 of its MAC address), a software revision label ending in a line
    /// feed, a product number (866062) as model and part number.
    #[test]
    fn real_866062_connect_indication_names_the_monitor() {
        assert_eq!(
            facts(CI_866062),
            vec![
                fact(Field::IntellivueProtocol, "acse/3/24000"),
                fact(Field::IntellivueProtocol, "2/3/24000"),
                fact(Field::IntellivueProtocol, "acse/udp/24105"),
                fact(Field::IntellivueProtocol, "data_out/udp/24105"),
                fact(Field::IntellivueProtocol, "10/udp/24012"),
                fact(Field::IntellivueSystemId, "00:09:fb:ff:ff:88:c1:bd"),
                fact(Field::IntellivueManufacturer, "Philips"),
                fact(Field::IntellivueModel, "866062"),
                fact(Field::IntellivueSerial, "DE351A4061"),
                fact(Field::IntellivuePartNumber, "866062"),
                fact(Field::IntellivueHwRevision, "A.00.30"),
                fact(Field::IntellivueSwRevision, "L.01.18"),
            ]
        );
        assert_eq!(probe(CI_866062), Probe::Certain);
    }

    /// A real MDS Create Event Report (a public Python client's `alerts_resp`): 17 attributes,
    /// of which the system id (6 octets) and the model are read; the bed label ("MICU1", a
    /// location) and everything else are stepped over.
    #[test]
    fn real_mds_create_names_the_monitor() {
        assert_eq!(
            facts(MDS_CREATE_M8000),
            vec![
                fact(Field::IntellivueSystemId, "00:09:fb:03:49:12"),
                fact(Field::IntellivueManufacturer, "Philips"),
                fact(Field::IntellivueModel, "M8000"),
            ]
        );
        assert_eq!(probe(MDS_CREATE_M8000), Probe::Certain);
        assert_eq!(direction(MDS_CREATE_M8000), Direction::FromServer);
    }

    /// The capture's MDS create (the real one above, spoken by the MP70, with a canary bed
    /// label) and its demographics poll result (a real one's layout with canary family name and
    /// patient id): the canaries never leave the decoder.
    #[test]
    fn capture_messages_name_the_mp70_and_skip_patient_attributes() {
        let got = facts(MDS_CREATE);
        assert_eq!(
            got,
            vec![
                fact(Field::IntellivueSystemId, "00:09:fb:09:77:bd"),
                fact(Field::IntellivueManufacturer, "Philips"),
                fact(Field::IntellivueModel, "M8007A"),
            ]
        );
        assert_eq!(direction(MDS_CREATE), Direction::FromServer);
        let carries =
            |b: &[u8], canary: &str| b.windows(canary.len()).any(|w| w == canary.as_bytes());
        assert!(carries(MDS_CREATE, "CANARYIV^BEDLABEL"));
        assert!(carries(DEMOGRAPHICS_RESULT, "CANARYIV^PATIENT"));
        assert!(carries(DEMOGRAPHICS_RESULT, "CANARY-MRN-IV-0001"));
        assert_eq!(probe(DEMOGRAPHICS_RESULT), Probe::Certain);
        assert!(facts(DEMOGRAPHICS_RESULT).is_empty());
        assert_eq!(direction(DEMOGRAPHICS_RESULT), Direction::FromServer);
    }

    /// A real Connect Indication begins `00 00 01 00 00 01`, a DNS header to a lenient eye: the
    /// registry must hand it (and every other sample) to IntelliVue, not to mDNS or DNS, whose
    /// probes come first.
    #[test]
    fn the_registry_hands_real_messages_to_intellivue() {
        for b in ALL {
            assert_eq!(
                crate::registry::probe_datagram(b).map(|d| d.protocol),
                Some(Protocol::Intellivue)
            );
        }
    }

    #[test]
    fn label_text_stops_at_nul_and_drops_dash_placeholders() {
        let mut out = Vec::new();
        push_text(&mut out, Field::IntellivueSerial, b"DE22713007\0\t");
        push_text(&mut out, Field::IntellivueSwRevision, b"L.01.18\n");
        push_text(&mut out, Field::IntellivueFwRevision, b"--------");
        push_text(&mut out, Field::IntellivueHwRevision, b" \0B.00");
        let got: Vec<_> = out.into_iter().map(|f| f.value).collect();
        assert_eq!(got, ["DE22713007", "L.01.18"]);
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
        assert_eq!(probe(CI_MP70), Probe::Certain);
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
        // The composite MDS object names a Connect Indication only, never a data export
        // message; a Connect Indication naming another object is not one.
        let mut b = MDS_CREATE.to_vec();
        b[field::OBJ_CLASS + 1] = 0x23;
        assert_eq!(probe(&b), Probe::NotMine);
        let mut b = CI_MP70.to_vec();
        b[field::OBJ_CLASS + 1] = 0x06;
        assert_eq!(probe(&b), Probe::NotMine);
        let mut b = CI_MP70.to_vec();
        b[field::OBJ_CLASS + 1] = 0x21;
        assert_eq!(probe(&b), Probe::Certain);
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
