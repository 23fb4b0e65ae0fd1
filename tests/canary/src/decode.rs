//! Decoders: each finds the runs of its encoding in a buffer and decodes every run once, so a
//! scan costs a small constant times the buffer's length. A decoded run remembers, for each
//! decoded byte, where its encoded form starts in the buffer it came from.
//!
//! Every decoder is deliberately loose (a run of hex digits is decoded whatever it meant):
//! decoding something that was not an encoding only yields bytes no canary matches.

/// One decoded run.
#[derive(Debug)]
pub(crate) struct Segment {
    /// The decoded bytes.
    pub bytes: Vec<u8>,
    /// For each decoded byte, the offset of its encoded form in the input.
    pub map: Vec<usize>,
}

impl Segment {
    fn new() -> Segment {
        Segment {
            bytes: Vec::new(),
            map: Vec::new(),
        }
    }

    fn push(&mut self, b: u8, at: usize) {
        self.bytes.push(b);
        self.map.push(at);
    }
}

/// A decoder: name for findings, and the function that decodes every run in a buffer.
/// `margin` is how many raw bytes to keep around an inline escape (the longest component).
pub(crate) type DecodeFn = fn(&[u8], usize, &mut Vec<Segment>);

/// Every decoder, in the order findings name them.
pub(crate) const DECODERS: &[(&str, DecodeFn)] = &[
    ("hex", hex_runs),
    ("hex byte list", hex_lists),
    ("decimal byte list", decimal_lists),
    ("base64", base64_runs),
    ("JSON escapes", json_escapes),
    ("percent-encoding", percent_escapes),
    ("HL7 escapes", hl7_escapes),
    ("HTML character references", html_references),
    ("UTF-16", utf16_runs),
];

/// Shortest run worth decoding, in decoded bytes: the shortest component searched is 5 long.
const MIN_DECODED: usize = 5;

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn at(buf: &[u8], i: usize) -> u8 {
    buf.get(i).copied().unwrap_or(0)
}

/// Contiguous hex digits (`43414e415259`, also after `0x`), decoded at both nibble alignments.
fn hex_runs(buf: &[u8], _margin: usize, out: &mut Vec<Segment>) {
    let mut i = 0;
    while i < buf.len() {
        if hex_val(buf[i]).is_none() {
            i += 1;
            continue;
        }
        let start = i;
        while i < buf.len() && hex_val(buf[i]).is_some() {
            i += 1;
        }
        if i - start < 2 * MIN_DECODED {
            continue;
        }
        for align in 0..2 {
            let mut s = Segment::new();
            let mut j = start + align;
            while j + 1 < i {
                let (Some(h), Some(l)) = (hex_val(buf[j]), hex_val(buf[j + 1])) else {
                    break;
                };
                s.push(h << 4 | l, j);
                j += 2;
            }
            out.push(s);
        }
    }
}

/// Characters allowed between the numbers of a byte list.
fn is_list_sep(b: u8, hex: bool) -> bool {
    matches!(b, b' ' | b',' | b';' | b'\t' | b'\r' | b'\n') || (hex && matches!(b, b':' | b'-'))
}

/// One number of a byte list at `i`: (value, end) — decimal `0`–`255`, or hex `4e`, `0x4e`,
/// `\x4e`. A bare number must not touch letters or digits on either side.
fn list_unit(buf: &[u8], i: usize, hex: bool) -> Option<(u8, usize)> {
    let prev_alnum = i > 0 && at(buf, i - 1).is_ascii_alphanumeric();
    let mut j = i;
    if hex {
        let (a, b) = (at(buf, i), at(buf, i + 1));
        let escaped = a == b'\\' && (b == b'x' || b == b'X');
        let prefixed = a == b'0' && (b == b'x' || b == b'X') && !prev_alnum;
        if escaped || prefixed {
            j += 2;
        } else if prev_alnum {
            return None;
        }
    } else if prev_alnum {
        return None;
    }
    let digits_start = j;
    let mut v: u32 = 0;
    let max_digits = if hex { 2 } else { 3 };
    while j - digits_start < max_digits {
        let d = if hex {
            hex_val(at(buf, j))
        } else {
            at(buf, j).is_ascii_digit().then(|| at(buf, j) - b'0')
        };
        let Some(d) = d else { break };
        v = v * if hex { 16 } else { 10 } + u32::from(d);
        j += 1;
    }
    if j == digits_start || v > 255 || at(buf, j).is_ascii_alphanumeric() {
        return None;
    }
    Some((v as u8, j))
}

fn byte_lists(buf: &[u8], hex: bool, out: &mut Vec<Segment>) {
    let mut i = 0;
    while i < buf.len() {
        let Some((v, mut end)) = list_unit(buf, i, hex) else {
            i += 1;
            continue;
        };
        let mut s = Segment::new();
        s.push(v, i);
        loop {
            // Up to 12 separator characters (`, `, a pretty-printed `,\n    `), or none before
            // a `\x` unit.
            let mut k = end;
            while k < buf.len() && k - end < 12 && is_list_sep(buf[k], hex) {
                k += 1;
            }
            if k == end && !(hex && at(buf, k) == b'\\') {
                break;
            }
            match list_unit(buf, k, hex) {
                Some((v, e)) => {
                    s.push(v, k);
                    end = e;
                }
                None => break,
            }
        }
        if s.bytes.len() >= MIN_DECODED - 1 {
            out.push(s);
        }
        i = end.max(i + 1);
    }
}

/// Hex byte lists: `43 41 4e`, `43:41:4e`, `0x43, 0x41`, `\x43\x41`, `[43, 41, 4e]`.
fn hex_lists(buf: &[u8], _margin: usize, out: &mut Vec<Segment>) {
    byte_lists(buf, true, out);
}

/// Decimal byte lists: `[67, 65, 78]`, `67,65,78`, `67 65 78`, one per line.
fn decimal_lists(buf: &[u8], _margin: usize, out: &mut Vec<Segment>) {
    byte_lists(buf, false, out);
}

fn b64_val(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Base64 (standard and URL-safe, padded or not, MIME-wrapped lines joined), each run decoded
/// at all four alignments: a run may start with characters that are not part of the encoding.
fn base64_runs(buf: &[u8], _margin: usize, out: &mut Vec<Segment>) {
    let mut i = 0;
    // Offsets of the run's characters (line breaks inside a wrapped run are skipped).
    let mut run: Vec<usize> = Vec::new();
    while i < buf.len() {
        if b64_val(buf[i]).is_none() {
            i += 1;
            continue;
        }
        run.clear();
        let mut line = 0;
        while i < buf.len() {
            if b64_val(buf[i]).is_some() {
                run.push(i);
                line += 1;
                i += 1;
            } else if line >= 40 && line % 4 == 0 && matches!(buf[i], b'\r' | b'\n') {
                // A wrapped line: continue on the next one.
                while i < buf.len() && matches!(buf[i], b'\r' | b'\n') {
                    i += 1;
                }
                line = 0;
            } else {
                break;
            }
        }
        if run.len() < 4 * MIN_DECODED / 3 + 1 {
            continue;
        }
        for align in 0..4 {
            let mut s = Segment::new();
            for q in run[align..].chunks_exact(4) {
                let v: Vec<u32> = q
                    .iter()
                    .map(|&p| u32::from(b64_val(buf[p]).unwrap_or(0)))
                    .collect();
                let n = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
                s.push((n >> 16) as u8, q[0]);
                s.push((n >> 8) as u8, q[1]);
                s.push(n as u8, q[2]);
            }
            // A final partial quantum (unpadded or padded).
            let rest = &run[align..][(run.len() - align) / 4 * 4..];
            if rest.len() >= 2 {
                let v: Vec<u32> = rest
                    .iter()
                    .map(|&p| u32::from(b64_val(buf[p]).unwrap_or(0)))
                    .collect();
                let n = v[0] << 18 | v[1] << 12 | v.get(2).copied().unwrap_or(0) << 6;
                s.push((n >> 16) as u8, rest[0]);
                if rest.len() == 3 {
                    s.push((n >> 8) as u8, rest[1]);
                }
            }
            if s.bytes.len() >= MIN_DECODED {
                out.push(s);
            }
        }
    }
}

/// Decodes one inline escape: `(length, opens a window)`, `None` when it is not one.
type Step = fn(&[u8], usize, &mut Vec<u8>) -> Option<(usize, bool)>;

/// Inline escapes: `step(buf, i, out)` decodes the escape starting at `i` into `out` and returns
/// its length and whether it starts a window (`None`: not an escape). Windows of `margin` raw
/// bytes around each run of escapes are decoded, raw bytes copied, so a canary partly escaped
/// (`\u0043ANARY`) is whole in the output.
fn inline(buf: &[u8], margin: usize, marker: u8, step: Step, out: &mut Vec<Segment>) {
    let mut scratch = Vec::new();
    let mut windows: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        if buf[i] != marker {
            i += 1;
            continue;
        }
        scratch.clear();
        match step(buf, i, &mut scratch) {
            Some((len, true)) => {
                let (s, e) = (i.saturating_sub(margin), (i + len + margin).min(buf.len()));
                match windows.last_mut() {
                    Some(w) if s <= w.1 => w.1 = e,
                    _ => windows.push((s, e)),
                }
                i += len;
            }
            Some((len, false)) => i += len,
            None => i += 1,
        }
    }
    for (s, e) in windows {
        let mut seg = Segment::new();
        let mut j = s;
        while j < e {
            if buf[j] == marker {
                scratch.clear();
                if let Some((len, _)) = step(buf, j, &mut scratch) {
                    for &b in &scratch {
                        seg.push(b, j);
                    }
                    j += len;
                    continue;
                }
            }
            seg.push(buf[j], j);
            j += 1;
        }
        out.push(seg);
    }
}

fn hex4(buf: &[u8], i: usize) -> Option<u32> {
    let h = buf.get(i..i + 4)?;
    h.iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | u32::from(hex_val(b)?)))
}

fn push_char(out: &mut Vec<u8>, cp: u32) {
    let c = char::from_u32(cp).unwrap_or('\u{fffd}');
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

/// JSON string escapes; `\uXXXX` (and `\\`, so doubly escaped JSON decodes in two layers) open a
/// window.
fn json_step(buf: &[u8], i: usize, out: &mut Vec<u8>) -> Option<(usize, bool)> {
    let simple = match at(buf, i + 1) {
        b'u' => {
            let hi = hex4(buf, i + 2)?;
            if (0xd800..0xdc00).contains(&hi) && buf.get(i + 6..i + 8) == Some(b"\\u") {
                if let Some(lo) = hex4(buf, i + 8).filter(|lo| (0xdc00..0xe000).contains(lo)) {
                    push_char(out, 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
                    return Some((12, true));
                }
            }
            push_char(out, hi);
            return Some((6, true));
        }
        b'\\' => {
            out.push(b'\\');
            return Some((2, true));
        }
        b'"' => b'"',
        b'/' => b'/',
        b'b' => 8,
        b'f' => 12,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => return None,
    };
    out.push(simple);
    Some((2, false))
}

fn json_escapes(buf: &[u8], margin: usize, out: &mut Vec<Segment>) {
    inline(buf, margin, b'\\', json_step, out);
}

fn percent_step(buf: &[u8], i: usize, out: &mut Vec<u8>) -> Option<(usize, bool)> {
    let h = hex_val(at(buf, i + 1))?;
    let l = hex_val(at(buf, i + 2))?;
    out.push(h << 4 | l);
    Some((3, true))
}

fn percent_escapes(buf: &[u8], margin: usize, out: &mut Vec<Segment>) {
    inline(buf, margin, b'%', percent_step, out);
}

/// HL7 v2 escape sequences with the default escape character: `\F\ \S\ \T\ \R\ \E\` are the
/// delimiters, `\Xhh…\` bytes in hex; formatting (`\H\ \N\ \.br\ \Cxxyy\ \Mxxyyzz\ \Zxx\`)
/// decodes to nothing.
fn hl7_step(buf: &[u8], i: usize, out: &mut Vec<u8>) -> Option<(usize, bool)> {
    let body_start = i + 1;
    let close = buf
        .get(body_start..(body_start + 256).min(buf.len()))?
        .iter()
        .position(|&b| b == b'\\')?;
    let body = &buf[body_start..body_start + close];
    let len = close + 2;
    match body {
        b"F" => out.push(b'|'),
        b"S" => out.push(b'^'),
        b"T" => out.push(b'&'),
        b"R" => out.push(b'~'),
        b"E" => out.push(b'\\'),
        b"H" | b"N" => {}
        [b'X' | b'x', hex @ ..] if !hex.is_empty() && hex.len() % 2 == 0 => {
            for p in hex.chunks_exact(2) {
                out.push(hex_val(p[0])? << 4 | hex_val(p[1])?);
            }
        }
        [b'.', rest @ ..] if !rest.is_empty() && rest.iter().all(|b| b.is_ascii_alphanumeric()) => {
        }
        [b'C' | b'M' | b'Z', rest @ ..]
            if !rest.is_empty() && rest.iter().all(|b| b.is_ascii_alphanumeric()) => {}
        _ => return None,
    }
    Some((len, true))
}

fn hl7_escapes(buf: &[u8], margin: usize, out: &mut Vec<Segment>) {
    inline(buf, margin, b'\\', hl7_step, out);
}

/// `&#67;` and `&#x43;`.
fn html_step(buf: &[u8], i: usize, out: &mut Vec<u8>) -> Option<(usize, bool)> {
    if at(buf, i + 1) != b'#' {
        return None;
    }
    let hex = matches!(at(buf, i + 2), b'x' | b'X');
    let mut j = i + 2 + usize::from(hex);
    let start = j;
    let mut v: u32 = 0;
    while j - start < 7 {
        let d = if hex {
            hex_val(at(buf, j)).map(u32::from)
        } else {
            at(buf, j)
                .is_ascii_digit()
                .then(|| u32::from(at(buf, j) - b'0'))
        };
        let Some(d) = d else { break };
        v = v * if hex { 16 } else { 10 } + d;
        j += 1;
    }
    if j == start || at(buf, j) != b';' {
        return None;
    }
    push_char(out, v);
    Some((j + 1 - i, true))
}

fn html_references(buf: &[u8], margin: usize, out: &mut Vec<Segment>) {
    inline(buf, margin, b'&', html_step, out);
}

/// UTF-16 text, little- or big-endian: printable ASCII interleaved with zero bytes.
fn utf16_runs(buf: &[u8], _margin: usize, out: &mut Vec<Segment>) {
    for zero_first in [false, true] {
        let mut i = 0;
        while i + 1 < buf.len() {
            let mut s = Segment::new();
            let mut j = i;
            while j + 1 < buf.len() {
                let (c, z, at) = if zero_first {
                    (buf[j + 1], buf[j], j + 1)
                } else {
                    (buf[j], buf[j + 1], j)
                };
                if z != 0 || !(0x20..0x7f).contains(&c) {
                    break;
                }
                s.push(c, at);
                j += 2;
            }
            if s.bytes.len() >= MIN_DECODED {
                out.push(s);
                i = j;
            } else {
                i += 1;
            }
        }
    }
}
