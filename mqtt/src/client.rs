//! The settings every ward MQTT client has (broker URL, client id, credentials, TLS files,
//! keep-alive), their checks, and the rumqttc options they make.
//!
//! What differs between clients (session kind, in-flight window, packet sizes, manual acks,
//! last will) is set by each client on the [`MqttOptions`] [`ClientConfig::options`] returns.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rumqttc::{MqttOptions, NetworkOptions, Transport};

use crate::endpoint::{Endpoint, UrlError, UrlProblem};
use crate::tls::TlsFiles;

/// Default MQTT keep-alive.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Longest MQTT string (client id, user name): its length is a 16-bit field.
pub const MAX_STRING_BYTES: usize = 65_535;
/// MQTT's largest remaining length, hence (almost) its largest packet.
pub const MAX_PACKET: usize = 268_435_455;

/// A client setting that cannot be used. Every variant names the setting (see
/// [`ConfigError::setting`]); none carries a password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The broker URL (setting `url`).
    #[error("invalid url {0}")]
    Url(#[from] UrlError),
    /// A setting's value.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file named by a setting is missing or unusable.
    #[error("invalid {setting} {}: {reason}", path.display())]
    File {
        /// The setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl ConfigError {
    /// A setting's value is unusable.
    pub fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            setting,
            reason: reason.into(),
        }
    }

    /// A file named by a setting is unusable.
    pub fn file(setting: &'static str, path: &Path, reason: impl fmt::Display) -> ConfigError {
        ConfigError::File {
            setting,
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// The setting at fault (`url` for the URL).
    pub fn setting(&self) -> &'static str {
        match self {
            ConfigError::Url(_) => "url",
            ConfigError::Invalid { setting, .. } | ConfigError::File { setting, .. } => setting,
        }
    }
}

/// Checks a setting that becomes an MQTT string or a message field: 1 to 65535 bytes, no
/// control characters (a line break in a client id would forge broker log lines).
pub fn check_text(setting: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::invalid(setting, "must not be empty"));
    }
    if value.len() > MAX_STRING_BYTES {
        return Err(ConfigError::invalid(setting, "longer than 65535 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(ConfigError::invalid(setting, "contains control characters"));
    }
    Ok(())
}

/// Broker, identity and security of one client connection.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (8883).
    pub url: String,
    /// Client id; unique per broker (a broker drops the older of two connections with one id).
    pub client_id: String,
    /// User name (both schemes).
    pub username: Option<String>,
    /// Password; requires `username`. Never shown by `Debug`.
    pub password: Option<String>,
    /// PEM files for `mqtts://` (refused with `mqtt://`).
    pub tls: TlsFiles,
    /// MQTT keep-alive, 1 s to 65535 s.
    pub keep_alive: Duration,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("tls", &self.tls)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// What `Debug` shows of a password.
pub fn redacted(password: &Option<String>) -> Option<&'static str> {
    password.as_ref().map(|_| "<redacted>")
}

impl ClientConfig {
    /// Settings with defaults: no credentials, no TLS files (system CAs for `mqtts://`),
    /// keep-alive 30 s.
    pub fn new(url: impl Into<String>, client_id: impl Into<String>) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            client_id: client_id.into(),
            username: None,
            password: None,
            tls: TlsFiles::default(),
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }

    /// Checks every setting and reads the TLS files, without connecting: the broker and the
    /// rumqttc options (client id, address, keep-alive, credentials, transport). Errors name
    /// the setting.
    pub fn options(&self) -> Result<(Endpoint, MqttOptions), ConfigError> {
        let ep = Endpoint::parse(&self.url)?;
        check_text("client_id", &self.client_id)?;
        match (&self.username, &self.password) {
            (Some(u), _) => check_text("username", u)?,
            (None, Some(_)) => return Err(ConfigError::invalid("password", "requires a username")),
            (None, None) => {}
        }
        let keep_alive = self.keep_alive.as_secs();
        if !(1..=65_535).contains(&keep_alive) {
            return Err(ConfigError::invalid(
                "keep_alive",
                "must be from 1 s to 65535 s",
            ));
        }
        if ep.tls && ep.is_ipv6_literal() {
            // rustls verifies the certificate against a DNS name; rumqttc passes the host as
            // one, and an address literal never matches.
            return Err(ConfigError::Url(UrlError {
                url: self.url.clone(),
                problem: UrlProblem::Ipv6WithTls,
            }));
        }
        let mut o = MqttOptions::new(self.client_id.clone(), ep.connect_host(), ep.port);
        o.set_keep_alive(Duration::from_secs(keep_alive));
        if let Some(u) = &self.username {
            o.set_credentials(u.clone(), self.password.clone().unwrap_or_default());
        }
        if ep.tls {
            o.set_transport(Transport::tls_with_config(self.tls.load()?));
        } else {
            self.tls.refuse_for_plain()?;
        }
        Ok((ep, o))
    }
}

/// Socket options for a client whose acknowledgements are small and awaited (no Nagle delay),
/// with a bounded connection attempt.
pub fn network_options() -> NetworkOptions {
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(10);
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_setting() {
        type Edit = Box<dyn Fn(&mut ClientConfig)>;
        let cases: Vec<(&str, &str, Edit)> = vec![
            (
                "url",
                "expected mqtt://",
                Box::new(|c| c.url = "http://x".into()),
            ),
            ("url", "use mqtt://", Box::new(|c| c.url = "tcp://x".into())),
            ("url", "port", Box::new(|c| c.url = "mqtt://x:0".into())),
            ("url", "IPv6", Box::new(|c| c.url = "mqtts://[::1]".into())),
            (
                "client_id",
                "empty",
                Box::new(|c| c.client_id = String::new()),
            ),
            (
                "client_id",
                "control",
                Box::new(|c| c.client_id = "a\nb".into()),
            ),
            (
                "client_id",
                "65535",
                Box::new(|c| c.client_id = "x".repeat(65_536)),
            ),
            (
                "username",
                "empty",
                Box::new(|c| c.username = Some(String::new())),
            ),
            (
                "password",
                "username",
                Box::new(|c| c.password = Some("pw".into())),
            ),
            (
                "keep_alive",
                "1 s",
                Box::new(|c| c.keep_alive = Duration::ZERO),
            ),
            (
                "keep_alive",
                "65535",
                Box::new(|c| c.keep_alive = Duration::from_secs(70_000)),
            ),
            (
                "ca_file",
                "mqtts://",
                Box::new(|c| c.tls.ca_file = Some("x".into())),
            ),
            (
                "client_cert",
                "mqtts://",
                Box::new(|c| c.tls.client_cert = Some("x".into())),
            ),
            (
                "ca_file",
                "/nonexistent/ca.pem",
                Box::new(|c| {
                    c.url = "mqtts://x".into();
                    c.tls.ca_file = Some("/nonexistent/ca.pem".into());
                }),
            ),
        ];
        for (setting, needle, edit) in cases {
            let mut c = ClientConfig::new("mqtt://localhost", "c");
            edit(&mut c);
            let e = c.options().unwrap_err();
            assert_eq!(e.setting(), setting, "{e}");
            let text = e.to_string();
            assert!(text.contains(setting), "{text}");
            assert!(text.contains(needle), "{text}");
        }
    }

    #[test]
    fn builds_the_options() {
        let mut c = ClientConfig::new("mqtt://[::1]:1999", "ward-a");
        c.username = Some("u".into());
        c.password = Some("hunter2".into());
        c.keep_alive = Duration::from_secs(5);
        let (ep, o) = c.options().unwrap();
        assert_eq!(ep.port, 1999);
        assert_eq!(o.broker_address(), ("[::1]".to_string(), 1999));
        assert_eq!(o.client_id(), "ward-a");
        assert_eq!(o.keep_alive(), Duration::from_secs(5));
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u", "hunter2")
        );
    }

    #[test]
    fn debug_redacts_the_password() {
        let mut c = ClientConfig::new("mqtt://x", "c");
        c.username = Some("u".into());
        c.password = Some("hunter2".into());
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("redacted"), "{s}");
    }
}
