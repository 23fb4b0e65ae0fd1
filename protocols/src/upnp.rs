//! UPnP device description (UPnP Device Architecture 2.0 §2.3): what a UPnP device says about
//! itself in the XML document an SSDP `LOCATION` points to.
//!
//! The description travels as the body of an ordinary HTTP response, so it has no registry
//! entry of its own: [`crate::http`] recognises it by structure — a `200` response whose
//! `Content-Type` is `text/xml` or `application/xml` — and hands the body (de-chunked when
//! `Transfer-Encoding: chunked`) to a [`DescriptionScanner`], which first checks that the
//! document's first element is `<root xmlns="urn:schemas-upnp-org:device-1-0">`. Anything else
//! (a SOAP answer, an RSS feed, an HL7 or FHIR document posted back) stops the scanner there and
//! the rest of the body is skipped by count, unread. Never by port or URL.
//!
//! Of a description, only the allow-listed children of each `<device>` (the root device and its
//! embedded devices) are copied: [`ALLOWED`]. Every other element — URLs (`presentationURL`,
//! `URLBase`, service URLs), icons, vendor extensions — is walked over without its text being
//! kept. Facts are [`Field`]s of [`Protocol::Ssdp`](crate::evidence::Protocol::Ssdp): the
//! description is the second half of UPnP discovery (SSDP's `LOCATION` points to it) and it
//! describes the HTTP *server*, the device.
//!
//! The scanner is a small tolerant tokenizer, not an XML parser: no DOM, no DTD (a `<!DOCTYPE`
//! stops it, so no entity can be defined, let alone expanded), only the five predefined entities
//! and character references are decoded. It is fed the body in arbitrary pieces (TCP segments,
//! chunks) and keeps at most one bounded token between pieces; body bytes, elements, nesting and
//! values are all bounded ([`MAX_BODY_BYTES`], [`MAX_ELEMENTS`], [`MAX_DEPTH`],
//! [`MAX_RAW_VALUE`], [`MAX_DEVICES`]). Linear in the bytes it is given.

use crate::evidence::{clean_text, Fact, Field};

/// Body bytes examined per description; the rest is skipped by count. Real descriptions are
/// 1–10 KiB (an IGD with its embedded devices about 6 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The root element must start within this many bytes of the body (after a byte-order mark, the
/// XML declaration, comments and white space).
pub const SNIFF_BYTES: usize = 1024;
/// Start tags examined per description.
pub const MAX_ELEMENTS: usize = 2048;
/// Deepest element nesting followed (root/device/deviceList/device/… needs about 8).
pub const MAX_DEPTH: usize = 24;
/// `<device>` elements read (the root device and its embedded devices).
pub const MAX_DEVICES: usize = 16;
/// Facts pushed per description: every allow-listed element of every device read.
pub const MAX_FACTS: usize = MAX_DEVICES * ALLOWED.len();
/// Raw bytes of one value kept before decoding ([`clean_text`] then cuts it to 256 characters).
pub const MAX_RAW_VALUE: usize = 1024;
/// Bytes of one tag kept (the root's, whose `xmlns` is checked; other tags keep only a name).
const MAX_TAG: usize = 512;
/// The namespace of a UPnP device description's root element (UDA 1.0 to 2.0 all use it).
pub const DEVICE_NAMESPACE: &[u8] = b"urn:schemas-upnp-org:device-1-0";

/// The children of `<device>` that are read, and the field each becomes. Matched on the local
/// name (a namespace prefix is ignored), case-sensitively as XML is.
pub const ALLOWED: &[(&str, Field)] = &[
    ("deviceType", Field::SsdpDeviceType),
    ("friendlyName", Field::SsdpFriendlyName),
    ("manufacturer", Field::SsdpManufacturer),
    ("modelDescription", Field::SsdpModelDescription),
    ("modelName", Field::SsdpModelName),
    ("modelNumber", Field::SsdpModelNumber),
    ("serialNumber", Field::SsdpSerialNumber),
    ("UDN", Field::SsdpUdn),
];

/// Whether an HTTP `Content-Type` value announces an XML body (`text/xml`, `application/xml`,
/// with any parameters): the only bodies offered to the scanner.
pub fn is_xml_media_type(value: &[u8]) -> bool {
    let media = value
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii();
    media.eq_ignore_ascii_case(b"text/xml") || media.eq_ignore_ascii_case(b"application/xml")
}

/// What one open element is, for the scanner's purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// `<root>`.
    Root,
    /// A `<device>` (root device or embedded).
    Device,
    /// An allow-listed child of a `<device>`: its text is kept.
    Wanted(Field),
    /// Any other element (its text is never kept).
    Other,
}

/// Where the tokenizer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Character data (kept only inside a [`Frame::Wanted`]).
    Text,
    /// Just after `<`.
    Open,
    /// Reading a start tag's name (into `tag`).
    StartName,
    /// In a start tag's attributes; `Some(q)` inside a value quoted with `q`. The last
    /// significant byte is remembered in `slash` for `/>`.
    Attrs(Option<u8>),
    /// Reading an end tag up to `>`.
    EndTag,
    /// After `<!`: collecting up to 7 bytes to tell a comment from CDATA (anything else, a
    /// DOCTYPE above all, ends the scan).
    Bang,
    /// Inside `<!-- … -->`; the count of `-` just seen.
    Comment(u8),
    /// Inside `<![CDATA[ … ]]>`; the count of `]` just seen.
    CData(u8),
    /// Inside `<? … ?>`; whether the last byte was `?`.
    Pi(bool),
}

/// Streaming scanner of one description body. Feed it the body's bytes in order with
/// [`DescriptionScanner::feed`]; it answers whether it wants more.
#[derive(Debug)]
pub struct DescriptionScanner {
    lex: Lex,
    /// Open elements, outermost first (at most [`MAX_DEPTH`]).
    stack: Vec<Frame>,
    /// The current tag's bytes (name, or the whole root tag), at most [`MAX_TAG`].
    tag: Vec<u8>,
    /// The current wanted element's raw text, at most [`MAX_RAW_VALUE`].
    text: Vec<u8>,
    /// Whether the current start tag ended with `/` before `>`.
    slash: bool,
    /// The root element has been seen and checked.
    rooted: bool,
    /// Body bytes examined.
    bytes: usize,
    elements: usize,
    devices: usize,
    facts: usize,
    done: bool,
}

impl Default for DescriptionScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl DescriptionScanner {
    /// A scanner at the start of a body.
    pub fn new() -> Self {
        DescriptionScanner {
            lex: Lex::Text,
            stack: Vec::new(),
            tag: Vec::new(),
            text: Vec::new(),
            slash: false,
            rooted: false,
            bytes: 0,
            elements: 0,
            devices: 0,
            facts: 0,
            done: false,
        }
    }

    /// Whether the scanner still wants bytes: `false` once the body is not a description, the
    /// root element has closed, or a bound was reached.
    pub fn active(&self) -> bool {
        !self.done
    }

    /// Whether the body was recognised as a device description (its root element was seen).
    pub fn is_description(&self) -> bool {
        self.rooted
    }

    /// Scans the next body bytes, pushing a fact for each allow-listed element that closes in
    /// them. Returns [`DescriptionScanner::active`].
    pub fn feed(&mut self, body: &[u8], facts: &mut Vec<Fact>) -> bool {
        for &b in body {
            if self.done {
                break;
            }
            self.bytes += 1;
            if self.bytes > MAX_BODY_BYTES || (!self.rooted && self.bytes > SNIFF_BYTES + MAX_TAG) {
                self.done = true;
                break;
            }
            self.byte(b, facts);
        }
        !self.done
    }

    fn byte(&mut self, b: u8, facts: &mut Vec<Fact>) {
        match self.lex {
            Lex::Text => {
                if b == b'<' {
                    self.lex = Lex::Open;
                } else if !self.rooted {
                    // Before the root only a byte-order mark and white space may appear.
                    let bom = matches!((self.bytes, b), (1, 0xef) | (2, 0xbb) | (3, 0xbf));
                    if !(bom || b.is_ascii_whitespace()) {
                        self.done = true;
                    }
                } else if matches!(self.stack.last(), Some(Frame::Wanted(_)))
                    && self.text.len() < MAX_RAW_VALUE
                {
                    self.text.push(b);
                }
            }
            Lex::Open => {
                self.tag.clear();
                self.slash = false;
                self.lex = match b {
                    b'/' => Lex::EndTag,
                    b'!' => Lex::Bang,
                    b'?' => Lex::Pi(false),
                    _ if b.is_ascii_whitespace() || b == b'>' || b == b'<' => {
                        self.done = true;
                        Lex::Text
                    }
                    _ => {
                        if !self.rooted && self.bytes > SNIFF_BYTES {
                            self.done = true;
                        }
                        self.tag.push(b);
                        Lex::StartName
                    }
                };
            }
            Lex::StartName => {
                if b == b'>' || b == b'/' || b.is_ascii_whitespace() {
                    self.lex = Lex::Attrs(None);
                    self.byte(b, facts);
                } else if self.tag.len() < MAX_TAG {
                    self.tag.push(b);
                }
            }
            Lex::Attrs(quote) => {
                // Only the root's attributes are kept (to find its namespace).
                if !self.rooted && self.tag.len() < MAX_TAG {
                    self.tag.push(b);
                }
                match (quote, b) {
                    (Some(q), _) if b == q => self.lex = Lex::Attrs(None),
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => {
                        self.slash = false;
                        self.lex = Lex::Attrs(Some(b));
                    }
                    (None, b'>') => {
                        self.lex = Lex::Text;
                        self.start_tag();
                    }
                    (None, b'/') => self.slash = true,
                    (None, _) if b.is_ascii_whitespace() => {}
                    (None, _) => self.slash = false,
                }
            }
            Lex::EndTag => {
                if b == b'>' {
                    self.lex = Lex::Text;
                    self.end_tag(facts);
                }
            }
            Lex::Bang => {
                self.tag.push(b);
                if self.tag.as_slice() == b"--" {
                    self.lex = Lex::Comment(0);
                } else if self.tag.as_slice() == b"[CDATA[" {
                    self.lex = Lex::CData(0);
                } else if !b"--".starts_with(&self.tag) && !b"[CDATA[".starts_with(&self.tag) {
                    // `<!DOCTYPE`, `<!ENTITY`…: a description has none, and a DTD is never
                    // processed.
                    self.done = true;
                }
            }
            Lex::Comment(dashes) => {
                self.lex = match b {
                    b'-' => Lex::Comment(dashes.saturating_add(1)),
                    b'>' if dashes >= 2 => Lex::Text,
                    _ => Lex::Comment(0),
                };
            }
            Lex::CData(brackets) => {
                // `]` bytes are held back (at most two) until it is clear they do not close
                // the section.
                let wanted = matches!(self.stack.last(), Some(Frame::Wanted(_)));
                self.lex = match b {
                    b'>' if brackets >= 2 => Lex::Text,
                    b']' => {
                        if brackets >= 2 && wanted {
                            self.keep(b']');
                        }
                        Lex::CData(brackets.saturating_add(1).min(2))
                    }
                    _ => {
                        if wanted {
                            for _ in 0..brackets {
                                self.keep(b']');
                            }
                            self.keep(b);
                        }
                        Lex::CData(0)
                    }
                };
            }
            Lex::Pi(q) => {
                self.lex = match b {
                    b'>' if q => Lex::Text,
                    _ => Lex::Pi(b == b'?'),
                };
            }
        }
    }

    fn keep(&mut self, b: u8) {
        if self.text.len() < MAX_RAW_VALUE {
            self.text.push(b);
        }
    }

    /// The local name of the tag being read (without a namespace prefix).
    fn local_name(&self) -> &[u8] {
        let end = self
            .tag
            .iter()
            .position(|&c| c == b'>' || c == b'/' || c.is_ascii_whitespace())
            .unwrap_or(self.tag.len());
        let name = self.tag.get(..end).unwrap_or(&[]);
        match name.iter().rposition(|&c| c == b':') {
            Some(colon) => name.get(colon + 1..).unwrap_or(&[]),
            None => name,
        }
    }

    fn start_tag(&mut self) {
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            self.done = true;
            return;
        }
        let frame = if !self.rooted {
            let ns_ok = self
                .tag
                .windows(DEVICE_NAMESPACE.len())
                .any(|w| w == DEVICE_NAMESPACE);
            if self.local_name() != b"root" || !ns_ok || self.slash {
                self.done = true;
                return;
            }
            self.rooted = true;
            Frame::Root
        } else {
            let name = self.local_name();
            match self.stack.last() {
                _ if name == b"device" => {
                    self.devices += 1;
                    if self.devices > MAX_DEVICES {
                        self.done = true;
                        return;
                    }
                    Frame::Device
                }
                Some(Frame::Device) => ALLOWED
                    .iter()
                    .find(|(n, _)| n.as_bytes() == name)
                    .map_or(Frame::Other, |&(_, f)| Frame::Wanted(f)),
                _ => Frame::Other,
            }
        };
        self.text.clear();
        if self.slash {
            return;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.done = true;
            return;
        }
        self.stack.push(frame);
    }

    fn end_tag(&mut self, facts: &mut Vec<Fact>) {
        // Tolerant: an end tag closes the innermost open element whatever name it gives.
        if let Some(Frame::Wanted(field)) = self.stack.pop() {
            let value = clean_text(&decode_entities(self.text.trim_ascii()));
            if !value.is_empty() {
                self.facts += 1;
                if self.facts > MAX_FACTS {
                    self.done = true;
                    return;
                }
                facts.push(Fact::new(field, value));
            }
        }
        self.text.clear();
        if self.stack.is_empty() && self.rooted {
            self.done = true;
        }
    }
}

/// Decodes the five predefined entities and character references (XML 1.0 §4.1, §4.6); any
/// other `&…;` is left as written (no DTD, so no other entity exists). A reference to a
/// character outside Latin-1 becomes a control byte, which [`clean_text`] turns into U+FFFD.
fn decode_entities(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'&' {
            let semi = tail.iter().take(12).position(|&c| c == b';');
            if let Some(semi) = semi {
                let name = tail.get(..semi).unwrap_or(&[]);
                if let Some(c) = entity(name) {
                    out.push(c);
                    rest = tail.get(semi + 1..).unwrap_or(&[]);
                    continue;
                }
            }
        }
        out.push(b);
        rest = tail;
    }
    out
}

/// The byte an entity or character reference stands for (Latin-1, as [`clean_text`] reads).
fn entity(name: &[u8]) -> Option<u8> {
    match name {
        b"amp" => Some(b'&'),
        b"lt" => Some(b'<'),
        b"gt" => Some(b'>'),
        b"quot" => Some(b'"'),
        b"apos" => Some(b'\''),
        _ => {
            let digits = name.strip_prefix(b"#")?;
            let code = match digits
                .strip_prefix(b"x")
                .or_else(|| digits.strip_prefix(b"X"))
            {
                Some(hex) => u32::from_str_radix(core::str::from_utf8(hex).ok()?, 16).ok()?,
                None => core::str::from_utf8(digits).ok()?.parse::<u32>().ok()?,
            };
            Some(u8::try_from(code).unwrap_or(0x1a))
        }
    }
}

/// Scans a whole body at once (tests, benches, the fuzz harness): the facts of the description,
/// or none when it is not one.
pub fn scan(body: &[u8]) -> Vec<Fact> {
    let mut facts = Vec::new();
    DescriptionScanner::new().feed(body, &mut facts);
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::MAX_VALUE_CHARS;
    use proptest::prelude::*;

    /// minidlna 1.3.0's answer to async-upnp-client's `GET /rootDesc.xml`
    /// (tests/fixtures/upnp.pcap, first connection): head and description body.
    const RESPONSE: &[u8] = include_bytes!("../testdata/upnp/description.response.bin");
    /// The same server's ContentDirectory service description (SCPD), also text/xml.
    const SCPD: &[u8] = include_bytes!("../testdata/upnp/scpd.response.bin");
    /// A SOAP answer (GetSystemUpdateID), text/xml.
    const SOAP: &[u8] = include_bytes!("../testdata/upnp/soap.response.bin");

    fn body(response: &[u8]) -> &[u8] {
        let at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        &response[at + 4..]
    }

    fn pairs(facts: &[Fact]) -> Vec<(Field, &str)> {
        facts.iter().map(|f| (f.field, f.value.as_str())).collect()
    }

    const EXPECTED: &[(Field, &str)] = &[
        (
            Field::SsdpDeviceType,
            "urn:schemas-upnp-org:device:MediaServer:1",
        ),
        (Field::SsdpFriendlyName, "WardTestMed Media Station"),
        (Field::SsdpManufacturer, "Justin Maggard"),
        (Field::SsdpModelDescription, "MiniDLNA on Linux"),
        (Field::SsdpModelName, "WardTestMed MS-500"),
        (Field::SsdpModelNumber, "MS-500"),
        (Field::SsdpSerialNumber, "WTMMS500-0042"),
        (Field::SsdpUdn, "uuid:5741524e-4454-4553-544d-533530300001"),
    ];

    #[test]
    fn captured_description_gives_the_allow_listed_elements_only() {
        let facts = scan(body(RESPONSE));
        assert_eq!(pairs(&facts), EXPECTED);
        // URLs in the same document are never read.
        assert!(facts
            .iter()
            .all(|f| !f.value.contains('/') || f.field == Field::SsdpDeviceType));
    }

    #[test]
    fn every_split_gives_the_same_facts() {
        let b = body(RESPONSE);
        for cut in 0..b.len() {
            let mut s = DescriptionScanner::new();
            let mut facts = Vec::new();
            s.feed(&b[..cut], &mut facts);
            s.feed(&b[cut..], &mut facts);
            assert_eq!(pairs(&facts), EXPECTED, "cut at {cut}");
        }
        // One byte at a time.
        let mut s = DescriptionScanner::new();
        let mut facts = Vec::new();
        for byte in b.chunks(1) {
            s.feed(byte, &mut facts);
        }
        assert_eq!(pairs(&facts), EXPECTED);
        assert!(!s.active(), "the root closed");
        assert!(s.is_description());
    }

    #[test]
    fn other_xml_documents_are_not_read() {
        for other in [SCPD, SOAP] {
            let mut s = DescriptionScanner::new();
            let mut facts = Vec::new();
            assert!(!s.feed(body(other), &mut facts));
            assert!(facts.is_empty());
            assert!(!s.is_description());
        }
        // An element named like a field outside a <device>, or a root in another namespace.
        for doc in [
            &b"<root xmlns=\"urn:example\"><device><manufacturer>CANARY</manufacturer></device></root>"[..],
            b"<html><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device><modelName>CANARY</modelName></device></root></html>",
            b"<?xml version=\"1.0\"?><!DOCTYPE root [<!ENTITY p \"CANARY\">]><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device><modelName>&p;</modelName></device></root>",
            b"CANARY <root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device><modelName>x</modelName></device></root>",
        ] {
            assert!(scan(doc).is_empty(), "{}", String::from_utf8_lossy(doc));
        }
        let doc = b"<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><manufacturer>CANARY</manufacturer>\
                    <device><serviceList><service><manufacturer>CANARY</manufacturer></service></serviceList>\
                    <presentationURL>/patients/CANARY</presentationURL><modelName>M</modelName></device></root>";
        assert_eq!(pairs(&scan(doc)), [(Field::SsdpModelName, "M")]);
    }

    #[test]
    fn embedded_devices_prefixes_comments_cdata_and_entities() {
        let doc = "\u{feff}\r\n<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- a -> comment -->\n\
            <u:root xmlns:u=\"urn:schemas-upnp-org:device-1-0\" configId=\"1\">\n\
              <u:device>\n  <u:deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</u:deviceType>\n\
                <u:manufacturer> Ward &amp; Sons &#65;&#x42; &unknown; </u:manufacturer>\n\
                <u:modelName><![CDATA[IGD <1]]]></u:modelName>\n\
                <u:deviceList><u:device>\n\
                  <u:deviceType>urn:schemas-upnp-org:device:WANDevice:1</u:deviceType>\n\
                  <u:serialNumber/>\n<u:modelNumber>\n2\n</u:modelNumber>\n\
                </u:device></u:deviceList>\n\
              </u:device>\n</u:root>\n<device><modelName>after the root</modelName></device>";
        assert_eq!(
            pairs(&scan(doc.as_bytes())),
            [
                (
                    Field::SsdpDeviceType,
                    "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
                ),
                (Field::SsdpManufacturer, "Ward & Sons AB &unknown;"),
                (Field::SsdpModelName, "IGD <1]"),
                (
                    Field::SsdpDeviceType,
                    "urn:schemas-upnp-org:device:WANDevice:1"
                ),
                (Field::SsdpModelNumber, "2"),
            ]
        );
    }

    #[test]
    fn bounds_hold() {
        // A long value is cut.
        let mut doc =
            b"<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device><modelName>".to_vec();
        doc.extend(std::iter::repeat_n(b'm', 100_000));
        doc.extend_from_slice(b"</modelName><manufacturer>late</manufacturer></device></root>");
        // Past MAX_BODY_BYTES nothing more is read.
        let facts = scan(&doc);
        assert!(facts.is_empty(), "{:?}", pairs(&facts));
        let mut doc =
            b"<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device><modelName>".to_vec();
        doc.extend(std::iter::repeat_n(b'm', 5000));
        doc.extend_from_slice(b"</modelName></device></root>");
        let facts = scan(&doc);
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].value.chars().count(), MAX_VALUE_CHARS);
        // Too many devices, too deep, too many elements, a root too far into the body.
        let root = "<root xmlns=\"urn:schemas-upnp-org:device-1-0\">";
        let many = format!(
            "{root}{}</root>",
            "<device><modelName>d</modelName></device>".repeat(100)
        );
        assert_eq!(scan(many.as_bytes()).len(), MAX_DEVICES);
        let deep = format!("{root}{}", "<a>".repeat(1000));
        let mut s = DescriptionScanner::new();
        assert!(!s.feed(deep.as_bytes(), &mut Vec::new()));
        let wide = format!("{root}{}", "<a/>".repeat(MAX_ELEMENTS + 1));
        let mut s = DescriptionScanner::new();
        assert!(!s.feed(wide.as_bytes(), &mut Vec::new()));
        let late = format!(
            "{}{root}<device><modelName>x</modelName></device></root>",
            " ".repeat(SNIFF_BYTES + 1)
        );
        assert!(scan(late.as_bytes()).is_empty());
        let facts = scan(
            format!(
                "{root}<device>{}</device></root>",
                "<modelName>x</modelName>".repeat(1000)
            )
            .as_bytes(),
        );
        assert_eq!(facts.len(), MAX_FACTS);
    }

    #[test]
    fn media_types() {
        assert!(is_xml_media_type(b"text/xml; charset=\"utf-8\""));
        assert!(is_xml_media_type(b"TEXT/XML"));
        assert!(is_xml_media_type(b"application/xml;charset=UTF-8"));
        assert!(!is_xml_media_type(b"text/html"));
        assert!(!is_xml_media_type(b"application/soap+xml"));
        assert!(!is_xml_media_type(b""));
    }

    proptest! {
        #[test]
        fn truncations_and_mutations_never_panic(
            cut in 0usize..2600, pos in 0usize..2600, byte in any::<u8>(), split in 1usize..97
        ) {
            let b = body(RESPONSE);
            let mut m = b[..cut.min(b.len())].to_vec();
            if let Some(x) = m.get_mut(pos) {
                *x = byte;
            }
            let mut s = DescriptionScanner::new();
            let mut facts = Vec::new();
            for chunk in m.chunks(split) {
                s.feed(chunk, &mut facts);
            }
            prop_assert!(facts.len() <= MAX_FACTS);
            for f in &facts {
                prop_assert!(f.value.chars().count() <= MAX_VALUE_CHARS);
                prop_assert!(ALLOWED.iter().any(|(_, field)| *field == f.field));
            }
            // An unmutated prefix gives a prefix of the whole description's facts.
            if pos >= m.len() {
                prop_assert!(EXPECTED.starts_with(&pairs(&facts)));
            }
        }
    }
}
