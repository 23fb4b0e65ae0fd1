//! Zero-copy checked views of DICOM Upper Layer structures (PS3.8 §9.3): PDU headers, the
//! A-ASSOCIATE-RQ/AC body and its variable items, A-ASSOCIATE-RJ, A-ABORT and PDV headers.
//!
//! Contract (smoltcp's): untrusted bytes go through `new_checked`; once that succeeds no accessor
//! panics. Accessors still go through `get()` because indexing is denied crate-wide; their
//! fallbacks are unreachable after the check. Error offsets are relative to the buffer handed to
//! the view (for items: to the start of the PDU or parent item the iterator was built from).

use crate::error::{DecodeError, Layer};
use crate::evidence::Protocol;

/// Byte layout of the structures, so offsets are named once and reviewed against PS3.8.
pub mod field {
    use core::ops::Range;

    /// PDU type.
    pub const PDU_TYPE: usize = 0;
    /// Reserved byte after the type; sent as 0.
    pub const PDU_RESERVED: usize = 1;
    /// PDU length: bytes after the 6-byte header, big-endian.
    pub const PDU_LENGTH: Range<usize> = 2..6;
    /// Size of the PDU header.
    pub const PDU_HEADER_LEN: usize = 6;

    /// A-ASSOCIATE-RQ/AC protocol version (bit 0 = version 1).
    pub const PROTOCOL_VERSION: Range<usize> = 6..8;
    /// A-ASSOCIATE-RQ/AC called AE title, 16 bytes space padded.
    pub const CALLED_AE: Range<usize> = 10..26;
    /// A-ASSOCIATE-RQ/AC calling AE title, 16 bytes space padded.
    pub const CALLING_AE: Range<usize> = 26..42;
    /// First variable item of an A-ASSOCIATE-RQ/AC (after 32 reserved bytes).
    pub const ASSOCIATE_ITEMS: usize = 74;

    /// A-ASSOCIATE-RJ result (1 permanent, 2 transient).
    pub const RJ_RESULT: usize = 7;
    /// A-ASSOCIATE-RJ source.
    pub const RJ_SOURCE: usize = 8;
    /// A-ASSOCIATE-RJ reason/diagnostic.
    pub const RJ_REASON: usize = 9;
    /// A-ABORT source.
    pub const ABORT_SOURCE: usize = 8;
    /// A-ABORT reason/diagnostic.
    pub const ABORT_REASON: usize = 9;
    /// Size of the fixed-size PDUs (RJ, RELEASE-RQ/RP, ABORT).
    pub const FIXED_PDU_LEN: usize = 10;

    /// Variable item type.
    pub const ITEM_TYPE: usize = 0;
    /// Variable item length: bytes after the 4-byte item header, big-endian.
    pub const ITEM_LENGTH: Range<usize> = 2..4;
    /// Size of an item header.
    pub const ITEM_HEADER_LEN: usize = 4;

    /// Presentation context item (0x20/0x21) value: context id.
    pub const PC_ID: usize = 0;
    /// Presentation context item value: result/reason (AC only).
    pub const PC_RESULT: usize = 2;
    /// Presentation context item value: first sub-item.
    pub const PC_SUB_ITEMS: usize = 4;

    /// SCP/SCU role selection sub-item (0x54) value: UID length.
    pub const ROLE_UID_LENGTH: Range<usize> = 0..2;
    /// SCP/SCU role selection sub-item value: the UID.
    pub const ROLE_UID: usize = 2;

    /// PDV item length (counts context id, control header and data), big-endian.
    pub const PDV_LENGTH: Range<usize> = 0..4;
    /// PDV presentation context id.
    pub const PDV_CONTEXT: usize = 4;
    /// PDV message control header: bit 0 command, bit 1 last fragment.
    pub const PDV_CONTROL: usize = 5;
    /// Size of a PDV header.
    pub const PDV_HEADER_LEN: usize = 6;
}

/// PDU types of PS3.8 §9.3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PduType {
    /// 0x01 A-ASSOCIATE-RQ.
    AssociateRq,
    /// 0x02 A-ASSOCIATE-AC.
    AssociateAc,
    /// 0x03 A-ASSOCIATE-RJ.
    AssociateRj,
    /// 0x04 P-DATA-TF.
    PData,
    /// 0x05 A-RELEASE-RQ.
    ReleaseRq,
    /// 0x06 A-RELEASE-RP.
    ReleaseRp,
    /// 0x07 A-ABORT.
    Abort,
}

impl PduType {
    /// Decodes the type byte.
    pub const fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => PduType::AssociateRq,
            0x02 => PduType::AssociateAc,
            0x03 => PduType::AssociateRj,
            0x04 => PduType::PData,
            0x05 => PduType::ReleaseRq,
            0x06 => PduType::ReleaseRp,
            0x07 => PduType::Abort,
            _ => return None,
        })
    }
}

/// Variable item types used inside A-ASSOCIATE-RQ/AC (PS3.8 §9.3.2–9.3.3, Annex D).
pub mod item {
    /// Application context name.
    pub const APPLICATION_CONTEXT: u8 = 0x10;
    /// Presentation context in an A-ASSOCIATE-RQ.
    pub const PRESENTATION_CONTEXT_RQ: u8 = 0x20;
    /// Presentation context in an A-ASSOCIATE-AC.
    pub const PRESENTATION_CONTEXT_AC: u8 = 0x21;
    /// Abstract syntax sub-item.
    pub const ABSTRACT_SYNTAX: u8 = 0x30;
    /// Transfer syntax sub-item.
    pub const TRANSFER_SYNTAX: u8 = 0x40;
    /// User information.
    pub const USER_INFORMATION: u8 = 0x50;
    /// User information: maximum length received.
    pub const MAX_LENGTH: u8 = 0x51;
    /// User information: implementation class UID.
    pub const IMPLEMENTATION_CLASS_UID: u8 = 0x52;
    /// User information: SCP/SCU role selection.
    pub const ROLE_SELECTION: u8 = 0x54;
    /// User information: implementation version name.
    pub const IMPLEMENTATION_VERSION: u8 = 0x55;
}

fn byte(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

fn be_u16(buf: &[u8], range: core::ops::Range<usize>) -> u16 {
    buf.get(range)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

fn be_u32(buf: &[u8], range: core::ops::Range<usize>) -> u32 {
    buf.get(range)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Converts a wire length to `usize`, saturating (only matters on 16-bit targets).
pub(crate) fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn pdu_err(offset: usize, needed: usize, len: usize) -> DecodeError {
    DecodeError::truncated(Layer::App(Protocol::Dicom), offset, needed, len)
}

fn invalid(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Invalid {
        layer: Layer::App(Protocol::Dicom),
        offset,
        what,
    }
}

/// A view of the 6-byte PDU header at the start of a buffer; the body may be absent, which is
/// what the streaming decoder needs to decide how much to wait for.
#[derive(Debug, Clone, Copy)]
pub struct PduHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PduHeader<T> {
    /// Checks that the buffer holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let len = buffer.as_ref().len();
        if len < field::PDU_HEADER_LEN {
            return Err(pdu_err(0, field::PDU_HEADER_LEN, len));
        }
        Ok(PduHeader { buffer })
    }

    /// The type byte as sent.
    pub fn raw_type(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PDU_TYPE)
    }

    /// The PDU type, if it is one PS3.8 defines.
    pub fn pdu_type(&self) -> Option<PduType> {
        PduType::from_u8(self.raw_type())
    }

    /// The reserved byte after the type.
    pub fn reserved(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PDU_RESERVED)
    }

    /// Body length (bytes after the header).
    pub fn length(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::PDU_LENGTH)
    }

    /// Header plus body length, in bytes.
    pub fn total_len(&self) -> u64 {
        u64::from(self.length()) + field::PDU_HEADER_LEN as u64
    }
}

/// A whole A-ASSOCIATE-RQ or -AC PDU.
#[derive(Debug, Clone, Copy)]
pub struct AssociatePdu<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AssociatePdu<T> {
    /// Checks the type, that the fixed part is present and that the whole PDU is in the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let header = PduHeader::new_checked(buffer.as_ref())?;
        if !matches!(
            header.pdu_type(),
            Some(PduType::AssociateRq | PduType::AssociateAc)
        ) {
            return Err(invalid(field::PDU_TYPE, "A-ASSOCIATE PDU type"));
        }
        let total = header.total_len();
        if total < field::ASSOCIATE_ITEMS as u64 {
            return Err(invalid(field::PDU_LENGTH.start, "A-ASSOCIATE PDU length"));
        }
        let len = buffer.as_ref().len();
        if (len as u64) < total {
            return Err(pdu_err(
                0,
                usize::try_from(total).unwrap_or(usize::MAX),
                len,
            ));
        }
        Ok(AssociatePdu { buffer })
    }

    fn body(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = PduHeader { buffer: buf }.total_len();
        buf.get(..usize::try_from(end).unwrap_or(usize::MAX))
            .unwrap_or_default()
    }

    /// RQ or AC.
    pub fn pdu_type(&self) -> PduType {
        PduType::from_u8(byte(self.buffer.as_ref(), field::PDU_TYPE))
            .unwrap_or(PduType::AssociateRq)
    }

    /// The protocol version bit field (bit 0 is version 1).
    pub fn protocol_version(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::PROTOCOL_VERSION)
    }

    /// Called AE title, raw (space padded).
    pub fn called_ae(&self) -> &[u8] {
        self.body().get(field::CALLED_AE).unwrap_or_default()
    }

    /// Calling AE title, raw (space padded).
    pub fn calling_ae(&self) -> &[u8] {
        self.body().get(field::CALLING_AE).unwrap_or_default()
    }

    /// The variable items (application context, presentation contexts, user information).
    pub fn items(&self) -> Items<'_> {
        Items::new(
            self.body()
                .get(field::ASSOCIATE_ITEMS..)
                .unwrap_or_default(),
            field::ASSOCIATE_ITEMS,
        )
    }
}

/// One variable item or sub-item: type, value, and where its header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// Item type.
    pub item_type: u8,
    /// Offset of the item header from the start of the enclosing PDU or item value.
    pub offset: usize,
    /// The value (bytes after the item header).
    pub value: &'a [u8],
}

/// Iterator over consecutive variable items. Yields an error once if an item overruns its parent,
/// then stops: after a bad length there is no reliable way to find the next item.
#[derive(Debug, Clone)]
pub struct Items<'a> {
    rest: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Items<'a> {
    /// Items in `buf`, whose first byte is at `offset` in the enclosing structure.
    pub fn new(buf: &'a [u8], offset: usize) -> Self {
        Items {
            rest: buf,
            offset,
            failed: false,
        }
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<Item<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let at = self.offset;
        let Some((header, after)) = self.rest.split_at_checked(field::ITEM_HEADER_LEN) else {
            self.failed = true;
            return Some(Err(pdu_err(
                at,
                field::ITEM_HEADER_LEN,
                at + self.rest.len(),
            )));
        };
        let len = usize::from(be_u16(header, field::ITEM_LENGTH));
        let Some((value, rest)) = after.split_at_checked(len) else {
            self.failed = true;
            let needed = field::ITEM_HEADER_LEN + len;
            return Some(Err(pdu_err(at, needed, at + self.rest.len())));
        };
        self.rest = rest;
        self.offset = at + field::ITEM_HEADER_LEN + len;
        Some(Ok(Item {
            item_type: byte(header, field::ITEM_TYPE),
            offset: at,
            value,
        }))
    }
}

/// The value of a presentation context item (0x20 in an RQ, 0x21 in an AC).
#[derive(Debug, Clone, Copy)]
pub struct PresentationContext<'a> {
    value: &'a [u8],
    offset: usize,
}

impl<'a> PresentationContext<'a> {
    /// Checks that the fixed part (id, reserved, result, reserved) is present.
    pub fn new_checked(item: Item<'a>) -> Result<Self, DecodeError> {
        if item.value.len() < field::PC_SUB_ITEMS {
            let at = item.offset + field::ITEM_HEADER_LEN;
            return Err(pdu_err(at, field::PC_SUB_ITEMS, at + item.value.len()));
        }
        Ok(PresentationContext {
            value: item.value,
            offset: item.offset + field::ITEM_HEADER_LEN,
        })
    }

    /// Presentation context id (odd, 1–255).
    pub fn id(&self) -> u8 {
        byte(self.value, field::PC_ID)
    }

    /// AC result/reason: 0 acceptance … 4 transfer syntaxes not supported. Reserved in an RQ.
    pub fn result(&self) -> u8 {
        byte(self.value, field::PC_RESULT)
    }

    /// Abstract syntax and transfer syntax sub-items.
    pub fn sub_items(&self) -> Items<'a> {
        Items::new(
            self.value.get(field::PC_SUB_ITEMS..).unwrap_or_default(),
            self.offset + field::PC_SUB_ITEMS,
        )
    }
}

/// The value of an SCP/SCU role selection sub-item (0x54).
#[derive(Debug, Clone, Copy)]
pub struct RoleSelection<'a> {
    value: &'a [u8],
    uid_len: usize,
}

impl<'a> RoleSelection<'a> {
    /// Checks that the UID and both role bytes are present.
    pub fn new_checked(item: Item<'a>) -> Result<Self, DecodeError> {
        let uid_len = usize::from(be_u16(item.value, field::ROLE_UID_LENGTH));
        let needed = field::ROLE_UID + uid_len + 2;
        if item.value.len() < needed {
            let at = item.offset + field::ITEM_HEADER_LEN;
            return Err(pdu_err(at, needed, at + item.value.len()));
        }
        Ok(RoleSelection {
            value: item.value,
            uid_len,
        })
    }

    /// The SOP class UID, raw.
    pub fn uid(&self) -> &'a [u8] {
        self.value
            .get(field::ROLE_UID..field::ROLE_UID + self.uid_len)
            .unwrap_or_default()
    }

    /// Whether the sender supports the SCU role for this class.
    pub fn scu(&self) -> bool {
        byte(self.value, field::ROLE_UID + self.uid_len) != 0
    }

    /// Whether the sender supports the SCP role for this class.
    pub fn scp(&self) -> bool {
        byte(self.value, field::ROLE_UID + self.uid_len + 1) != 0
    }
}

/// A-ASSOCIATE-RJ.
#[derive(Debug, Clone, Copy)]
pub struct RejectPdu<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RejectPdu<T> {
    /// Checks the type and that the 10 bytes are present.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        check_fixed(buffer.as_ref(), PduType::AssociateRj)?;
        Ok(RejectPdu { buffer })
    }

    /// 1 rejected-permanent, 2 rejected-transient.
    pub fn result(&self) -> u8 {
        byte(self.buffer.as_ref(), field::RJ_RESULT)
    }

    /// 1 service user, 2 service provider (ACSE), 3 service provider (presentation).
    pub fn source(&self) -> u8 {
        byte(self.buffer.as_ref(), field::RJ_SOURCE)
    }

    /// Reason/diagnostic; its meaning depends on the source.
    pub fn reason(&self) -> u8 {
        byte(self.buffer.as_ref(), field::RJ_REASON)
    }
}

/// A-ABORT.
#[derive(Debug, Clone, Copy)]
pub struct AbortPdu<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AbortPdu<T> {
    /// Checks the type and that the 10 bytes are present.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        check_fixed(buffer.as_ref(), PduType::Abort)?;
        Ok(AbortPdu { buffer })
    }

    /// 0 service user, 2 service provider.
    pub fn source(&self) -> u8 {
        byte(self.buffer.as_ref(), field::ABORT_SOURCE)
    }

    /// Reason/diagnostic (significant when the provider aborted).
    pub fn reason(&self) -> u8 {
        byte(self.buffer.as_ref(), field::ABORT_REASON)
    }
}

fn check_fixed(buf: &[u8], want: PduType) -> Result<(), DecodeError> {
    let header = PduHeader::new_checked(buf)?;
    if header.pdu_type() != Some(want) {
        return Err(invalid(field::PDU_TYPE, "PDU type"));
    }
    if buf.len() < field::FIXED_PDU_LEN {
        return Err(pdu_err(0, field::FIXED_PDU_LEN, buf.len()));
    }
    Ok(())
}

/// The 6-byte header of a presentation data value inside a P-DATA-TF body.
#[derive(Debug, Clone, Copy)]
pub struct PdvHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PdvHeader<T> {
    /// Checks that the header is present and its length covers at least the context id and
    /// control byte.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let len = buffer.as_ref().len();
        if len < field::PDV_HEADER_LEN {
            return Err(pdu_err(0, field::PDV_HEADER_LEN, len));
        }
        if be_u32(buffer.as_ref(), field::PDV_LENGTH) < 2 {
            return Err(invalid(field::PDV_LENGTH.start, "PDV length"));
        }
        Ok(PdvHeader { buffer })
    }

    /// The PDV item length (context id + control byte + fragment).
    pub fn length(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::PDV_LENGTH)
    }

    /// Bytes of message fragment after the header.
    pub fn fragment_len(&self) -> u32 {
        self.length().saturating_sub(2)
    }

    /// Presentation context id.
    pub fn context_id(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PDV_CONTEXT)
    }

    /// The message control header byte.
    pub fn control(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PDV_CONTROL)
    }

    /// The fragment belongs to a command set (else to a data set).
    pub fn is_command(&self) -> bool {
        self.control() & 0x01 != 0
    }

    /// The fragment is the last of its command or data set.
    pub fn is_last(&self) -> bool {
        self.control() & 0x02 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIND_RQ: &[u8] = include_bytes!("../../testdata/dicom/arq_find_testclient.client.bin");

    #[test]
    fn deconstruct_associate_rq() {
        let pdu = AssociatePdu::new_checked(FIND_RQ).unwrap();
        assert_eq!(pdu.pdu_type(), PduType::AssociateRq);
        assert_eq!(pdu.protocol_version(), 1);
        assert_eq!(pdu.called_ae(), b"testserver      ");
        assert_eq!(pdu.calling_ae(), b"testclient      ");
        let items: Vec<_> = pdu.items().collect::<Result<_, _>>().unwrap();
        let types: Vec<u8> = items.iter().map(|i| i.item_type).collect();
        assert_eq!(types, [0x10, 0x20, 0x20, 0x20, 0x20, 0x50]);
        assert_eq!(items[0].value, b"1.2.840.10008.3.1.1.1");
        assert_eq!(items[0].offset, 74);
        let pc = PresentationContext::new_checked(items[1]).unwrap();
        assert_eq!(pc.id(), 1);
        let subs: Vec<_> = pc.sub_items().map(Result::unwrap).collect();
        assert_eq!(subs[0].item_type, 0x30);
        assert_eq!(subs[0].value, b"1.2.840.10008.5.1.4.1.2.1.1");
        assert_eq!(subs.len(), 5);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for n in 0..FIND_RQ.len() {
            let err = AssociatePdu::new_checked(&FIND_RQ[..n]).unwrap_err();
            assert_eq!(err.layer(), Layer::App(Protocol::Dicom));
        }
    }

    #[test]
    fn impossible_item_length_is_reported_once() {
        let mut bad = FIND_RQ.to_vec();
        bad[76] = 0xff; // application context item length high byte
        let pdu = AssociatePdu::new_checked(&bad[..]).unwrap();
        let items: Vec<_> = pdu.items().collect();
        assert_eq!(items.len(), 1);
        assert!(matches!(
            items[0],
            Err(DecodeError::Truncated { offset: 74, .. })
        ));
    }

    #[test]
    fn short_and_wrong_pdus() {
        assert!(PduHeader::new_checked(&[1u8, 0, 0][..]).is_err());
        let abort = [7u8, 0, 0, 0, 0, 4, 0, 0, 2, 6];
        let a = AbortPdu::new_checked(&abort[..]).unwrap();
        assert_eq!((a.source(), a.reason()), (2, 6));
        assert!(RejectPdu::new_checked(&abort[..]).is_err());
        assert!(AbortPdu::new_checked(&abort[..9]).is_err());
        assert!(AssociatePdu::new_checked(&abort[..]).is_err());
        assert!(PdvHeader::new_checked(&[0u8, 0, 0, 1, 1, 3][..]).is_err());
        let pdv = PdvHeader::new_checked(&[0u8, 0, 0, 2, 1, 3][..]).unwrap();
        assert_eq!(pdv.fragment_len(), 0);
        assert!(pdv.is_command() && pdv.is_last());
    }
}
