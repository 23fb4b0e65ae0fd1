//! TLS handshake (RFC 5246, RFC 8446): what the cleartext part of a handshake says about the two
//! ends, on any port.
//!
//! The ClientHello describes the client's TLS stack: the server name it asks for (SNI), the
//! application protocols it offers (ALPN), the versions it offers, and its JA4 fingerprint
//! (FoxIO's BSD-licensed TLS client fingerprint; the rest of JA4+ is under another licence and
//! is not implemented). The ServerHello gives the version the server chose. Up to TLS 1.2 the
//! server's Certificate message is in clear too: its leaf certificate names the server (subject
//! CN/O/OU), its issuer, validity, serial and whether it issued itself.
//!
//! Nothing after the handshake is read: application data is encrypted, and a client's own
//! Certificate message (mutual TLS, sent in clear up to TLS 1.2) is never parsed because a
//! client certificate can name a person. Each direction's handshake bytes are buffered up to
//! [`MAX_HANDSHAKE`]; past that, or at the first non-handshake record, the direction is done.

use core::fmt::Write as _;

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};
use crate::{Feed, StreamDecoder};

mod field {
    //! Byte offsets of the record header (RFC 8446 §5.1) and the handshake header (§4).
    pub const CONTENT_TYPE: usize = 0;
    pub const VERSION_MAJOR: usize = 1;
    pub const VERSION_MINOR: usize = 2;
    pub const LENGTH_HI: usize = 3;
    pub const LENGTH_LO: usize = 4;
    pub const RECORD_HEADER: usize = 5;
    pub const HANDSHAKE_TYPE: usize = 5;
    pub const HANDSHAKE_LEN_HI: usize = 6;
    pub const HELLO_VERSION_MAJOR: usize = 9;
    pub const HANDSHAKE_HEADER: usize = 4;
}

/// Record content type of handshake messages.
const HANDSHAKE: u8 = 22;
/// Largest record a conforming peer sends (TLSCiphertext: 2^14 + 2048).
const MAX_RECORD: usize = (1 << 14) + 2048;
/// Most handshake bytes buffered per direction; past this the direction is not inspected.
/// A ClientHello with post-quantum key shares is a few KiB, a TLS 1.2 certificate chain rarely
/// more than 10 KiB.
pub const MAX_HANDSHAKE: usize = 64 * 1024;
/// Most values of one list kept as facts (ALPN protocols, subject attributes).
const MAX_VALUES: usize = 8;

const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;
const SERVER_HELLO_DONE: u8 = 14;

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

const TLS13: u16 = 0x0304;

/// TLS's entry in [`crate::registry`]: a TCP protocol found by its first record.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Tls,
    probe,
    resync: None,
    decode: Decode::Stream(|| Box::new(TlsDecoder::new())),
};

fn err(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Invalid {
        layer: Layer::App(Protocol::Tls),
        offset,
        what,
    }
}

/// A test on one byte of a probed prefix.
type ByteTest = fn(u8) -> bool;

/// Structure test on the first bytes of a stream direction: a handshake record (type 22,
/// version 3.x, a plausible length) whose first message is a ClientHello or ServerHello with
/// a 3.x version. Eleven bytes decide; fewer are unsure unless one already rules TLS out.
pub fn probe(p: &[u8]) -> Probe {
    let checks: [(usize, ByteTest); 6] = [
        (field::CONTENT_TYPE, |b| b == HANDSHAKE),
        (field::VERSION_MAJOR, |b| b == 3),
        (field::VERSION_MINOR, |b| b <= 4),
        (field::HANDSHAKE_TYPE, |b| {
            b == CLIENT_HELLO || b == SERVER_HELLO
        }),
        // A hello's body is at most 2^16 + a few bytes: the top length byte is 0 or 1.
        (field::HANDSHAKE_LEN_HI, |b| b <= 1),
        (field::HELLO_VERSION_MAJOR, |b| b == 3),
    ];
    for (at, ok) in checks {
        match p.get(at) {
            Some(&b) if !ok(b) => return Probe::NotMine,
            _ => {}
        }
    }
    if let (Some(&hi), Some(&lo)) = (p.get(field::LENGTH_HI), p.get(field::LENGTH_LO)) {
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if !(field::HANDSHAKE_HEADER..=MAX_RECORD).contains(&len) {
            return Probe::NotMine;
        }
    }
    if p.len() > field::HELLO_VERSION_MAJOR {
        Probe::Certain
    } else {
        Probe::Unsure
    }
}

/// One record's header, checked ([`Record::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    content_type: u8,
    len: usize,
}

impl Record {
    /// The header at the start of `b`: `Ok(None)` when fewer than five bytes are there,
    /// an error when they cannot be a TLS record.
    fn parse(b: &[u8]) -> Result<Option<Record>, DecodeError> {
        let Some(h) = b.get(..field::RECORD_HEADER) else {
            return Ok(None);
        };
        let &[ct, major, _minor, hi, lo] = h else {
            return Ok(None);
        };
        if !(20..=24).contains(&ct) || major != 3 {
            return Err(err(0, "record header"));
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len > MAX_RECORD {
            return Err(err(field::LENGTH_HI, "record length"));
        }
        Ok(Some(Record {
            content_type: ct,
            len,
        }))
    }
}

/// A bounds-checked cursor over a handshake message body: every read returns `None` past the
/// end instead of panicking.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|s| s.first().copied())
    }
    fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
    }
    fn u24(&mut self) -> Option<usize> {
        let s = self.take(3)?;
        Some(
            usize::from(*s.first()?) << 16 | usize::from(*s.get(1)?) << 8 | usize::from(*s.get(2)?),
        )
    }
    /// A vector with a one-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    /// A vector with a two-byte length prefix.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn is_empty(&self) -> bool {
        self.at >= self.b.len()
    }
}

/// The two-byte values of a list, in order (an odd trailing byte is ignored).
fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| match c {
        [a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    })
}

/// GREASE values (RFC 8701): `0x?a?a` with both bytes equal. Clients send them to keep
/// servers tolerant; fingerprints ignore them.
pub const fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// A protocol version as text: `TLS 1.2`, `SSL 3.0`, else its hex value.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".to_owned(),
        0x0301..=0x0304 => format!("TLS 1.{}", v - 0x0301),
        _ => format!("0x{v:04x}"),
    }
}

/// The ClientHello parts the facts and JA4 are built from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// `legacy_version` of the hello.
    pub legacy_version: u16,
    /// Cipher suites in wire order (GREASE included).
    pub ciphers: Vec<u16>,
    /// Extension types in wire order (GREASE included).
    pub extensions: Vec<u16>,
    /// The first host name of the server_name extension.
    pub server_name: Option<&'a [u8]>,
    /// ALPN protocol names in wire order.
    pub alpn: Vec<&'a [u8]>,
    /// supported_versions in wire order (GREASE included).
    pub versions: Vec<u16>,
    /// signature_algorithms in wire order (GREASE included).
    pub signature_algorithms: Vec<u16>,
}

impl<'a> ClientHello<'a> {
    /// Parses a ClientHello body (after the four-byte handshake header).
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let short = |r: &Reader<'_>| err(r.at, "client hello");
        let legacy_version = r.u16().ok_or_else(|| short(&r))?;
        r.take(32).ok_or_else(|| short(&r))?; // random
        r.vec8().ok_or_else(|| short(&r))?; // legacy_session_id
        let ciphers = u16s(r.vec16().ok_or_else(|| short(&r))?).collect();
        r.vec8().ok_or_else(|| short(&r))?; // legacy_compression_methods
        let mut hello = ClientHello {
            legacy_version,
            ciphers,
            ..ClientHello::default()
        };
        // Extensions are optional (SSL 3.0-era hellos end here).
        if r.is_empty() {
            return Ok(hello);
        }
        let mut exts = Reader::new(r.vec16().ok_or_else(|| short(&r))?);
        while !exts.is_empty() {
            let (Some(ty), Some(data)) = (exts.u16(), exts.vec16()) else {
                return Err(err(exts.at, "client hello extension"));
            };
            hello.extensions.push(ty);
            let mut d = Reader::new(data);
            match ty {
                EXT_SERVER_NAME => {
                    let mut list = Reader::new(d.vec16().unwrap_or_default());
                    while let (Some(kind), Some(name)) = (list.u8(), list.vec16()) {
                        if kind == 0 && hello.server_name.is_none() {
                            hello.server_name = Some(name);
                        }
                    }
                }
                EXT_ALPN => {
                    let mut list = Reader::new(d.vec16().unwrap_or_default());
                    while let Some(name) = list.vec8() {
                        hello.alpn.push(name);
                    }
                }
                EXT_SUPPORTED_VERSIONS => {
                    hello.versions = u16s(d.vec8().unwrap_or_default()).collect();
                }
                EXT_SIGNATURE_ALGORITHMS => {
                    hello.signature_algorithms = u16s(d.vec16().unwrap_or_default()).collect();
                }
                _ => {}
            }
        }
        Ok(hello)
    }

    /// The JA4 fingerprint (FoxIO, `technical_details/JA4.md`) of this hello sent over TCP:
    /// `t`, version, `d`/`i` (SNI present or not), cipher and extension counts, the first
    /// ALPN's first and last characters, then `_` and 12 hex digits of the SHA-256 of the
    /// sorted cipher list, then `_` and 12 of the SHA-256 of the sorted extensions (without
    /// SNI and ALPN) followed by `_` and the signature algorithms in wire order. GREASE values
    /// are ignored everywhere.
    pub fn ja4(&self) -> String {
        let ciphers: Vec<u16> = self
            .ciphers
            .iter()
            .copied()
            .filter(|&c| !is_grease(c))
            .collect();
        let exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|&e| !is_grease(e))
            .collect();
        let version = self
            .versions
            .iter()
            .copied()
            .filter(|&v| !is_grease(v))
            .max()
            .unwrap_or(self.legacy_version);
        let version = match version {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            0x0002 | 0x0200 => "s2",
            _ => "00",
        };
        let sni = if self.extensions.contains(&EXT_SERVER_NAME) {
            'd'
        } else {
            'i'
        };
        let mut out = String::with_capacity(36);
        let _ = write!(
            out,
            "t{version}{sni}{:02}{:02}{}_",
            ciphers.len().min(99),
            exts.len().min(99),
            alpn_chars(self.alpn.first().copied())
        );
        let mut sorted = ciphers;
        sorted.sort_unstable();
        out.push_str(&hash12(&hex_list(&sorted)));
        out.push('_');
        let mut sorted: Vec<u16> = exts
            .into_iter()
            .filter(|&e| e != EXT_SERVER_NAME && e != EXT_ALPN)
            .collect();
        sorted.sort_unstable();
        let mut c = hex_list(&sorted);
        let sigs: Vec<u16> = self
            .signature_algorithms
            .iter()
            .copied()
            .filter(|&s| !is_grease(s))
            .collect();
        if !sigs.is_empty() {
            c.push('_');
            c.push_str(&hex_list(&sigs));
        }
        out.push_str(&hash12(&c));
        out
    }

    /// The offered versions as text in wire order (`TLS 1.3,TLS 1.2`), from supported_versions
    /// or else the legacy version.
    pub fn offered_versions(&self) -> String {
        let names: Vec<String> = if self.versions.is_empty() {
            vec![version_name(self.legacy_version)]
        } else {
            self.versions
                .iter()
                .copied()
                .filter(|&v| !is_grease(v))
                .map(version_name)
                .collect()
        };
        names.join(",")
    }
}

/// The first and last characters of the first ALPN value; `00` without one. When either end is
/// not an ASCII letter or digit, the first and last hex digits of the value instead.
fn alpn_chars(first: Option<&[u8]>) -> String {
    let Some(v @ [a, ..]) = first else {
        return "00".to_owned();
    };
    let z = v.last().copied().unwrap_or(*a);
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        format!("{}{}", char::from(*a), char::from(z))
    } else {
        let hex = b"0123456789abcdef";
        let hi = hex.get(usize::from(a >> 4)).copied().unwrap_or(b'0');
        let lo = hex.get(usize::from(z & 0x0f)).copied().unwrap_or(b'0');
        format!("{}{}", char::from(hi), char::from(lo))
    }
}

fn hex_list(v: &[u16]) -> String {
    let mut s = String::with_capacity(v.len() * 5);
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{x:04x}");
    }
    s
}

/// The first 12 hex digits of the SHA-256 of `s`; twelve zeros for an empty list.
fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".to_owned();
    }
    let d = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(12);
    for b in d.iter().take(6) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The version a ServerHello selects: supported_versions when present (TLS 1.3), else its
/// legacy version.
pub fn server_hello_version(body: &[u8]) -> Result<u16, DecodeError> {
    let mut r = Reader::new(body);
    let short = |r: &Reader<'_>| err(r.at, "server hello");
    let legacy = r.u16().ok_or_else(|| short(&r))?;
    r.take(32).ok_or_else(|| short(&r))?;
    r.vec8().ok_or_else(|| short(&r))?;
    r.u16().ok_or_else(|| short(&r))?; // cipher_suite
    r.u8().ok_or_else(|| short(&r))?; // compression_method
    if r.is_empty() {
        return Ok(legacy);
    }
    let mut exts = Reader::new(r.vec16().ok_or_else(|| short(&r))?);
    while let (Some(ty), Some(data)) = (exts.u16(), exts.vec16()) {
        if ty == EXT_SUPPORTED_VERSIONS {
            if let Some(v) = Reader::new(data).u16() {
                return Ok(v);
            }
        }
    }
    Ok(legacy)
}

/// Facts of a ClientHello body.
pub fn client_hello_facts(body: &[u8], facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let hello = ClientHello::parse(body)?;
    if let Some(name) = hello.server_name {
        facts.push(Fact::new(Field::TlsServerName, clean_text(name)));
    }
    for p in hello.alpn.iter().take(MAX_VALUES) {
        facts.push(Fact::new(Field::TlsAlpn, clean_text(p)));
    }
    facts.push(Fact::new(
        Field::TlsClientVersions,
        hello.offered_versions(),
    ));
    facts.push(Fact::new(Field::TlsJa4, hello.ja4()));
    Ok(())
}

/// Facts of the leaf certificate of a TLS 1.0–1.2 Certificate message body.
pub fn certificate_facts(body: &[u8], facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    let mut list = Reader::new(
        r.u24()
            .and_then(|n| r.take(n))
            .ok_or_else(|| err(0, "certificate list"))?,
    );
    let der = list
        .u24()
        .and_then(|n| list.take(n))
        .ok_or_else(|| err(3, "certificate"))?;
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| err(6, "X.509 certificate"))?;
    let subject = cert.subject();
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str().ok().map(|s| clean_text(s.as_bytes()))
    };
    for v in subject.iter_common_name().filter_map(text).take(MAX_VALUES) {
        facts.push(Fact::new(Field::TlsCertSubjectCn, v));
    }
    for v in subject
        .iter_organization()
        .filter_map(text)
        .take(MAX_VALUES)
    {
        facts.push(Fact::new(Field::TlsCertSubjectO, v));
    }
    for v in subject
        .iter_organizational_unit()
        .filter_map(text)
        .take(MAX_VALUES)
    {
        facts.push(Fact::new(Field::TlsCertSubjectOu, v));
    }
    facts.push(Fact::new(
        Field::TlsCertIssuer,
        clean_text(cert.issuer().to_string().as_bytes()),
    ));
    let validity = cert.validity();
    facts.push(Fact::new(
        Field::TlsCertNotBefore,
        rfc3339(validity.not_before.timestamp()),
    ));
    facts.push(Fact::new(
        Field::TlsCertNotAfter,
        rfc3339(validity.not_after.timestamp()),
    ));
    // The serial as a number in hex: DER's sign-padding zero bytes dropped, one kept for 0.
    let raw = cert.raw_serial();
    let zeros = raw.iter().take_while(|&&b| b == 0).count();
    let digits = raw
        .get(zeros.min(raw.len().saturating_sub(1))..)
        .unwrap_or_default();
    let mut serial = String::new();
    for b in digits.iter().take(64) {
        let _ = write!(serial, "{b:02x}");
    }
    facts.push(Fact::new(Field::TlsCertSerial, serial));
    // Self-issued: the issuer name is the subject name (the signature is not verified: a
    // passive observer has no trust store, and a name match is what marks a device's own
    // generated certificate).
    let self_signed = cert.issuer().as_raw() == subject.as_raw();
    facts.push(Fact::new(Field::TlsCertSelfSigned, self_signed.to_string()));
    Ok(())
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC; the
/// civil-from-days algorithm of H. Hinnant's `chrono`-compatible date library).
fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// What one direction of the connection has shown.
#[derive(Debug, Default)]
struct Side {
    /// Handshake bytes not yet parsed into a whole message.
    pending: Vec<u8>,
    /// It sent the ServerHello: the only side whose Certificate is read.
    server: bool,
    /// It sent the ClientHello.
    client: bool,
}

/// A TLS connection's handshake decoder: one per TCP connection.
#[derive(Debug, Default)]
pub struct TlsDecoder {
    sides: [Side; 2],
    /// The version the ServerHello selected.
    version: Option<u16>,
    /// Which key sent the ClientHello (for [`StreamDecoder::client`]).
    client: Option<Direction>,
}

/// Whether a direction wants more bytes after a message.
enum Next {
    More,
    Stop,
}

impl TlsDecoder {
    /// A decoder for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    fn side_index(side: Direction) -> usize {
        usize::from(side != Direction::FromClient)
    }

    /// Handles one whole handshake message of `side`.
    fn message(&mut self, side: Direction, ty: u8, body: &[u8], facts: &mut Vec<Fact>) -> Next {
        let i = Self::side_index(side);
        let (is_client, is_server) = self
            .sides
            .get(i)
            .map_or((false, false), |s| (s.client, s.server));
        match ty {
            CLIENT_HELLO if !is_server => {
                if let Some(s) = self.sides.get_mut(i) {
                    s.client = true;
                }
                self.client = Some(side);
                // Facts found are kept on error; the client's later messages (key exchange,
                // its own certificate) are not read either way.
                let _ = client_hello_facts(body, facts);
                Next::Stop
            }
            SERVER_HELLO if !is_client => {
                if let Some(s) = self.sides.get_mut(i) {
                    s.server = true;
                }
                let Ok(v) = server_hello_version(body) else {
                    return Next::Stop;
                };
                self.version = Some(v);
                facts.push(Fact::new(Field::TlsServerVersion, version_name(v)));
                // From TLS 1.3 on everything after the ServerHello is encrypted.
                if v >= TLS13 {
                    Next::Stop
                } else {
                    Next::More
                }
            }
            CERTIFICATE if is_server && self.version.is_some_and(|v| v < TLS13) => {
                let _ = certificate_facts(body, facts);
                Next::Stop
            }
            SERVER_HELLO_DONE => Next::Stop,
            // ServerKeyExchange, CertificateStatus, CertificateRequest…: skipped.
            _ if is_server => Next::More,
            _ => Next::Stop,
        }
    }

    /// Parses the whole messages buffered for `side`, keeping an incomplete one.
    fn messages(&mut self, side: Direction, facts: &mut Vec<Fact>) -> Next {
        let i = Self::side_index(side);
        let Some(pending) = self
            .sides
            .get_mut(i)
            .map(|s| core::mem::take(&mut s.pending))
        else {
            return Next::Stop;
        };
        let mut at = 0;
        let mut next = Next::More;
        loop {
            let mut r = Reader::new(pending.get(at..).unwrap_or_default());
            let (Some(ty), Some(len)) = (r.u8(), r.u24()) else {
                break;
            };
            if len > MAX_HANDSHAKE {
                next = Next::Stop;
                break;
            }
            let Some(body) = r.take(len) else {
                break;
            };
            at += field::HANDSHAKE_HEADER + len;
            if let Next::Stop = self.message(side, ty, body, facts) {
                next = Next::Stop;
                break;
            }
        }
        if let (Next::More, Some(s)) = (&next, self.sides.get_mut(i)) {
            s.pending = pending.get(at..).unwrap_or_default().to_vec();
        }
        next
    }
}

impl StreamDecoder for TlsDecoder {
    fn feed(
        &mut self,
        side: Direction,
        data: &[u8],
        at_limit: bool,
        facts: &mut Vec<Fact>,
    ) -> Feed {
        let i = Self::side_index(side);
        let mut off = 0;
        loop {
            let rest = data.get(off..).unwrap_or_default();
            let rec = match Record::parse(rest) {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(_) => return Feed::Done,
            };
            // ChangeCipherSpec, alerts, application data: the cleartext handshake is over.
            if rec.content_type != HANDSHAKE {
                return Feed::Done;
            }
            let Some(payload) = rest.get(field::RECORD_HEADER..field::RECORD_HEADER + rec.len)
            else {
                break;
            };
            let Some(s) = self.sides.get_mut(i) else {
                return Feed::Done;
            };
            if s.pending.len() + payload.len() > MAX_HANDSHAKE {
                return Feed::Done;
            }
            s.pending.extend_from_slice(payload);
            off += field::RECORD_HEADER + rec.len;
            if let Next::Stop = self.messages(side, facts) {
                return Feed::Done;
            }
        }
        if at_limit {
            return Feed::Done;
        }
        Feed::Consumed(off)
    }

    fn client(&self) -> Option<Direction> {
        self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VENT12_C: &[u8] = include_bytes!("../testdata/tls/vent-tls12-client.bin");
    const VENT12_S: &[u8] = include_bytes!("../testdata/tls/vent-tls12-server.bin");
    const VENT13_C: &[u8] = include_bytes!("../testdata/tls/vent-tls13-client.bin");
    const VENT13_S: &[u8] = include_bytes!("../testdata/tls/vent-tls13-server.bin");
    const PUMP12_C: &[u8] = include_bytes!("../testdata/tls/pump-tls12-client.bin");
    const PUMP12_S: &[u8] = include_bytes!("../testdata/tls/pump-tls12-server.bin");

    /// Feeds a connection's two first flights, client then server, in chunks of `chunk`.
    fn run(client: &[u8], server: &[u8], chunk: usize) -> (Vec<Fact>, TlsDecoder) {
        let mut d = TlsDecoder::new();
        let mut facts = Vec::new();
        for (side, bytes) in [
            (Direction::FromClient, client),
            (Direction::FromServer, server),
        ] {
            let mut buf: Vec<u8> = Vec::new();
            for piece in bytes.chunks(chunk.max(1)) {
                buf.extend_from_slice(piece);
                match d.feed(side, &buf, false, &mut facts) {
                    Feed::Consumed(n) => {
                        buf.drain(..n);
                    }
                    Feed::Done => break,
                }
            }
        }
        (facts, d)
    }

    fn values(facts: &[Fact], f: Field) -> Vec<&str> {
        facts
            .iter()
            .filter(|x| x.field == f)
            .map(|x| x.value.as_str())
            .collect()
    }

    #[test]
    fn tls12_handshake_yields_client_and_certificate_facts() {
        let (facts, d) = run(VENT12_C, VENT12_S, usize::MAX);
        assert_eq!(
            values(&facts, Field::TlsServerName),
            ["wardvent-900-0815.ward.test"]
        );
        assert_eq!(values(&facts, Field::TlsAlpn), ["h2", "http/1.1"]);
        assert_eq!(values(&facts, Field::TlsClientVersions), ["TLS 1.2"]);
        assert_eq!(values(&facts, Field::TlsServerVersion), ["TLS 1.2"]);
        assert_eq!(
            values(&facts, Field::TlsCertSubjectCn),
            ["wardvent-900-0815.ward.test"]
        );
        assert_eq!(
            values(&facts, Field::TlsCertSubjectO),
            ["Ward Test Medical"]
        );
        assert_eq!(values(&facts, Field::TlsCertSubjectOu), ["WardVent 900"]);
        assert_eq!(
            values(&facts, Field::TlsCertIssuer),
            ["C=DE, O=Ward Test Medical, CN=Ward Test Medical Device CA"]
        );
        assert_eq!(
            values(&facts, Field::TlsCertNotBefore),
            ["2026-01-01T00:00:00Z"]
        );
        assert_eq!(
            values(&facts, Field::TlsCertNotAfter),
            ["2036-01-01T00:00:00Z"]
        );
        assert_eq!(values(&facts, Field::TlsCertSerial), ["5741524400000815"]);
        assert_eq!(values(&facts, Field::TlsCertSelfSigned), ["false"]);
        // As computed from tshark's dissection by tests/captures/build_manifest.py.
        assert_eq!(
            values(&facts, Field::TlsJa4),
            ["t12d2808h2_d943125447b4_e7e480e5a997"]
        );
        assert_eq!(d.client(), Some(Direction::FromClient));
        // Every fact is a TLS field.
        assert!(facts.iter().all(|f| f.field.protocol() == Protocol::Tls));
    }

    #[test]
    fn tls13_handshake_stops_at_the_server_hello() {
        let (facts, _) = run(VENT13_C, VENT13_S, usize::MAX);
        assert_eq!(values(&facts, Field::TlsClientVersions), ["TLS 1.3"]);
        assert_eq!(values(&facts, Field::TlsServerVersion), ["TLS 1.3"]);
        assert_eq!(
            values(&facts, Field::TlsServerName),
            ["wardvent-900-0815.ward.test"]
        );
        // The certificate is encrypted in TLS 1.3.
        assert!(values(&facts, Field::TlsCertSubjectCn).is_empty());
        let ja4 = values(&facts, Field::TlsJa4);
        assert!(
            ja4.first().is_some_and(|j| j.starts_with("t13d")),
            "{ja4:?}"
        );
    }

    #[test]
    fn self_signed_device_certificate() {
        let (facts, _) = run(PUMP12_C, PUMP12_S, usize::MAX);
        assert_eq!(values(&facts, Field::TlsCertSelfSigned), ["true"]);
        assert_eq!(
            values(&facts, Field::TlsCertSubjectO),
            ["Ward Infusion Systems"]
        );
        assert_eq!(values(&facts, Field::TlsCertSerial), ["7731"]);
        assert_eq!(values(&facts, Field::TlsAlpn), ["http/1.1"]);
        assert_eq!(
            values(&facts, Field::TlsJa4),
            ["t12d2808h1_d943125447b4_e7e480e5a997"]
        );
    }

    /// Facts do not depend on how the bytes arrive: one byte at a time, or a record split
    /// across segments, gives what the whole flight gives.
    #[test]
    fn chunking_is_invisible() {
        for (c, s) in [
            (VENT12_C, VENT12_S),
            (VENT13_C, VENT13_S),
            (PUMP12_C, PUMP12_S),
        ] {
            let (whole, _) = run(c, s, usize::MAX);
            for chunk in [1, 3, 7, 100] {
                assert_eq!(run(c, s, chunk).0, whole, "chunk {chunk}");
            }
        }
    }

    /// JA4 against the published raw lists (a Chrome ClientHello from the browserleaks /
    /// tls.peet.ws JA4_r and JA4_ro output): sorted lists hash to `8daaf6152771` and
    /// `d8a2da3f94cd`, and the counts and ALPN give `t13d1516h2`.
    #[test]
    fn ja4_matches_published_values() {
        let hx = |s: &str| -> Vec<u16> {
            s.split(',')
                .map(|x| u16::from_str_radix(x, 16).unwrap())
                .collect()
        };
        let mut ciphers = vec![0x1a1a];
        ciphers.extend(hx(
            "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035",
        ));
        let mut extensions = vec![0xfafa];
        extensions.extend(hx(
            "002d,0033,0010,fe0d,0017,44cd,0000,000b,000a,002b,ff01,0023,0012,0005,000d,001b",
        ));
        let hello = ClientHello {
            legacy_version: 0x0303,
            ciphers,
            extensions,
            server_name: Some(b"tls.browserleaks.com"),
            alpn: vec![b"h2", b"http/1.1"],
            versions: vec![0x8a8a, 0x0304, 0x0303],
            signature_algorithms: hx("0403,0804,0401,0503,0805,0501,0806,0601"),
        };
        assert_eq!(hello.ja4(), "t13d1516h2_8daaf6152771_d8a2da3f94cd");
        // No SNI, no ALPN, no extensions, no ciphers.
        let bare = ClientHello {
            legacy_version: 0x0301,
            ..ClientHello::default()
        };
        assert_eq!(bare.ja4(), "t10i000000_000000000000_000000000000");
    }

    #[test]
    fn ja4_alpn_and_grease_edge_cases() {
        assert_eq!(alpn_chars(None), "00");
        assert_eq!(alpn_chars(Some(b"h")), "hh");
        assert_eq!(alpn_chars(Some(b"http/1.1")), "h1");
        // Non-alphanumeric ends: first hex digit of the first byte, last of the last.
        assert_eq!(alpn_chars(Some(&[0xab, 0x01, 0xcd])), "ad");
        assert_eq!(alpn_chars(Some(b"h2/")), "6f");
        assert_eq!(alpn_chars(Some(b"")), "00");
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0a1a) && !is_grease(0x1301));
        assert_eq!(version_name(0x0304), "TLS 1.3");
        assert_eq!(version_name(0x0300), "SSL 3.0");
        assert_eq!(version_name(0x7f17), "0x7f17");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn probe_is_structural() {
        assert_eq!(probe(VENT12_C), Probe::Certain);
        assert_eq!(probe(VENT13_S), Probe::Certain);
        for n in 0..10 {
            assert_eq!(probe(&VENT12_C[..n]), Probe::Unsure, "{n}");
        }
        // Other protocols' first bytes.
        assert_eq!(probe(&[1u8, 0, 0, 0, 0, 68, 0, 1, 0, 0, 0]), Probe::NotMine);
        assert_eq!(probe(b"\x0bMSH|^~\\&|"), Probe::NotMine);
        assert_eq!(probe(b"GET / HTTP/1.1\r\n"), Probe::NotMine);
        assert_eq!(probe(b"SSH-2.0-OpenSSH_9.2\r\n"), Probe::NotMine);
        // A handshake record of another message type, or application data, is not a start.
        let mut finished = VENT12_C.to_vec();
        finished[5] = 20;
        assert_eq!(probe(&finished), Probe::NotMine);
        assert_eq!(probe(&[23, 3, 3, 0, 40, 1, 2, 3, 4, 5, 6]), Probe::NotMine);
        assert_eq!(
            probe(&[22, 3, 1, 0x50, 0, 1, 0, 0, 0, 3, 3]),
            Probe::NotMine
        );
    }

    #[test]
    fn non_handshake_records_and_oversized_messages_end_a_direction() {
        let mut d = TlsDecoder::new();
        let mut facts = Vec::new();
        assert_eq!(
            d.feed(
                Direction::FromClient,
                &[23, 3, 3, 0, 1, 0],
                false,
                &mut facts
            ),
            Feed::Done
        );
        let mut d = TlsDecoder::new();
        // A handshake message claiming 16 MiB.
        let huge = [22, 3, 3, 0, 4, 1, 0xff, 0xff, 0xff];
        assert_eq!(
            d.feed(Direction::FromClient, &huge, false, &mut facts),
            Feed::Done
        );
        assert!(facts.is_empty());
        // Bytes that are not a record at all.
        let mut d = TlsDecoder::new();
        assert_eq!(
            d.feed(
                Direction::FromClient,
                b"GET / HTTP/1.1\r\n",
                false,
                &mut facts
            ),
            Feed::Done
        );
    }

    /// A client's Certificate message (mutual TLS) is never read: only the side that sent
    /// the ServerHello has its certificate inspected.
    #[test]
    fn client_certificates_are_not_read() {
        let mut d = TlsDecoder::new();
        let mut facts = Vec::new();
        let _ = d.feed(Direction::FromClient, VENT12_C, false, &mut facts);
        // The server's flight replayed as if the client had sent it after its hello.
        let before = facts.len();
        let _ = d.feed(Direction::FromClient, VENT12_S, false, &mut facts);
        assert_eq!(facts.len(), before);
    }

    #[test]
    fn truncations_never_panic() {
        for bytes in [VENT12_C, VENT12_S, VENT13_C, VENT13_S, PUMP12_C, PUMP12_S] {
            for n in 0..bytes.len() {
                let mut d = TlsDecoder::new();
                let mut facts = Vec::new();
                let _ = d.feed(Direction::FromClient, &bytes[..n], false, &mut facts);
                let _ = d.feed(Direction::FromServer, &bytes[..n], true, &mut facts);
                let _ = probe(&bytes[..n]);
                let body = bytes.get(9..n).unwrap_or_default();
                let _ = ClientHello::parse(body);
                let _ = server_hello_version(body);
                let _ = certificate_facts(body, &mut facts);
            }
        }
    }

    proptest! {
        #[test]
        fn mutations_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                 which in 0usize..6, chunk in 1usize..300) {
            let src = [VENT12_C, VENT12_S, VENT13_C, VENT13_S, PUMP12_C, PUMP12_S][which];
            let mut b = src.to_vec();
            for (at, v) in edits {
                let i = at % b.len();
                b[i] = v;
            }
            let _ = run(&b, &b, chunk);
            let _ = run(VENT12_C, &b, chunk);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = probe(&data);
            let _ = run(&data, &data, 64);
            let mut facts = Vec::new();
            let _ = client_hello_facts(&data, &mut facts);
            let _ = certificate_facts(&data, &mut facts);
        }
    }
}
