//! Compliance: linking devices to assets and contracts ([`link`]), the flags raised on what
//! is outside contracted terms ([`flags`]) and the per-device summaries ([`summary`]).

pub mod flags;
pub mod identity;
pub mod link;
pub mod summary;
