//! Streaming reader for pcap and pcapng files (any mix of sections and interfaces), built on
//! pcap-parser: blocks are parsed in place from a fixed-size buffer, so memory does not grow
//! with the file.

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError};
use ward_protocols::frame::LinkType;

/// One packet as stored in the capture.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time, microseconds since the Unix epoch.
    pub time_us: i64,
    /// The interface's `LINKTYPE_*` value.
    pub linktype: u32,
    /// [`LinkType`] when ward decodes that link type.
    pub link: Option<LinkType>,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub wire_len: u32,
}

/// Counts from reading a capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Packets delivered.
    pub packets: u64,
    /// Captured bytes delivered.
    pub bytes: u64,
    /// Packets whose link type ward does not decode (still delivered, with `link: None`).
    pub unknown_link: u64,
    /// The capture ended in the middle of a block: everything before it was read.
    pub truncated: bool,
}

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not a pcap or pcapng file, or a damaged header.
    #[error("not a pcap/pcapng capture or damaged header: {0}")]
    Format(String),
    /// A block is damaged at this point of the file.
    #[error("damaged capture block after {packets} packets: {detail}")]
    Block {
        /// Packets read before the damage.
        packets: u64,
        /// What pcap-parser said.
        detail: String,
    },
    /// Reading the underlying file failed.
    #[error("reading capture: {0}")]
    Io(String),
}

const INITIAL_BUFFER: usize = 256 * 1024;
const MAX_BUFFER: usize = 16 << 20;

struct Iface {
    linktype: u32,
    ts_resolution: u64,
    ts_offset: i64,
}

/// Hands pcap-parser the file header in one piece, then reports one empty read.
///
/// `create_reader` reads once to sniff the format and the reader it builds reads again before
/// parsing the header; on a pipe whose writer has sent only a little (`tcpdump -w - | …` on a
/// quiet port) that second read would block until more traffic arrives. Serving the whole
/// header first and an empty read second lets parsing start at once; later reads go straight
/// through.
struct HeaderFirst<R> {
    header: Vec<u8>,
    state: u8,
    inner: R,
}

impl<R: Read> HeaderFirst<R> {
    fn new(mut inner: R) -> std::io::Result<Self> {
        let mut header = vec![0u8; 8];
        inner.read_exact(&mut header)?;
        // pcapng: the section header block's own length (bytes 4..8, in the section's byte
        // order, told by the magic at 8..12); legacy pcap: a fixed 24-byte header.
        let want = if header.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            let mut bom = [0u8; 4];
            inner.read_exact(&mut bom)?;
            header.extend_from_slice(&bom);
            let len_bytes = [header[4], header[5], header[6], header[7]];
            let len = if bom == [0x4d, 0x3c, 0x2b, 0x1a] {
                u32::from_le_bytes(len_bytes)
            } else {
                u32::from_be_bytes(len_bytes)
            };
            (len as usize).clamp(12, 1 << 16)
        } else {
            24
        };
        let have = header.len();
        header.resize(want.max(have), 0);
        inner.read_exact(&mut header[have..])?;
        Ok(HeaderFirst {
            header,
            state: 0,
            inner,
        })
    }
}

impl<R: Read> Read for HeaderFirst<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.state {
            0 => {
                let n = self.header.len().min(buf.len());
                buf[..n].copy_from_slice(&self.header[..n]);
                self.header.drain(..n);
                if self.header.is_empty() {
                    self.state = 1;
                }
                Ok(n)
            }
            1 => {
                self.state = 2;
                Ok(0)
            }
            _ => self.inner.read(buf),
        }
    }
}

/// Reads every packet of a pcap or pcapng stream, calling `on_packet` for each.
pub fn read_packets<R: Read + Send>(
    input: R,
    mut on_packet: impl FnMut(Packet<'_>),
) -> Result<ReadStats, ReadError> {
    let input = HeaderFirst::new(input)
        .map_err(|e| ReadError::Format(format!("reading the capture header: {e}")))?;
    // Small enough to stay in cache (1 MiB reads ran markedly slower here), large enough for
    // any ordinary frame; grown on demand.
    let mut capacity = INITIAL_BUFFER;
    let mut reader = pcap_parser::create_reader(capacity, input)
        .map_err(|e| ReadError::Format(format!("{e:?}")))?;
    let mut stats = ReadStats::default();
    let mut legacy_linktype = 1u32;
    let mut legacy_nanos = false;
    let mut ifaces: Vec<Iface> = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let pkt = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_linktype = h.network.0 as u32;
                        legacy_nanos = h.is_nanosecond_precision();
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = i64::from(b.ts_usec);
                        let us = if legacy_nanos { frac / 1000 } else { frac };
                        let len = (b.caplen as usize).min(b.data.len());
                        Some(Packet {
                            time_us: i64::from(b.ts_sec) * 1_000_000 + us,
                            linktype: legacy_linktype,
                            link: LinkType::from_linktype(legacy_linktype),
                            data: b.data.get(..len).unwrap_or(b.data),
                            wire_len: b.origlen,
                        })
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        ifaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push(Iface {
                            linktype: idb.linktype.0 as u32,
                            ts_resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            ts_offset: idb.ts_offset(),
                        });
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        ifaces.get(epb.if_id as usize).map(|iface| {
                            let (sec, frac) =
                                epb.decode_ts(iface.ts_offset as u64, iface.ts_resolution);
                            let us = (u128::from(frac) * 1_000_000
                                / u128::from(iface.ts_resolution.max(1)))
                                as i64;
                            let len = (epb.caplen as usize).min(epb.data.len());
                            Packet {
                                time_us: i64::from(sec) * 1_000_000 + us,
                                linktype: iface.linktype,
                                link: LinkType::from_linktype(iface.linktype),
                                data: epb.data.get(..len).unwrap_or(epb.data),
                                wire_len: epb.origlen,
                            }
                        })
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        ifaces.first().map(|iface| Packet {
                            time_us: 0,
                            linktype: iface.linktype,
                            link: LinkType::from_linktype(iface.linktype),
                            data: spb.data,
                            wire_len: spb.origlen,
                        })
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some(p) = pkt {
                    stats.packets += 1;
                    stats.bytes += p.data.len() as u64;
                    if p.link.is_none() {
                        stats.unknown_link += 1;
                    }
                    on_packet(p);
                }
                reader.consume_noshift(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::UnexpectedEof) => {
                stats.truncated = true;
                break;
            }
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    // A capture cut short (tcpdump killed, disk full) is common; keep what was
                    // read and say so rather than discard it.
                    stats.truncated = true;
                    break;
                }
                // A block larger than the buffer (e.g. GRO super-frames with a large snap
                // length): grow, within a bound, rather than spin.
                if reader.data().len() >= capacity {
                    if capacity >= MAX_BUFFER {
                        return Err(ReadError::Block {
                            packets: stats.packets,
                            detail: format!("a block is larger than {MAX_BUFFER} bytes"),
                        });
                    }
                    capacity *= 2;
                    reader.grow(capacity);
                }
                reader.refill().map_err(|e| ReadError::Block {
                    packets: stats.packets,
                    detail: format!("{e:?}"),
                })?;
            }
            Err(e) => {
                return Err(ReadError::Block {
                    packets: stats.packets,
                    detail: format!("{e:?}"),
                })
            }
        }
    }
    Ok(stats)
}
