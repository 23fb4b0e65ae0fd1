//! Remote-access domains: rule data, not code. A device that reached out to a name under one
//! of these domains (a fact whose field has the [`Attribute::ContactedName`] role: a TLS
//! ClientHello's server name, a DNS question) shows remote-access evidence, which
//! [`super::service::contacted_remote_access`] weighs against the covering contract's policy.
//!
//! The bundled list (`collector/data/remote_access_domains.toml`) names remote-desktop products
//! and manufacturers' remote-service platforms, each with the public document that names its
//! domain; `[flags] remote_access_domains_file` adds a site's own entries, replaces bundled
//! ones with the same domain, or removes them (`enabled = false`), loaded once with the
//! configuration ([`crate::config::Config::resolve`]).

use std::path::Path;

use serde::{Deserialize, Serialize};
use ward_protocols::{Attribute, Field};

use crate::store::DeviceView;

/// The bundled list's text.
pub const BUNDLED: &str = include_str!("../../../data/remote_access_domains.toml");

/// What kind of remote access a domain serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    /// A third-party remote-control product (TeamViewer, AnyDesk…): its relays are never a
    /// contract's listed gateway.
    RemoteDesktop,
    /// A manufacturer's own remote-service platform, which a contract may list as its gateway.
    VendorRemoteService,
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteDomain {
    /// The domain: a name matches when it is this or ends with `.` and this.
    pub domain: String,
    /// The product, as the evidence names it.
    #[serde(default)]
    pub product: String,
    /// Remote desktop or a vendor's remote service.
    #[serde(default = "default_kind")]
    pub kind: RemoteKind,
    /// The public document naming the domain.
    #[serde(default)]
    pub source: String,
    /// `false` in a site file removes the bundled entry with this domain.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

fn default_kind() -> RemoteKind {
    RemoteKind::RemoteDesktop
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    domain: Vec<RemoteDomain>,
}

/// Error in a remote-access domain list.
#[derive(Debug, thiserror::Error)]
pub enum DomainListError {
    /// Not valid TOML or an unknown key.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// An entry that cannot match anything or says nothing.
    #[error("entry {domain:?}: {what}")]
    Entry {
        /// The entry's domain.
        domain: String,
        /// What is wrong.
        what: &'static str,
    },
    /// The file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
}

/// The list in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteDomains {
    entries: Vec<RemoteDomain>,
}

impl Default for RemoteDomains {
    /// The bundled list (a test proves it parses).
    fn default() -> Self {
        RemoteDomains::bundled().unwrap_or(RemoteDomains {
            entries: Vec::new(),
        })
    }
}

fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn parse(text: &str) -> Result<Vec<RemoteDomain>, DomainListError> {
    let file: File = toml::from_str(text)?;
    let mut out = Vec::with_capacity(file.domain.len());
    for mut d in file.domain {
        d.domain = normalise(&d.domain);
        let bad = |what| DomainListError::Entry {
            domain: d.domain.clone(),
            what,
        };
        // A domain needs a dot (no bare TLD) and host-name characters only.
        let ok = d.domain.contains('.')
            && !d.domain.starts_with('.')
            && d.domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return Err(bad("domain must be a host name with at least one dot"));
        }
        if d.enabled && (d.product.trim().is_empty() || d.source.trim().is_empty()) {
            return Err(bad("product and source are required"));
        }
        out.push(d);
    }
    Ok(out)
}

impl RemoteDomains {
    /// The bundled list.
    pub fn bundled() -> Result<Self, DomainListError> {
        Ok(RemoteDomains {
            entries: parse(BUNDLED)?.into_iter().filter(|d| d.enabled).collect(),
        })
    }

    /// Applies a site file's entries: a new domain is added, one already listed is replaced,
    /// `enabled = false` removes it.
    pub fn extend_from_str(&mut self, text: &str) -> Result<(), DomainListError> {
        for d in parse(text)? {
            self.entries.retain(|e| e.domain != d.domain);
            if d.enabled {
                self.entries.push(d);
            }
        }
        Ok(())
    }

    /// [`RemoteDomains::extend_from_str`] with a file's text.
    pub fn extend_from_file(&mut self, path: &Path) -> Result<(), DomainListError> {
        let text = std::fs::read_to_string(path).map_err(|error| DomainListError::Read {
            path: path.display().to_string(),
            error,
        })?;
        self.extend_from_str(&text)
    }

    /// The entries in effect.
    pub fn entries(&self) -> &[RemoteDomain] {
        &self.entries
    }

    /// The entry `name` falls under (the longest matching domain), if any.
    pub fn find(&self, name: &str) -> Option<&RemoteDomain> {
        let n = normalise(name);
        self.entries
            .iter()
            .filter(|d| {
                n == d.domain
                    || (n.len() > d.domain.len()
                        && n.ends_with(&d.domain)
                        && n.as_bytes().get(n.len() - d.domain.len() - 1) == Some(&b'.'))
            })
            .max_by_key(|d| d.domain.len())
    }
}

/// One contacted name of a device that falls under a remote-access domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactedRemote<'a> {
    /// The name the device reached out to, as seen.
    pub name: &'a str,
    /// The field it came from (its wire name, for the evidence).
    pub field: Field,
    /// Last seen, µs.
    pub last_us: i64,
    /// The list entry it matched.
    pub entry: &'a RemoteDomain,
}

/// Every value of `d`'s contacted-name facts ([`Attribute::ContactedName`]: asked of the field,
/// never named) that falls under a domain of `list`.
pub fn contacted<'a>(d: &'a DeviceView, list: &'a RemoteDomains) -> Vec<ContactedRemote<'a>> {
    let mut out = Vec::new();
    for f in Field::ALL
        .iter()
        .filter(|f| f.attribute() == Attribute::ContactedName)
    {
        for v in d.attributes.get(f.name()).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(entry) = list.find(&v.value) {
                out.push(ContactedRemote {
                    name: v.value.as_str(),
                    field: *f,
                    last_us: v.last_us,
                    entry,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_list_parses_and_every_entry_names_its_source() {
        let l = RemoteDomains::bundled().unwrap();
        assert!(l.entries().len() >= 10);
        assert_eq!(RemoteDomains::default(), l);
        for e in l.entries() {
            assert!(!e.source.is_empty() && !e.product.is_empty(), "{e:?}");
        }
        assert!(l
            .entries()
            .iter()
            .any(|e| e.kind == RemoteKind::VendorRemoteService));
    }

    #[test]
    fn names_match_whole_labels_case_insensitively_longest_first() {
        let l = RemoteDomains::bundled().unwrap();
        let product = |n: &str| l.find(n).map(|e| e.product.as_str());
        assert_eq!(product("router15.teamviewer.com"), Some("TeamViewer"));
        assert_eq!(product("ROUTER15.TeamViewer.COM."), Some("TeamViewer"));
        assert_eq!(product("teamviewer.com"), Some("TeamViewer"));
        // Not a label boundary, or a different domain.
        assert_eq!(product("notteamviewer.com"), None);
        assert_eq!(product("teamviewer.com.example"), None);
        assert_eq!(product("relay.net.anydesk.com"), Some("AnyDesk"));
        assert_eq!(product("anydesk.com"), None);
    }

    #[test]
    fn a_site_file_adds_replaces_and_removes() {
        let mut l = RemoteDomains::bundled().unwrap();
        l.extend_from_str(
            r#"
[[domain]]
domain = "remote.example-medical.com"
product = "Example Medical remote service"
kind = "vendor_remote_service"
source = "Example Medical service manual, chapter 9"

[[domain]]
domain = "teamviewer.com"
product = "TeamViewer (site note)"
source = "site policy"

[[domain]]
domain = "splashtop.com"
enabled = false
"#,
        )
        .unwrap();
        assert_eq!(
            l.find("a.remote.example-medical.com").map(|e| e.kind),
            Some(RemoteKind::VendorRemoteService)
        );
        assert_eq!(
            l.find("router1.teamviewer.com").map(|e| e.product.as_str()),
            Some("TeamViewer (site note)")
        );
        assert!(l.find("x.splashtop.com").is_none());
        for bad in [
            "[[domain]]\ndomain = \"com\"\nproduct = \"x\"\nsource = \"y\"\n",
            "[[domain]]\ndomain = \"a.example\"\nproduct = \"x\"\n",
            "[[domain]]\ndomain = \"a.example\"\nproduct = \"x\"\nsource = \"y\"\nport = 1\n",
            "[[domain]]\ndomain = \"a b.example\"\nproduct = \"x\"\nsource = \"y\"\n",
        ] {
            assert!(l.extend_from_str(bad).is_err(), "{bad}");
        }
    }
}
