//! ward's MQTT client plumbing, shared by every component that talks to a broker: the agent's
//! output, the collector's external-broker source and its alert publisher.
//!
//! - [`endpoint`]: broker URLs, `mqtt://host[:port]` and `mqtts://host[:port]`.
//! - [`client`]: the settings every client has ([`ClientConfig`]: URL, client id, credentials,
//!   TLS files, keep-alive), their checks, and the rumqttc options they make.
//! - [`tls`]: CA certificates (a PEM file or the system bundle) and client certificates.
//! - [`backoff`]: reconnection delays with jitter.
//! - [`poll`]: polling rumqttc's event loop from a `select!` without cancelling it halfway.
//! - [`topic`]: the `ward/v1/…` topics, built and parsed.
//!
//! Architecture invariant: no connection is made here, and nothing runs in the background;
//! what each client does with its connection (spooling, acknowledging, republishing) is the
//! client's. The only I/O is reading the TLS files named by the settings. Errors name the
//! setting at fault and never carry a password or a received topic's text.

#![warn(missing_docs)]

pub mod backoff;
pub mod client;
pub mod endpoint;
pub mod poll;
pub mod tls;
pub mod topic;

pub use backoff::Backoff;
pub use client::{ClientConfig, ConfigError};
pub use endpoint::{Endpoint, UrlError, UrlProblem};
pub use tls::TlsFiles;
pub use topic::{AgentTopic, AlertsTopic, Kind, TopicError};
