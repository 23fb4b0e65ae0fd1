//! DHCPv4 (RFC 2131/2132): the client's self-description and the address it is given.
//!
//! The options a client sends, and their order, identify its DHCP stack; hostname, vendor class
//! and client id often name the device outright. Options are walked in wire order and that order
//! is kept (a map-based parser such as dhcproto's would lose it). Option overload (52) is not
//! followed: clients that put identity options in `sname`/`file` are vanishingly rare.

use core::fmt::Write as _;
use core::net::Ipv4Addr;

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, MacAddr, Protocol, MAX_VALUE_CHARS};
use crate::registry::{AppDecoder, Decode, Probe};

mod field {
    //! Byte offsets of the fixed BOOTP header (RFC 2131 §2).
    use core::ops::Range;

    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const YIADDR: Range<usize> = 16..20;
    pub const CHADDR: Range<usize> = 28..44;
    pub const COOKIE: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

/// The magic cookie that starts the options area.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// UDP ports DHCPv4 uses: server 67, client 68. For reference only: detection is by structure
/// ([`probe`]), never by port.
pub const PORTS: [u16; 2] = [67, 68];

/// DHCP's entry in [`crate::registry`]: a UDP protocol, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Dhcp,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction,
    },
};

/// Structure test on a datagram: the fixed BOOTP header, the magic cookie and a valid op
/// ([`Packet::new_checked`]).
pub fn probe(payload: &[u8]) -> Probe {
    if Packet::new_checked(payload).is_ok() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// Which way a message travels: a BOOTREQUEST comes from the client (or a relay acting for
/// it), a BOOTREPLY from the server.
pub fn direction(payload: &[u8]) -> Direction {
    match Packet::new_checked(payload) {
        Ok(p) if p.is_request() => Direction::FromClient,
        Ok(_) => Direction::FromServer,
        Err(_) => Direction::Unknown,
    }
}

/// A checked view of a DHCPv4 message.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the fixed header and magic cookie are present.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let b = buffer.as_ref();
        if b.len() < field::OPTIONS {
            return Err(DecodeError::truncated(
                Layer::App(Protocol::Dhcp),
                0,
                field::OPTIONS,
                b.len(),
            ));
        }
        if b.get(field::COOKIE) != Some(&MAGIC_COOKIE[..]) {
            return Err(DecodeError::Invalid {
                layer: Layer::App(Protocol::Dhcp),
                offset: field::COOKIE.start,
                what: "magic cookie",
            });
        }
        if !matches!(b.get(field::OP), Some(1 | 2)) {
            return Err(DecodeError::Invalid {
                layer: Layer::App(Protocol::Dhcp),
                offset: field::OP,
                what: "op (not BOOTREQUEST or BOOTREPLY)",
            });
        }
        Ok(Packet { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// True for BOOTREQUEST (client to server).
    pub fn is_request(&self) -> bool {
        self.bytes().get(field::OP) == Some(&1)
    }

    /// Client hardware address when it is an Ethernet MAC (htype 1, hlen 6).
    pub fn client_mac(&self) -> Option<MacAddr> {
        let b = self.bytes();
        if b.get(field::HTYPE) != Some(&1) || b.get(field::HLEN) != Some(&6) {
            return None;
        }
        let mac: [u8; 6] = b.get(field::CHADDR)?.get(..6)?.try_into().ok()?;
        Some(MacAddr(mac))
    }

    /// `yiaddr`: the address a server offers or assigns.
    pub fn your_ip(&self) -> Ipv4Addr {
        let b: [u8; 4] = self
            .bytes()
            .get(field::YIADDR)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 4]);
        Ipv4Addr::from(b)
    }

    /// Options in wire order, up to the end option.
    pub fn options(&self) -> Options<'_> {
        Options {
            data: self.bytes().get(field::OPTIONS..).unwrap_or(&[]),
            offset: field::OPTIONS,
            done: false,
        }
    }

    /// The DHCP message type (option 53), if present and well formed.
    pub fn message_type(&self) -> Option<MessageType> {
        self.options()
            .map_while(Result::ok)
            .find(|o| o.code == option::MESSAGE_TYPE)
            .and_then(|o| o.data.first().copied())
            .map(MessageType)
    }
}

/// Option codes ward reads.
pub mod option {
    /// Pad.
    pub const PAD: u8 = 0;
    /// Host name.
    pub const HOSTNAME: u8 = 12;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Parameter request list.
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Vendor-specific information (encapsulated vendor options).
    pub const VENDOR_SPECIFIC: u8 = 43;
    /// Vendor class identifier.
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// User class.
    pub const USER_CLASS: u8 = 77;
    /// Client FQDN.
    pub const FQDN: u8 = 81;
    /// End.
    pub const END: u8 = 255;
}

/// One option: its code and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    /// Option code.
    pub code: u8,
    /// Option data (without code and length).
    pub data: &'a [u8],
}

/// Iterator over options in wire order. Stops at the end option, at the end of the buffer, or
/// after yielding an error for a truncated option.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    data: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<DhcpOption<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some((&code, rest)) = self.data.split_first() else {
                self.done = true;
                return None;
            };
            match code {
                option::PAD => {
                    self.data = rest;
                    self.offset += 1;
                }
                option::END => {
                    self.done = true;
                    return None;
                }
                _ => {
                    let Some((&len, rest)) = rest.split_first() else {
                        self.done = true;
                        return Some(Err(DecodeError::truncated(
                            Layer::App(Protocol::Dhcp),
                            self.offset,
                            2,
                            1,
                        )));
                    };
                    let len = usize::from(len);
                    let Some((data, rest)) = rest.split_at_checked(len) else {
                        self.done = true;
                        return Some(Err(DecodeError::truncated(
                            Layer::App(Protocol::Dhcp),
                            self.offset,
                            2 + len,
                            2 + rest.len(),
                        )));
                    };
                    self.data = rest;
                    self.offset += 2 + len;
                    return Some(Ok(DhcpOption { code, data }));
                }
            }
        }
    }
}

/// DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageType(pub u8);

impl MessageType {
    /// The RFC 2132 name, e.g. `DISCOVER`, or the number for unknown types.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "DISCOVER",
            2 => "OFFER",
            3 => "REQUEST",
            4 => "DECLINE",
            5 => "ACK",
            6 => "NAK",
            7 => "RELEASE",
            8 => "INFORM",
            _ => return None,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Option codes as `1,3,6,…`, at most [`MAX_VALUE_CHARS`] long: whole codes only, so a list of
/// 255 codes (or thousands of padding options) cannot make a value past the evidence bound.
fn join_codes(codes: impl Iterator<Item = u8>) -> String {
    let mut s = String::new();
    let mut code = String::new();
    for (i, c) in codes.enumerate() {
        code.clear();
        if i > 0 {
            code.push(',');
        }
        let _ = write!(code, "{c}");
        if s.len() + code.len() > MAX_VALUE_CHARS {
            break;
        }
        s.push_str(&code);
    }
    s
}

/// Extracts the identity facts of one DHCP message (a UDP payload) into `out`.
///
/// Facts found before a malformed option are kept and the error is returned, so a damaged
/// message still yields what it can.
pub fn extract(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let pkt = Packet::new_checked(payload)?;
    let msg_type = pkt.message_type();
    if let Some(t) = msg_type {
        let name = t.name().map_or_else(|| t.0.to_string(), str::to_owned);
        out.push(Fact::new(Field::DhcpMessageType, name));
    }
    // In requests and replies alike chaddr names the client the message is about, which is how
    // a reply's yiaddr is tied to a device (and a relayed request to the right MAC).
    if let Some(mac) = pkt.client_mac() {
        out.push(Fact::new(Field::DhcpClientMac, mac.to_string()));
    }
    if !pkt.is_request() && matches!(msg_type.map(|t| t.0), Some(2 | 5)) {
        let ip = pkt.your_ip();
        if !ip.is_unspecified() {
            out.push(Fact::new(Field::DhcpYourIp, ip.to_string()));
        }
    }
    let mut order = Vec::new();
    let mut result = Ok(());
    for opt in pkt.options() {
        let opt = match opt {
            Ok(o) => o,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        order.push(opt.code);
        // Only client-sent options describe the device; a server's reply echoes its own.
        if !pkt.is_request() {
            continue;
        }
        match opt.code {
            option::USER_CLASS => {
                for class in user_classes(opt.data).take(MAX_USER_CLASSES) {
                    push_text(out, Field::DhcpUserClass, clean_text(class));
                }
                continue;
            }
            option::VENDOR_SPECIFIC => {
                vendor_specific(opt.data, out);
                continue;
            }
            _ => {}
        }
        let fact = match opt.code {
            option::HOSTNAME => Some((Field::DhcpHostname, clean_text(opt.data))),
            option::REQUESTED_IP => <[u8; 4]>::try_from(opt.data)
                .ok()
                .map(|b| (Field::DhcpRequestedIp, Ipv4Addr::from(b).to_string())),
            option::PARAMETER_REQUEST_LIST => Some((
                Field::DhcpParameterRequestList,
                join_codes(opt.data.iter().copied()),
            )),
            option::VENDOR_CLASS => Some((Field::DhcpVendorClass, clean_text(opt.data))),
            option::CLIENT_ID => Some((
                Field::DhcpClientId,
                hex(opt.data.get(..64).unwrap_or(opt.data)),
            )),
            // RFC 4702: flags, two deprecated RCODE bytes, then the name (wire or ASCII form).
            option::FQDN => opt
                .data
                .get(3..)
                .map(|name| (Field::DhcpFqdn, fqdn_text(name))),
            _ => None,
        };
        if let Some((field, value)) = fact {
            if !value.is_empty() {
                out.push(Fact::new(field, value));
            }
        }
    }
    if !order.is_empty() {
        out.push(Fact::new(
            Field::DhcpOptionOrder,
            join_codes(order.into_iter()),
        ));
    }
    result
}

/// User classes kept per message (RFC 3004 allows as many as fit in 255 bytes).
pub const MAX_USER_CLASSES: usize = 8;
/// Printable vendor-specific sub-option values kept per message.
pub const MAX_VENDOR_VALUES: usize = 8;

fn push_text(out: &mut Vec<Fact>, field: Field, value: String) {
    if !value.is_empty() && !out.iter().any(|f| f.field == field && f.value == value) {
        out.push(Fact::new(field, value));
    }
}

/// Option 77's user classes. RFC 3004 encodes one or more instances, each a length byte and
/// that many bytes of class data; Windows (`ipconfig /setclassid`), ISC dhclient
/// (`send user-class "…"`) and iPXE (`iPXE`) send one plain string instead. The data is read as
/// RFC 3004 instances only when it splits into them exactly (every length non-zero, nothing
/// left over), else as one string: a printable string almost never splits exactly, since its
/// first byte (at least 0x20) would claim 32 bytes or more.
fn user_classes(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    let mut rfc3004 = !data.is_empty();
    while let Some((&len, tail)) = rest.split_first() {
        match tail.split_at_checked(usize::from(len)) {
            Some((_, tail)) if len > 0 => rest = tail,
            _ => {
                rfc3004 = false;
                break;
            }
        }
    }
    let mut instances = if rfc3004 { data } else { &[][..] };
    let mut plain = (!rfc3004).then_some(data);
    core::iter::from_fn(move || {
        if let Some(p) = plain.take() {
            return Some(p);
        }
        let (&len, tail) = instances.split_first()?;
        let (class, tail) = tail.split_at_checked(usize::from(len))?;
        instances = tail;
        Some(class)
    })
}

/// Option 43 (vendor-specific information), read from client messages only. Its content is
/// defined by the vendor that option 60 names, so ward cannot interpret it; what identifies is
/// its shape: RFC 2132 §8.4 recommends encapsulated code/length/value sub-options, and which
/// codes a client sends fingerprints its vendor's stack (kept as
/// [`Field::DhcpVendorOptionCodes`]). A sub-option whose value is printable text (a model or
/// firmware string in several vendors' formats) is kept as `code=text`
/// ([`Field::DhcpVendorOption`], at most [`MAX_VENDOR_VALUES`], each bounded by
/// [`clean_text`]); binary values (addresses, flags, keys) are never copied out. Data that is
/// not a sequence of sub-options yields nothing: an opaque blob says nothing ward can check. A
/// server's option 43 is configuration it hands the client (controller or boot-server
/// addresses), not the client's identity, and is not read (see [`extract`]).
fn vendor_specific(data: &[u8], out: &mut Vec<Fact>) {
    let mut subs = Vec::new();
    let mut rest = data;
    while let Some((&code, tail)) = rest.split_first() {
        if code == option::PAD {
            rest = tail;
            continue;
        }
        if code == option::END {
            break;
        }
        let Some((&len, tail)) = tail.split_first() else {
            return;
        };
        let Some((value, tail)) = tail.split_at_checked(usize::from(len)) else {
            return;
        };
        subs.push((code, value));
        rest = tail;
    }
    if subs.is_empty() {
        return;
    }
    push_text(
        out,
        Field::DhcpVendorOptionCodes,
        join_codes(subs.iter().map(|(c, _)| *c)),
    );
    let printable = subs
        .iter()
        .filter(|(_, v)| !v.is_empty() && v.iter().all(|b| (0x20..0x7f).contains(b)));
    for (code, value) in printable.take(MAX_VENDOR_VALUES) {
        push_text(
            out,
            Field::DhcpVendorOption,
            bounded(format!("{code}={}", clean_text(value))),
        );
    }
}

/// Renders an FQDN option name: DNS wire format (length-prefixed labels) when it parses as
/// such, otherwise the bytes as text.
fn fqdn_text(name: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut rest = name;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 {
            if tail.is_empty() {
                return bounded(labels.join("."));
            }
            break;
        }
        let Some((label, tail)) = tail.split_at_checked(usize::from(len)) else {
            break;
        };
        labels.push(clean_text(label));
        rest = tail;
    }
    if rest.is_empty() && !labels.is_empty() {
        return bounded(labels.join("."));
    }
    clean_text(name)
}

/// Cuts a value built from several cleaned parts to [`MAX_VALUE_CHARS`] characters (cleaned
/// text may hold non-ASCII characters, so this counts characters, never bytes).
fn bounded(s: String) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s;
    }
    s.chars().take(MAX_VALUE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the generic `app` fuzz target: 255 requested parameters, thousands of options
    /// or a long multi-label FQDN made values past the evidence bound.
    #[test]
    fn option_lists_and_fqdns_stay_within_the_value_bound() {
        let codes = join_codes((0..=255u8).cycle().take(5000));
        assert!(codes.len() <= MAX_VALUE_CHARS, "{}", codes.len());
        assert!(codes.starts_with("0,1,2,") && !codes.ends_with(','));
        let mut wire = Vec::new();
        for _ in 0..20 {
            wire.push(60u8);
            wire.extend(std::iter::repeat_n(0xe9u8, 60));
        }
        wire.push(0);
        let name = fqdn_text(&wire);
        assert_eq!(name.chars().count(), MAX_VALUE_CHARS);
    }

    /// A DHCPDISCOVER, OFFER and ACK captured from ISC dhclient talking to dnsmasq
    /// (tests/fixtures/dhcp.pcap, UDP payloads).
    const DISCOVER: &[u8] = include_bytes!("../testdata/dhcp/discover.bin");
    const OFFER: &[u8] = include_bytes!("../testdata/dhcp/offer.bin");
    const ACK: &[u8] = include_bytes!("../testdata/dhcp/ack.bin");

    fn discover() -> Vec<u8> {
        DISCOVER.to_vec()
    }

    fn value(facts: &[Fact], f: Field) -> Option<&str> {
        facts
            .iter()
            .find(|x| x.field == f)
            .map(|x| x.value.as_str())
    }

    #[test]
    fn discover_facts_in_wire_order() {
        let mut facts = Vec::new();
        extract(DISCOVER, &mut facts).unwrap();
        assert_eq!(value(&facts, Field::DhcpMessageType), Some("DISCOVER"));
        assert_eq!(
            value(&facts, Field::DhcpClientMac),
            Some("00:12:21:aa:bb:01")
        );
        assert_eq!(value(&facts, Field::DhcpHostname), Some("infusion-pump-07"));
        assert_eq!(
            value(&facts, Field::DhcpVendorClass),
            Some("BBraun-SpaceStation")
        );
        // dhclient sends its list unsorted: the order is the fingerprint.
        assert_eq!(
            value(&facts, Field::DhcpParameterRequestList),
            Some("1,3,6,42,12,43,15,28")
        );
        assert_eq!(value(&facts, Field::DhcpClientId), Some("01001221aabb01"));
        assert_eq!(
            value(&facts, Field::DhcpFqdn),
            Some("infusion-pump-07.ward.test")
        );
        assert_eq!(
            value(&facts, Field::DhcpOptionOrder),
            Some("53,12,81,55,60,61")
        );
    }

    #[test]
    fn offer_and_ack_give_your_ip_but_not_server_options() {
        for (bytes, kind) in [(OFFER, "OFFER"), (ACK, "ACK")] {
            let mut facts = Vec::new();
            extract(bytes, &mut facts).unwrap();
            assert_eq!(value(&facts, Field::DhcpMessageType), Some(kind));
            assert_eq!(value(&facts, Field::DhcpYourIp), Some("192.0.2.177"));
            assert_eq!(value(&facts, Field::DhcpHostname), None);
            assert_eq!(
                value(&facts, Field::DhcpClientMac),
                Some("00:12:21:aa:bb:01")
            );
        }
    }

    /// The DISCOVER of the regenerated tests/fixtures/dhcp.pcap: dhclient.conf adds a user
    /// class (option 77, sent as a plain string) and option 43 with a text sub-option 1 and a
    /// binary sub-option 2.
    const DISCOVER_UC: &[u8] = include_bytes!("../testdata/dhcp/discover_uc.bin");

    #[test]
    fn user_class_and_vendor_specific_sub_options() {
        let mut facts = Vec::new();
        extract(DISCOVER_UC, &mut facts).unwrap();
        assert_eq!(
            value(&facts, Field::DhcpUserClass),
            Some("WardTestMed-Infusion")
        );
        assert_eq!(value(&facts, Field::DhcpVendorOptionCodes), Some("1,2"));
        // Only the printable sub-option's value; the binary one is known by its code alone.
        let vendor: Vec<_> = facts
            .iter()
            .filter(|f| f.field == Field::DhcpVendorOption)
            .map(|f| f.value.as_str())
            .collect();
        assert_eq!(vendor, ["1=WardPump-500"]);
        assert_eq!(
            value(&facts, Field::DhcpOptionOrder),
            Some("53,12,81,55,43,60,61,77")
        );
    }

    #[test]
    fn user_classes_rfc3004_or_plain() {
        let classes = |d: &[u8]| -> Vec<Vec<u8>> { user_classes(d).map(<[u8]>::to_vec).collect() };
        // RFC 3004: length-prefixed instances.
        assert_eq!(
            classes(b"\x04iPXE\x05ward1"),
            [b"iPXE".to_vec(), b"ward1".to_vec()]
        );
        // iPXE and Windows send one plain string.
        assert_eq!(classes(b"iPXE"), [b"iPXE".to_vec()]);
        assert_eq!(classes(b"\x04iPX"), [b"\x04iPX".to_vec()]);
        // A zero-length instance is not RFC 3004.
        assert_eq!(classes(b"\x00\x00"), [b"\x00\x00".to_vec()]);
        assert_eq!(classes(b""), [Vec::<u8>::new()]);
        // Many instances: bounded when extracted.
        let mut p = DISCOVER_UC.to_vec();
        let at = p.windows(2).position(|w| w == [77, 20]).unwrap();
        p[at + 2..at + 22].copy_from_slice(b"\x01a\x01b\x01c\x01d\x01e\x01f\x01g\x01h\x01i\x01j");
        let mut facts = Vec::new();
        extract(&p, &mut facts).unwrap();
        let n = facts
            .iter()
            .filter(|f| f.field == Field::DhcpUserClass)
            .count();
        assert_eq!(n, MAX_USER_CLASSES);
    }

    #[test]
    fn vendor_specific_blobs_and_server_replies_yield_nothing() {
        let mut out = Vec::new();
        // Not a sequence of sub-options: a length past the end.
        vendor_specific(&[1, 9, b'a'], &mut out);
        assert!(out.is_empty());
        // Binary only: the codes, never the bytes.
        vendor_specific(&[3, 2, 0xc0, 0x00, 0, 4, 1, 0x01], &mut out);
        assert_eq!(out, [Fact::new(Field::DhcpVendorOptionCodes, "3,4")]);
        // A server's option 43 configures the client; it is not read.
        let mut reply = DISCOVER_UC.to_vec();
        reply[0] = 2;
        let mut facts = Vec::new();
        extract(&reply, &mut facts).unwrap();
        assert!(facts.iter().all(|f| !matches!(
            f.field,
            Field::DhcpVendorOption | Field::DhcpVendorOptionCodes | Field::DhcpUserClass
        )));
    }

    #[test]
    fn fqdn_in_ascii_form_is_kept_as_text() {
        assert_eq!(fqdn_text(b"pump.ward.test"), "pump.ward.test");
        assert_eq!(fqdn_text(&[4, b'p', b'u', b'm', b'p', 0]), "pump");
    }

    #[test]
    fn bad_cookie_and_short_packets_are_errors() {
        let mut p = discover();
        p[236] = 0;
        let e = extract(&p, &mut Vec::new()).unwrap_err();
        assert_eq!(
            e,
            DecodeError::Invalid {
                layer: Layer::App(Protocol::Dhcp),
                offset: 236,
                what: "magic cookie"
            }
        );
        assert!(matches!(
            extract(&[1, 1, 6], &mut Vec::new()),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn every_truncation_yields_facts_or_an_error() {
        let p = discover();
        for n in 0..p.len() {
            let mut facts = Vec::new();
            let r = extract(&p[..n], &mut facts);
            if n < 240 {
                assert!(r.is_err());
            }
        }
    }
}
