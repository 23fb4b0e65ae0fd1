//! Link-layer framing down to TCP/UDP payloads, lax as capture tools are, so that frames cut
//! short by a capture's snap length still yield every header that is complete.
//!
//! Supported link types: Ethernet II (with 802.1Q and 802.1ad tags, ids kept), Linux cooked
//! capture v1 (SLL) and v2 (SLL2), raw IPv4/IPv6, BSD null/loopback, and ARP over any of them.

use core::net::{IpAddr, Ipv4Addr};

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
    //! Byte ranges of every header this module reads, from the start of that header.
    use core::ops::Range;

    // Linux cooked capture v1 (SLL) and v2 (SLL2), and the BSD null/loopback header.
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

    // Ethernet II (IEEE 802.3 clause 3.2) and an 802.1Q/802.1ad tag (TCI, then the inner type).
    pub const ETH_DST: Range<usize> = 0..6;
    pub const ETH_SRC: Range<usize> = 6..12;
    pub const ETH_TYPE: Range<usize> = 12..14;
    pub const ETH_HEADER_LEN: usize = 14;
    pub const VLAN_TCI: Range<usize> = 0..2;
    pub const VLAN_TYPE: Range<usize> = 2..4;
    pub const VLAN_TAG_LEN: usize = 4;

    // IPv4 (RFC 791 §3.1).
    pub const IPV4_VER_IHL: usize = 0;
    pub const IPV4_TOTAL_LEN: Range<usize> = 2..4;
    pub const IPV4_FLAGS_FRAG: Range<usize> = 6..8;
    pub const IPV4_PROTOCOL: usize = 9;
    pub const IPV4_SRC: Range<usize> = 12..16;
    pub const IPV4_DST: Range<usize> = 16..20;
    pub const IPV4_MIN_HEADER_LEN: usize = 20;

    // IPv6 (RFC 8200 §3) and its extension headers (§4: next header, length in 8-octet units
    // not counting the first; AH, RFC 4302 §2.2, counts 4-octet units minus 2).
    pub const IPV6_PAYLOAD_LEN: Range<usize> = 4..6;
    pub const IPV6_NEXT_HEADER: usize = 6;
    pub const IPV6_SRC: Range<usize> = 8..24;
    pub const IPV6_DST: Range<usize> = 24..40;
    pub const IPV6_HEADER_LEN: usize = 40;
    pub const EXT_NEXT_HEADER: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const EXT_MIN_LEN: usize = 8;
    pub const FRAG_OFFSET_FLAGS: Range<usize> = 2..4;

    // TCP (RFC 9293 §3.1) and UDP (RFC 768).
    pub const TCP_SRC_PORT: Range<usize> = 0..2;
    pub const TCP_DST_PORT: Range<usize> = 2..4;
    pub const TCP_SEQ: Range<usize> = 4..8;
    pub const TCP_DATA_OFFSET: usize = 12;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_MIN_HEADER_LEN: usize = 20;
    pub const UDP_SRC_PORT: Range<usize> = 0..2;
    pub const UDP_DST_PORT: Range<usize> = 2..4;
    pub const UDP_LEN: Range<usize> = 4..6;
    pub const UDP_HEADER_LEN: usize = 8;

    // ARP for IPv4 over Ethernet (RFC 826): hardware and protocol address sizes 6 and 4.
    pub const ARP_HLEN: usize = 4;
    pub const ARP_PLEN: usize = 5;
    pub const ARP_OPER: Range<usize> = 6..8;
    pub const ARP_SHA: Range<usize> = 8..14;
    pub const ARP_SPA: Range<usize> = 14..18;
    pub const ARP_TPA: Range<usize> = 24..28;
}

const ARPHRD_ETHER: u16 = 1;

mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ).
    pub const PROVIDER_BRIDGING: u16 = 0x88a8;
    /// The pre-standard QinQ outer tag many switches still send.
    pub const VLAN_DOUBLE_TAGGED: u16 = 0x9100;
}

const IP_PROTO_TCP: u8 = 6;
const IP_PROTO_UDP: u8 = 17;
/// IPv6 extension headers walked to reach the transport (RFC 8200 §4.1 order).
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
/// A legitimate packet carries a handful of extension headers; a longer chain is hostile and
/// stops the walk (the loop is then bounded whatever the bytes say).
const IPV6_MAX_EXT_HEADERS: usize = 8;
/// Tags beyond this many are not walked (QinQ is two; the frame is left undecoded above it).
const MAX_VLAN_TAGS: usize = 4;
const ARP_OP_REPLY: u16 = 2;

fn be16(data: &[u8], range: core::ops::Range<usize>) -> Option<u16> {
    let b = data.get(range)?;
    Some(u16::from_be_bytes(b.try_into().ok()?))
}

fn be32(data: &[u8], range: core::ops::Range<usize>) -> Option<u32> {
    let b = data.get(range)?;
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

fn array<const N: usize>(data: &[u8], range: core::ops::Range<usize>) -> Option<[u8; N]> {
    data.get(range)?.try_into().ok()
}

/// Decodes one captured frame of the given link type.
///
/// Returns an error only when the link header itself is incomplete or invalid; a problem in an
/// inner layer leaves the outer layers decoded and is reported in [`Frame::stopped`].
///
/// The parsing is our own rather than a general packet library's: it reads only the fields
/// ward uses and returns small values, which made frame decoding about a fifth of its former
/// cost per packet (callgrind on `bench/compare.sh`'s site mix).
pub fn decode(link: LinkType, data: &[u8]) -> Result<Frame<'_>, DecodeError> {
    match link {
        LinkType::Ethernet => {
            let (Some(dst), Some(src), Some(ty)) = (
                array::<6>(data, field::ETH_DST),
                array::<6>(data, field::ETH_SRC),
                be16(data, field::ETH_TYPE),
            ) else {
                return Err(DecodeError::truncated(
                    Layer::Link,
                    0,
                    field::ETH_HEADER_LEN,
                    data.len(),
                ));
            };
            let mut frame = Frame::empty(Some(MacAddr(src)), Some(MacAddr(dst)));
            let payload = data.get(field::ETH_HEADER_LEN..).unwrap_or(&[]);
            from_ether_type(&mut frame, ty, payload);
            Ok(frame)
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
            let mut frame = Frame::empty(src, None);
            from_ether_type(&mut frame, proto, payload);
            cooked_llc(&mut frame, proto, payload);
            Ok(frame)
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
            let mut frame = Frame::empty(src, None);
            from_ether_type(&mut frame, proto, payload);
            cooked_llc(&mut frame, proto, payload);
            Ok(frame)
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

impl Frame<'_> {
    fn empty(src_mac: Option<MacAddr>, dst_mac: Option<MacAddr>) -> Self {
        Frame {
            src_mac,
            dst_mac,
            vlans: Vlans::default(),
            net: Net::None,
            transport: Transport::None,
            link: None,
            stopped: None,
        }
    }
}

/// A frame starting with an IP header (raw and null link types): an unreadable IP header is the
/// frame's error, as a short link header is for the others.
fn from_ip(data: &[u8], offset: usize) -> Result<Frame<'_>, DecodeError> {
    let mut frame = Frame::empty(None, None);
    let result = match data.first().map(|b| b >> 4) {
        None => return Err(DecodeError::truncated(Layer::Network, offset, 1, 0)),
        Some(4) => ipv4(&mut frame, data),
        Some(6) => ipv6(&mut frame, data),
        Some(_) => {
            return Err(DecodeError::Invalid {
                layer: Layer::Network,
                offset,
                what: "IP version",
            })
        }
    };
    match result {
        Err(Layer::Network) => Err(DecodeError::Invalid {
            layer: Layer::Network,
            offset,
            what: "IP header",
        }),
        Err(layer) => {
            frame.stopped = Some(stopped(layer));
            Ok(frame)
        }
        Ok(()) => Ok(frame),
    }
}

fn stopped(layer: Layer) -> DecodeError {
    DecodeError::Unsupported {
        layer,
        what: "truncated or malformed header",
    }
}

/// Walks VLAN tags, then the network and transport layers, recording where it stopped.
fn from_ether_type<'a>(frame: &mut Frame<'a>, mut ty: u16, mut data: &'a [u8]) {
    let mut tags = 0;
    while matches!(
        ty,
        ethertype::VLAN | ethertype::PROVIDER_BRIDGING | ethertype::VLAN_DOUBLE_TAGGED
    ) {
        tags += 1;
        let (Some(tci), Some(inner)) = (be16(data, field::VLAN_TCI), be16(data, field::VLAN_TYPE))
        else {
            frame.stopped = Some(stopped(Layer::Link));
            return;
        };
        if tags > MAX_VLAN_TAGS {
            frame.stopped = Some(DecodeError::Unsupported {
                layer: Layer::Link,
                what: "VLAN tag stack deeper than four",
            });
            return;
        }
        // The VLAN id is the TCI's low twelve bits (802.1Q §9.6).
        frame.vlans.push(tci & 0x0fff);
        ty = inner;
        data = data.get(field::VLAN_TAG_LEN..).unwrap_or(&[]);
    }
    let result = match ty {
        ethertype::IPV4 => ipv4(frame, data),
        ethertype::IPV6 => ipv6(frame, data),
        ethertype::ARP => {
            arp(frame, data);
            Ok(())
        }
        // Neither IP nor ARP (LLDP, an 802.3 length with LLC, …): offered to the link-layer
        // decoders. Only these frames: looking at every IP frame's payload would cost the hot
        // path for nothing.
        _ => {
            frame.link = Some(LinkPayload {
                ether_type: ty,
                payload: data,
            });
            Ok(())
        }
    };
    if let Err(layer) = result {
        frame.stopped = Some(stopped(layer));
    }
}

/// The IP payload's bytes as captured, and whether the capture cut it short.
///
/// Lax as capture tools are: a length field smaller than the header (0 on segments a NIC's
/// TCP segmentation offload had not split yet) means "the rest of the capture"; a length beyond
/// the captured bytes means the snap length cut the packet; a length within them trims the
/// Ethernet padding.
fn ip_payload(data: &[u8], header_len: usize, total_len: usize) -> (&[u8], bool) {
    let rest = data.get(header_len..).unwrap_or(&[]);
    if total_len < header_len {
        return (rest, false);
    }
    match data.get(header_len..total_len) {
        Some(p) => (p, false),
        None => (rest, true),
    }
}

fn ipv4<'a>(frame: &mut Frame<'a>, data: &'a [u8]) -> Result<(), Layer> {
    let ver_ihl = *data.get(field::IPV4_VER_IHL).ok_or(Layer::Network)?;
    let header_len = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || header_len < field::IPV4_MIN_HEADER_LEN || data.len() < header_len {
        return Err(Layer::Network);
    }
    let (Some(total_len), Some(flags_frag), Some(&proto), Some(src), Some(dst)) = (
        be16(data, field::IPV4_TOTAL_LEN),
        be16(data, field::IPV4_FLAGS_FRAG),
        data.get(field::IPV4_PROTOCOL),
        array::<4>(data, field::IPV4_SRC),
        array::<4>(data, field::IPV4_DST),
    ) else {
        return Err(Layer::Network);
    };
    // More-fragments flag (0x2000) or a non-zero fragment offset (low 13 bits).
    let fragmented = flags_frag & 0x3fff != 0;
    frame.net = Net::Ip {
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::from(dst)),
        fragmented,
    };
    if fragmented {
        return Ok(());
    }
    let (payload, truncated) = ip_payload(data, header_len, usize::from(total_len));
    transport(frame, proto, payload, truncated)
}

fn ipv6<'a>(frame: &mut Frame<'a>, data: &'a [u8]) -> Result<(), Layer> {
    let (Some(&first), Some(payload_len), Some(&next), Some(src), Some(dst)) = (
        data.first(),
        be16(data, field::IPV6_PAYLOAD_LEN),
        data.get(field::IPV6_NEXT_HEADER),
        array::<16>(data, field::IPV6_SRC),
        array::<16>(data, field::IPV6_DST),
    ) else {
        return Err(Layer::Network);
    };
    if first >> 4 != 6 {
        return Err(Layer::Network);
    }
    let payload_len = usize::from(payload_len);
    // Payload length 0 is a jumbogram or an offloaded segment: the rest of the capture.
    let total_len = if payload_len == 0 {
        0
    } else {
        field::IPV6_HEADER_LEN + payload_len
    };
    let (mut payload, truncated) = ip_payload(data, field::IPV6_HEADER_LEN, total_len);
    let mut next = next;
    let mut fragmented = false;
    let mut walked = 0;
    let result = loop {
        let len = match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => payload
                .get(field::EXT_LEN)
                .map(|&l| (usize::from(l) + 1) * 8),
            IPV6_AUTH => payload
                .get(field::EXT_LEN)
                .map(|&l| (usize::from(l) + 2) * 4),
            IPV6_FRAGMENT => {
                // Offset (high 13 bits) non-zero, or the M flag (bit 0): a fragment. An atomic
                // fragment (both zero, RFC 6946) is a whole packet.
                if let Some(v) = be16(payload, field::FRAG_OFFSET_FLAGS) {
                    fragmented |= v & 0xfff9 != 0;
                }
                Some(field::EXT_MIN_LEN)
            }
            _ => break Ok(()),
        };
        walked += 1;
        let (Some(len), Some(&inner)) = (len, payload.get(field::EXT_NEXT_HEADER)) else {
            break Err(Layer::Network);
        };
        let Some(rest) = payload.get(len..) else {
            break Err(Layer::Network);
        };
        if walked > IPV6_MAX_EXT_HEADERS {
            break Err(Layer::Network);
        }
        next = inner;
        payload = rest;
    };
    frame.net = Net::Ip {
        src: IpAddr::V6(src.into()),
        dst: IpAddr::V6(dst.into()),
        fragmented,
    };
    result?;
    if fragmented {
        return Ok(());
    }
    transport(frame, next, payload, truncated)
}

fn transport<'a>(
    frame: &mut Frame<'a>,
    proto: u8,
    data: &'a [u8],
    truncated: bool,
) -> Result<(), Layer> {
    match proto {
        IP_PROTO_TCP => {
            let (Some(src_port), Some(dst_port), Some(seq), Some(&offset), Some(&flags)) = (
                be16(data, field::TCP_SRC_PORT),
                be16(data, field::TCP_DST_PORT),
                be32(data, field::TCP_SEQ),
                data.get(field::TCP_DATA_OFFSET),
                data.get(field::TCP_FLAGS),
            ) else {
                return Err(Layer::Transport);
            };
            let header_len = usize::from(offset >> 4) * 4;
            if header_len < field::TCP_MIN_HEADER_LEN {
                return Err(Layer::Transport);
            }
            let payload = data.get(header_len..).ok_or(Layer::Transport)?;
            frame.transport = Transport::Tcp(TcpSegment {
                src_port,
                dst_port,
                seq,
                fin: flags & 0x01 != 0,
                syn: flags & 0x02 != 0,
                rst: flags & 0x04 != 0,
                ack: flags & 0x10 != 0,
                payload,
                truncated,
            });
        }
        IP_PROTO_UDP => {
            let (Some(src_port), Some(dst_port), Some(len)) = (
                be16(data, field::UDP_SRC_PORT),
                be16(data, field::UDP_DST_PORT),
                be16(data, field::UDP_LEN),
            ) else {
                return Err(Layer::Transport);
            };
            if data.len() < field::UDP_HEADER_LEN {
                return Err(Layer::Transport);
            }
            // The length field trims padding when it fits the captured bytes; otherwise (0 for a
            // jumbogram, or a cut capture) the captured bytes are the datagram.
            let payload = data
                .get(field::UDP_HEADER_LEN..usize::from(len))
                .or_else(|| data.get(field::UDP_HEADER_LEN..))
                .unwrap_or(&[]);
            frame.transport = Transport::Udp(UdpDatagram {
                src_port,
                dst_port,
                payload,
                truncated,
            });
        }
        _ => {}
    }
    Ok(())
}

/// `LINUX_SLL_P_802_2`: the cooked header's protocol for an 802.3 frame with an LLC header.
const SLL_P_802_2: u16 = 0x0004;

/// A cooked capture records an 802.3 frame (CDP, spanning tree) with protocol
/// [`SLL_P_802_2`] instead of its length field: give the link-layer decoders the length an
/// Ethernet header would have carried, so they see such frames as they see 802.3 frames.
fn cooked_llc<'a>(frame: &mut Frame<'a>, proto: u16, payload: &'a [u8]) {
    if proto == SLL_P_802_2 && frame.net == Net::None {
        let len = payload
            .len()
            .min(usize::from(crate::registry::MAX_8023_LENGTH));
        frame.link = Some(LinkPayload {
            ether_type: u16::try_from(len).unwrap_or(0),
            payload,
        });
    }
}

fn cooked_mac(arphrd: Option<u16>, len: Option<usize>, addr: Option<&[u8]>) -> Option<MacAddr> {
    if arphrd != Some(ARPHRD_ETHER) || len != Some(6) {
        return None;
    }
    let bytes: [u8; 6] = addr?.get(..6)?.try_into().ok()?;
    Some(MacAddr(bytes))
}

/// An ARP packet for IPv4 over Ethernet; other hardware/protocol sizes leave `Net::None`, a
/// short one stops at the network layer.
fn arp(frame: &mut Frame<'_>, data: &[u8]) {
    if data.get(field::ARP_HLEN) != Some(&6) || data.get(field::ARP_PLEN) != Some(&4) {
        if data.len() <= field::ARP_PLEN {
            frame.stopped = Some(stopped(Layer::Network));
        }
        return;
    }
    let (Some(oper), Some(sha), Some(spa), Some(tpa)) = (
        be16(data, field::ARP_OPER),
        array::<6>(data, field::ARP_SHA),
        array::<4>(data, field::ARP_SPA),
        array::<4>(data, field::ARP_TPA),
    ) else {
        frame.stopped = Some(stopped(Layer::Network));
        return;
    };
    frame.net = Net::Arp(Arp {
        is_reply: oper == ARP_OP_REPLY,
        sender_mac: MacAddr(sha),
        sender_ip: Ipv4Addr::from(spa),
        target_ip: Ipv4Addr::from(tpa),
    });
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

    /// The decoder this module replaced (etherparse's lax slicing), kept as the oracle.
    fn reference(link: LinkType, data: &[u8]) -> Option<(Option<MacAddr>, Vec<u16>, Net, String)> {
        use etherparse::{
            ArpOperation, EtherType, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, LinkSlice,
            TransportSlice,
        };
        let (sliced, cooked) = match link {
            LinkType::Ethernet => (LaxSlicedPacket::from_ethernet(data).ok()?, None),
            LinkType::LinuxSll | LinkType::LinuxSll2 => return None,
            LinkType::RawIp => (LaxSlicedPacket::from_ip(data).ok()?, None),
            LinkType::Null => (LaxSlicedPacket::from_ip(data.get(4..)?).ok()?, None),
        };
        let _ = (EtherType(0), cooked.unwrap_or(0u8));
        let src = match &sliced.link {
            Some(LinkSlice::Ethernet2(e)) => Some(MacAddr(e.source())),
            _ => None,
        };
        let vlans = sliced
            .link_exts
            .iter()
            .filter_map(|e| match e {
                LaxLinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
                _ => None,
            })
            .take(2)
            .collect();
        let mut incomplete = false;
        let net = match &sliced.net {
            None => Net::None,
            Some(LaxNetSlice::Ipv4(ip)) => {
                incomplete = ip.payload().incomplete;
                Net::Ip {
                    src: IpAddr::V4(ip.header().source_addr()),
                    dst: IpAddr::V4(ip.header().destination_addr()),
                    fragmented: ip.is_payload_fragmented(),
                }
            }
            Some(LaxNetSlice::Ipv6(ip)) => {
                incomplete = ip.payload().incomplete;
                Net::Ip {
                    src: IpAddr::V6(ip.header().source_addr()),
                    dst: IpAddr::V6(ip.header().destination_addr()),
                    fragmented: ip.is_payload_fragmented(),
                }
            }
            Some(LaxNetSlice::Arp(a)) if a.hw_addr_size() == 6 && a.proto_addr_size() == 4 => {
                Net::Arp(Arp {
                    is_reply: a.operation() == ArpOperation::REPLY,
                    sender_mac: MacAddr(a.sender_hw_addr().try_into().ok()?),
                    sender_ip: Ipv4Addr::from(<[u8; 4]>::try_from(a.sender_protocol_addr()).ok()?),
                    target_ip: Ipv4Addr::from(<[u8; 4]>::try_from(a.target_protocol_addr()).ok()?),
                })
            }
            Some(LaxNetSlice::Arp(_)) => Net::None,
        };
        let transport = match &sliced.transport {
            Some(TransportSlice::Tcp(t)) => format!(
                "tcp {} {} {} {}{}{}{} {:?} {}",
                t.source_port(),
                t.destination_port(),
                t.sequence_number(),
                t.syn(),
                t.ack(),
                t.fin(),
                t.rst(),
                t.payload(),
                incomplete
            ),
            Some(TransportSlice::Udp(u)) => format!(
                "udp {} {} {:?} {}",
                u.source_port(),
                u.destination_port(),
                u.payload(),
                incomplete
            ),
            _ => "none".to_owned(),
        };
        Some((src, vlans, net, transport))
    }

    fn summary(f: &Frame<'_>) -> (Option<MacAddr>, Vec<u16>, Net, String) {
        let transport = match f.transport {
            Transport::Tcp(t) => format!(
                "tcp {} {} {} {}{}{}{} {:?} {}",
                t.src_port, t.dst_port, t.seq, t.syn, t.ack, t.fin, t.rst, t.payload, t.truncated
            ),
            Transport::Udp(u) => format!(
                "udp {} {} {:?} {}",
                u.src_port, u.dst_port, u.payload, u.truncated
            ),
            Transport::None => "none".to_owned(),
        };
        (f.src_mac, f.vlans.as_slice().to_vec(), f.net, transport)
    }

    /// Every frame of every fixture capture, whole and cut at every length, decodes as the
    /// etherparse-based decoder it replaced did (where that one decoded it at all).
    #[test]
    fn agrees_with_etherparse_on_every_fixture_frame() {
        use pcap_parser::traits::PcapReaderIterator;
        use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut paths: Vec<_> = std::fs::read_dir(root.join("tests/fixtures"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("pcap"))
            .collect();
        paths.push(root.join("examples/sample-site.pcap"));
        let mut frames = 0;
        for path in paths {
            let file = std::fs::File::open(&path).unwrap();
            let mut reader = LegacyPcapReader::new(1 << 20, file).unwrap();
            let mut link = None;
            loop {
                match reader.next() {
                    Ok((n, block)) => {
                        match block {
                            PcapBlockOwned::LegacyHeader(h) => {
                                link = LinkType::from_linktype(h.network.0 as u32)
                            }
                            PcapBlockOwned::Legacy(b) => {
                                let Some(lt) = link else { break };
                                let data = b.data;
                                let step = if data.len() > 400 { 7 } else { 1 };
                                for cut in (0..=data.len()).step_by(step).chain([data.len()]) {
                                    let bytes = &data[..cut];
                                    let Some(want) = reference(lt, bytes) else {
                                        continue;
                                    };
                                    let got = decode(lt, bytes).unwrap_or_else(|e| {
                                        panic!("{}: cut {cut}: {e}", path.display())
                                    });
                                    assert_eq!(
                                        summary(&got),
                                        want,
                                        "{}: cut {cut}",
                                        path.display()
                                    );
                                }
                                frames += 1;
                            }
                            PcapBlockOwned::NG(_) => {}
                        }
                        reader.consume(n);
                    }
                    Err(PcapError::Eof) => break,
                    Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
                    Err(e) => panic!("{}: {e:?}", path.display()),
                }
            }
        }
        assert!(frames > 1000, "only {frames} frames");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            for lt in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Null] {
                let _ = decode(lt, &bytes);
            }
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
