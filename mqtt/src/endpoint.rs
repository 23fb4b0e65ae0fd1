//! Broker addresses: `mqtt://host[:port]` and `mqtts://host[:port]`.
//!
//! Nothing else is accepted: no credentials in the URL (they would end up in logs and
//! `ps`), no path, query or fragment (MQTT has none), and the scheme in lower case. Wrong but
//! common spellings (`tcp://`, `ssl://`, `tls://`, `MQTT://`) get a hint instead of a bare
//! refusal.

use std::fmt;
use std::net::Ipv6Addr;

/// Default port of `mqtt://`.
pub const MQTT_PORT: u16 = 1883;
/// Default port of `mqtts://`.
pub const MQTTS_PORT: u16 = 8883;

/// A broker address, as parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `mqtts://`: TLS.
    pub tls: bool,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// Port (1883 / 8883 by default).
    pub port: u16,
}

/// What is wrong with a broker URL. The texts are fixed: they never repeat the URL (the
/// [`UrlError`] carries it, for the caller to show or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    /// Neither `mqtt://` nor `mqtts://`, nor a near miss.
    #[error("expected mqtt://host[:port] or mqtts://host[:port]")]
    UnknownScheme,
    /// `tcp://`.
    #[error("use mqtt://host[:port]")]
    PlainSchemeAlias,
    /// `nats://`: ward speaks MQTT to a NATS server, through its MQTT listener.
    #[error("a NATS server is reached through its MQTT listener: use mqtt://host:<mqtt port>")]
    NatsScheme,
    /// `ssl://` or `tls://`.
    #[error("use mqtts://host[:port]")]
    TlsSchemeAlias,
    /// `MQTT://` and the like.
    #[error("the scheme must be lower case")]
    SchemeCase,
    /// `user:password@host`.
    #[error("credentials do not belong in the URL; use the username/password settings")]
    Credentials,
    /// Anything after the authority.
    #[error("a broker URL has no path, query or fragment")]
    Path,
    /// `[` without `]`.
    #[error("unterminated [IPv6 address]")]
    UnterminatedIpv6,
    /// Not an IPv6 address between the brackets.
    #[error("invalid IPv6 address")]
    InvalidIpv6,
    /// Something other than `:port` after `]`.
    #[error("expected :port after ]")]
    AfterIpv6,
    /// No host.
    #[error("missing host")]
    MissingHost,
    /// White space or control characters in the host.
    #[error("host contains whitespace or control characters")]
    HostCharacters,
    /// Not a port number, or 0.
    #[error("port must be a number from 1 to 65535")]
    Port,
    /// An IPv6 address literal with `mqtts://` (found by [`crate::ClientConfig::options`]:
    /// the certificate is verified against a host name).
    #[error("IPv6 address literals are not supported with mqtts://; use a host name")]
    Ipv6WithTls,
}

/// A broker URL that [`Endpoint::parse`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?}: {problem}")]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub problem: UrlProblem,
}

impl Endpoint {
    /// Parses `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (8883); one
    /// trailing `/` is allowed. IPv6 addresses go in brackets: `mqtt://[::1]:1883`.
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let bad = |problem| UrlError {
            url: url.to_string(),
            problem,
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            let lower = url.to_ascii_lowercase();
            return Err(bad(if lower.starts_with("tcp://") {
                UrlProblem::PlainSchemeAlias
            } else if lower.starts_with("nats://") || lower.starts_with("tls+nats://") {
                UrlProblem::NatsScheme
            } else if lower.starts_with("ssl://") || lower.starts_with("tls://") {
                UrlProblem::TlsSchemeAlias
            } else if lower.starts_with("mqtt://") || lower.starts_with("mqtts://") {
                UrlProblem::SchemeCase
            } else {
                UrlProblem::UnknownScheme
            }));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(bad(UrlProblem::Credentials));
        }
        if rest.contains(['/', '?', '#']) {
            return Err(bad(UrlProblem::Path));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err(bad(UrlProblem::UnterminatedIpv6));
            };
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad(UrlProblem::InvalidIpv6));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad(UrlProblem::AfterIpv6))?,
                ),
            };
            (host, port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad(UrlProblem::MissingHost));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(UrlProblem::HostCharacters));
        }
        let port = match port {
            None if tls => MQTTS_PORT,
            None => MQTT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad(UrlProblem::Port)),
                Ok(p) => p,
            },
        };
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
        })
    }

    /// Whether the host is an IPv6 address literal.
    pub fn is_ipv6_literal(&self) -> bool {
        self.host.contains(':')
    }

    /// The host as a socket address wants it: an IPv6 address in brackets.
    pub fn connect_host(&self) -> String {
        if self.is_ipv6_literal() {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// Splits a broker setting that lists several nodes of one cluster
/// (`mqtt://n1:1883,mqtt://n2:1883`) into its URLs, in order, blanks around commas dropped;
/// each is then parsed on its own. A client connects to the first and moves to the next one
/// whenever a connection fails, so the nodes must share the session state (a NATS cluster's
/// MQTT sessions live in replicated JetStream streams; two independent Mosquittos do not
/// qualify). One URL without a comma is a list of one.
pub fn split_list(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

impl fmt::Display for Endpoint {
    /// The URL again, port included: `mqtts://broker:8883`, `mqtt://[::1]:1883`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.connect_host(), self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(tls: bool, host: &str, port: u16) -> Endpoint {
        Endpoint {
            tls,
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_urls_with_default_ports() {
        for (url, want) in [
            ("mqtt://broker", ep(false, "broker", 1883)),
            ("mqtt://broker:1884/", ep(false, "broker", 1884)),
            ("mqtts://broker.example", ep(true, "broker.example", 8883)),
            ("mqtts://10.0.0.1:9000", ep(true, "10.0.0.1", 9000)),
            ("mqtt://[::1]:1999", ep(false, "::1", 1999)),
            ("mqtt://[fe80::1]", ep(false, "fe80::1", 1883)),
            ("mqtts://[::1]", ep(true, "::1", 8883)),
        ] {
            assert_eq!(Endpoint::parse(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn refuses_bad_urls_with_the_reason() {
        use UrlProblem::*;
        for (url, want, needle) in [
            ("", UnknownScheme, "expected mqtt://"),
            ("broker:1883", UnknownScheme, "expected mqtt://"),
            ("http://x", UnknownScheme, "expected mqtt://"),
            ("tcp://broker", PlainSchemeAlias, "use mqtt://"),
            ("nats://n1:4222", NatsScheme, "MQTT listener"),
            ("ssl://broker", TlsSchemeAlias, "use mqtts://"),
            ("TLS://broker", TlsSchemeAlias, "use mqtts://"),
            ("MQTT://broker", SchemeCase, "lower case"),
            ("mqtt://", MissingHost, "missing host"),
            ("mqtt://:1883", MissingHost, "missing host"),
            ("mqtt://bro ker", HostCharacters, "whitespace"),
            ("mqtt://bro\u{7}ker", HostCharacters, "control"),
            ("mqtt://broker:0", Port, "port"),
            ("mqtt://broker:65536", Port, "port"),
            ("mqtt://broker:x", Port, "port"),
            ("mqtt://broker:", Port, "port"),
            ("mqtt://user:pw@broker", Credentials, "credentials"),
            ("mqtt://broker/topic", Path, "path"),
            ("mqtt://broker?x=1", Path, "path"),
            ("mqtt://broker//", Path, "path"),
            ("mqtt://[::1", UnterminatedIpv6, "unterminated"),
            ("mqtt://[zz]:1", InvalidIpv6, "IPv6"),
            ("mqtt://[::1]x", AfterIpv6, ":port"),
        ] {
            let e = Endpoint::parse(url).unwrap_err();
            assert_eq!(e.problem, want, "{url:?}");
            assert_eq!(e.url, url);
            let text = e.to_string();
            assert!(text.contains(needle), "{url:?}: {text}");
            assert!(text.starts_with(&format!("{url:?}")), "{text}");
        }
    }

    #[test]
    fn display_round_trips() {
        for url in ["mqtt://h:1", "mqtts://h:8883", "mqtt://[::1]:1883"] {
            let e = Endpoint::parse(url).unwrap();
            assert_eq!(e.to_string(), url);
            assert_eq!(Endpoint::parse(&e.to_string()).unwrap(), e);
        }
        assert_eq!(
            Endpoint::parse("mqtt://[::1]").unwrap().connect_host(),
            "[::1]"
        );
        assert_eq!(Endpoint::parse("mqtt://h").unwrap().connect_host(), "h");
    }

    #[test]
    fn splits_a_list_of_cluster_nodes() {
        assert_eq!(split_list("mqtt://a:1"), ["mqtt://a:1"]);
        assert_eq!(
            split_list(" mqtt://a:1 , mqtt://b:2,,mqtts://c "),
            ["mqtt://a:1", "mqtt://b:2", "mqtts://c"]
        );
        assert!(split_list(" , ").is_empty());
    }

    proptest::proptest! {
        /// Whatever the input, parsing neither panics nor accepts a host a socket address
        /// would misread.
        #[test]
        fn any_input_is_parsed_or_refused(s in "\\PC{0,40}|mqtts?://\\PC{0,30}") {
            if let Ok(e) = Endpoint::parse(&s) {
                proptest::prop_assert!(!e.host.is_empty());
                proptest::prop_assert!(e.port != 0);
                proptest::prop_assert!(!e.host.contains(['/', '@', '?', '#']));
            }
        }
    }
}
