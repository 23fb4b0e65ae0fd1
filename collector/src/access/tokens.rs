//! API bearer tokens: `ward_<id>_<secret>`. Only the SHA-256 of the secret is stored, so a
//! copy of the database does not grant access; the id lets the check look up one row instead of
//! hashing against every token.

use sha2::{Digest, Sha256};

use crate::import::pattern::Pattern;
use crate::store::{Store, StoreError, TokenRecord};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including token and evaluation endpoints.
    Admin,
    /// Read everything.
    ClinicalEngineering,
    /// Read only the named manufacturers' devices, their flags and contracts.
    Vendor,
}

impl Role {
    /// Stored and CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ClinicalEngineering => "clinical_engineering",
            Role::Vendor => "vendor",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "clinical_engineering" => Ok(Role::ClinicalEngineering),
            "vendor" => Ok(Role::Vendor),
            other => Err(format!(
                "unknown role {other:?} (expected admin, clinical_engineering or vendor)"
            )),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token id.
    pub token_id: String,
    /// Token name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// For vendors: the manufacturer patterns (globs, case-insensitive) they are confined to.
    pub vendors: Option<Vec<String>>,
}

impl Principal {
    /// A principal for local CLI use (reports run by someone with the database file).
    pub fn local_admin() -> Principal {
        Principal {
            token_id: "local".into(),
            name: "local".into(),
            role: Role::Admin,
            vendors: None,
        }
    }

    /// A vendor principal for CLI reports (`--vendor`).
    pub fn vendor(names: &[String]) -> Principal {
        Principal {
            token_id: "local".into(),
            name: "local".into(),
            role: Role::Vendor,
            vendors: Some(names.to_vec()),
        }
    }
}

/// Why a token was refused. Deliberately coarse towards the caller (the API answers 401 for
/// all of them); the variant is logged.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not `ward_<id>_<secret>`.
    #[error("malformed token")]
    Malformed,
    /// No such id, or the secret does not match.
    #[error("unknown token")]
    Unknown,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Revoked.
    #[error("token revoked")]
    Revoked,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// Creates a token; returns its record and the token text (shown once, never stored).
pub fn create(
    store: &mut dyn Store,
    name: &str,
    role: Role,
    vendors: &[String],
    expires_us: Option<i64>,
    now_us: i64,
) -> anyhow::Result<(TokenRecord, String)> {
    anyhow::ensure!(!name.trim().is_empty(), "a token needs a --name");
    if role == Role::Vendor {
        anyhow::ensure!(
            !vendors.is_empty(),
            "a vendor token needs at least one --vendor (manufacturer name)"
        );
        for v in vendors {
            Pattern::new(v).map_err(|e| anyhow::anyhow!("--vendor {v:?}: {e}"))?;
        }
    } else {
        anyhow::ensure!(vendors.is_empty(), "--vendor only applies to vendor tokens");
    }
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    let (id, secret) = (hex(&id), hex(&secret));
    let rec = TokenRecord {
        id: id.clone(),
        name: name.to_string(),
        role: role.as_str().to_string(),
        vendors: vendors.to_vec(),
        secret_sha256: sha256_hex(&secret),
        created_us: now_us,
        expires_us,
        revoked_us: None,
    };
    store.token_insert(&rec)?;
    Ok((rec, format!("ward_{id}_{secret}")))
}

/// Checks a bearer token.
pub fn authenticate(store: &dyn Store, token: &str, now_us: i64) -> Result<Principal, AuthError> {
    let rest = token
        .trim()
        .strip_prefix("ward_")
        .ok_or(AuthError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(AuthError::Malformed)?;
    if id.len() != 16 || secret.len() != 64 {
        return Err(AuthError::Malformed);
    }
    let rec = store.token_get(id)?.ok_or(AuthError::Unknown)?;
    // Both sides are hex digests of fixed length; comparing them leaks nothing useful about the
    // secret.
    if rec.secret_sha256 != sha256_hex(secret) {
        return Err(AuthError::Unknown);
    }
    if rec.revoked_us.is_some() {
        return Err(AuthError::Revoked);
    }
    if rec.expires_us.is_some_and(|e| e <= now_us) {
        return Err(AuthError::Expired);
    }
    let role: Role = rec.role.parse().map_err(|_| AuthError::Unknown)?;
    Ok(Principal {
        token_id: rec.id,
        name: rec.name,
        role,
        vendors: (role == Role::Vendor).then(|| rec.vendors.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn tokens_authenticate_until_revoked_or_expired() {
        let mut s = SqliteStore::in_memory().unwrap();
        let (rec, tok) = create(&mut s, "ce", Role::ClinicalEngineering, &[], None, 0).unwrap();
        let p = authenticate(&s, &tok, 1).unwrap();
        assert_eq!(p.role, Role::ClinicalEngineering);
        assert!(matches!(
            authenticate(&s, &tok.replace(&rec.id, "0000000000000000"), 1),
            Err(AuthError::Unknown)
        ));
        let mut wrong = tok.clone();
        wrong.pop();
        wrong.push(if tok.ends_with('0') { '1' } else { '0' });
        assert!(matches!(
            authenticate(&s, &wrong, 1),
            Err(AuthError::Unknown)
        ));
        assert!(matches!(
            authenticate(&s, "Bearer x", 1),
            Err(AuthError::Malformed)
        ));
        assert!(s.token_revoke(&rec.id, 5).unwrap());
        assert!(matches!(authenticate(&s, &tok, 6), Err(AuthError::Revoked)));

        let (_, v) = create(
            &mut s,
            "siemens",
            Role::Vendor,
            &["Siemens*".into()],
            Some(100),
            0,
        )
        .unwrap();
        let p = authenticate(&s, &v, 99).unwrap();
        assert_eq!(p.vendors, Some(vec!["Siemens*".to_string()]));
        assert!(matches!(authenticate(&s, &v, 100), Err(AuthError::Expired)));
        assert!(create(&mut s, "x", Role::Vendor, &[], None, 0).is_err());
        assert!(create(&mut s, "x", Role::Admin, &["GE".into()], None, 0).is_err());
    }
}
