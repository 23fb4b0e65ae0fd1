//! Compliance: linking devices to assets and contracts ([`link`]), the flags raised on what
//! is outside contracted terms ([`flags`]), the per-device summaries ([`summary`]), the order of
//! software versions and advisory ranges ([`version`]) and vendor name
//! aliases ([`vendors`]).

pub mod flags;
pub mod identity;
pub mod link;
pub mod summary;
pub mod vendors;
pub mod version;
