//! Link-layer framing down to TCP/UDP payloads, with etherparse's lax slicing so that frames
//! cut short by a capture's snap length still yield every header that is complete.
//!
//! Supported link types: Ethernet II (with 802.1Q and 802.1ad tags, ids kept), Linux cooked
//! capture v1 (SLL) and v2 (SLL2), raw IPv4/IPv6, BSD null/loopback, and ARP over any of them.

use core::net::{IpAddr, Ipv4Addr};

use etherparse::{
    ArpOperation, EtherType, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, LinkSlice,
    TransportSlice,
};

use crate::error::{DecodeError, Layer};
use crate::evidence::MacAddr;

/// The link type of a capture, from its pcap/pcapng `LINKTYPE_*` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1).
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture, e.g. `tcpdump -i any` on old libpcap.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): the cooked header of current libpcap.
    LinuxSll2,
    /// `LINKTYPE_RAW` (101; also the platform DLT values 12 and 14), `LINKTYPE_IPV4` (228),
    /// `LINKTYPE_IPV6` (229): the frame starts with an IP header.
    RawIp,
    /// `LINKTYPE_NULL` (0, host byte order family) and `LINKTYPE_LOOP` (108, network order).
    Null,
}

impl LinkType {
    /// Maps a pcap `LINKTYPE_*` number to a link type this module decodes.
    pub fn from_linktype(linktype: u32) -> Option<LinkType> {
        Some(match linktype {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            12 | 14 | 101 | 228 | 229 => LinkType::RawIp,
            0 | 108 => LinkType::Null,
            _ => return None,
        })
    }
}

/// Up to two VLAN ids, outermost first. Deeper stacks keep the two outermost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Vlans {
    ids: [u16; 2],
    len: u8,
}

impl Vlans {
    fn push(&mut self, id: u16) {
        if let Some(slot) = self.ids.get_mut(usize::from(self.len)) {
            *slot = id;
            self.len += 1;
        }
    }

    /// The ids, outermost first.
    pub fn as_slice(&self) -> &[u16] {
        self.ids.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// The network layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// No network layer could be decoded (unknown EtherType, or truncated).
    None,
    /// An IPv4 or IPv6 packet.
    Ip {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// True when this is a non-first fragment or more fragments follow; the transport
        /// layer is then not decoded (ward does not defragment: medical protocols run over TCP,
        /// and DHCP datagrams are small).
        fragmented: bool,
    },
    /// An ARP request or reply for IPv4 over Ethernet.
    Arp(Arp),
}

/// The fields of an ARP packet ward uses to learn MAC–IP bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// True for a reply, false for a request.
    pub is_reply: bool,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// A TCP segment's header fields and the payload bytes present in the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// Payload bytes captured.
    pub payload: &'a [u8],
    /// True when the capture cut the payload short (snap length): bytes after `payload` exist
    /// on the wire but not in the capture.
    pub truncated: bool,
}

/// A UDP datagram's ports and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload bytes captured.
    pub payload: &'a [u8],
    /// True when the capture cut the datagram short.
    pub truncated: bool,
}

/// The transport layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// None decoded.
    None,
    /// TCP.
    Tcp(TcpSegment<'a>),
    /// UDP.
    Udp(UdpDatagram<'a>),
}

/// The payload of a frame whose network layer is neither IP nor ARP, after the link header and
/// any VLAN tags: what the link-layer decoders of [`crate::registry`] (LLDP, CDP) read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPayload<'a> {
    /// The innermost EtherType, or for an IEEE 802.3 frame its length field (≤ 1500: the
    /// payload then begins with an 802.2 LLC header). In a Linux cooked capture, the protocol
    /// field; for its 802.2 LLC frames (protocol 0x0004) the captured payload's length, as the
    /// 802.3 header would have said.
    pub ether_type: u16,
    /// The bytes after it, as captured.
    pub payload: &'a [u8],
}

/// A decoded frame: every layer that was complete in the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Source MAC (Ethernet; SLL/SLL2 when the sender address is a 6-byte MAC).
    pub src_mac: Option<MacAddr>,
    /// Destination MAC (Ethernet only).
    pub dst_mac: Option<MacAddr>,
    /// VLAN ids from 802.1Q/802.1ad tags present in the frame.
    pub vlans: Vlans,
    /// Network layer.
    pub net: Net,
    /// Transport layer.
    pub transport: Transport<'a>,
    /// For a frame with no IP or ARP layer ([`Net::None`]), its EtherType (or 802.3 length) and
    /// payload, for the link-layer decoders; `None` otherwise.
    pub link: Option<LinkPayload<'a>>,
    /// Where lax decoding stopped short, if it did (a truncated or malformed inner header).
    pub stopped: Option<DecodeError>,
}

mod field {
    //! Byte ranges of the cooked-capture and null headers, which etherparse does not slice
    //! laxly (SLL) or at all (SLL2, null).
    use core::ops::Range;

    pub const SLL_ARPHRD: Range<usize> = 2..4;
    pub const SLL_ADDR_LEN: Range<usize> = 4..6;
    pub const SLL_ADDR: Range<usize> = 6..14;
    pub const SLL_PROTOCOL: Range<usize> = 14..16;
    pub const SLL_HEADER_LEN: usize = 16;

    pub const SLL2_PROTOCOL: Range<usize> = 0..2;
    pub const SLL2_ARPHRD: Range<usize> = 8..10;
    pub const SLL2_ADDR_LEN: usize = 11;
    pub const SLL2_ADDR: Range<usize> = 12..20;
    pub const SLL2_HEADER_LEN: usize = 20;

    pub const NULL_HEADER_LEN: usize = 4;
}

const ARPHRD_ETHER: u16 = 1;

fn be16(data: &[u8], range: core::ops::Range<usize>) -> Option<u16> {
    let b = data.get(range)?;
    Some(u16::from_be_bytes(b.try_into().ok()?))
}

/// Decodes one captured frame of the given link type.
///
/// Returns an error only when the link header itself is incomplete or invalid; a problem in an
/// inner layer leaves the outer layers decoded and is reported in [`Frame::stopped`].
pub fn decode(link: LinkType, data: &[u8]) -> Result<Frame<'_>, DecodeError> {
    match link {
        LinkType::Ethernet => {
            let sliced = LaxSlicedPacket::from_ethernet(data)
                .map_err(|_| DecodeError::truncated(Layer::Link, 0, 14, data.len()))?;
            Ok(from_sliced(sliced, None))
        }
        LinkType::LinuxSll => {
            if data.len() < field::SLL_HEADER_LEN {
                return Err(DecodeError::truncated(
                    Layer::Link,
                    0,
                    field::SLL_HEADER_LEN,
                    data.len(),
                ));
            }
            let src = cooked_mac(
                be16(data, field::SLL_ARPHRD),
                be16(data, field::SLL_ADDR_LEN).map(usize::from),
                data.get(field::SLL_ADDR),
            );
            let proto = be16(data, field::SLL_PROTOCOL).unwrap_or(0);
            let payload = data.get(field::SLL_HEADER_LEN..).unwrap_or(&[]);
            Ok(cooked_llc(
                from_sliced(
                    LaxSlicedPacket::from_ether_type(EtherType(proto), payload),
                    src,
                ),
                proto,
                payload,
            ))
        }
        LinkType::LinuxSll2 => {
            if data.len() < field::SLL2_HEADER_LEN {
                return Err(DecodeError::truncated(
                    Layer::Link,
                    0,
                    field::SLL2_HEADER_LEN,
                    data.len(),
                ));
            }
            let src = cooked_mac(
                be16(data, field::SLL2_ARPHRD),
                data.get(field::SLL2_ADDR_LEN).map(|&l| usize::from(l)),
                data.get(field::SLL2_ADDR),
            );
            let proto = be16(data, field::SLL2_PROTOCOL).unwrap_or(0);
            let payload = data.get(field::SLL2_HEADER_LEN..).unwrap_or(&[]);
            Ok(cooked_llc(
                from_sliced(
                    LaxSlicedPacket::from_ether_type(EtherType(proto), payload),
                    src,
                ),
                proto,
                payload,
            ))
        }
        LinkType::RawIp => from_ip(data, 0),
        LinkType::Null => {
            // The family is in the writer's byte order (NULL) or network order (LOOP), and its
            // IPv6 value differs between BSDs, so the IP version nibble decides.
            let payload = data.get(field::NULL_HEADER_LEN..).ok_or_else(|| {
                DecodeError::truncated(Layer::Link, 0, field::NULL_HEADER_LEN, data.len())
            })?;
            from_ip(payload, field::NULL_HEADER_LEN)
        }
    }
}

fn from_ip(data: &[u8], offset: usize) -> Result<Frame<'_>, DecodeError> {
    match LaxSlicedPacket::from_ip(data) {
        Ok(sliced) => Ok(from_sliced(sliced, None)),
        Err(_) => Err(match data.first() {
            None => DecodeError::truncated(Layer::Network, offset, 1, 0),
            Some(b) if b >> 4 != 4 && b >> 4 != 6 => DecodeError::Invalid {
                layer: Layer::Network,
                offset,
                what: "IP version",
            },
            Some(_) => DecodeError::Invalid {
                layer: Layer::Network,
                offset,
                what: "IP header",
            },
        }),
    }
}

/// `LINUX_SLL_P_802_2`: the cooked header's protocol for an 802.3 frame with an LLC header.
const SLL_P_802_2: u16 = 0x0004;

/// A cooked capture records an 802.3 frame (CDP, spanning tree) with protocol
/// [`SLL_P_802_2`] instead of its length field: give the link-layer decoders the length an
/// Ethernet header would have carried, so they see such frames as they see 802.3 frames.
fn cooked_llc<'a>(mut frame: Frame<'a>, proto: u16, payload: &'a [u8]) -> Frame<'a> {
    if proto == SLL_P_802_2 && frame.net == Net::None {
        let len = payload
            .len()
            .min(usize::from(crate::registry::MAX_8023_LENGTH));
        frame.link = Some(LinkPayload {
            ether_type: u16::try_from(len).unwrap_or(0),
            payload,
        });
    }
    frame
}

fn cooked_mac(arphrd: Option<u16>, len: Option<usize>, addr: Option<&[u8]>) -> Option<MacAddr> {
    if arphrd != Some(ARPHRD_ETHER) || len != Some(6) {
        return None;
    }
    let bytes: [u8; 6] = addr?.get(..6)?.try_into().ok()?;
    Some(MacAddr(bytes))
}

fn from_sliced(sliced: LaxSlicedPacket<'_>, cooked_src: Option<MacAddr>) -> Frame<'_> {
    let (src_mac, dst_mac) = match &sliced.link {
        Some(LinkSlice::Ethernet2(eth)) => (
            Some(MacAddr(eth.source())),
            Some(MacAddr(eth.destination())),
        ),
        _ => (cooked_src, None),
    };
    let mut vlans = Vlans::default();
    for ext in &sliced.link_exts {
        if let LaxLinkExtSlice::Vlan(v) = ext {
            vlans.push(v.vlan_identifier().value());
        }
    }
    let mut ip_truncated = false;
    let net = match &sliced.net {
        None => Net::None,
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            ip_truncated = ip.payload().incomplete;
            Net::Ip {
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                fragmented: ip.is_payload_fragmented(),
            }
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            ip_truncated = ip.payload().incomplete;
            Net::Ip {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                fragmented: ip.is_payload_fragmented(),
            }
        }
        Some(LaxNetSlice::Arp(arp)) => arp_fields(arp).map_or(Net::None, Net::Arp),
    };
    let transport = match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => Transport::Tcp(TcpSegment {
            src_port: tcp.source_port(),
            dst_port: tcp.destination_port(),
            seq: tcp.sequence_number(),
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            payload: tcp.payload(),
            truncated: ip_truncated,
        }),
        Some(TransportSlice::Udp(udp)) => Transport::Udp(UdpDatagram {
            src_port: udp.source_port(),
            dst_port: udp.destination_port(),
            payload: udp.payload(),
            truncated: ip_truncated,
        }),
        _ => Transport::None,
    };
    // Only frames without a network layer are offered to the link-layer decoders: looking up
    // the payload of every IP frame would cost the hot path for nothing.
    let link = match net {
        Net::None => sliced.ether_payload().map(|p| LinkPayload {
            ether_type: p.ether_type.0,
            payload: p.payload,
        }),
        _ => None,
    };
    let stopped = sliced.stop_err.map(|(_, layer)| {
        let layer = match layer {
            etherparse::err::Layer::Ipv4Header
            | etherparse::err::Layer::Ipv6Header
            | etherparse::err::Layer::Ipv4Packet
            | etherparse::err::Layer::Ipv6Packet
            | etherparse::err::Layer::Arp => Layer::Network,
            etherparse::err::Layer::TcpHeader | etherparse::err::Layer::UdpHeader => {
                Layer::Transport
            }
            _ => Layer::Link,
        };
        DecodeError::Unsupported {
            layer,
            what: "truncated or malformed header",
        }
    });
    Frame {
        src_mac,
        dst_mac,
        vlans,
        net,
        transport,
        link,
        stopped,
    }
}

fn arp_fields(arp: &etherparse::ArpPacketSlice<'_>) -> Option<Arp> {
    if arp.hw_addr_size() != 6 || arp.proto_addr_size() != 4 {
        return None;
    }
    let sender_mac: [u8; 6] = arp.sender_hw_addr().try_into().ok()?;
    let sender_ip: [u8; 4] = arp.sender_protocol_addr().try_into().ok()?;
    let target_ip: [u8; 4] = arp.target_protocol_addr().try_into().ok()?;
    Some(Arp {
        is_reply: arp.operation() == ArpOperation::REPLY,
        sender_mac: MacAddr(sender_mac),
        sender_ip: Ipv4Addr::from(sender_ip),
        target_ip: Ipv4Addr::from(target_ip),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_eth(vlans: &[u16], payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([0, 0x12, 0x21, 1, 2, 3], [0, 0x0a, 0x37, 4, 5, 6]);
        let mut out = Vec::new();
        match vlans {
            [] => b
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(40000, 104, 1000, 512)
                .write(&mut out, payload)
                .unwrap(),
            [a] => b
                .single_vlan((*a).try_into().unwrap())
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(40000, 104, 1000, 512)
                .write(&mut out, payload)
                .unwrap(),
            [a, c] => b
                .double_vlan((*a).try_into().unwrap(), (*c).try_into().unwrap())
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(40000, 104, 1000, 512)
                .write(&mut out, payload)
                .unwrap(),
            _ => unreachable!(),
        }
        out
    }

    #[test]
    fn ethernet_with_vlans() {
        for vlans in [&[][..], &[100], &[200, 100]] {
            let bytes = tcp_eth(vlans, b"hello");
            let f = decode(LinkType::Ethernet, &bytes).unwrap();
            assert_eq!(f.vlans.as_slice(), vlans);
            assert_eq!(f.src_mac.unwrap().to_string(), "00:12:21:01:02:03");
            let Transport::Tcp(t) = f.transport else {
                panic!("no tcp")
            };
            assert_eq!((t.src_port, t.dst_port, t.seq), (40000, 104, 1000));
            assert_eq!(t.payload, b"hello");
            assert!(!t.truncated);
        }
    }

    #[test]
    fn snaplen_truncated_payload_is_flagged() {
        let bytes = tcp_eth(&[], &[7u8; 100]);
        let f = decode(LinkType::Ethernet, &bytes[..bytes.len() - 40]).unwrap();
        let Transport::Tcp(t) = f.transport else {
            panic!("no tcp")
        };
        assert_eq!(t.payload.len(), 60);
        assert!(t.truncated);
    }

    #[test]
    fn cooked_null_and_raw() {
        let eth = tcp_eth(&[], b"x");
        let ip = &eth[14..];
        let mut sll = vec![0, 0, 0, 1, 0, 6, 0, 0x12, 0x21, 1, 2, 3, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        let mut sll2 = vec![
            0x08, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0, 0x12, 0x21, 1, 2, 3, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        for (lt, bytes) in [
            (LinkType::LinuxSll, &sll[..]),
            (LinkType::LinuxSll2, &sll2[..]),
            (LinkType::Null, &null[..]),
            (LinkType::RawIp, ip),
        ] {
            let f = decode(lt, bytes).unwrap();
            let Transport::Tcp(t) = f.transport else {
                panic!("{lt:?}: no tcp")
            };
            assert_eq!(t.payload, b"x", "{lt:?}");
            if matches!(lt, LinkType::LinuxSll | LinkType::LinuxSll2) {
                assert_eq!(f.src_mac.unwrap().to_string(), "00:12:21:01:02:03");
            }
        }
    }

    /// Real frames from the fixture captures (tests/fixtures), one per link type.
    #[test]
    fn real_frames_of_every_link_type() {
        let cases: [(LinkType, &[u8], &[u16], u16); 5] = [
            (
                LinkType::Ethernet,
                include_bytes!("../testdata/frames/qinq-dicom-rq.bin"),
                &[200, 100],
                11112,
            ),
            (
                LinkType::Ethernet,
                include_bytes!("../testdata/frames/vlan100-hl7.bin"),
                &[100],
                2575,
            ),
            (
                LinkType::LinuxSll,
                include_bytes!("../testdata/frames/sll-dicom-rq.bin"),
                &[],
                11112,
            ),
            (
                LinkType::LinuxSll2,
                include_bytes!("../testdata/frames/sll2-hl7.bin"),
                &[],
                2575,
            ),
            (
                LinkType::Null,
                include_bytes!("../testdata/frames/null-hl7.bin"),
                &[],
                2575,
            ),
        ];
        for (lt, bytes, vlans, port) in cases {
            let f = decode(lt, bytes).unwrap();
            assert_eq!(f.vlans.as_slice(), vlans, "{lt:?}");
            assert!(f.stopped.is_none(), "{lt:?}: {:?}", f.stopped);
            let Net::Ip {
                src,
                dst,
                fragmented: false,
            } = f.net
            else {
                panic!("{lt:?}: {:?}", f.net)
            };
            assert_eq!(src.to_string(), "192.0.2.10", "{lt:?}");
            assert_eq!(dst.to_string(), "192.0.2.20", "{lt:?}");
            let Transport::Tcp(t) = f.transport else {
                panic!("{lt:?}: no tcp")
            };
            assert_eq!(t.dst_port, port, "{lt:?}");
            assert!(!t.payload.is_empty() && !t.truncated, "{lt:?}");
            // Every truncation decodes or errors; a cut inside the payload is flagged.
            for n in 0..bytes.len() {
                if let Ok(Frame {
                    transport: Transport::Tcp(t),
                    ..
                }) = decode(lt, &bytes[..n])
                {
                    assert!(t.truncated || t.payload.is_empty() || n == bytes.len());
                }
            }
        }
    }

    #[test]
    fn arp_is_decoded() {
        // A real ARP request (who-has 10.77.0.2 tell 10.77.0.1), Ethernet II.
        let bytes: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x77, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0,
            6, 4, 0, 1, 0x02, 0x77, 0, 0, 0, 1, 10, 77, 0, 1, 0, 0, 0, 0, 0, 0, 10, 77, 0, 2,
        ];
        let f = decode(LinkType::Ethernet, &bytes).unwrap();
        let Net::Arp(arp) = f.net else {
            panic!("no arp: {f:?}")
        };
        assert!(!arp.is_reply);
        assert_eq!(arp.sender_ip, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(arp.target_ip, Ipv4Addr::new(10, 77, 0, 2));
    }

    #[test]
    fn short_link_headers_are_errors_naming_the_layer() {
        for lt in [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Null,
        ] {
            let e = decode(lt, &[0u8; 3]).unwrap_err();
            assert_eq!(e.layer(), Layer::Link, "{lt:?}");
        }
        let e = decode(LinkType::RawIp, &[0x10]).unwrap_err();
        assert_eq!(e.layer(), Layer::Network);
    }

    #[test]
    fn every_truncation_of_a_frame_decodes_or_errors() {
        let bytes = tcp_eth(&[200, 100], b"some payload bytes");
        for n in 0..=bytes.len() {
            let _ = decode(LinkType::Ethernet, &bytes[..n]);
            let _ = decode(LinkType::RawIp, &bytes[n.min(22)..n.max(22)]);
        }
    }

    /// A frame with no IP or ARP layer exposes its type/length field and payload for the
    /// link-layer decoders: an LLDP EtherType, behind a VLAN tag, an 802.3 length, and the
    /// cooked captures' protocol field. IP frames do not.
    #[test]
    fn non_ip_frames_expose_their_link_payload() {
        let lldpdu = include_bytes!("../testdata/lldp/lldpd-med.bin");
        let mut eth = vec![
            0x01, 0x80, 0xc2, 0, 0, 0x0e, 0x02, 0x57, 0x41, 0x52, 0x44, 0x1d,
        ];
        let mut tagged = eth.clone();
        eth.extend_from_slice(&[0x88, 0xcc]);
        eth.extend_from_slice(lldpdu);
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x88, 0xcc]);
        tagged.extend_from_slice(lldpdu);
        for (bytes, vlans) in [(&eth, &[][..]), (&tagged, &[100][..])] {
            let f = decode(LinkType::Ethernet, bytes).unwrap();
            assert_eq!(f.net, Net::None);
            assert_eq!(f.vlans.as_slice(), vlans);
            assert_eq!(
                f.link,
                Some(LinkPayload {
                    ether_type: 0x88cc,
                    payload: &lldpdu[..]
                })
            );
            assert_eq!(f.src_mac.unwrap().to_string(), "02:57:41:52:44:1d");
        }
        let mut dot3 = vec![
            0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc, 0x02, 0, 0, 0, 0, 1, 0, 9,
        ];
        dot3.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0, 2]);
        let f = decode(LinkType::Ethernet, &dot3).unwrap();
        assert_eq!(
            f.link.map(|l| (l.ether_type, l.payload.len())),
            Some((9, 9))
        );
        // SLL: protocol 0x0004 (802.2 LLC) as Linux records CDP, and 0x88cc.
        let mut sll = vec![
            0, 0, 0, 1, 0, 6, 0x02, 0x57, 0x41, 0x52, 0x44, 0x1d, 0, 0, 0x00, 0x04,
        ];
        sll.extend_from_slice(&dot3[14..]);
        let f = decode(LinkType::LinuxSll, &sll).unwrap();
        // The cooked protocol 0x0004 stands for an 802.3 length: the payload's.
        assert_eq!(
            f.link.map(|l| (l.ether_type, l.payload.len())),
            Some((9, 9))
        );
        assert_eq!(f.src_mac.unwrap().to_string(), "02:57:41:52:44:1d");
        let mut sll2 = vec![0x88, 0xcc, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        sll2.extend_from_slice(&[0x02, 0x57, 0x41, 0x52, 0x44, 0x1d, 0, 0]);
        sll2.extend_from_slice(lldpdu);
        let f = decode(LinkType::LinuxSll2, &sll2).unwrap();
        assert_eq!(
            f.link.map(|l| (l.ether_type, l.payload.len())),
            Some((0x88cc, lldpdu.len()))
        );
        // An IP frame has no link payload for these decoders.
        assert_eq!(
            decode(LinkType::Ethernet, &tcp_eth(&[], b"x"))
                .unwrap()
                .link,
            None
        );
    }
}
