//! Streaming reader for pcap and pcapng files (any mix of sections and interfaces), built on
//! pcap-parser: blocks are parsed in place from a fixed-size buffer, so memory does not grow
//! with the file.
//!
//! Errors and counters never carry a byte of the capture. pcap-parser's parse errors hold the
//! unparsed input — packets, patient data and all — so they are never formatted: each is
//! mapped here to a [`ReadError`] naming the file, the byte offset and a fixed description.

use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError};

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
    /// Packets not delivered because their pcapng block names an interface its section never
    /// described (an EPB's interface id out of range, an SPB before any IDB): without a link
    /// type they cannot be decoded.
    pub unknown_interface: u64,
    /// Byte offset of the first of those blocks.
    pub unknown_interface_first_at: Option<u64>,
    /// The capture ended in the middle of a block: everything before it was read.
    pub truncated: bool,
    /// Byte offset of the block the capture ends in.
    pub truncated_at: Option<u64>,
}

/// What was wrong with a capture: a fixed description, never a value read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The input ends inside the file header.
    TruncatedHeader,
    /// The first bytes are neither a pcap nor a pcapng magic number, or the file header is
    /// damaged.
    BadMagic,
    /// A pcapng block that cannot be parsed (invalid length or contents); names the block
    /// type when the type field holds a known one.
    DamagedBlock(&'static str),
    /// A block or record declares more bytes than the reader holds at once
    /// ([`MAX_BLOCK_BYTES`]).
    TooLarge,
    /// Reading the input failed.
    Io(io::ErrorKind),
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::TruncatedHeader => f.write_str("file header truncated"),
            Damage::BadMagic => f.write_str(
                "not a pcap or pcapng capture (unrecognised magic number or damaged file header)",
            ),
            Damage::DamagedBlock(block) => {
                write!(
                    f,
                    "damaged pcapng {block} (invalid block length or contents)"
                )
            }
            Damage::TooLarge => write!(
                f,
                "block larger than {} MiB (damaged length field)",
                MAX_BLOCK_BYTES >> 20
            ),
            Damage::Io(kind) => write!(f, "read error ({kind})"),
        }
    }
}

/// Why a capture could not be read (further): the file, the byte offset in it and what was
/// wrong. Every packet before that offset was delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {damage} at byte offset {offset} (after {} packets)", stats.packets)]
pub struct ReadError {
    /// The capture's name as given (a path, or `-` for standard input).
    pub file: String,
    /// Byte offset in the file where the damage is.
    pub offset: u64,
    /// What was wrong.
    pub damage: Damage,
    /// What was read before it (boxed: errors stay small).
    pub stats: Box<ReadStats>,
}

const INITIAL_BUFFER: usize = 256 * 1024;
/// The largest block (or legacy record) the reader accepts; a larger length field is treated
/// as damage, so a hostile length never makes the reader allocate more than this.
pub const MAX_BLOCK_BYTES: usize = 16 << 20;

struct Iface {
    linktype: u32,
    ts_resolution: u64,
    ts_offset: i64,
}

/// The last I/O error the input returned: pcap-parser reports a failed read without its
/// cause.
type IoSlot = Arc<Mutex<Option<io::ErrorKind>>>;

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
    io_error: IoSlot,
}

/// Reads until `buf` is full; on failure, how many bytes it holds and why it stopped.
fn fill<R: Read>(inner: &mut R, buf: &mut [u8]) -> Result<(), (usize, Damage)> {
    let mut have = 0;
    while have < buf.len() {
        match inner.read(&mut buf[have..]) {
            Ok(0) => return Err((have, Damage::TruncatedHeader)),
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((have, Damage::Io(e.kind()))),
        }
    }
    Ok(())
}

impl<R: Read> HeaderFirst<R> {
    /// Reads the file header; on failure, the offset reached and what was wrong.
    fn new(mut inner: R, io_error: IoSlot) -> Result<Self, (u64, Damage)> {
        let mut header = vec![0u8; 8];
        fill(&mut inner, &mut header).map_err(|(n, d)| (n as u64, d))?;
        // pcapng: the section header block's own length (bytes 4..8, in the section's byte
        // order, told by the magic at 8..12); legacy pcap: a fixed 24-byte header.
        let want = if header.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            let mut bom = [0u8; 4];
            fill(&mut inner, &mut bom).map_err(|(n, d)| (8 + n as u64, d))?;
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
        fill(&mut inner, &mut header[have..]).map_err(|(n, d)| ((have + n) as u64, d))?;
        Ok(HeaderFirst {
            header,
            state: 0,
            inner,
            io_error,
        })
    }
}

impl<R: Read> Read for HeaderFirst<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
            _ => loop {
                match self.inner.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        *self.io_error.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(e.kind());
                        return Err(e);
                    }
                    ok => return ok,
                }
            },
        }
    }
}

fn last_io(slot: &IoSlot) -> io::ErrorKind {
    slot.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unwrap_or(io::ErrorKind::Other)
}

/// How reading stopped or paused, without pcap-parser's error (which may hold input bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Eof,
    Truncated,
    Incomplete,
    TooSmall,
    Io,
    Damaged,
}

/// The name of a pcapng block type, from a fixed table; `None` for anything else.
fn block_name(block_type: u32) -> Option<&'static str> {
    use pcap_parser::pcapng::*;
    Some(match block_type {
        SHB_MAGIC => "Section Header Block",
        IDB_MAGIC => "Interface Description Block",
        SPB_MAGIC => "Simple Packet Block",
        NRB_MAGIC => "Name Resolution Block",
        ISB_MAGIC => "Interface Statistics Block",
        EPB_MAGIC => "Enhanced Packet Block",
        SJE_MAGIC => "systemd Journal Export Block",
        DSB_MAGIC => "Decryption Secrets Block",
        CB_MAGIC | DCB_MAGIC => "Custom Block",
        PIB_MAGIC => "Process Information Block",
        _ => return None,
    })
}

/// Describes the damaged block at the start of `data` without quoting any of it: the block
/// type's name when it is a known one, else "block".
fn damaged_block(data: &[u8], big_endian: bool) -> Damage {
    let ty = data
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(|b| {
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        });
    Damage::DamagedBlock(ty.and_then(block_name).unwrap_or("block"))
}

/// Reads every packet of a pcap or pcapng stream, calling `on_packet` for each. Errors name
/// the input "capture"; [`read_packets_from`] names it.
pub fn read_packets<R: Read + Send>(
    input: R,
    on_packet: impl FnMut(Packet<'_>),
) -> Result<ReadStats, ReadError> {
    read_packets_from("capture", input, on_packet)
}

/// Reads every packet of the pcap or pcapng stream `file` (its name, for errors), calling
/// `on_packet` for each. On damage, every packet before it has been delivered and the error
/// says where it is.
pub fn read_packets_from<R: Read + Send>(
    file: &str,
    input: R,
    mut on_packet: impl FnMut(Packet<'_>),
) -> Result<ReadStats, ReadError> {
    let mut stats = ReadStats::default();
    let fail = |offset: u64, damage: Damage, stats: ReadStats| ReadError {
        file: file.to_owned(),
        offset,
        damage,
        stats: Box::new(stats),
    };
    let io_error: IoSlot = Arc::default();
    let input = HeaderFirst::new(input, io_error.clone())
        .map_err(|(offset, damage)| fail(offset, damage, stats))?;
    // Small enough to stay in cache (1 MiB reads ran markedly slower here), large enough for
    // any ordinary frame; grown on demand.
    let mut capacity = INITIAL_BUFFER;
    let mut reader = pcap_parser::create_reader(capacity, input).map_err(|e| {
        let damage = match e {
            PcapError::Eof | PcapError::Incomplete(_) | PcapError::UnexpectedEof => {
                Damage::TruncatedHeader
            }
            PcapError::ReadError => Damage::Io(last_io(&io_error)),
            // HeaderNotRecognized, a section header that does not parse, BufferTooSmall.
            _ => Damage::BadMagic,
        };
        fail(0, damage, stats)
    })?;
    let mut legacy_linktype = 1u32;
    let mut legacy_nanos = false;
    let mut big_endian = false;
    let mut ifaces: Vec<Iface> = Vec::new();
    loop {
        // The reader counts every byte consumed since the start of the file.
        let at = reader.consumed() as u64;
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
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        big_endian = shb.big_endian();
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
                        match ifaces.get(epb.if_id as usize) {
                            Some(iface) => {
                                let (sec, frac) =
                                    epb.decode_ts(iface.ts_offset as u64, iface.ts_resolution);
                                let us = (u128::from(frac) * 1_000_000
                                    / u128::from(iface.ts_resolution.max(1)))
                                    as i64;
                                let len = (epb.caplen as usize).min(epb.data.len());
                                Some(Packet {
                                    time_us: i64::from(sec) * 1_000_000 + us,
                                    linktype: iface.linktype,
                                    link: LinkType::from_linktype(iface.linktype),
                                    data: epb.data.get(..len).unwrap_or(epb.data),
                                    wire_len: epb.origlen,
                                })
                            }
                            None => {
                                stats.unknown_interface += 1;
                                stats.unknown_interface_first_at.get_or_insert(at);
                                None
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match ifaces.first() {
                        Some(iface) => Some(Packet {
                            time_us: 0,
                            linktype: iface.linktype,
                            link: LinkType::from_linktype(iface.linktype),
                            data: spb.data,
                            wire_len: spb.origlen,
                        }),
                        None => {
                            stats.unknown_interface += 1;
                            stats.unknown_interface_first_at.get_or_insert(at);
                            None
                        }
                    },
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
            // Classified without keeping the error: NomError / OwnedNomError hold the
            // unparsed input, which is dropped unread.
            Err(e) => {
                let stop = match e {
                    PcapError::Eof => Stop::Eof,
                    PcapError::UnexpectedEof => Stop::Truncated,
                    PcapError::Incomplete(_) => Stop::Incomplete,
                    PcapError::BufferTooSmall => Stop::TooSmall,
                    PcapError::ReadError => Stop::Io,
                    _ => Stop::Damaged,
                };
                match stop {
                    Stop::Eof => break,
                    Stop::Truncated => {
                        stats.truncated = true;
                        stats.truncated_at = Some(at);
                        break;
                    }
                    Stop::Incomplete if reader.reader_exhausted() => {
                        // A capture cut short (tcpdump killed, disk full) is common; keep
                        // what was read and say so rather than discard it.
                        stats.truncated = true;
                        stats.truncated_at = Some(at);
                        break;
                    }
                    Stop::Incomplete | Stop::TooSmall => {
                        // A block larger than the buffer (e.g. GRO super-frames with a large
                        // snap length): grow, within a bound, rather than spin.
                        if stop == Stop::TooSmall || reader.data().len() >= capacity {
                            if capacity >= MAX_BLOCK_BYTES {
                                return Err(fail(at, Damage::TooLarge, stats));
                            }
                            capacity = (capacity * 2).min(MAX_BLOCK_BYTES);
                            reader.grow(capacity);
                        }
                        if reader.refill().is_err() {
                            return Err(fail(at, Damage::Io(last_io(&io_error)), stats));
                        }
                    }
                    Stop::Io => return Err(fail(at, Damage::Io(last_io(&io_error)), stats)),
                    Stop::Damaged => {
                        let damage = damaged_block(reader.data(), big_endian);
                        return Err(fail(at, damage, stats));
                    }
                }
            }
        }
    }
    Ok(stats)
}

/// Reads a whole capture held in memory, checking the reader's contract; the entry point of
/// the `pcap` fuzz target and of its corpus replay (`tests/tests/fuzz_corpus.rs`). Panics — a
/// fuzzer finding — when a packet lies outside the input, the counts disagree with what was
/// delivered, or an error points past the input or grows with it (it would be quoting it).
pub fn fuzz_read(data: &[u8]) {
    let (mut packets, mut bytes) = (0u64, 0u64);
    let result = read_packets(data, |p| {
        assert!(p.data.len() <= data.len(), "packet larger than the input");
        assert_eq!(p.link, LinkType::from_linktype(p.linktype));
        packets += 1;
        bytes += p.data.len() as u64;
    });
    let stats = match result {
        Ok(stats) => stats,
        Err(e) => {
            assert!(e.offset <= data.len() as u64, "error offset past the input");
            assert!(
                e.to_string().len() < 256,
                "error message grows with the input"
            );
            *e.stats
        }
    };
    assert_eq!((stats.packets, stats.bytes), (packets, bytes));
    assert!(bytes <= data.len() as u64);
    assert!(stats.truncated_at.is_none_or(|at| at <= data.len() as u64));
    assert!(stats
        .unknown_interface_first_at
        .is_none_or(|at| at <= data.len() as u64));
}

#[cfg(test)]
mod tests {
    //! The reader on real captured bytes (the fixture captures), every truncation of small
    //! captures, byte-order and resolution variants of real files, and mutations.

    use super::*;
    use proptest::prelude::*;

    const DHCP: &[u8] = include_bytes!("../../tests/fixtures/dhcp.pcap");
    const DCMTK: &[u8] = include_bytes!("../../tests/fixtures/dicom-dcmtk.pcap");
    const DCMTK_NG: &[u8] = include_bytes!("../../tests/fixtures/dicom-dcmtk.pcapng");
    const SLL: &[u8] = include_bytes!("../../tests/fixtures/dicom-sll.pcap");
    const SLL2: &[u8] = include_bytes!("../../tests/fixtures/hl7-sll2.pcap");
    const NULL: &[u8] = include_bytes!("../../tests/fixtures/hl7-null.pcap");
    const QINQ: &[u8] = include_bytes!("../../tests/fixtures/qinq.pcap");
    /// A pcapng from another project (Null link type, one packet). Third-party captures are
    /// not copied into the repository: it is read at test time from `../shared/captures/public/`
    /// beside the checkout.
    fn arq_ng() -> &'static [u8] {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BYTES.get_or_init(|| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/captures/public/dicom_arq_1_find_testclient.pcap");
            std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "public capture {} is missing ({e}): third-party captures are read from \
                     ../shared/captures/public/ beside the checkout",
                    path.display()
                )
            })
        })
    }

    /// One packet as (time, linktype, bytes, wire length).
    type Pkt = (i64, u32, Vec<u8>, u32);
    /// Every packet, and how reading ended.
    type Packets = (Vec<Pkt>, Result<ReadStats, ReadError>);
    /// (capture, linktype, packets, captured bytes, first and last time in µs).
    type Case = (&'static [u8], u32, u64, u64, i64, i64);

    fn read(input: impl io::Read + Send) -> Packets {
        let mut v = Vec::new();
        let r = read_packets(input, |p| {
            v.push((p.time_us, p.linktype, p.data.to_vec(), p.wire_len));
        });
        (v, r)
    }

    fn read_ok(input: &[u8]) -> (Vec<Pkt>, ReadStats) {
        let (v, r) = read(input);
        (v, r.unwrap_or_else(|e| panic!("{e}")))
    }

    /// (blocks) of a little-endian pcapng.
    fn blocks(ng: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 12 <= ng.len() {
            let len = u32::from_le_bytes(ng[at + 4..at + 8].try_into().unwrap()) as usize;
            out.push(&ng[at..at + len]);
            at += len;
        }
        assert_eq!(at, ng.len());
        out
    }

    /// The first blocks of a pcapng, at most `max` bytes (a small real capture).
    fn ng_prefix(ng: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for b in blocks(ng) {
            if out.len() + b.len() > max {
                break;
            }
            out.extend_from_slice(b);
        }
        out
    }

    /// The record boundaries of a legacy pcap.
    fn record_ends(pcap: &[u8]) -> Vec<usize> {
        let mut ends = vec![24];
        let mut at = 24;
        while at + 16 <= pcap.len() {
            let cap = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
            at += 16 + cap;
            ends.push(at);
        }
        ends
    }

    #[test]
    fn fixture_captures_read_as_their_record_headers_say() {
        // Counts and times from the files' own record and block headers (read with a few lines
        // of Python's struct; regenerating the fixtures changes them).
        let cases: [Case; 7] = [
            (DHCP, 1, 4, 1580, 1796515688074617, 1796515688078373),
            (DCMTK, 1, 98, 24584, 1796437366648232, 1796437367071561),
            (DCMTK_NG, 1, 98, 24584, 1796437366648232, 1796437367071561),
            (SLL, 113, 58, 19305, 1796437375246393, 1796437375444551),
            (SLL2, 276, 13, 1476, 1796437374493662, 1796437374497218),
            (NULL, 0, 33, 4419, 1796437370887738, 1796437371292791),
            (arq_ng(), 0, 1, 739, 1542403616208085, 1542403616208085),
        ];
        for (bytes, linktype, packets, total, first, last) in cases {
            let (v, stats) = read_ok(bytes);
            assert_eq!((stats.packets, stats.bytes), (packets, total));
            assert!(!stats.truncated && stats.unknown_link == 0);
            assert!(v.iter().all(|p| p.1 == linktype));
            assert_eq!(v.first().unwrap().0, first);
            assert_eq!(v.last().unwrap().0, last);
            assert!(v.iter().all(|p| p.3 as usize >= p.2.len()));
        }
        assert_eq!(read_ok(QINQ).1.packets, 22);
    }

    #[test]
    fn pcap_and_pcapng_of_the_same_capture_give_the_same_packets() {
        assert_eq!(read_ok(DCMTK).0, read_ok(DCMTK_NG).0);
    }

    /// A reader that returns at most `n` bytes per call, like a pipe.
    struct Trickle<'a>(&'a [u8], usize);

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_pipe_delivering_a_few_bytes_at_a_time_reads_the_same() {
        for cap in [DHCP, SLL2, arq_ng(), DCMTK_NG] {
            let whole = read_ok(cap);
            for n in [1, 3, 7, 1000] {
                let (v, r) = read(Trickle(cap, n));
                assert_eq!((v, r.unwrap()), whole, "{n} bytes per read");
            }
        }
    }

    /// Every prefix of `cap` either reads an exact prefix of its packets (saying so when it
    /// ends inside a record or block) or fails with an offset inside the prefix; never panics.
    fn check_every_truncation(cap: &[u8]) {
        let (all, full) = read_ok(cap);
        for len in 0..cap.len() {
            let cut = &cap[..len];
            let (v, r) = read(cut);
            assert!(
                v.len() <= all.len(),
                "{len}: more packets than the whole file"
            );
            assert_eq!(
                v[..],
                all[..v.len()],
                "{len}: packets differ from the whole file's"
            );
            match r {
                Ok(stats) => {
                    assert_eq!(stats.packets, v.len() as u64);
                    assert!(stats.packets <= full.packets);
                    if stats.truncated {
                        assert!(stats.truncated_at.is_some_and(|at| at <= len as u64));
                    }
                }
                Err(e) => {
                    assert!(e.offset <= len as u64, "{len}: error offset {}", e.offset);
                    assert_eq!(e.stats.packets, v.len() as u64);
                    assert!(e.to_string().len() < 256, "{len}: {e}");
                }
            }
        }
    }

    #[test]
    fn every_truncation_of_a_small_pcap_reads_fewer_packets_or_fails() {
        check_every_truncation(DHCP);
        check_every_truncation(SLL2);
        // Cut exactly at a record boundary: exactly the records before it, not truncated.
        for (k, &end) in record_ends(DHCP).iter().enumerate() {
            let (v, stats) = read_ok(&DHCP[..end]);
            assert_eq!(v.len(), k);
            assert!(!stats.truncated);
        }
        // Cut inside a record: the records before it, flagged truncated at its offset.
        let ends = record_ends(DHCP);
        let (v, stats) = read_ok(&DHCP[..ends[2] + 20]);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (stats.truncated, stats.truncated_at),
            (true, Some(ends[2] as u64))
        );
    }

    #[test]
    fn every_truncation_of_a_small_pcapng_reads_fewer_packets_or_fails() {
        check_every_truncation(arq_ng());
        let small = ng_prefix(DCMTK_NG, 4096);
        assert!(read_ok(&small).1.packets >= 5);
        check_every_truncation(&small);
    }

    #[test]
    fn big_endian_and_nanosecond_pcap_read_the_same_packets() {
        let want = read_ok(DHCP).0;
        // Byte-swapped headers (a capture written on a big-endian host).
        let mut be = DHCP.to_vec();
        for (at, width) in [(0, 4), (4, 2), (6, 2), (8, 4), (12, 4), (16, 4), (20, 4)] {
            be[at..at + width].reverse();
        }
        let ends = record_ends(DHCP);
        for &start in &ends[..ends.len() - 1] {
            for f in 0..4 {
                be[start + 4 * f..start + 4 * f + 4].reverse();
            }
        }
        assert_eq!(read_ok(&be).0, want);
        // Nanosecond resolution: same times after scaling.
        let mut ns = DHCP.to_vec();
        ns[..4].copy_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        for &start in &ends[..ends.len() - 1] {
            let us = u32::from_le_bytes(ns[start + 4..start + 8].try_into().unwrap());
            ns[start + 4..start + 8].copy_from_slice(&(us * 1000 + 999).to_le_bytes());
        }
        assert_eq!(read_ok(&ns).0, want);
    }

    #[test]
    fn sections_and_interfaces_of_real_pcapngs_combine() {
        // Two sections: the Null-link capture, then the Ethernet one.
        let small = ng_prefix(DCMTK_NG, 4096);
        let mut two = arq_ng().to_vec();
        two.extend_from_slice(&small);
        let (v, _) = read_ok(&two);
        let (a, b) = (read_ok(arq_ng()).0, read_ok(&small).0);
        assert_eq!(v.len(), a.len() + b.len());
        assert_eq!(v[..a.len()], a[..]);
        assert_eq!(v[a.len()..], b[..]);
        // One section, two interfaces: the Null IDB added as interface 1 and its packet
        // re-pointed at it, after the Ethernet interface's packets.
        let arq = blocks(arq_ng());
        let idb = arq.iter().find(|b| b[..4] == 1u32.to_le_bytes()).unwrap();
        let mut epb = arq
            .iter()
            .find(|b| b[..4] == 6u32.to_le_bytes())
            .unwrap()
            .to_vec();
        epb[8..12].copy_from_slice(&1u32.to_le_bytes());
        let mut one = small.clone();
        one.extend_from_slice(idb);
        one.extend_from_slice(&epb);
        let (v, stats) = read_ok(&one);
        assert_eq!(v.len(), b.len() + 1);
        assert_eq!(v.last().unwrap(), &a[0]);
        assert_eq!(stats.unknown_interface, 0);
        // The same packet naming interface 2, which the section never described: counted.
        epb[8..12].copy_from_slice(&2u32.to_le_bytes());
        let mut bad = small.clone();
        bad.extend_from_slice(&epb);
        let (v, stats) = read_ok(&bad);
        assert_eq!(v.len(), b.len());
        assert_eq!(stats.unknown_interface, 1);
        assert_eq!(stats.unknown_interface_first_at, Some(small.len() as u64));
    }

    #[test]
    fn damage_is_reported_at_its_offset_without_input_bytes() {
        // A pcapng block length made impossible in the middle of a real capture.
        let small = ng_prefix(DCMTK_NG, 4096);
        let bl = blocks(&small);
        let at: usize = bl[..3].iter().map(|b| b.len()).sum();
        let mut bad = small.clone();
        bad[at + 4..at + 8].copy_from_slice(&8u32.to_le_bytes());
        let (v, r) = read(&bad[..]);
        let e = r.unwrap_err();
        assert_eq!(e.offset, at as u64);
        assert_eq!(e.stats.packets, v.len() as u64);
        assert!(matches!(e.damage, Damage::DamagedBlock(_)), "{e}");
        // Not a capture: a bad magic at offset 0.
        let e = read(&b"MSH|^~\\&|CANARY|PATIENT|DATA|HERE|20240101||ORU^R01|1|P|2.6\r"[..])
            .1
            .unwrap_err();
        assert_eq!((e.offset, e.damage), (0, Damage::BadMagic));
        assert!(!e.to_string().contains("CANARY"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Random byte changes anywhere in a real capture never panic the reader.
        #[test]
        fn mutated_real_captures_never_panic(
            which in 0usize..3,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let base: &[u8] = [DHCP, SLL2, arq_ng()][which];
            let mut data = base.to_vec();
            for (at, b) in edits {
                let i = at % data.len();
                data[i] = b;
            }
            data.truncate(cut % (data.len() + 1));
            fuzz_read(&data);
        }
    }
}
