//! SSDP (UPnP Device Architecture 2.0 §1): what a UPnP device announces about itself.
//!
//! Three message kinds travel over UDP (multicast 239.255.255.250:1900 or unicast replies):
//! `NOTIFY * HTTP/1.1` (a device's `ssdp:alive`/`ssdp:byebye` advertisement), `M-SEARCH *
//! HTTP/1.1` (a control point's search) and `HTTP/1.1 200 OK` (a device's answer to a search).
//! A NOTIFY and a search response describe their sender: `SERVER` (OS, UPnP version and product
//! tokens), `USN` (the device's UUID and type), `NT`/`ST` (the device or service type) and
//! `LOCATION` (where its description is served, cut to `scheme://host:port`: [`origin`]). A
//! search's `ST` names what the searcher looks for on
//! *other* devices, so nothing is read from an M-SEARCH. Every other header is skipped unread.
//!
//! Recognised by structure: the exact request lines above, or a `200` status line followed by
//! both `ST` and `USN` headers (an SSDP response; plain HTTP over UDP has neither). Header lines
//! are bounded ([`MAX_LINES`]) and values cut by [`clean_text`].

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Ssdp);
/// Header lines read per message (a real advertisement has fewer than a dozen).
pub const MAX_LINES: usize = 64;
/// UDP port of SSDP. For reference only: detection is by structure ([`probe`]), never by port.
pub const PORT: u16 = 1900;

/// SSDP's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Ssdp,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction,
    },
};

/// The kind of an SSDP message, from its start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `NOTIFY * HTTP/1.1`: a device's advertisement.
    Notify,
    /// `M-SEARCH * HTTP/1.1`: a control point's search.
    Search,
    /// `HTTP/1.1 200 OK` with SSDP headers: a device's answer to a search.
    Response,
}

/// Iterates the lines of a message head (CRLF or LF), stopping at the empty line.
fn lines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let head = match b.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => b.get(..end).unwrap_or(b),
        None => b,
    };
    head.split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .take(MAX_LINES + 1)
}

/// `(name, value)` of a header line, value without surrounding blanks.
fn header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&c| c == b':')?;
    let name = line.get(..colon)?;
    let value = line.get(colon + 1..)?.trim_ascii();
    Some((name.trim_ascii(), value))
}

/// The message's kind, or why it is not SSDP.
pub fn kind(b: &[u8]) -> Result<Kind, DecodeError> {
    // Every UDP datagram is probed, and `lines` scans the whole datagram for the end of the
    // head: reject on the start line's first bytes before that (monitor streams and other
    // binary datagrams made this probe a tenth of the agent's time on the site mix).
    let starts = |p: &[u8]| b.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    if !(b.is_empty()
        || starts(b"NOTIFY ")
        || starts(b"M-SEARCH ")
        || b.starts_with(b"HTTP/1.1 200"))
    {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 0,
            what: "start line (not NOTIFY, M-SEARCH or a 200 response)",
        });
    }
    let Some(first) = lines(b).next() else {
        return Err(DecodeError::truncated(LAYER, 0, 1, b.len()));
    };
    if first.eq_ignore_ascii_case(b"NOTIFY * HTTP/1.1") {
        return Ok(Kind::Notify);
    }
    if first.eq_ignore_ascii_case(b"M-SEARCH * HTTP/1.1") {
        return Ok(Kind::Search);
    }
    if first.starts_with(b"HTTP/1.1 200") {
        let (mut st, mut usn) = (false, false);
        for (name, _) in lines(b).skip(1).filter_map(header) {
            st |= name.eq_ignore_ascii_case(b"ST");
            usn |= name.eq_ignore_ascii_case(b"USN");
        }
        if st && usn {
            return Ok(Kind::Response);
        }
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: first.len(),
            what: "200 response without ST and USN headers",
        });
    }
    Err(DecodeError::Invalid {
        layer: LAYER,
        offset: 0,
        what: "start line (not NOTIFY, M-SEARCH or a 200 response)",
    })
}

/// Structure test: see [`kind`].
pub fn probe(payload: &[u8]) -> Probe {
    if kind(payload).is_ok() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// A search comes from a control point (the client); advertisements and answers from devices.
fn direction(payload: &[u8]) -> Direction {
    match kind(payload) {
        Ok(Kind::Search) => Direction::FromClient,
        Ok(Kind::Response) => Direction::FromServer,
        _ => Direction::Unknown,
    }
}

/// Pushes the allow-listed headers of a NOTIFY or search response, in wire order. An M-SEARCH
/// yields nothing (its `ST` is what the searcher looks for, not what it is).
pub fn extract(payload: &[u8], facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let k = kind(payload)?;
    if k == Kind::Search {
        return Ok(());
    }
    for (name, value) in lines(payload).skip(1).take(MAX_LINES).filter_map(header) {
        let field = if name.eq_ignore_ascii_case(b"SERVER") {
            Field::SsdpServer
        } else if name.eq_ignore_ascii_case(b"USN") {
            Field::SsdpUsn
        } else if name.eq_ignore_ascii_case(b"LOCATION") {
            Field::SsdpLocation
        } else if (k == Kind::Notify && name.eq_ignore_ascii_case(b"NT"))
            || (k == Kind::Response && name.eq_ignore_ascii_case(b"ST"))
        {
            Field::SsdpType
        } else {
            continue;
        };
        let value = if field == Field::SsdpLocation {
            match origin(value) {
                Some(o) => o,
                None => continue,
            }
        } else {
            value
        };
        let v = clean_text(value);
        if !v.is_empty() {
            facts.push(Fact::new(field, v));
        }
    }
    Ok(())
}

/// `scheme://host[:port]` of a URL: the path, query and fragment are dropped (a URL path can
/// carry anything, patient identifiers included). `None` when the value is not an absolute URL,
/// or when it carries `user:password@` (credentials are never kept, and without them the origin
/// is not one slice of the value).
pub fn origin(url: &[u8]) -> Option<&[u8]> {
    let sep = url.windows(3).position(|w| w == b"://")?;
    let scheme = url.get(..sep)?;
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
    {
        return None;
    }
    let rest = url.get(sep + 3..)?;
    let end = rest
        .iter()
        .position(|b| b"/?#".contains(b))
        .unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    if authority.is_empty() || authority.contains(&b'@') {
        return None;
    }
    url.get(..sep + 3 + end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::MAX_VALUE_CHARS;
    use proptest::prelude::*;

    const NOTIFY: &[u8] = include_bytes!("../testdata/ssdp/notify.bin");
    const SEARCH: &[u8] = include_bytes!("../testdata/ssdp/msearch.bin");
    const RESPONSE: &[u8] = include_bytes!("../testdata/ssdp/response.bin");

    fn values(b: &[u8], field: Field) -> Vec<String> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter()
            .filter(|f| f.field == field)
            .map(|f| f.value)
            .collect()
    }

    const SERVER: &str = "WardTestOS/1.0 UPnP/1.0 WardTestMed-VH300/3.2";
    const USN: &str =
        "uuid:5741524e-4454-4553-5456-483330300001::urn:schemas-upnp-org:device:Basic:1";

    #[test]
    fn notify_names_the_device() {
        assert_eq!(values(NOTIFY, Field::SsdpServer), [SERVER]);
        assert_eq!(values(NOTIFY, Field::SsdpUsn), [USN]);
        assert_eq!(
            values(NOTIFY, Field::SsdpType),
            ["urn:schemas-upnp-org:device:Basic:1"]
        );
        // The path of `http://192.0.2.10:49152/description.xml` is dropped.
        assert_eq!(
            values(NOTIFY, Field::SsdpLocation),
            ["http://192.0.2.10:49152"]
        );
    }

    #[test]
    fn response_names_the_device() {
        assert_eq!(values(RESPONSE, Field::SsdpServer), [SERVER]);
        assert_eq!(values(RESPONSE, Field::SsdpUsn), [USN]);
        assert_eq!(
            values(RESPONSE, Field::SsdpType),
            ["urn:schemas-upnp-org:device:Basic:1"]
        );
        assert_eq!(values(RESPONSE, Field::SsdpLocation).len(), 1);
        assert_eq!(direction(RESPONSE), Direction::FromServer);
    }

    #[test]
    fn search_target_is_not_the_senders() {
        let mut out = Vec::new();
        extract(SEARCH, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(direction(SEARCH), Direction::FromClient);
    }

    #[test]
    fn other_headers_are_not_read() {
        let m = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nX-PATIENT: SSDPCANARY\r\n\
                  NTS: ssdp:alive\r\nCACHE-CONTROL: max-age=1800\r\n\r\n";
        let mut out = Vec::new();
        extract(m, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn probe_recognises_ssdp_only() {
        for b in [NOTIFY, SEARCH, RESPONSE] {
            assert_eq!(probe(b), Probe::Certain);
        }
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[0x16, 0x03, 0x01, 0x00, 0x10, 1, 0, 0, 0x0c, 3, 3, 0][..],
            &[0u8; 12][..],
            b"",
            b"\x0bMSH|^~\\&|",
        ] {
            assert_eq!(probe(other), Probe::NotMine);
        }
    }

    #[test]
    fn location_keeps_the_origin_only() {
        let o = |u: &[u8]| origin(u).map(|o| String::from_utf8_lossy(o).into_owned());
        assert_eq!(
            o(b"http://10.0.0.5:8200/rootDesc.xml").as_deref(),
            Some("http://10.0.0.5:8200")
        );
        assert_eq!(
            o(b"http://[fe80::1]:80/a?b#c").as_deref(),
            Some("http://[fe80::1]:80")
        );
        assert_eq!(o(b"http://host?CANARY=1").as_deref(), Some("http://host"));
        assert_eq!(
            o(b"https://dev.example").as_deref(),
            Some("https://dev.example")
        );
        assert_eq!(o(b"http://user:CANARY@host/"), None);
        assert_eq!(o(b"/description.xml"), None);
        assert_eq!(o(b"://host/"), None);
        assert_eq!(o(b"http:///path"), None);
        let m = b"NOTIFY * HTTP/1.1\r\nLOCATION: http://192.0.2.9:1400/CANARY^PATIENT/d.xml?mrn=42\r\n\r\n";
        let mut out = Vec::new();
        extract(m, &mut out).unwrap();
        assert_eq!(
            out,
            [Fact::new(Field::SsdpLocation, "http://192.0.2.9:1400")]
        );
    }

    #[test]
    fn errors_never_echo_payload() {
        let e = extract(b"WardTestMed junk\r\n\r\n", &mut Vec::new()).unwrap_err();
        assert!(!e.to_string().contains("WardTestMed"));
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=RESPONSE.len().max(NOTIFY.len())) {
            for b in [NOTIFY, SEARCH, RESPONSE] {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                prop_assert!(out.len() <= MAX_LINES);
                for f in &out {
                    prop_assert!(f.value.chars().count() <= MAX_VALUE_CHARS);
                }
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..400, byte in any::<u8>()) {
            for b in [NOTIFY, RESPONSE] {
                let mut m = b.to_vec();
                if let Some(x) = m.get_mut(at) { *x = byte; }
                let mut out = Vec::new();
                let _ = extract(&m, &mut out);
                let _ = probe(&m);
                prop_assert!(out.len() <= MAX_LINES);
            }
        }
    }
}
