//! The message schemas agents and collectors exchange (`ward.observation.v1`,
//! `ward.status.v1`). They live here, beside the parsers, because both sides must agree on
//! them byte for byte; documented for other consumers in `docs/schema/`.

pub mod observation;
pub mod status;
