//! MQTT transport on the collector's side: the embedded endpoint agents publish to
//! ([`broker`]) and the ingest source that reads either it or an external broker ([`source`]).

pub mod broker;
pub mod source;
