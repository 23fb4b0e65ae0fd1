//! The application decoders ward knows, in the order they are probed.
//!
//! Each application protocol is one module that exports an [`AppDecoder`] descriptor: its
//! [`Protocol`] id, a structure probe over the first bytes of a stream direction or of a
//! datagram (certain / unsure / not mine), an optional resynchronisation for streams picked up
//! mid-conversation, and how to decode it — a constructor for its [`StreamDecoder`] (TCP) or a
//! per-datagram function (UDP), or a per-frame function for the link-layer protocols (LLDP,
//! CDP) that travel in Ethernet frames with no IP layer at all. [`crate::dissect`] walks [`REGISTRY`] and never names a protocol;
//! adding one is a module, its rows in [`crate::evidence`] and a line here (see
//! `docs/adding-a-protocol.md`).
//!
//! Detection is by structure, never by port: clinical protocols run on whatever port a site
//! configured. The idea is retina's probe registry (stanford-esrg/retina,
//! `core/src/protocols/stream/mod.rs`).

use crate::error::DecodeError;
use crate::evidence::{Direction, Fact, Protocol};
use crate::{
    astm, bcc, cdp, dhcp, dhcpv6, dicom, dns, fhir, hl7, http, intellivue, lldp, llmnr, mdns, nbns,
    poct1a, sdc, snmp, ssdp, ssh, tls, StreamDecoder,
};

/// Every registered decoder, in probe order: when two could claim the same bytes, the first
/// that is certain wins. Every [`Protocol`] appears here (tested).
pub const REGISTRY: &[&AppDecoder] = &[
    &dicom::DECODER,
    &hl7::DECODER,
    &dhcp::DECODER,
    &http::DECODER,
    &ssh::DECODER,
    &tls::DECODER,
    &mdns::DECODER,
    &ssdp::DECODER,
    &snmp::DECODER,
    &llmnr::DECODER,
    &nbns::DECODER,
    &dhcpv6::DECODER,
    &lldp::DECODER,
    &cdp::DECODER,
    // Last of the DNS-format protocols: mDNS, LLMNR and NetBIOS claim their datagrams first.
    &dns::DECODER,
    &sdc::DECODER,
    &astm::DECODER,
    &intellivue::DECODER,
    &poct1a::DECODER,
    &bcc::DECODER,
    // FHIR rides on HTTP: the HTTP decoder claims the stream and hands JSON bodies to fhir.
    &fhir::DECODER,
];

/// A probe's answer about the first bytes of a stream direction or a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Probe {
    /// The bytes are this protocol's.
    Certain,
    /// Too few bytes to tell (streams: ask again with more).
    Unsure,
    /// The bytes rule this protocol out.
    NotMine,
}

impl From<Option<bool>> for Probe {
    /// The `looks_like_*` convention: `Some(true)` certain, `Some(false)` not mine, `None`
    /// unsure.
    fn from(v: Option<bool>) -> Self {
        match v {
            Some(true) => Probe::Certain,
            Some(false) => Probe::NotMine,
            None => Probe::Unsure,
        }
    }
}

/// The transport an [`AppDecoder`] runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP: each direction's in-order bytes, reassembled.
    Tcp,
    /// UDP: each datagram on its own.
    Udp,
    /// Directly over the link layer (no IP): each frame on its own.
    Link,
}

/// Which frames a link-layer decoder is offered: the link-layer analogue of a transport.
///
/// An EtherType is the protocol's own registered identifier (IEEE assigns 0x88cc to LLDP), not a
/// site-chosen port, so selecting on it is not port-based detection; the decoder's probe still
/// checks the payload's structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkFrames {
    /// Ethernet II frames (behind any VLAN tags) of this EtherType.
    EtherType(u16),
    /// IEEE 802.3 frames, whose type field is a length (≤ 1500): the payload, cut to that
    /// length, begins with an 802.2 LLC header (and for SNAP, the OUI and protocol id that
    /// name the protocol).
    Llc,
}

/// Largest 802.3 length field; larger values of the type/length field are EtherTypes.
pub const MAX_8023_LENGTH: u16 = 1500;

impl LinkFrames {
    /// Whether a frame with this type/length field is offered to the decoder.
    pub const fn accepts(self, ether_type: u16) -> bool {
        match self {
            LinkFrames::EtherType(t) => t == ether_type,
            LinkFrames::Llc => ether_type <= MAX_8023_LENGTH,
        }
    }
}

/// Finds the offset of the next message start in a stream's buffered bytes.
pub type Resync = fn(data: &[u8]) -> Option<usize>;

/// How a protocol's bytes are decoded once its probe is certain.
#[derive(Clone, Copy)]
pub enum Decode {
    /// A TCP protocol: one decoder value per connection, fed both directions.
    Stream(fn() -> Box<dyn StreamDecoder + Send>),
    /// A UDP protocol: each datagram decoded on its own.
    Datagram {
        /// Extracts the facts of one datagram into `out`. Facts found before a malformed part
        /// are kept and the error returned (counted per protocol).
        decode: fn(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError>,
        /// Which way the message travels, from its own content (a DHCP BOOTREQUEST is the
        /// client's): datagrams have no handshake to tell.
        direction: fn(payload: &[u8]) -> Direction,
    },
    /// A link-layer protocol: each frame's payload decoded on its own. There is no direction
    /// (the frames are multicast announcements; every fact describes the sender).
    Link {
        /// The frames it is offered.
        frames: LinkFrames,
        /// Extracts the facts of one frame's payload (from after the type/length field) into
        /// `out`; facts found before a malformed part are kept and the error returned.
        decode: fn(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError>,
    },
}

impl core::fmt::Debug for Decode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Decode::Stream(_) => "Stream",
            Decode::Datagram { .. } => "Datagram",
            Decode::Link { .. } => "Link",
        })
    }
}

/// One application protocol's entry in the registry. See the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct AppDecoder {
    /// The protocol its facts belong to.
    pub protocol: Protocol,
    /// Structure test on the first bytes of a stream direction (called again with more bytes
    /// while it answers [`Probe::Unsure`]) or on a whole datagram. It runs for every new flow
    /// or datagram, so it must be cheap: constant time, or linear in a small prefix.
    pub probe: fn(prefix: &[u8]) -> Probe,
    /// For a stream that every decoder rejected and whose capture began mid-connection: the
    /// offset of the next message start in the buffered bytes, if there is one, so decoding can
    /// join there. `None` for protocols that cannot resynchronise.
    pub resync: Option<Resync>,
    /// How its bytes are decoded.
    pub decode: Decode,
}

impl AppDecoder {
    /// The transport it runs over.
    pub const fn transport(&self) -> Transport {
        match self.decode {
            Decode::Stream(_) => Transport::Tcp,
            Decode::Datagram { .. } => Transport::Udp,
            Decode::Link { .. } => Transport::Link,
        }
    }
}

/// The registered decoders of `protocol` (one per transport it runs over).
pub fn decoders(protocol: Protocol) -> impl Iterator<Item = &'static AppDecoder> {
    REGISTRY
        .iter()
        .copied()
        .filter(move |d| d.protocol == protocol)
}

/// Whether `protocol` runs over TCP (its facts come from a connection with a client and a
/// server side).
pub fn is_stream(protocol: Protocol) -> bool {
    decoders(protocol).any(|d| d.transport() == Transport::Tcp)
}

/// What the registry makes of a stream direction's first bytes.
#[derive(Debug, Clone, Copy)]
pub enum StreamVerdict {
    /// This decoder is certain.
    Found(&'static AppDecoder),
    /// Some decoder needs more bytes to tell.
    Unsure,
    /// Every stream decoder says not mine.
    NoneMine,
}

/// Probes `prefix` with every TCP decoder, in registry order.
pub fn probe_stream(prefix: &[u8]) -> StreamVerdict {
    let mut unsure = false;
    for d in REGISTRY.iter().copied() {
        if d.transport() != Transport::Tcp {
            continue;
        }
        match (d.probe)(prefix) {
            Probe::Certain => return StreamVerdict::Found(d),
            Probe::Unsure => unsure = true,
            Probe::NotMine => {}
        }
    }
    if unsure {
        StreamVerdict::Unsure
    } else {
        StreamVerdict::NoneMine
    }
}

/// The first TCP decoder that can join `data` mid-stream, and where.
pub fn resync_stream(data: &[u8]) -> Option<(&'static AppDecoder, usize)> {
    REGISTRY
        .iter()
        .copied()
        .filter(|d| d.transport() == Transport::Tcp)
        .find_map(|d| d.resync.and_then(|r| r(data)).map(|pos| (d, pos)))
}

/// The first UDP decoder certain of `payload` (a datagram cannot grow, so unsure is not mine).
pub fn probe_datagram(payload: &[u8]) -> Option<&'static AppDecoder> {
    REGISTRY
        .iter()
        .copied()
        .filter(|d| d.transport() == Transport::Udp)
        .find(|d| (d.probe)(payload) == Probe::Certain)
}

/// The first link-layer decoder that accepts a frame with this type/length field and whose
/// probe is certain of `payload`, with the payload it decodes (an 802.3 frame's cut to its length
/// field, so Ethernet padding is not read as protocol data).
pub fn probe_link(ether_type: u16, payload: &[u8]) -> Option<(&'static AppDecoder, &[u8])> {
    let payload = if ether_type <= MAX_8023_LENGTH {
        payload.get(..usize::from(ether_type)).unwrap_or(payload)
    } else {
        payload
    };
    REGISTRY
        .iter()
        .copied()
        .find(|d| match d.decode {
            Decode::Link { frames, .. } => {
                frames.accepts(ether_type) && (d.probe)(payload) == Probe::Certain
            }
            _ => false,
        })
        .map(|d| (d, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Field;

    #[test]
    fn every_protocol_is_registered_and_every_field_belongs_to_one() {
        for p in Protocol::ALL {
            assert!(
                decoders(*p).next().is_some(),
                "{p} has no decoder in REGISTRY"
            );
            assert_eq!(Protocol::ALL.get(p.index()), Some(p));
            assert_eq!(Protocol::from_name(p.name()), Some(*p));
        }
        for d in REGISTRY {
            let same = REGISTRY
                .iter()
                .filter(|o| o.protocol == d.protocol && o.transport() == d.transport())
                .count();
            assert_eq!(
                same,
                1,
                "{} registered twice for {:?}",
                d.protocol,
                d.transport()
            );
        }
        for f in Field::ALL {
            assert!(Protocol::ALL.contains(&f.protocol()));
        }
    }

    #[test]
    fn probes_answer_for_their_own_bytes_only() {
        let rq_head = [1u8, 0, 0, 0, 0, 68, 0, 1];
        let mllp = b"\x0bMSH|^~\\&|";
        assert!(
            matches!(probe_stream(&rq_head), StreamVerdict::Found(d) if d.protocol == Protocol::Dicom)
        );
        assert!(
            matches!(probe_stream(mllp), StreamVerdict::Found(d) if d.protocol == Protocol::Hl7)
        );
        assert!(matches!(probe_stream(b""), StreamVerdict::Unsure));
        // HTTP and SSH are ours since issue 17; a text protocol that is neither still is not.
        assert!(matches!(
            probe_stream(b"GET / HTTP/1.1\r\n"),
            StreamVerdict::Found(d) if d.protocol == Protocol::Http
        ));
        assert!(matches!(
            probe_stream(b"SSH-2.0-OpenSSH_9.6\r\n"),
            StreamVerdict::Found(d) if d.protocol == Protocol::Ssh
        ));
        assert!(matches!(
            probe_stream(&b"220 mail ESMTP\r\n".repeat(100)),
            StreamVerdict::NoneMine
        ));
        assert!(
            matches!(resync_stream(b"xx\x0bMSH|"), Some((d, 2)) if d.protocol == Protocol::Hl7)
        );
        // ASTM: ENQ then a Header frame; the receiver's ACKs alone leave it open.
        assert!(matches!(
            probe_stream(b"\x05\x021H|\\^&|||"),
            StreamVerdict::Found(d) if d.protocol == Protocol::Astm
        ));
        assert!(matches!(probe_stream(b"\x06"), StreamVerdict::Unsure));
        assert!(
            matches!(resync_stream(b"R|1\r\x03\x021H|\\^&|"), Some((d, 5)) if d.protocol == Protocol::Astm)
        );
        assert!(probe_datagram(b"GET / HTTP/1.1\r\n").is_none());
        let mut dhcp = vec![0u8; 240];
        dhcp[0] = 1;
        dhcp[236..240].copy_from_slice(&dhcp::MAGIC_COOKIE);
        assert_eq!(
            probe_datagram(&dhcp).map(|d| d.protocol),
            Some(Protocol::Dhcp)
        );
        // Structure, not ports: no probe sees a port, and a DHCP message is not a stream.
        assert!(matches!(probe_stream(&dhcp), StreamVerdict::NoneMine));
    }

    /// Link-layer decoders are offered frames by EtherType or 802.3 length, then probed by
    /// structure; datagrams and streams never reach them.
    #[test]
    fn link_decoders_answer_for_their_frames_only() {
        let lldpdu = include_bytes!("../testdata/lldp/lldpd-med.bin");
        let cdp = include_bytes!("../testdata/cdp/lldpd-v2.bin");
        assert_eq!(
            probe_link(lldp::ETHER_TYPE, lldpdu).map(|(d, _)| d.protocol),
            Some(Protocol::Lldp)
        );
        let len = cdp.len() as u16;
        assert_eq!(
            probe_link(len, cdp).map(|(d, p)| (d.protocol, p.len())),
            Some((Protocol::Cdp, cdp.len()))
        );
        // LLDP bytes under another EtherType, CDP bytes as an Ethernet II payload: not theirs.
        assert!(probe_link(0x0800, lldpdu).is_none());
        assert!(probe_link(0x88cc, cdp).is_none());
        assert!(probe_datagram(lldpdu).is_none());
        assert!(probe_datagram(cdp).is_none());
        assert!(!matches!(probe_stream(cdp), StreamVerdict::Found(_)));
        assert_eq!(
            REGISTRY
                .iter()
                .filter(|d| d.transport() == Transport::Link)
                .map(|d| d.protocol)
                .collect::<Vec<_>>(),
            [Protocol::Lldp, Protocol::Cdp]
        );
    }
}
