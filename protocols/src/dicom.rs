//! DICOM Upper Layer (PS3.8) and DIMSE decoding, recognised by structure on any port.
//!
//! [`looks_like_dicom`] tells the reassembler whether a new TCP stream is DICOM; a
//! [`DicomDecoder`] then follows each direction PDU by PDU:
//!
//! - A-ASSOCIATE-RQ/AC/RJ, A-RELEASE and A-ABORT are small, so they are decoded whole (with the
//!   checked views of [`pdu`]) once all their bytes are there.
//! - P-DATA-TF can be megabytes, so it is walked incrementally: PDU header, PDV headers, and
//!   fragment bytes handed to a bounded command-set buffer or to the streaming
//!   [`dataset::DatasetWalker`] and consumed at once.
//!
//! Datasets are walked only after a C-STORE-RQ (in either direction: C-GET makes the SCP send
//! them), and only the six device-identity elements are ever read; see [`dataset`].

pub mod dataset;
pub mod pdu;
pub mod sop;

use std::collections::{BTreeMap, HashSet};

/// Per-connection dedupe sets hold peer-chosen strings: randomly seeded aHash, not SipHash.
type FastSet<T> = HashSet<T, ahash::RandomState>;
type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};
use crate::{Feed, StreamDecoder};
use dataset::{DatasetWalker, Encoding};
use pdu::{
    item, AbortPdu, AssociatePdu, Item, PduHeader, PduType, PdvHeader, PresentationContext,
    RejectPdu, RoleSelection,
};

/// Smallest A-ASSOCIATE-RQ/AC body: the 68 fixed bytes before the variable items.
const MIN_ASSOCIATE_LEN: u32 = 68;
/// Largest A-ASSOCIATE body [`looks_like_dicom`] finds plausible.
const MAX_ASSOCIATE_LEN: u32 = 1 << 20;
/// Largest P-DATA-TF [`looks_like_dicom`] finds plausible (max PDU lengths are negotiated, but
/// real ones stay well below this).
const MAX_PDATA_LEN: u32 = 1 << 26;
/// Non-P-DATA PDUs are held whole until complete; one bigger than this is not worth the memory.
pub const MAX_CONTROL_PDU: u32 = 64 * 1024;
/// A command set longer than this is dropped (real ones are ~100–200 bytes).
pub const MAX_COMMAND_LEN: usize = 4096;
/// Distinct DIMSE (command, SOP class) pairs and dataset facts remembered per connection; once
/// full, new ones are no longer reported, which bounds both memory and output.
const MAX_REMEMBERED: usize = 256;

/// DICOM's entry in [`crate::registry`]: a TCP protocol found by [`looks_like_dicom`]; no
/// resynchronisation (a P-DATA-TF start is already recognised by the probe).
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Dicom,
    probe: |prefix| Probe::from(looks_like_dicom(prefix)),
    resync: None,
    decode: Decode::Stream(|| Box::new(DicomDecoder::new())),
};

/// Structure test on the first bytes of a stream direction.
///
/// `Some(true)` for an A-ASSOCIATE-RQ (or the AC/RJ answering one, for the reverse direction)
/// with a plausible length and the protocol version bit set, or a P-DATA-TF whose first PDV
/// header is consistent (captures that begin mid-association); `None` while too few bytes are
/// there to tell; `Some(false)` otherwise. Constant time: it runs for every new TCP stream.
pub fn looks_like_dicom(prefix: &[u8]) -> Option<bool> {
    let ty = *prefix.first()?;
    if !(1..=4).contains(&ty) || prefix.get(1).is_some_and(|&r| r != 0) {
        return Some(false);
    }
    let len = PduHeader::new_checked(prefix).ok()?.length();
    match PduType::from_u8(ty) {
        Some(PduType::AssociateRq | PduType::AssociateAc) => {
            if !(MIN_ASSOCIATE_LEN..=MAX_ASSOCIATE_LEN).contains(&len) {
                return Some(false);
            }
            let version = prefix.get(pdu::field::PROTOCOL_VERSION)?;
            if version.last().is_some_and(|v| v & 1 == 0) {
                return Some(false);
            }
            // AE titles are printable (or NUL padding from sloppy senders); binary protocols
            // that happen to start 01 00 rarely pass this.
            let ae_end = pdu::field::CALLING_AE.end.min(prefix.len());
            let ae = prefix
                .get(pdu::field::CALLED_AE.start..ae_end)
                .unwrap_or_default();
            Some(ae.iter().all(|&b| b == 0 || (0x20..0x7f).contains(&b)))
        }
        Some(PduType::AssociateRj) => {
            let rj = prefix.get(..pdu::field::FIXED_PDU_LEN)?;
            let ok = len == 4
                && rj
                    .get(pdu::field::RJ_RESULT)
                    .is_some_and(|r| (1..=2).contains(r))
                && rj
                    .get(pdu::field::RJ_SOURCE)
                    .is_some_and(|s| (1..=3).contains(s));
            Some(ok)
        }
        Some(PduType::PData) => {
            let pdv = prefix.get(pdu::field::PDU_HEADER_LEN..pdu::field::PDU_HEADER_LEN + 6)?;
            let Ok(pdv) = PdvHeader::new_checked(pdv) else {
                return Some(false);
            };
            let ok = (6..=MAX_PDATA_LEN).contains(&len)
                && u64::from(pdv.length()) + 4 <= u64::from(len)
                && pdv.context_id() % 2 == 1
                && pdv.control() <= 3;
            Some(ok)
        }
        _ => Some(false),
    }
}

/// What the connection has learnt about one presentation context.
#[derive(Debug, Clone, Default)]
struct Context {
    /// Proposed abstract syntax (empty when the RQ was not seen).
    abstract_syntax: String,
    /// Storage roles are reversed (C-GET sub-operations or SCP-only role selection): proposing
    /// or accepting the class then says nothing about being a modality or an archive.
    reversed: bool,
    /// From the transfer syntax the AC accepted; `None` until then.
    encoding: Option<Encoding>,
}

/// Connection-wide state shared by both directions.
#[derive(Debug, Default)]
struct Association {
    contexts: BTreeMap<u8, Context>,
    rq_seen: bool,
    /// The side being fed now, and the side that sent the A-ASSOCIATE-RQ (the requestor) once
    /// an RQ — or, failing that, the AC answering one — has been decoded.
    feeding: Option<Direction>,
    requestor: Option<Direction>,
    /// (command field, SOP class) pairs already reported.
    commands: FastSet<(u16, String)>,
    /// Dataset facts already reported.
    dataset_facts: FastSet<Fact>,
}

/// Where a direction is in its PDU stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Waiting for a PDU header (and, for non-P-DATA PDUs, the whole PDU).
    #[default]
    Pdu,
    /// Inside a P-DATA-TF body, at a PDV header; `pdu_left` body bytes remain.
    Pdv { pdu_left: u32 },
    /// Inside a PDV's fragment.
    Fragment {
        pdu_left: u32,
        left: u32,
        context: u8,
        command: bool,
        last: bool,
    },
    /// Skipping the rest of a malformed P-DATA-TF body.
    Skip { left: u32 },
}

/// Per-direction state.
#[derive(Debug, Default)]
struct Side {
    state: State,
    done: bool,
    /// Command set being reassembled from fragments, and its context.
    command: Vec<u8>,
    command_context: u8,
    command_overflow: bool,
    /// Walker for the dataset following a C-STORE-RQ on this context.
    dataset: Option<(u8, DatasetWalker)>,
}

/// Outcome of one decoding step.
enum Step {
    /// Consumed this many bytes (possibly 0 when only the state moved on).
    Progress(usize),
    /// Needs more bytes.
    NeedMore,
    /// The direction is not (or no longer) decodable.
    GiveUp,
}

/// Streaming DICOM decoder for one TCP connection; see the [module docs](self).
#[derive(Debug, Default)]
pub struct DicomDecoder {
    client: Side,
    server: Side,
    unknown: Side,
    association: Association,
}

impl DicomDecoder {
    /// A decoder for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    fn side(&mut self, side: Direction) -> (&mut Side, &mut Association) {
        let s = match side {
            Direction::FromClient => &mut self.client,
            Direction::FromServer => &mut self.server,
            Direction::Unknown => &mut self.unknown,
        };
        (s, &mut self.association)
    }

    /// Bytes held in buffers, for bounding tests.
    #[cfg(test)]
    fn footprint(&self) -> usize {
        [&self.client, &self.server, &self.unknown]
            .iter()
            .map(|s| s.command.capacity() + s.dataset.as_ref().map_or(0, |(_, w)| w.footprint()))
            .sum()
    }
}

impl StreamDecoder for DicomDecoder {
    fn feed(
        &mut self,
        side: Direction,
        data: &[u8],
        at_limit: bool,
        facts: &mut Vec<Fact>,
    ) -> Feed {
        let dir = side;
        let (side, association) = self.side(side);
        if side.done {
            return Feed::Done;
        }
        association.feeding = Some(dir);
        let mut pos = 0;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            match side.step(association, rest, facts) {
                Step::Progress(n) => pos += n,
                Step::NeedMore => break,
                Step::GiveUp => return side.give_up(),
            }
        }
        if at_limit && pos == 0 {
            // Only an incomplete non-P-DATA PDU can fill the reassembler's buffer.
            return side.give_up();
        }
        Feed::Consumed(pos)
    }

    fn client(&self) -> Option<Direction> {
        self.association.requestor
    }
}

impl Side {
    /// Stops decoding this direction for good and frees its buffers.
    fn give_up(&mut self) -> Feed {
        *self = Side {
            done: true,
            ..Side::default()
        };
        Feed::Done
    }

    fn step(&mut self, assoc: &mut Association, data: &[u8], facts: &mut Vec<Fact>) -> Step {
        match self.state {
            State::Pdu => {
                let Ok(header) = PduHeader::new_checked(data) else {
                    return Step::NeedMore;
                };
                let len = header.length();
                match header.pdu_type() {
                    Some(PduType::PData) => {
                        self.state = State::Pdv { pdu_left: len };
                        Step::Progress(pdu::field::PDU_HEADER_LEN)
                    }
                    Some(ty) if len <= MAX_CONTROL_PDU => {
                        let total = pdu::field::PDU_HEADER_LEN + pdu::to_usize(len);
                        let Some(whole) = data.get(..total) else {
                            return Step::NeedMore;
                        };
                        assoc.control_pdu(ty, whole, facts);
                        Step::Progress(total)
                    }
                    _ => Step::GiveUp,
                }
            }
            State::Pdv { pdu_left } => {
                if pdu_left == 0 {
                    self.state = State::Pdu;
                    return Step::Progress(0);
                }
                let header_len = pdu::field::PDV_HEADER_LEN as u32;
                let pdv = match PdvHeader::new_checked(data) {
                    Ok(pdv) if pdu_left >= header_len => pdv,
                    Err(_) if data.len() < pdu::field::PDV_HEADER_LEN && pdu_left >= header_len => {
                        return Step::NeedMore
                    }
                    _ => {
                        self.state = State::Skip { left: pdu_left };
                        return Step::Progress(0);
                    }
                };
                let Some(after) = (pdu_left - header_len).checked_sub(pdv.fragment_len()) else {
                    // The PDV claims more than its PDU holds.
                    self.state = State::Skip { left: pdu_left };
                    return Step::Progress(0);
                };
                self.begin_fragment(pdv.context_id(), pdv.is_command());
                self.state = State::Fragment {
                    pdu_left: after,
                    left: pdv.fragment_len(),
                    context: pdv.context_id(),
                    command: pdv.is_command(),
                    last: pdv.is_last(),
                };
                Step::Progress(pdu::field::PDV_HEADER_LEN)
            }
            State::Fragment {
                pdu_left,
                left,
                context,
                command,
                last,
            } => {
                if left == 0 {
                    if last {
                        self.end_message(assoc, command, facts);
                    }
                    self.state = State::Pdv { pdu_left };
                    return Step::Progress(0);
                }
                if data.is_empty() {
                    return Step::NeedMore;
                }
                let n = data.len().min(pdu::to_usize(left));
                let chunk = data.get(..n).unwrap_or_default();
                self.fragment_bytes(assoc, context, command, chunk, facts);
                self.state = State::Fragment {
                    pdu_left,
                    left: left - u32::try_from(n).unwrap_or(left),
                    context,
                    command,
                    last,
                };
                Step::Progress(n)
            }
            State::Skip { left } => {
                if left == 0 {
                    self.state = State::Pdu;
                    return Step::Progress(0);
                }
                if data.is_empty() {
                    return Step::NeedMore;
                }
                let n = data.len().min(pdu::to_usize(left));
                self.state = State::Skip {
                    left: left - u32::try_from(n).unwrap_or(left),
                };
                Step::Progress(n)
            }
        }
    }

    fn begin_fragment(&mut self, context: u8, command: bool) {
        if command {
            // A new command ends whatever dataset came before it.
            self.dataset = None;
            if context != self.command_context {
                self.reset_command();
                self.command_context = context;
            }
        } else if !self.command.is_empty() || self.command_overflow {
            // Data in the middle of a command set: the command is lost.
            self.reset_command();
        }
    }

    fn fragment_bytes(
        &mut self,
        assoc: &mut Association,
        context: u8,
        command: bool,
        chunk: &[u8],
        facts: &mut Vec<Fact>,
    ) {
        if command {
            if self.command_overflow || self.command.len() + chunk.len() > MAX_COMMAND_LEN {
                self.command_overflow = true;
                self.command = Vec::new();
            } else {
                self.command.extend_from_slice(chunk);
                // Command sets start with a group 0000 tag. Anything else is a dataset sent
                // with the command bit set, and dataset bytes are never held.
                if self.command.iter().take(2).any(|&b| b != 0) {
                    self.command_overflow = true;
                    self.command = Vec::new();
                }
            }
            return;
        }
        let Some((ctx, walker)) = self.dataset.as_mut() else {
            return;
        };
        if *ctx != context || walker.is_done() {
            return;
        }
        let start = facts.len();
        walker.feed(chunk, facts);
        if facts.len() > start {
            let new = facts.split_off(start);
            for fact in new {
                assoc.report_once(fact, facts);
            }
        }
    }

    fn end_message(&mut self, assoc: &mut Association, command: bool, facts: &mut Vec<Fact>) {
        if !command {
            self.dataset = None;
            return;
        }
        let parsed = if self.command_overflow {
            None
        } else {
            dataset::parse_command(&self.command).ok()
        };
        let context = self.command_context;
        self.reset_command();
        let Some(cmd) = parsed else {
            return;
        };
        if cmd.field == Some(dataset::C_STORE_RQ) && cmd.has_dataset {
            let encoding = assoc
                .contexts
                .get(&context)
                .and_then(|c| c.encoding)
                .unwrap_or(Encoding::Guess);
            self.dataset = Some((context, DatasetWalker::new(encoding)));
        }
        assoc.report_command(&cmd, facts);
    }

    fn reset_command(&mut self) {
        self.command.clear();
        self.command_overflow = false;
    }
}

impl Association {
    fn control_pdu(&mut self, ty: PduType, pdu: &[u8], facts: &mut Vec<Fact>) {
        match ty {
            PduType::AssociateRq => self.associate_rq(pdu, facts),
            PduType::AssociateAc => self.associate_ac(pdu, facts),
            PduType::AssociateRj => {
                if let Ok(rj) = RejectPdu::new_checked(pdu) {
                    let text = reject_text(rj.result(), rj.source(), rj.reason());
                    facts.push(Fact::new(Field::DicomReject, text));
                }
            }
            PduType::ReleaseRq => facts.push(Fact::new(Field::DicomRelease, "rq")),
            PduType::ReleaseRp => facts.push(Fact::new(Field::DicomRelease, "rp")),
            PduType::Abort => {
                if let Ok(abort) = AbortPdu::new_checked(pdu) {
                    let text = abort_text(abort.source(), abort.reason());
                    facts.push(Fact::new(Field::DicomAbort, text));
                }
            }
            PduType::PData => {}
        }
    }

    fn associate_rq(&mut self, pdu: &[u8], facts: &mut Vec<Fact>) {
        let Ok(rq) = AssociatePdu::new_checked(pdu) else {
            return;
        };
        push_ae_titles(&rq, facts);
        self.rq_seen = true;
        // An A-ASSOCIATE-RQ travels from the calling AE (the requestor) to the called AE.
        if self.requestor.is_none() {
            self.requestor = self.feeding;
        }
        self.contexts.clear();
        // Role selection sub-items: (SOP class, the requestor takes only the SCP role).
        let mut roles: Vec<(String, bool)> = Vec::new();
        for item in rq.items().map_while(Result::ok) {
            match item.item_type {
                item::APPLICATION_CONTEXT => {
                    push_text(facts, Field::DicomApplicationContext, item.value)
                }
                item::PRESENTATION_CONTEXT_RQ => {
                    let Ok(pc) = PresentationContext::new_checked(item) else {
                        continue;
                    };
                    let abstract_syntax = pc
                        .sub_items()
                        .map_while(Result::ok)
                        .find(|s| s.item_type == item::ABSTRACT_SYNTAX)
                        .map(|s| clean_text(s.value))
                        .unwrap_or_default();
                    self.contexts.insert(
                        pc.id(),
                        Context {
                            abstract_syntax,
                            ..Context::default()
                        },
                    );
                }
                item::USER_INFORMATION => {
                    for sub in user_info(item, facts) {
                        if let Ok(role) = RoleSelection::new_checked(sub) {
                            roles.push((clean_text(role.uid()), role.scp() && !role.scu()));
                        }
                    }
                }
                _ => {}
            }
        }
        // First selection per SOP class wins; a map keeps this linear in the PDU's size.
        let mut role_of: FastMap<&str, bool> = FastMap::default();
        for (uid, scp_only) in &roles {
            role_of.entry(uid.as_str()).or_insert(*scp_only);
        }
        let get_model = self
            .contexts
            .values()
            .any(|c| sop::is_get_model(&c.abstract_syntax));
        // Deduplicated on borrowed values: a storage SCU proposes a hundred contexts or more,
        // and owned candidates cost several allocations each.
        let mut emitted: FastSet<(Field, &str)> = FastSet::default();
        for ctx in self.contexts.values_mut() {
            if ctx.abstract_syntax.is_empty() {
                continue;
            }
            let class = sop::lookup(&ctx.abstract_syntax);
            if let Some(class) = class.filter(|c| c.kind.is_storage()) {
                // An explicit role selection wins; without one, storage next to a GET model
                // is there to receive the C-GET's C-STORE sub-operations.
                ctx.reversed = role_of.get(class.uid).copied().unwrap_or(get_model);
            }
            let ctx: &Context = ctx;
            let candidates = match class {
                Some(class) => [
                    Some((Field::DicomAbstractSyntax, class.uid)),
                    Some((Field::DicomSopClass, class.name)),
                    (!ctx.reversed).then(|| (Field::DicomRoleHint, class.kind.requestor_role())),
                ],
                None => [
                    Some((Field::DicomAbstractSyntax, ctx.abstract_syntax.as_str())),
                    None,
                    None,
                ],
            };
            for (field, value) in candidates.into_iter().flatten() {
                if emitted.insert((field, value)) {
                    facts.push(Fact::new(field, value));
                }
            }
        }
    }

    fn associate_ac(&mut self, pdu: &[u8], facts: &mut Vec<Fact>) {
        let Ok(ac) = AssociatePdu::new_checked(pdu) else {
            return;
        };
        push_ae_titles(&ac, facts);
        // An A-ASSOCIATE-AC travels back from the acceptor: the requestor is the other side.
        if self.requestor.is_none() {
            self.requestor = match self.feeding {
                Some(Direction::FromClient) => Some(Direction::FromServer),
                Some(Direction::FromServer) => Some(Direction::FromClient),
                _ => None,
            };
        }
        // Owned copies only for values not seen before in this PDU (a handful at most).
        let mut syntaxes: FastSet<String> = FastSet::default();
        let mut roles: FastSet<&'static str> = FastSet::default();
        for item in ac.items().map_while(Result::ok) {
            match item.item_type {
                item::APPLICATION_CONTEXT => {
                    push_text(facts, Field::DicomApplicationContext, item.value)
                }
                item::PRESENTATION_CONTEXT_AC => {
                    let Ok(pc) = PresentationContext::new_checked(item) else {
                        continue;
                    };
                    let ctx = self.contexts.entry(pc.id()).or_default();
                    let result = context_result_name(pc.result());
                    let value = if self.rq_seen && !ctx.abstract_syntax.is_empty() {
                        format!("{}:{result}", ctx.abstract_syntax)
                    } else {
                        format!("{}:{result}", pc.id())
                    };
                    facts.push(Fact::new(Field::DicomContextResult, value));
                    if pc.result() != 0 {
                        continue;
                    }
                    let syntax = pc
                        .sub_items()
                        .map_while(Result::ok)
                        .find(|s| s.item_type == item::TRANSFER_SYNTAX)
                        .map(|s| clean_text(s.value))
                        .unwrap_or_default();
                    ctx.encoding = Some(Encoding::from_transfer_syntax(&syntax));
                    if !syntax.is_empty() && !syntaxes.contains(&syntax) {
                        syntaxes.insert(syntax.clone());
                        facts.push(Fact::new(Field::DicomTransferSyntax, syntax));
                    }
                    let kind = sop::lookup(&ctx.abstract_syntax).map(|c| c.kind);
                    if let Some(role) = kind
                        .filter(|_| !ctx.reversed)
                        .and_then(|k| k.acceptor_role())
                    {
                        if !role.is_empty() && roles.insert(role) {
                            facts.push(Fact::new(Field::DicomRoleHint, role));
                        }
                    }
                }
                item::USER_INFORMATION => {
                    user_info(item, facts);
                }
                _ => {}
            }
        }
    }

    fn report_command(&mut self, cmd: &dataset::Command, facts: &mut Vec<Fact>) {
        let Some((field, name)) = cmd.field.and_then(|f| Some((f, dataset::command_name(f)?)))
        else {
            return;
        };
        let sop_class = cmd.sop_class.clone().unwrap_or_default();
        if self.commands.len() >= MAX_REMEMBERED
            || !self.commands.insert((field, sop_class.clone()))
        {
            return;
        }
        facts.push(Fact::new(Field::DicomCommand, name));
        if !sop_class.is_empty() {
            facts.push(Fact::new(Field::DicomAffectedSopClass, sop_class));
        }
    }

    fn report_once(&mut self, fact: Fact, facts: &mut Vec<Fact>) {
        if self.dataset_facts.len() < MAX_REMEMBERED && self.dataset_facts.insert(fact.clone()) {
            facts.push(fact);
        }
    }
}

fn push_text(facts: &mut Vec<Fact>, field: Field, raw: &[u8]) {
    let text = clean_text(raw);
    if !text.is_empty() {
        facts.push(Fact::new(field, text));
    }
}

fn push_ae_titles(pdu: &AssociatePdu<&[u8]>, facts: &mut Vec<Fact>) {
    push_text(facts, Field::DicomCalledAe, pdu.called_ae());
    push_text(facts, Field::DicomCallingAe, pdu.calling_ae());
}

/// Reports the identity sub-items of a user information item and returns the role selection
/// sub-items, which only the RQ handler needs.
fn user_info<'a>(item: Item<'a>, facts: &mut Vec<Fact>) -> Vec<Item<'a>> {
    let mut roles = Vec::new();
    let subs = pdu::Items::new(item.value, item.offset + pdu::field::ITEM_HEADER_LEN);
    for sub in subs.map_while(Result::ok) {
        match sub.item_type {
            item::MAX_LENGTH => {
                if let Ok(bytes) = <[u8; 4]>::try_from(sub.value) {
                    let max = u32::from_be_bytes(bytes).to_string();
                    facts.push(Fact::new(Field::DicomMaxPduLength, max));
                }
            }
            item::IMPLEMENTATION_CLASS_UID => {
                push_text(facts, Field::DicomImplementationClassUid, sub.value)
            }
            item::IMPLEMENTATION_VERSION => {
                push_text(facts, Field::DicomImplementationVersion, sub.value)
            }
            item::ROLE_SELECTION => roles.push(sub),
            _ => {}
        }
    }
    roles
}

/// A code's name, or the number when PS3.8 does not define it.
fn named(code: u8, name: Option<&str>) -> String {
    name.map_or_else(|| code.to_string(), str::to_owned)
}

fn context_result_name(result: u8) -> String {
    let name = match result {
        0 => Some("acceptance"),
        1 => Some("user_rejection"),
        2 => Some("no_reason"),
        3 => Some("abstract_syntax_not_supported"),
        4 => Some("transfer_syntaxes_not_supported"),
        _ => None,
    };
    named(result, name)
}

/// `result=…,source=…,reason=…` for an A-ASSOCIATE-RJ (PS3.8 §9.3.4).
fn reject_text(result: u8, source: u8, reason: u8) -> String {
    let result_name = match result {
        1 => Some("permanent"),
        2 => Some("transient"),
        _ => None,
    };
    let source_name = match source {
        1 => Some("service_user"),
        2 => Some("service_provider_acse"),
        3 => Some("service_provider_presentation"),
        _ => None,
    };
    // Reason codes mean different things depending on the source.
    let reason_name = match (source, reason) {
        (1 | 2, 1) => Some("no_reason_given"),
        (1, 2) => Some("application_context_not_supported"),
        (1, 3) => Some("calling_ae_not_recognized"),
        (1, 7) => Some("called_ae_not_recognized"),
        (2, 2) => Some("protocol_version_not_supported"),
        (3, 1) => Some("temporary_congestion"),
        (3, 2) => Some("local_limit_exceeded"),
        _ => None,
    };
    format!(
        "result={},source={},reason={}",
        named(result, result_name),
        named(source, source_name),
        named(reason, reason_name)
    )
}

/// `source=…,reason=…` for an A-ABORT (PS3.8 §9.3.8).
fn abort_text(source: u8, reason: u8) -> String {
    let source_name = match source {
        0 => Some("service_user"),
        2 => Some("service_provider"),
        _ => None,
    };
    let reason_name = match reason {
        0 => Some("not_specified"),
        1 => Some("unrecognized_pdu"),
        2 => Some("unexpected_pdu"),
        4 => Some("unrecognized_pdu_parameter"),
        5 => Some("unexpected_pdu_parameter"),
        6 => Some("invalid_pdu_parameter_value"),
        _ => None,
    };
    format!(
        "source={},reason={}",
        named(source, source_name),
        named(reason, reason_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! capture {
        ($name:literal) => {
            Capture {
                name: $name,
                client: include_bytes!(concat!("../testdata/dicom/", $name, ".client.bin")),
                server: include_bytes!(concat!("../testdata/dicom/", $name, ".server.bin")),
            }
        };
    }

    /// Both directions of one captured TCP connection (tshark `tcp.payload`, concatenated).
    #[derive(Clone, Copy)]
    struct Capture {
        name: &'static str,
        client: &'static [u8],
        server: &'static [u8],
    }

    const STORE_EXPLICIT: Capture = capture!("store_explicit");
    const STORE_IMPLICIT: Capture = capture!("store_implicit");
    const PYNET: Capture = capture!("pynet");
    const PYNET_IMPLICIT: Capture = capture!("pynet_implicit");
    const ECHO: Capture = capture!("echo");
    const ABORT: Capture = capture!("abort");
    const REJECT_AE: Capture = capture!("reject_ae");
    const FIND: Capture = capture!("find");
    const GET: Capture = capture!("get");
    const ALL: [Capture; 9] = [
        STORE_EXPLICIT,
        STORE_IMPLICIT,
        PYNET,
        PYNET_IMPLICIT,
        ECHO,
        ABORT,
        REJECT_AE,
        FIND,
        GET,
    ];
    const PUBLIC_FIND_RQ: &[u8] =
        include_bytes!("../testdata/dicom/arq_find_testclient.client.bin");
    const PUBLIC_GET_RQ: &[u8] = include_bytes!("../testdata/dicom/arq_get_testclient.client.bin");

    /// Splits a direction into PDUs by their headers (a trailing partial PDU is kept as is).
    fn pdus(mut bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let total = PduHeader::new_checked(bytes)
                .map_or(bytes.len(), |h| (h.total_len() as usize).min(bytes.len()));
            let (pdu, rest) = bytes.split_at(total);
            out.push(pdu);
            bytes = rest;
        }
        out
    }

    /// Emulates the reassembler: keeps each direction's unconsumed bytes and re-offers them.
    #[derive(Default)]
    struct Harness {
        decoder: DicomDecoder,
        pending: [Vec<u8>; 3],
        done: [bool; 3],
        facts: Vec<Fact>,
        max_pending: usize,
        max_footprint: usize,
    }

    fn index(side: Direction) -> usize {
        match side {
            Direction::FromClient => 0,
            Direction::FromServer => 1,
            Direction::Unknown => 2,
        }
    }

    impl Harness {
        fn push(&mut self, side: Direction, bytes: &[u8]) {
            let i = index(side);
            if self.done[i] {
                return;
            }
            self.pending[i].extend_from_slice(bytes);
            match self
                .decoder
                .feed(side, &self.pending[i], false, &mut self.facts)
            {
                Feed::Consumed(n) => {
                    self.pending[i].drain(..n);
                }
                Feed::Done => {
                    self.done[i] = true;
                    self.pending[i].clear();
                }
            }
            self.max_pending = self.max_pending.max(self.pending[i].len());
            self.max_footprint = self.max_footprint.max(self.decoder.footprint());
        }

        /// Feeds `bytes` in chunks whose sizes `sizes` picks.
        fn push_chunked(
            &mut self,
            side: Direction,
            bytes: &[u8],
            sizes: &mut impl FnMut() -> usize,
        ) {
            let mut rest = bytes;
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(sizes().clamp(1, rest.len()));
                self.push(side, chunk);
                rest = tail;
            }
        }
    }

    /// Feeds a capture's PDUs, the i-th of each direction in turn, each split by `sizes`. As on
    /// the wire, the RQ and AC are decoded before any P-DATA; the finer interleaving of the two
    /// directions does not change what is extracted.
    fn run(capture: Capture, sizes: &mut impl FnMut() -> usize) -> Harness {
        let mut h = Harness::default();
        let client = pdus(capture.client);
        let server = pdus(capture.server);
        for i in 0..client.len().max(server.len()) {
            if let Some(pdu) = client.get(i) {
                h.push_chunked(Direction::FromClient, pdu, sizes);
            }
            if let Some(pdu) = server.get(i) {
                h.push_chunked(Direction::FromServer, pdu, sizes);
            }
        }
        h
    }

    fn whole(capture: Capture) -> Vec<Fact> {
        run(capture, &mut || usize::MAX).facts
    }

    fn has(facts: &[Fact], field: Field, value: &str) -> bool {
        facts.iter().any(|f| f.field == field && f.value == value)
    }

    fn values(facts: &[Fact], field: Field) -> Vec<&str> {
        facts
            .iter()
            .filter(|f| f.field == field)
            .map(|f| f.value.as_str())
            .collect()
    }

    const DATASET_FIELDS: [Field; 6] = [
        Field::DicomModality,
        Field::DicomManufacturer,
        Field::DicomStationName,
        Field::DicomModelName,
        Field::DicomDeviceSerialNumber,
        Field::DicomSoftwareVersions,
    ];

    /// The device attributes written into testdata/dicom/ct_device.dump.
    fn device_facts() -> Vec<Fact> {
        [
            (Field::DicomModality, "CT"),
            (Field::DicomManufacturer, "WARD TEST MEDICAL"),
            (Field::DicomStationName, "CT-STATION-1"),
            (Field::DicomModelName, "WardScan 64"),
            (Field::DicomDeviceSerialNumber, "SN-0042"),
            (Field::DicomSoftwareVersions, "VA40B"),
            (Field::DicomSoftwareVersions, "SP2"),
        ]
        .into_iter()
        .map(|(f, v)| Fact::new(f, v))
        .collect()
    }

    fn dataset_facts(facts: &[Fact]) -> Vec<Fact> {
        facts
            .iter()
            .filter(|f| DATASET_FIELDS.contains(&f.field))
            .cloned()
            .collect()
    }

    fn assert_no_canary(facts: &[Fact]) {
        for f in facts {
            assert!(!f.value.to_ascii_uppercase().contains("CANARY"), "{f:?}");
        }
    }

    /// Deterministic chunk sizes (xorshift) in 1..=max.
    fn random_sizes(mut seed: u64, max: usize) -> impl FnMut() -> usize {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % max as u64) as usize + 1
        }
    }

    #[test]
    fn dcmtk_store_explicit() {
        let facts = whole(STORE_EXPLICIT);
        for (field, value) in [
            (Field::DicomCalledAe, "ARCHIVE1"),
            (Field::DicomCallingAe, "WARDCT01"),
            (Field::DicomApplicationContext, "1.2.840.10008.3.1.1.1"),
            (Field::DicomAbstractSyntax, "1.2.840.10008.5.1.4.1.1.2"),
            (Field::DicomSopClass, "CT Image Storage"),
            (Field::DicomSopClass, "Encapsulated PDF Storage"),
            (Field::DicomRoleHint, "modality_storage_scu"),
            (Field::DicomRoleHint, "storage_scu"),
            (Field::DicomRoleHint, "storage_scp"),
            (
                Field::DicomContextResult,
                "1.2.840.10008.5.1.4.1.1.2:acceptance",
            ),
            (Field::DicomTransferSyntax, "1.2.840.10008.1.2.1"),
            (
                Field::DicomImplementationClassUid,
                "1.2.276.0.7230010.3.0.3.6.7",
            ),
            (Field::DicomImplementationVersion, "OFFIS_DCMTK_367"),
            (Field::DicomCommand, "C-STORE-RQ"),
            (Field::DicomCommand, "C-STORE-RSP"),
            (Field::DicomAffectedSopClass, "1.2.840.10008.5.1.4.1.1.2"),
            (Field::DicomRelease, "rq"),
            (Field::DicomRelease, "rp"),
        ] {
            assert!(has(&facts, field, value), "missing {field}={value}");
        }
        // storescu proposes 128 contexts; storescp (run with -pdu 4096) accepts them all.
        assert_eq!(values(&facts, Field::DicomContextResult).len(), 128);
        assert_eq!(values(&facts, Field::DicomMaxPduLength), ["16384", "4096"]);
        assert_eq!(dataset_facts(&facts), device_facts());
        assert_no_canary(&facts);
    }

    #[test]
    fn device_attributes_from_every_store() {
        // dcmtk explicit (4 KiB PDUs, defined-length sequences), dcmtk implicit, pynetdicom
        // explicit and implicit (undefined-length sequences and items), a C-STORE that is then
        // aborted, and a C-GET whose C-STORE comes from the server.
        for capture in [
            STORE_EXPLICIT,
            STORE_IMPLICIT,
            PYNET,
            PYNET_IMPLICIT,
            ABORT,
            GET,
        ] {
            let facts = whole(capture);
            assert_eq!(dataset_facts(&facts), device_facts(), "{}", capture.name);
            assert!(
                has(&facts, Field::DicomCommand, "C-STORE-RQ"),
                "{}",
                capture.name
            );
            assert_no_canary(&facts);
        }
    }

    #[test]
    fn implementations_are_told_apart() {
        let facts = whole(PYNET_IMPLICIT);
        assert_eq!(
            values(&facts, Field::DicomImplementationClassUid),
            [
                "1.2.826.0.1.3680043.9.3811.3.0.4",
                "1.2.276.0.7230010.3.0.3.6.7"
            ]
        );
        assert_eq!(
            values(&facts, Field::DicomImplementationVersion),
            ["PYNETDICOM_304", "OFFIS_DCMTK_367"]
        );
        assert_eq!(values(&facts, Field::DicomMaxPduLength), ["16382", "16384"]);
        assert_eq!(
            values(&facts, Field::DicomTransferSyntax),
            ["1.2.840.10008.1.2"]
        );
        assert_eq!(
            values(&facts, Field::DicomCallingAe),
            ["PYMODALITY", "PYMODALITY"]
        );
    }

    #[test]
    fn echo_reject_abort_find() {
        let echo = whole(ECHO);
        assert_eq!(
            values(&echo, Field::DicomCommand),
            ["C-ECHO-RQ", "C-ECHO-RSP"]
        );
        assert_eq!(
            values(&echo, Field::DicomAffectedSopClass),
            ["1.2.840.10008.1.1", "1.2.840.10008.1.1"]
        );
        assert_eq!(values(&echo, Field::DicomRoleHint), ["verification"]);
        assert_eq!(
            values(&echo, Field::DicomContextResult),
            ["1.2.840.10008.1.1:acceptance"]
        );

        let reject = whole(REJECT_AE);
        assert_eq!(
            values(&reject, Field::DicomReject),
            ["result=permanent,source=service_user,reason=called_ae_not_recognized"]
        );
        assert_eq!(values(&reject, Field::DicomCalledAe), ["NOSUCHAE"]);

        let abort = whole(ABORT);
        assert_eq!(
            values(&abort, Field::DicomAbort),
            ["source=service_user,reason=not_specified"]
        );

        let find = whole(FIND);
        assert_eq!(
            values(&find, Field::DicomCommand),
            ["C-FIND-RQ", "C-FIND-RSP"]
        );
        assert_eq!(
            values(&find, Field::DicomRoleHint),
            ["query_retrieve_scu", "query_retrieve_scp"]
        );
        // C-FIND identifiers are query keys (patient attributes): never walked.
        assert!(dataset_facts(&find).is_empty());
    }

    #[test]
    fn c_get_storage_contexts_do_not_look_like_a_modality() {
        // dcmtk getscu proposes 120+ storage classes with SCP-only role selection.
        let facts = whole(GET);
        assert_eq!(
            values(&facts, Field::DicomRoleHint),
            ["query_retrieve_scu", "query_retrieve_scp"]
        );
        assert!(values(&facts, Field::DicomSopClass).contains(&"CT Image Storage"));
        assert_eq!(
            values(&facts, Field::DicomCommand),
            ["C-GET-RQ", "C-STORE-RQ", "C-STORE-RSP", "C-GET-RSP"]
        );
    }

    #[test]
    fn public_go_dicom_requests() {
        // Wireshark sample captures (only the A-ASSOCIATE-RQ direction was captured).
        for (rq, hints) in [
            (PUBLIC_FIND_RQ, &["query_retrieve_scu", "worklist_scu"][..]),
            // GET plus storage contexts without role selection: the storage ones are for
            // C-GET sub-operations, so no storage hint.
            (PUBLIC_GET_RQ, &["query_retrieve_scu"][..]),
        ] {
            assert_eq!(looks_like_dicom(rq), Some(true));
            let mut h = Harness::default();
            h.push(Direction::FromClient, rq);
            let facts = h.facts;
            assert_eq!(values(&facts, Field::DicomCalledAe), ["testserver"]);
            assert_eq!(values(&facts, Field::DicomCallingAe), ["testclient"]);
            assert_eq!(
                values(&facts, Field::DicomImplementationClassUid),
                ["1.2.826.0.1.3680043.9.7133.1.1"]
            );
            assert_eq!(
                values(&facts, Field::DicomImplementationVersion),
                ["GODICOM_1_1"]
            );
            assert_eq!(values(&facts, Field::DicomMaxPduLength), ["4194304"]);
            assert_eq!(values(&facts, Field::DicomRoleHint), hints);
        }
        let mut h = Harness::default();
        h.push(Direction::FromClient, PUBLIC_FIND_RQ);
        assert_eq!(
            values(&h.facts, Field::DicomSopClass),
            [
                "Patient Root Query/Retrieve Information Model - FIND",
                "Study Root Query/Retrieve Information Model - FIND",
                "Patient/Study Only Query/Retrieve Information Model - FIND (Retired)",
                "Modality Worklist Information Model - FIND",
            ]
        );
    }

    #[test]
    fn any_segmentation_gives_the_same_facts() {
        for capture in ALL {
            let reference = whole(capture);
            let one = run(capture, &mut || 1);
            assert_eq!(one.facts, reference, "{} byte by byte", capture.name);
            for seed in 1..=8 {
                let h = run(capture, &mut random_sizes(seed, 700));
                assert_eq!(h.facts, reference, "{} seed {seed}", capture.name);
                // Only whole control PDUs are ever held back.
                assert!(h.max_pending <= MAX_CONTROL_PDU as usize + 700);
                assert!(h.max_footprint <= 3 * 2 * (MAX_COMMAND_LEN + 1024 + 12));
            }
        }
    }

    #[test]
    fn each_direction_in_one_feed() {
        // Client first, so its datasets are walked before the AC is known: the encoding is then
        // guessed from the first element, in both VRs.
        for capture in ALL {
            let mut h = Harness::default();
            h.push(Direction::FromClient, capture.client);
            h.push(Direction::FromServer, capture.server);
            assert!(h.pending.iter().all(Vec::is_empty), "{}", capture.name);
            let no_store = matches!(capture.name, "find" | "echo" | "reject_ae");
            assert_eq!(
                dataset_facts(&h.facts).is_empty(),
                no_store,
                "{}",
                capture.name
            );
            if !no_store {
                assert_eq!(dataset_facts(&h.facts), device_facts(), "{}", capture.name);
            }
            assert_no_canary(&h.facts);
        }
    }

    #[test]
    fn capture_starting_mid_association() {
        for capture in [STORE_EXPLICIT, PYNET_IMPLICIT] {
            let client = pdus(capture.client);
            let rest: Vec<u8> = client[1..].concat();
            assert_eq!(looks_like_dicom(&rest), Some(true));
            let mut h = Harness::default();
            h.push_chunked(Direction::Unknown, &rest, &mut random_sizes(3, 100));
            assert_eq!(dataset_facts(&h.facts), device_facts(), "{}", capture.name);
            assert!(has(&h.facts, Field::DicomCommand, "C-STORE-RQ"));
            assert!(has(&h.facts, Field::DicomRelease, "rq"));
        }
    }

    #[test]
    fn several_pdus_in_one_segment() {
        let client = pdus(STORE_IMPLICIT.client);
        let mut h = Harness::default();
        h.push(Direction::FromClient, &client[..2].concat());
        // RQ + the command P-DATA: the command is complete, the dataset has not started.
        assert!(has(&h.facts, Field::DicomCommand, "C-STORE-RQ"));
        h.push(Direction::FromClient, &client[2..].concat());
        assert_eq!(dataset_facts(&h.facts), device_facts());
        assert!(has(&h.facts, Field::DicomRelease, "rq"));
    }

    /// Wraps a message into one P-DATA-TF with a single PDV.
    fn pdata(context: u8, control: u8, fragment: &[u8]) -> Vec<u8> {
        let mut out = vec![4, 0];
        out.extend_from_slice(&(fragment.len() as u32 + 6).to_be_bytes());
        out.extend_from_slice(&(fragment.len() as u32 + 2).to_be_bytes());
        out.extend_from_slice(&[context, control]);
        out.extend_from_slice(fragment);
        out
    }

    fn command(field: u16, sop_class: &[u8], data_set: bool) -> Vec<u8> {
        use dataset::tests::element;
        let mut cmd = element(false, 0, 0x0002, b"UI", sop_class);
        cmd.extend(element(false, 0, 0x0100, b"US", &field.to_le_bytes()));
        let kind: u16 = if data_set { 0x0000 } else { 0x0101 };
        cmd.extend(element(false, 0, 0x0800, b"US", &kind.to_le_bytes()));
        cmd
    }

    #[test]
    fn patient_canary_never_leaves_in_either_vr() {
        use dataset::tests::{device_dataset, element};
        for explicit in [false, true] {
            // A patient name whose value looks like a Device Serial Number element: if the
            // walker ever read inside a skipped value, this would come out as a fact.
            let mut forged = element(explicit, 0x0018, 0x1000, b"LO", b"CANARY");
            forged.extend_from_slice(b"^DICOMPATIENT");
            let mut data = element(explicit, 0x0008, 0x0060, b"CS", b"OT");
            data.extend(element(explicit, 0x0010, 0x0010, b"PN", &forged));
            data.extend(element(explicit, 0x0010, 0x0020, b"LO", b"CANARY-ID"));
            data.extend(element(explicit, 0x0018, 0x1020, b"LO", b"V1"));
            for dataset in [data, device_dataset(explicit)] {
                let mut stream = pdata(1, 3, &command(1, b"1.2.840.10008.5.1.4.1.1.7\0", true));
                // Split the dataset over two PDVs in the middle of the patient name.
                let (a, b) = dataset.split_at(dataset.len() / 2);
                stream.extend(pdata(1, 0, a));
                stream.extend(pdata(1, 2, b));
                for chunk in [1, 5, stream.len()] {
                    let mut h = Harness::default();
                    h.push_chunked(Direction::FromClient, &stream, &mut || chunk);
                    assert!(!dataset_facts(&h.facts).is_empty());
                    assert_no_canary(&h.facts);
                }
            }
        }
    }

    #[test]
    fn command_sets_span_pdvs_and_are_bounded() {
        let echo = command(0x0030, b"1.2.840.10008.1.1\0", false);
        let (a, b) = echo.split_at(10);
        let mut stream = pdata(1, 1, a);
        stream.extend(pdata(1, 3, b));
        let mut h = Harness::default();
        h.push(Direction::FromClient, &stream);
        assert_eq!(values(&h.facts, Field::DicomCommand), ["C-ECHO-RQ"]);

        // An oversized command set is dropped; the next one still decodes.
        let mut big = pdata(1, 1, &[0; MAX_COMMAND_LEN]);
        big.extend(pdata(1, 3, &echo));
        big.extend(pdata(3, 3, &command(0x8030, b"1.2.840.10008.1.1\0", false)));
        let mut h = Harness::default();
        h.push(Direction::FromClient, &big);
        assert_eq!(values(&h.facts, Field::DicomCommand), ["C-ECHO-RSP"]);
        assert!(h.max_footprint <= 2 * MAX_COMMAND_LEN);
    }

    #[test]
    fn a_dataset_flagged_as_command_is_not_held() {
        let data = dataset::tests::device_dataset(false);
        let mut h = Harness::default();
        h.push(Direction::FromClient, &pdata(1, 1, &data[..200]));
        assert_eq!(h.decoder.footprint(), 0);
        h.push(Direction::FromClient, &pdata(1, 3, &data[200..]));
        assert!(h.facts.is_empty());
    }

    #[test]
    fn repeated_commands_are_reported_once() {
        let one = pdata(1, 3, &command(0x0030, b"1.2.840.10008.1.1\0", false));
        let mut h = Harness::default();
        for _ in 0..1000 {
            h.push(Direction::FromClient, &one);
        }
        assert_eq!(values(&h.facts, Field::DicomCommand), ["C-ECHO-RQ"]);
        assert_eq!(h.facts.len(), 2);
    }

    #[test]
    fn huge_pdata_is_streamed_not_buffered() {
        // 64 MiB data PDV on a context with no C-STORE: consumed as it arrives.
        let len: u32 = 64 << 20;
        let mut header = vec![4, 0];
        header.extend_from_slice(&(len + 6).to_be_bytes());
        header.extend_from_slice(&(len + 2).to_be_bytes());
        header.extend_from_slice(&[1, 2]);
        let mut dec = DicomDecoder::new();
        let mut facts = Vec::new();
        let feed = dec.feed(Direction::FromClient, &header, false, &mut facts);
        assert_eq!(feed, Feed::Consumed(header.len()));
        let block = vec![0xAB; 1 << 20];
        for _ in 0..64 {
            let feed = dec.feed(Direction::FromClient, &block, true, &mut facts);
            assert_eq!(feed, Feed::Consumed(block.len()));
        }
        assert_eq!(dec.client.state, State::Pdu);
        assert_eq!(dec.footprint(), 0);
        // The stream carries on after it.
        let feed = dec.feed(
            Direction::FromClient,
            &[5, 0, 0, 0, 0, 4, 0, 0, 0, 0],
            false,
            &mut facts,
        );
        assert_eq!(feed, Feed::Consumed(10));
        assert_eq!(values(&facts, Field::DicomRelease), ["rq"]);
    }

    #[test]
    fn gives_up_on_what_cannot_be_followed() {
        let mut facts = Vec::new();
        // A control PDU announcing more than 64 KiB.
        let mut dec = DicomDecoder::new();
        let big = [1, 0, 0, 1, 0, 1, 0, 1];
        assert_eq!(
            dec.feed(Direction::FromClient, &big, false, &mut facts),
            Feed::Done
        );
        assert_eq!(
            dec.feed(Direction::FromClient, &big, false, &mut facts),
            Feed::Done
        );
        // The other direction is unaffected.
        let rp = [6, 0, 0, 0, 0, 4, 0, 0, 0, 0];
        assert_eq!(
            dec.feed(Direction::FromServer, &rp, false, &mut facts),
            Feed::Consumed(10)
        );
        // An incomplete RQ when the reassembler is full.
        let mut dec = DicomDecoder::new();
        let part = &STORE_EXPLICIT.client[..100];
        assert_eq!(
            dec.feed(Direction::FromClient, part, false, &mut facts),
            Feed::Consumed(0)
        );
        assert_eq!(
            dec.feed(Direction::FromClient, part, true, &mut facts),
            Feed::Done
        );
        // Not a PDU type at all.
        let mut dec = DicomDecoder::new();
        let http = b"GET / HTTP/1.1\r\n";
        assert_eq!(
            dec.feed(Direction::FromClient, http, false, &mut facts),
            Feed::Done
        );
        assert_eq!(values(&facts, Field::DicomRelease), ["rp"]);
    }

    #[test]
    fn truncated_streams_never_panic() {
        for capture in ALL {
            for bytes in [capture.client, capture.server] {
                let step = if bytes.len() > 2000 { 37 } else { 1 };
                for n in (0..=bytes.len()).step_by(step) {
                    let mut dec = DicomDecoder::new();
                    let mut facts = Vec::new();
                    let prefix = &bytes[..n];
                    match dec.feed(Direction::FromClient, prefix, true, &mut facts) {
                        Feed::Consumed(k) => assert!(k <= n),
                        Feed::Done => {}
                    }
                    assert_no_canary(&facts);
                }
            }
        }
    }

    #[test]
    fn structure_test() {
        for capture in ALL {
            assert_eq!(
                looks_like_dicom(capture.client),
                Some(true),
                "{}",
                capture.name
            );
            assert_eq!(
                looks_like_dicom(capture.server),
                Some(true),
                "{}",
                capture.name
            );
            // A prefix only ever goes from "can't tell" to an answer, never flips.
            let answer = looks_like_dicom(capture.client);
            for n in 0..64 {
                let r = looks_like_dicom(&capture.client[..n]);
                assert!(r.is_none() || r == answer, "{} at {n}", capture.name);
            }
        }
        assert_eq!(looks_like_dicom(b""), None);
        assert_eq!(looks_like_dicom(&[1, 0, 0, 0]), None);
        assert_eq!(looks_like_dicom(&STORE_EXPLICIT.client[..7]), None);
        assert_eq!(looks_like_dicom(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(looks_like_dicom(&[0x16, 3, 1, 0, 0xc8, 1]), Some(false));
        assert_eq!(looks_like_dicom(b"\x0bMSH|^~\\&|"), Some(false));
        // Plausible header, implausible length or version.
        assert_eq!(looks_like_dicom(&[1, 0, 0, 0, 0, 10, 0, 1]), Some(false));
        assert_eq!(looks_like_dicom(&[1, 0, 0, 0, 0, 68, 0, 0]), Some(false));
        assert_eq!(looks_like_dicom(&[1, 0, 0, 0, 0, 68, 0, 1]), Some(true));
        let mut binary_ae = STORE_EXPLICIT.client[..42].to_vec();
        binary_ae[12] = 0x01;
        assert_eq!(looks_like_dicom(&binary_ae), Some(false));
        // P-DATA: context ids are odd, the PDV fits its PDU.
        let p = pdata(1, 3, b"abcd");
        assert_eq!(looks_like_dicom(&p), Some(true));
        assert_eq!(looks_like_dicom(&p[..11]), None);
        assert_eq!(looks_like_dicom(&pdata(2, 3, b"abcd")), Some(false));
        assert_eq!(looks_like_dicom(&pdata(1, 9, b"abcd")), Some(false));
        let mut overlong = p.clone();
        overlong[9] = 0xff;
        assert_eq!(looks_like_dicom(&overlong), Some(false));
        // A-ABORT or RELEASE at the start of a stream is not enough to go on.
        assert_eq!(
            looks_like_dicom(&[7, 0, 0, 0, 0, 4, 0, 0, 0, 0]),
            Some(false)
        );
    }

    #[test]
    fn reject_and_abort_vocabulary() {
        assert_eq!(
            reject_text(2, 3, 1),
            "result=transient,source=service_provider_presentation,reason=temporary_congestion"
        );
        assert_eq!(
            reject_text(1, 1, 3),
            "result=permanent,source=service_user,reason=calling_ae_not_recognized"
        );
        assert_eq!(reject_text(9, 9, 9), "result=9,source=9,reason=9");
        assert_eq!(
            abort_text(2, 6),
            "source=service_provider,reason=invalid_pdu_parameter_value"
        );
        assert_eq!(context_result_name(4), "transfer_syntaxes_not_supported");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn feed_all(h: &mut Harness, bytes: &[u8], sizes: &[usize]) {
            let mut rest = bytes;
            for &s in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(s.clamp(1, rest.len()));
                h.push(Direction::FromClient, chunk);
                h.push(Direction::FromServer, chunk);
                rest = tail;
            }
        }

        proptest! {
            #[test]
            fn random_bytes_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..4096),
                sizes in proptest::collection::vec(1usize..300, 1..8),
            ) {
                let mut h = Harness::default();
                feed_all(&mut h, &bytes, &sizes);
                let _ = looks_like_dicom(&bytes);
                prop_assert!(h.max_footprint <= 3 * 2 * (MAX_COMMAND_LEN + 1024 + 12));
            }

            #[test]
            fn mutated_captures_never_panic(
                which in 0usize..ALL.len(),
                server in any::<bool>(),
                flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..16),
                cut in any::<usize>(),
                sizes in proptest::collection::vec(1usize..2000, 1..8),
            ) {
                let capture = ALL[which];
                let mut bytes = if server { capture.server } else { capture.client }.to_vec();
                for (at, value) in flips {
                    let at = at % bytes.len();
                    bytes[at] = value;
                }
                bytes.truncate(cut % (bytes.len() + 1));
                let mut h = Harness::default();
                feed_all(&mut h, &bytes, &sizes);
                prop_assert!(h.max_footprint <= 3 * 2 * (MAX_COMMAND_LEN + 1024 + 12));
                prop_assert!(h.max_pending <= MAX_CONTROL_PDU as usize + 2000 + 6);
            }
        }
    }
}
