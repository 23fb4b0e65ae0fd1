//! TLS for `mqtts://`: the CA certificates the broker must chain to (a PEM file, else the
//! system bundle) and an optional client certificate with its key.
//!
//! Files are read and checked when the options are built, so a missing or unusable file fails
//! at start with the setting's name, not at the first connection attempt. The PEM text is
//! handed to rumqttc as read; parsing here only proves that it holds what rumqttc expects.

use std::path::{Path, PathBuf};

use rumqttc::TlsConfiguration;

use crate::ConfigError;

/// Where the system CA bundle may be, when no CA file is given (`SSL_CERT_FILE` is tried
/// first).
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The PEM files of a TLS client; the names are the settings' names in errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `ca_file`: CA certificate(s) the broker's certificate must chain to; default: the system
    /// bundle.
    pub ca_file: Option<PathBuf>,
    /// `client_cert`: client certificate chain (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// `client_key`: the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether any file is set (a plain `mqtt://` connection refuses them).
    pub fn any(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    /// Refuses TLS files for a plain connection: naming the first one set.
    pub fn refuse_for_plain(&self) -> Result<(), ConfigError> {
        for (setting, set) in [
            ("ca_file", self.ca_file.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
        ] {
            if set {
                return Err(ConfigError::invalid(setting, "only used with mqtts://"));
            }
        }
        Ok(())
    }

    /// Reads and checks the files: rumqttc's TLS configuration (no ALPN).
    pub fn load(&self) -> Result<TlsConfiguration, ConfigError> {
        let ca =
            match &self.ca_file {
                Some(p) => read_pem_certs("ca_file", p)?,
                None => match system_ca_bundle() {
                    Some(p) => read_pem_certs("ca_file", &p)?,
                    None => return Err(ConfigError::invalid(
                        "ca_file",
                        "not given and no system CA bundle found (install ca-certificates or set \
                         ca_file)",
                    )),
                },
            };
        let client_auth = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => Some((
                read_pem_certs("client_cert", c)?,
                read_pem_key("client_key", k)?,
            )),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "client_key",
                    "required with client_cert",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "client_cert",
                    "required with client_key",
                ))
            }
        };
        Ok(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        })
    }
}

/// The system CA bundle: `SSL_CERT_FILE` if it names a file, else the first of
/// [`SYSTEM_CA_BUNDLES`] that exists.
pub fn system_ca_bundle() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::file(setting, path, e))
}

/// A PEM file holding at least one certificate, as read.
pub fn read_pem_certs(setting: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let pem = read(setting, path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::file(setting, path, e))?;
    if certs.is_empty() {
        return Err(ConfigError::file(setting, path, "no PEM certificate found"));
    }
    Ok(pem)
}

/// A PEM file holding a private key (PKCS#8, PKCS#1 or SEC1), as read.
pub fn read_pem_key(setting: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let pem = read(setting, path)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(_)) => Ok(pem),
        Ok(None) => Err(ConfigError::file(
            setting,
            path,
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) found",
        )),
        Err(e) => Err(ConfigError::file(setting, path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A syntactically valid PEM certificate block: rustls-pemfile checks the armour and the
    // base64, not the DER inside.
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    #[test]
    fn files_are_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&cert, CERT).unwrap();
        std::fs::write(&key, KEY).unwrap();
        std::fs::write(&junk, "hello").unwrap();
        let files = |ca: Option<&Path>, c: Option<&Path>, k: Option<&Path>| TlsFiles {
            ca_file: ca.map(Path::to_path_buf),
            client_cert: c.map(Path::to_path_buf),
            client_key: k.map(Path::to_path_buf),
        };
        let ok = files(Some(&cert), Some(&cert), Some(&key)).load().unwrap();
        let TlsConfiguration::Simple {
            ca, client_auth, ..
        } = ok
        else {
            panic!("not Simple")
        };
        assert_eq!(ca, CERT.as_bytes());
        assert_eq!(client_auth.unwrap().1, KEY.as_bytes());

        let missing = dir.path().join("missing.pem");
        for (f, setting, needle) in [
            (files(Some(&missing), None, None), "ca_file", "missing.pem"),
            (
                files(Some(&junk), None, None),
                "ca_file",
                "no PEM certificate",
            ),
            (
                files(Some(&cert), Some(&cert), None),
                "client_key",
                "required",
            ),
            (
                files(Some(&cert), None, Some(&key)),
                "client_cert",
                "required",
            ),
            (
                files(Some(&cert), Some(&junk), Some(&key)),
                "client_cert",
                "junk.pem",
            ),
            (
                files(Some(&cert), Some(&cert), Some(&junk)),
                "client_key",
                "private key",
            ),
        ] {
            let e = f.load().unwrap_err();
            assert_eq!(e.setting(), setting, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
            assert!(e.to_string().contains(setting), "{e}");
        }
    }

    #[test]
    fn plain_connections_refuse_tls_files() {
        assert!(TlsFiles::default().refuse_for_plain().is_ok());
        let f = TlsFiles {
            client_key: Some("k".into()),
            ..TlsFiles::default()
        };
        assert!(f.any());
        assert_eq!(f.refuse_for_plain().unwrap_err().setting(), "client_key");
    }
}
