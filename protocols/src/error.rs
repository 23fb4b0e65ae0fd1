//! Typed decode errors that say which layer failed, where, and why (etherparse's style).

use core::fmt;

use crate::evidence::Protocol;

/// The protocol layer a [`DecodeError`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Link layer framing (Ethernet, SLL, SLL2, null/loopback).
    Link,
    /// IPv4, IPv6 or ARP.
    Network,
    /// TCP or UDP.
    Transport,
    /// An application protocol's framing or content (the error's `what` says which part, e.g.
    /// a DICOM PDU or dataset element).
    App(Protocol),
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Link => f.write_str("link"),
            Layer::Network => f.write_str("network"),
            Layer::Transport => f.write_str("transport"),
            Layer::App(p) => f.write_str(p.name()),
        }
    }
}

/// A decode failure: the layer, the byte offset (from the start of the buffer handed to that
/// layer's parser) and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends before a structure that starts at `offset` and needs `needed` bytes.
    #[error("{layer}: truncated at offset {offset}: need {needed} bytes, have {available}")]
    Truncated {
        /// Layer that needed the bytes.
        layer: Layer,
        /// Offset where the truncated structure starts.
        offset: usize,
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes available from `offset`.
        available: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("{layer}: invalid {what} at offset {offset}")]
    Invalid {
        /// Layer of the field.
        layer: Layer,
        /// Offset of the field.
        offset: usize,
        /// Which field, in words.
        what: &'static str,
    },
    /// The bytes are well formed but of a kind this crate does not decode.
    #[error("{layer}: unsupported {what}")]
    Unsupported {
        /// Layer that cannot go on.
        layer: Layer,
        /// What is not supported.
        what: &'static str,
    },
}

impl DecodeError {
    /// Shorthand used by the checked views: `need` bytes from `offset` in a buffer of `len`.
    pub(crate) fn truncated(layer: Layer, offset: usize, needed: usize, len: usize) -> Self {
        DecodeError::Truncated {
            layer,
            offset,
            needed,
            available: len.saturating_sub(offset),
        }
    }

    /// The layer the error comes from.
    pub fn layer(&self) -> Layer {
        match self {
            DecodeError::Truncated { layer, .. }
            | DecodeError::Invalid { layer, .. }
            | DecodeError::Unsupported { layer, .. } => *layer,
        }
    }
}
