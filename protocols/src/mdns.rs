//! Multicast DNS (RFC 6762) and DNS-Based Service Discovery (RFC 6763): what a device announces
//! about itself.
//!
//! A responder only answers for records it owns (RFC 6762 §6), so the records of a response or
//! announcement describe its sender: the service types it offers (`_ipp._tcp`), its service
//! instance names (often the model: "WardTestMed VM-240 (monitor)"), its host names (A/AAAA
//! owners, SRV targets) and TXT values for an allow-list of keys ([`TXT_KEYS`]) that name the
//! model, manufacturer, firmware and serial. A query's question names are what the sender looks
//! for on *other* hosts, and its answer section lists records of other hosts it already knows
//! (known-answer suppression, §7.1): neither is read. Only a probe's authority section (§8.2,
//! the records the sender is about to claim) is read from a query.
//!
//! Recognised by structure: a DNS header with ID 0 (§18.1: multicast messages use ID 0), opcode
//! 0 (QUERY), rcode 0, a response also authoritative (§18.4), and a well-formed first name. Names
//! use DNS compression; pointers must point strictly backwards and at most [`MAX_POINTERS`] are
//! followed per name, so a hostile message can neither loop nor make the walk quadratic.

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, Protocol, MAX_VALUE_CHARS};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Mdns);
/// Size of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Compression pointers followed per name (legitimate names need one or two).
pub const MAX_POINTERS: usize = 8;
/// Longest name on the wire (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Records walked per message: a 9000-byte datagram holds fewer than 900 of the smallest, and
/// an announcement has a dozen.
pub const MAX_RECORDS: usize = 256;
/// Facts kept per message.
pub const MAX_FACTS: usize = 64;

/// UDP port of mDNS. For reference only: detection is by structure ([`probe`]), never by port.
pub const PORT: u16 = 5353;

/// TXT keys whose values are read (case-insensitive, RFC 6763 §6.4), and the field each
/// becomes. `ty`, `usb_MFG`, `usb_MDL` and `product` are Bonjour Printing 1.2's keys; `md` is
/// AirPlay/HomeKit-style model; the rest are common device keys. Any other key — including
/// free-text ones such as `note` or a vendor's own — is skipped unread.
pub const TXT_KEYS: &[(&str, Field)] = &[
    ("model", Field::MdnsModel),
    ("md", Field::MdnsModel),
    ("usb_mdl", Field::MdnsModel),
    ("ty", Field::MdnsModel),
    ("product", Field::MdnsModel),
    ("manufacturer", Field::MdnsManufacturer),
    ("usb_mfg", Field::MdnsManufacturer),
    ("fw", Field::MdnsSoftwareVersion),
    ("sw", Field::MdnsSoftwareVersion),
    ("serial", Field::MdnsSerial),
];

/// mDNS's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Mdns,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction: |_| Direction::Unknown,
    },
};

mod rtype {
    pub const A: u16 = 1;
    pub const PTR: u16 = 12;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
}

/// The fixed header.
#[derive(Debug, Clone, Copy)]
struct Header {
    response: bool,
    counts: [u16; 4],
}

pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn header(b: &[u8]) -> Result<Header, DecodeError> {
    if b.len() < HEADER_LEN {
        return Err(DecodeError::truncated(LAYER, 0, HEADER_LEN, b.len()));
    }
    let id = be16(b, 0).unwrap_or(1);
    let flags = be16(b, 2).unwrap_or(0xffff);
    if id != 0 {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 0,
            what: "message id (mDNS uses 0)",
        });
    }
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let rcode = flags & 0xf;
    if opcode != 0 || rcode != 0 || (response && flags & 0x0400 == 0) {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 2,
            what: "flags (opcode, rcode or authoritative bit)",
        });
    }
    let mut counts = [0u16; 4];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = be16(b, 4 + 2 * i).unwrap_or(0);
    }
    if counts.iter().all(|&c| c == 0) {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 4,
            what: "section counts (all zero)",
        });
    }
    Ok(Header { response, counts })
}

/// Structure test: an mDNS header ([`header`]) and a well-formed first name whose question or
/// record is of class IN (or ANY, in a question), the top bit being the unicast-response or
/// cache-flush flag. Without the class, a header-like prefix with a short first "name" is
/// enough: a real IntelliVue Connect Indication (`00 00 01 00 00 01 …`) passed.
pub fn probe(payload: &[u8]) -> Probe {
    let class_in =
        |end: usize| be16(payload, end + 2).is_some_and(|class| matches!(class & 0x7fff, 1 | 255));
    if header(payload).is_ok()
        && read_name(payload, HEADER_LEN).is_ok_and(|name| class_in(name.end))
    {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// A decoded name: its labels (borrowed from the message) and the offset after it in the
/// record that holds it.
#[derive(Debug, Default)]
pub(crate) struct Name<'a> {
    pub(crate) labels: Vec<&'a [u8]>,
    pub(crate) end: usize,
}

impl Name<'_> {
    /// Dotted text without the root, each label as [`clean_text`] would see it.
    pub(crate) fn text(&self) -> String {
        let mut raw = Vec::with_capacity(MAX_NAME_LEN);
        for (i, l) in self.labels.iter().enumerate() {
            if i > 0 {
                raw.push(b'.');
            }
            raw.extend_from_slice(l);
        }
        clean_text(&raw)
    }

    /// True when the name is `_service._tcp|_udp.<domain>` (a DNS-SD service type, RFC 6763
    /// §7); `_services._dns-sd._udp` is the meta-query name, not a service.
    fn is_service_type(&self) -> bool {
        match (self.labels.first(), self.labels.get(1)) {
            (Some(s), Some(p)) => {
                s.first() == Some(&b'_')
                    && !s.eq_ignore_ascii_case(b"_services")
                    && (p.eq_ignore_ascii_case(b"_tcp") || p.eq_ignore_ascii_case(b"_udp"))
            }
            _ => false,
        }
    }

    /// `_service._proto` of a service type name.
    fn service_type(&self) -> String {
        let mut raw = Vec::new();
        for (i, l) in self.labels.iter().take(2).enumerate() {
            if i > 0 {
                raw.push(b'.');
            }
            raw.extend_from_slice(l);
        }
        clean_text(&raw)
    }

    /// The name without its first label.
    fn parent(&self) -> Name<'_> {
        Name {
            labels: self.labels.get(1..).unwrap_or(&[]).to_vec(),
            end: self.end,
        }
    }

    fn same(&self, other: &Name<'_>) -> bool {
        self.labels.len() == other.labels.len()
            && self
                .labels
                .iter()
                .zip(&other.labels)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    fn is_reverse(&self) -> bool {
        self.labels
            .last()
            .is_some_and(|l| l.eq_ignore_ascii_case(b"arpa"))
    }
}

/// Reads the name at `at`, following compression pointers strictly backwards, at most
/// [`MAX_POINTERS`] of them, and at most [`MAX_NAME_LEN`] bytes of labels.
fn read_name(b: &[u8], at: usize) -> Result<Name<'_>, DecodeError> {
    read_name_in(b, at, LAYER)
}

/// [`read_name`] for any DNS-format protocol (LLMNR): errors carry `layer`.
pub(crate) fn read_name_in(b: &[u8], at: usize, layer: Layer) -> Result<Name<'_>, DecodeError> {
    let mut name = Name::default();
    let mut pos = at;
    let mut end = None;
    let mut pointers = 0usize;
    let mut len = 0usize;
    loop {
        let Some(&l) = b.get(pos) else {
            return Err(DecodeError::truncated(layer, pos, 1, b.len()));
        };
        match l & 0xc0 {
            0x00 if l == 0 => {
                name.end = end.unwrap_or(pos + 1);
                return Ok(name);
            }
            0x00 => {
                let n = usize::from(l);
                let label = b
                    .get(pos + 1..pos + 1 + n)
                    .ok_or_else(|| DecodeError::truncated(layer, pos, n + 1, b.len()))?;
                len += n + 1;
                if len > MAX_NAME_LEN {
                    return Err(DecodeError::Invalid {
                        layer,
                        offset: pos,
                        what: "name longer than 255 bytes",
                    });
                }
                name.labels.push(label);
                pos += n + 1;
            }
            0xc0 => {
                let target = usize::from(
                    be16(b, pos).ok_or_else(|| DecodeError::truncated(layer, pos, 2, b.len()))?
                        & 0x3fff,
                );
                pointers += 1;
                // Strictly backwards: no loop can form, and the hop limit bounds the work.
                if target >= pos || pointers > MAX_POINTERS {
                    return Err(DecodeError::Invalid {
                        layer,
                        offset: pos,
                        what: "compression pointer (forward, loop or too many)",
                    });
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => {
                return Err(DecodeError::Invalid {
                    layer,
                    offset: pos,
                    what: "label type",
                })
            }
        }
    }
}

/// Collects facts without duplicates, at most [`MAX_FACTS`] of them.
struct Sink<'o> {
    out: &'o mut Vec<Fact>,
    start: usize,
}

impl Sink<'_> {
    fn push(&mut self, field: Field, value: String) {
        if value.is_empty() || self.out.len() - self.start >= MAX_FACTS {
            return;
        }
        let dup = self
            .out
            .get(self.start..)
            .unwrap_or(&[])
            .iter()
            .any(|f| f.field == field && f.value == value);
        if !dup {
            self.out.push(Fact::new(field, value));
        }
    }
}

/// Extracts what one mDNS message announces about its sender: every record of a response, the
/// authority records of a probe; never question names or a query's known answers. Facts found
/// before a malformed part are kept and the error returned.
pub fn extract(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let h = header(payload)?;
    let start = out.len();
    let mut sink = Sink { out, start };
    let [qd, an, ns, ar] = h.counts.map(usize::from);
    let mut pos = HEADER_LEN;
    for _ in 0..qd.min(MAX_RECORDS) {
        let name = read_name(payload, pos)?;
        pos = name.end + 4;
        if pos > payload.len() {
            return Err(DecodeError::truncated(LAYER, name.end, 4, payload.len()));
        }
    }
    let total = (an + ns + ar).min(MAX_RECORDS);
    for i in 0..total {
        // A query's answers are other hosts' records it already knows; its authority records
        // (a probe's) and additional records are its own claims.
        let own = h.response || i >= an;
        pos = record(payload, pos, own, &mut sink)?;
    }
    Ok(())
}

/// Walks the resource record at `at`; reads it into `sink` when `own`. Returns the offset after.
fn record(b: &[u8], at: usize, own: bool, sink: &mut Sink<'_>) -> Result<usize, DecodeError> {
    let owner = read_name(b, at)?;
    let p = owner.end;
    let (Some(rtype), Some(rdlen)) = (be16(b, p), be16(b, p + 8)) else {
        return Err(DecodeError::truncated(LAYER, p, 10, b.len()));
    };
    let rdata_at = p + 10;
    let rdata_end = rdata_at + usize::from(rdlen);
    let Some(rdata) = b.get(rdata_at..rdata_end) else {
        return Err(DecodeError::truncated(
            LAYER,
            rdata_at,
            usize::from(rdlen),
            b.len(),
        ));
    };
    if !own {
        return Ok(rdata_end);
    }
    match rtype {
        rtype::A | rtype::AAAA if !owner.labels.is_empty() => {
            sink.push(Field::MdnsHostName, owner.text());
        }
        rtype::PTR => {
            let target = read_name(b, rdata_at)?;
            if owner.is_service_type() {
                sink.push(Field::MdnsServiceType, owner.service_type());
                if target.parent().same(&owner) {
                    if let Some(l) = target.labels.first() {
                        sink.push(Field::MdnsInstance, clean_text(l));
                    }
                }
            } else if owner.is_reverse() {
                sink.push(Field::MdnsHostName, target.text());
            } else if target.is_service_type() {
                // `_services._dns-sd._udp.local PTR _ipp._tcp.local`: a type the sender offers.
                sink.push(Field::MdnsServiceType, target.service_type());
            }
        }
        rtype::SRV => {
            instance_of(&owner, sink);
            let target = read_name(b, rdata_at + 6)?;
            if !target.labels.is_empty() {
                sink.push(Field::MdnsHostName, target.text());
            }
        }
        rtype::TXT => {
            instance_of(&owner, sink);
            txt(rdata, sink);
        }
        _ => {}
    }
    Ok(rdata_end)
}

/// The instance label and service type of an instance name (`<instance>._svc._tcp.local`).
fn instance_of(owner: &Name<'_>, sink: &mut Sink<'_>) {
    let parent = owner.parent();
    if parent.is_service_type() {
        sink.push(Field::MdnsServiceType, parent.service_type());
        if let Some(l) = owner.labels.first() {
            sink.push(Field::MdnsInstance, clean_text(l));
        }
    }
}

/// TXT strings `key=value` (RFC 6763 §6): only allow-listed keys are read.
fn txt(rdata: &[u8], sink: &mut Sink<'_>) {
    let mut rest = rdata;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n);
        let Some(s) = tail.get(..n) else { return };
        rest = tail.get(n..).unwrap_or(&[]);
        let Some(eq) = s.iter().position(|&c| c == b'=') else {
            continue;
        };
        let (key, value) = (s.get(..eq).unwrap_or(&[]), s.get(eq + 1..).unwrap_or(&[]));
        if let Some((_, field)) = TXT_KEYS
            .iter()
            .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(key))
        {
            let v = value.get(..MAX_VALUE_CHARS).unwrap_or(value);
            sink.push(*field, clean_text(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PROBE: &[u8] = include_bytes!("../testdata/mdns/probe.bin");
    const ANNOUNCE: &[u8] = include_bytes!("../testdata/mdns/announce.bin");
    const QUERY: &[u8] = include_bytes!("../testdata/mdns/query.bin");
    const RESPONSE: &[u8] = include_bytes!("../testdata/mdns/response.bin");

    fn facts(b: &[u8]) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    fn values(b: &[u8], field: Field) -> Vec<String> {
        facts(b)
            .into_iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn announcement_names_the_device() {
        assert_eq!(
            values(ANNOUNCE, Field::MdnsInstance),
            ["WardTestMed VM-240 (monitor)"]
        );
        assert_eq!(values(ANNOUNCE, Field::MdnsServiceType), ["_http._tcp"]);
        assert_eq!(
            values(ANNOUNCE, Field::MdnsHostName),
            ["wardtestmed-vm240.local"]
        );
        assert_eq!(values(ANNOUNCE, Field::MdnsModel), ["VM-240"]);
        assert_eq!(values(ANNOUNCE, Field::MdnsManufacturer), ["WardTestMed"]);
        assert_eq!(values(ANNOUNCE, Field::MdnsSoftwareVersion), ["2.4.1"]);
        assert!(values(ANNOUNCE, Field::MdnsSerial).is_empty());
    }

    #[test]
    fn response_to_a_resolve() {
        assert_eq!(values(RESPONSE, Field::MdnsModel), ["VM-240"]);
        assert_eq!(
            values(RESPONSE, Field::MdnsHostName),
            ["wardtestmed-vm240.local"]
        );
    }

    #[test]
    fn no_canary_and_no_other_txt_key() {
        for b in [PROBE, ANNOUNCE, QUERY, RESPONSE] {
            for (_, v) in facts(b) {
                assert!(!v.contains("CANARY"), "{v}");
                assert!(!v.contains("MDNSPATIENT"), "{v}");
            }
        }
    }

    #[test]
    fn query_questions_are_not_the_senders() {
        assert!(facts(QUERY).is_empty());
    }

    #[test]
    fn probe_authority_names_the_instance() {
        assert_eq!(
            values(PROBE, Field::MdnsInstance),
            ["WardTestMed VM-240 (monitor)"]
        );
    }

    #[test]
    fn probe_recognises_mdns_only() {
        for b in [PROBE, ANNOUNCE, QUERY, RESPONSE] {
            assert_eq!(probe(b), Probe::Certain);
        }
        // A unicast DNS response (ID != 0) is not mDNS.
        let mut dns = ANNOUNCE.to_vec();
        dns[1] = 0x42;
        assert_eq!(probe(&dns), Probe::NotMine);
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[0x16, 0x03, 0x01, 0x00, 0x10, 1, 0, 0, 0x0c, 3, 3, 0][..],
            &[0u8; 12][..],
            b"\x0bMSH|^~\\&|",
        ] {
            assert_eq!(probe(other), Probe::NotMine);
        }
    }

    #[test]
    fn compression_loops_and_forward_pointers_fail() {
        // Header (1 question) then a name that points at itself.
        let mut b = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0xc0, 12, 0, 12, 0, 1]);
        assert!(matches!(
            extract(&b, &mut Vec::new()),
            Err(DecodeError::Invalid { offset: 12, .. })
        ));
        b[13] = 40;
        assert!(extract(&b, &mut Vec::new()).is_err());
    }

    #[test]
    fn errors_never_echo_payload() {
        let mut b = ANNOUNCE.to_vec();
        b.truncate(100);
        let e = extract(&b, &mut Vec::new()).unwrap_err();
        assert!(!e.to_string().contains("WardTestMed"));
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=ANNOUNCE.len()) {
            for b in [PROBE, ANNOUNCE, QUERY, RESPONSE] {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                prop_assert!(out.len() <= MAX_FACTS);
                for f in &out {
                    prop_assert!(f.value.chars().count() <= MAX_VALUE_CHARS);
                    prop_assert!(!f.value.contains("CANARY"));
                }
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..228, byte in any::<u8>()) {
            let mut b = ANNOUNCE.to_vec();
            if let Some(x) = b.get_mut(at) { *x = byte; }
            let mut out = Vec::new();
            let _ = extract(&b, &mut out);
            let _ = probe(&b);
            prop_assert!(out.len() <= MAX_FACTS);
        }
    }
}
