//! SSH (RFC 4253 §4.2): the identification string each side sends before key exchange,
//! `SSH-protoversion-softwareversion SP comments CRLF`.
//!
//! The banner names the implementation and often the OS build (`SSH-2.0-OpenSSH_9.6p1
//! Ubuntu-3ubuntu13.5`, `SSH-2.0-dropbear_2022.83`): an embedded device's SSH server is one of
//! the few things it says about itself in the clear. Everything after the banner is encrypted
//! or key exchange, so each direction is done once its banner is read.
//!
//! The server may send other lines before its banner (§4.2); they are skipped unread, up to
//! [`MAX_PREAMBLE`] bytes. A banner is at most 255 characters including CRLF; a longer line is
//! cut to the evidence bound. Each banner describes the side that sent it, so no TCP direction
//! is needed.

use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};
use crate::{Feed, StreamDecoder};

/// Bytes of lines before the banner that are skipped before a direction is declared not SSH.
pub const MAX_PREAMBLE: usize = 1024;
/// Longest line waited for: RFC 4253 allows 255 characters for the banner; other lines have
/// no stated limit, so a generous bound.
pub const MAX_LINE: usize = 1024;

/// SSH's entry in [`crate::registry`].
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Ssh,
    probe: |prefix| Probe::from(looks_like_ssh(prefix)),
    resync: None,
    decode: Decode::Stream(|| Box::new(SshDecoder::default())),
};

/// Tells whether a stream direction starts with an SSH identification string, possibly after
/// lines of printable text (a server's pre-banner lines).
///
/// `Some(true)`: a line starting `SSH-<digits>.<digits>-`; `Some(false)`: bytes that are not
/// text lines, or [`MAX_PREAMBLE`] bytes without a banner; `None`: too few bytes yet.
#[must_use]
pub fn looks_like_ssh(prefix: &[u8]) -> Option<bool> {
    let mut rest = prefix;
    let mut skipped = 0usize;
    loop {
        match banner_start(rest) {
            Some(true) => return Some(true),
            None => return None,
            Some(false) => {}
        }
        // Not a banner: a pre-banner line of text (which may not start with "SSH-", §4.2), or
        // not SSH at all.
        if rest.starts_with(b"SSH-") {
            return Some(false);
        }
        let end = rest.iter().position(|&b| b == b'\n');
        let line = end.map_or(rest, |e| rest.get(..e).unwrap_or(&[]));
        if !line
            .iter()
            .all(|&b| b == b'\t' || b == b'\r' || (0x20..0x7f).contains(&b) || b >= 0x80)
        {
            return Some(false);
        }
        let Some(end) = end else {
            return if skipped + rest.len() < MAX_PREAMBLE {
                None
            } else {
                Some(false)
            };
        };
        skipped += end + 1;
        if skipped >= MAX_PREAMBLE {
            return Some(false);
        }
        rest = rest.get(end + 1..).unwrap_or(&[]);
    }
}

/// Whether `line` starts with `SSH-<digits>.<digits>-`: `None` while it could still.
fn banner_start(line: &[u8]) -> Option<bool> {
    const HEAD: &[u8] = b"SSH-";
    let n = line.len().min(HEAD.len());
    if line.get(..n) != HEAD.get(..n) {
        return Some(false);
    }
    let version = line.get(HEAD.len()..).unwrap_or(&[]);
    // protoversion: "2.0" or "1.99" (and the old 1.x).
    let major = version.iter().take_while(|b| b.is_ascii_digit()).count();
    match version.get(major) {
        None => return None,
        Some(b'.') if (1..=3).contains(&major) => {}
        _ => return Some(false),
    }
    let after = version.get(major + 1..).unwrap_or(&[]);
    let minor = after.iter().take_while(|b| b.is_ascii_digit()).count();
    match after.get(minor) {
        None => None,
        Some(b'-') => Some((1..=3).contains(&minor)),
        _ => Some(false),
    }
}

/// The software version of a banner: what follows `SSH-<protoversion>-` up to the first space
/// (RFC 4253: `softwareversion` has no spaces; comments follow one).
pub fn software_version(banner: &[u8]) -> Option<&[u8]> {
    let rest = banner.strip_prefix(b"SSH-")?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let sw = rest.get(dash + 1..)?;
    let sw = sw
        .get(..sw.iter().position(|&b| b == b' ').unwrap_or(sw.len()))
        .unwrap_or(sw);
    (!sw.is_empty()).then_some(sw)
}

/// One direction: still looking for the banner, and how much it has skipped.
#[derive(Debug, Default, Clone, Copy)]
struct Side {
    skipped: usize,
    done: bool,
}

/// The per-connection decoder: reads each direction's banner, then stops.
#[derive(Debug, Default)]
pub struct SshDecoder {
    sides: [Side; 2],
}

impl StreamDecoder for SshDecoder {
    fn feed(
        &mut self,
        side: Direction,
        data: &[u8],
        at_limit: bool,
        facts: &mut Vec<Fact>,
    ) -> Feed {
        let Some(s) = self
            .sides
            .get_mut(usize::from(side == Direction::FromServer))
        else {
            return Feed::Done;
        };
        if s.done {
            return Feed::Done;
        }
        let mut pos = 0usize;
        loop {
            let rest = data.get(pos..).unwrap_or(&[]);
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                if rest.len() > MAX_LINE || (at_limit && pos == 0) {
                    s.done = true;
                    return Feed::Done;
                }
                return Feed::Consumed(pos);
            };
            let line = rest.get(..end).unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if banner_start(line) == Some(true) {
                facts.push(Fact::new(Field::SshBanner, clean_text(line)));
                if let Some(sw) = software_version(line) {
                    facts.push(Fact::new(Field::SshSoftwareVersion, clean_text(sw)));
                }
                s.done = true;
                return Feed::Done;
            }
            s.skipped += end + 1;
            pos += end + 1;
            if s.skipped > MAX_PREAMBLE {
                s.done = true;
                return Feed::Done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The client's and the server's first bytes of an OpenSSH session
    /// (tests/fixtures/ssh.pcap): the banner, and the start of the key exchange after it.
    const CLIENT: &[u8] = include_bytes!("../testdata/ssh/client.bin");
    const SERVER: &[u8] = include_bytes!("../testdata/ssh/server.bin");

    fn feed_all(dir: Direction, data: &[u8]) -> Vec<Fact> {
        let mut dec = SshDecoder::default();
        let mut facts = Vec::new();
        let _ = dec.feed(dir, data, false, &mut facts);
        facts
    }

    #[test]
    fn captured_banners() {
        for (dir, bytes) in [
            (Direction::FromClient, CLIENT),
            (Direction::FromServer, SERVER),
        ] {
            assert_eq!(looks_like_ssh(bytes), Some(true));
            let facts = feed_all(dir, bytes);
            assert_eq!(facts.len(), 2, "{facts:?}");
            assert_eq!(facts[0].field, Field::SshBanner);
            assert!(facts[0].value.starts_with("SSH-2.0-OpenSSH_"), "{facts:?}");
            assert_eq!(facts[1].field, Field::SshSoftwareVersion);
            assert!(facts[1].value.starts_with("OpenSSH_"), "{facts:?}");
            assert!(!facts[1].value.contains(' '));
        }
    }

    #[test]
    fn pre_banner_lines_are_skipped() {
        let data = b"Welcome\r\nauthorised use only\r\nSSH-2.0-dropbear_2022.83\r\n\0\0";
        assert_eq!(looks_like_ssh(data), Some(true));
        assert_eq!(looks_like_ssh(b"Welcome\r\nauth"), None);
        let facts = feed_all(Direction::FromServer, data);
        assert_eq!(
            facts,
            vec![
                Fact::new(Field::SshBanner, "SSH-2.0-dropbear_2022.83"),
                Fact::new(Field::SshSoftwareVersion, "dropbear_2022.83"),
            ]
        );
        // Split anywhere: the same.
        for cut in 0..data.len() {
            let mut dec = SshDecoder::default();
            let mut facts = Vec::new();
            let mut buf = data[..cut].to_vec();
            if let Feed::Consumed(n) = dec.feed(Direction::FromServer, &buf, false, &mut facts) {
                buf.drain(..n);
                buf.extend_from_slice(&data[cut..]);
                let _ = dec.feed(Direction::FromServer, &buf, false, &mut facts);
            }
            assert_eq!(facts.len(), 2, "cut {cut}");
        }
    }

    #[test]
    fn probe_is_by_structure() {
        assert_eq!(looks_like_ssh(b""), None);
        assert_eq!(looks_like_ssh(b"SS"), None);
        assert_eq!(looks_like_ssh(b"SSH-2"), None);
        assert_eq!(looks_like_ssh(b"SSH-1.99-Cisco-1.25\r\n"), Some(true));
        assert_eq!(looks_like_ssh(b"SSH-2.0-"), Some(true));
        assert_eq!(looks_like_ssh(b"SSH-x"), Some(false));
        assert_eq!(looks_like_ssh(b"\x0bMSH|^~\\&|"), Some(false));
        assert_eq!(looks_like_ssh(&[1, 0, 0, 0, 0, 68, 0, 1]), Some(false));
        assert_eq!(looks_like_ssh(&[0x16, 3, 1, 0, 0xc8]), Some(false));
        // Text that never becomes a banner is given up after the preamble bound.
        let text = b"220 mail ESMTP\r\n".repeat(100);
        assert_eq!(looks_like_ssh(&text), Some(false));
        assert_eq!(looks_like_ssh(&[b'a'; MAX_PREAMBLE]), Some(false));
    }

    #[test]
    fn software_version_forms() {
        assert_eq!(
            software_version(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5"),
            Some(b"OpenSSH_9.6p1".as_slice())
        );
        assert_eq!(
            software_version(b"SSH-1.99-Cisco-1.25"),
            Some(b"Cisco-1.25".as_slice())
        );
        assert_eq!(software_version(b"SSH-2.0-"), None);
    }

    #[test]
    fn long_lines_are_bounded() {
        let mut b = b"SSH-2.0-".to_vec();
        b.extend(std::iter::repeat_n(b'v', 5000));
        b.extend_from_slice(b"\r\n");
        let facts = feed_all(Direction::FromClient, &b);
        assert!(facts
            .iter()
            .all(|f| f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS));
        let mut dec = SshDecoder::default();
        let mut facts = Vec::new();
        assert_eq!(
            dec.feed(
                Direction::FromClient,
                &[b'x'; MAX_LINE + 1],
                false,
                &mut facts
            ),
            Feed::Done
        );
        let mut dec = SshDecoder::default();
        assert_eq!(
            dec.feed(Direction::FromClient, b"SSH-2.0-x", true, &mut facts),
            Feed::Done
        );
    }

    proptest! {
        #[test]
        fn truncations_and_mutations_never_panic(
            cut in 0usize..512, pos in 0usize..512, byte in any::<u8>(), split in 1usize..40
        ) {
            for base in [CLIENT, SERVER] {
                let mut m = base[..cut.min(base.len())].to_vec();
                if let Some(b) = m.get_mut(pos) {
                    *b = byte;
                }
                let _ = looks_like_ssh(&m);
                let mut dec = SshDecoder::default();
                let mut facts = Vec::new();
                let mut pending = Vec::new();
                for chunk in m.chunks(split) {
                    pending.extend_from_slice(chunk);
                    match dec.feed(Direction::FromServer, &pending, false, &mut facts) {
                        Feed::Consumed(n) => { prop_assert!(n <= pending.len()); pending.drain(..n); }
                        Feed::Done => break,
                    }
                }
                prop_assert!(facts.len() <= 2);
                for f in &facts {
                    prop_assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
                }
            }
        }
    }
}
