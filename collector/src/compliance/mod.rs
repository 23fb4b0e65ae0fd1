//! Compliance: linking devices to assets and contracts ([`link`]), the flags raised on what
//! is outside contracted terms ([`flags`]), the per-device summaries ([`summary`]), the order of
//! software versions and advisory ranges ([`version`]), vendor name aliases
//! ([`vendors`]) matching a device to an advisory's products with them ([`matching`]) and the fixed
//! versions remediation prose states ([`fixes`]); advisories that name components by PURL or CPE
//! matched through imported SBOMs ([`sbom`]).

pub mod fixes;
pub mod flags;
pub mod identity;
pub mod link;
pub mod matching;
pub mod sbom;
pub mod summary;
pub mod vendors;
pub mod version;
