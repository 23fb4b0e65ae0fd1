//! What the collector imports from files: contracts ([`contracts`]), the CMMS asset list
//! ([`assets`]), the records both become ([`model`]) and the vendor/model glob patterns they
//! use ([`pattern`]).

pub mod assets;
pub mod contracts;
pub mod model;
pub mod pattern;
