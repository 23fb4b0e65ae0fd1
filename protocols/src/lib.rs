//! Parsers and passive fingerprint extraction shared by the ward agent and collector.
//!
//! This crate does no I/O and no async: it turns bytes into [`Evidence`]. Every parser follows
//! smoltcp's `wire` contract: untrusted input goes through a `new_checked` constructor (or a
//! streaming decoder that checks lengths itself), and once that succeeds no accessor panics.
//! Indexing, `unwrap`, `expect` and `panic!` are denied outside tests so that contract is checked
//! by the compiler rather than by review.
//!
//! Application protocols are found by structure through [`registry`]: one module per protocol,
//! each exporting an [`AppDecoder`]; the fields they may extract, and which device each
//! describes, are rows of [`Field`].
//!
//! Patient data is unobtainable by construction: extraction is by allow-list. The only values
//! this crate ever copies out of a packet are the ones named by [`Field`]; the HL7 and DICOM
//! decoders skip every other value without reading it.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod astm;
pub mod bcc;
pub mod cdp;
pub mod dhcp;
pub mod dhcpv6;
pub mod dicom;
pub mod dissect;
pub mod dns;
pub mod error;
pub mod evidence;
pub mod fhir;
pub mod frame;
#[doc(hidden)]
pub mod fuzz_harness;
pub mod hl7;
pub mod http;
pub mod intellivue;
pub mod lldp;
pub mod llmnr;
pub mod mdns;
pub mod nbns;
pub mod poct1a;
pub mod reassembly;
pub mod registry;
pub mod roles;
pub mod schema;
pub mod sdc;
pub mod snmp;
pub mod ssdp;
pub mod ssh;
pub mod tls;
pub mod upnp;

pub use error::{DecodeError, Layer};
pub use evidence::{
    Attribute, Describes, Direction, Endpoints, Evidence, Fact, Field, Identity, MacAddr, Party,
    Protocol,
};
pub use registry::{AppDecoder, Probe};

/// A decoder for one TCP connection, fed each direction's in-order bytes by the reassembler.
///
/// One decoder value serves both directions (DICOM needs the A-ASSOCIATE-AC of one direction to
/// read the datasets of the other); `side` says which direction `data` belongs to. For each
/// side, `feed` sees every byte the decoder has not yet consumed (the unconsumed tail from the last
/// call followed by new data) and returns how many bytes it consumed. Bytes it leaves are offered
/// again with more data appended; the reassembler bounds how much it keeps, and once that bound
/// is reached it calls `feed` with `at_limit = true`, after which the decoder must consume
/// something or give up (return [`Feed::Done`]).
pub trait StreamDecoder {
    /// Decodes what it can of `data`, pushing extracted facts into `facts`.
    fn feed(&mut self, side: Direction, data: &[u8], at_limit: bool, facts: &mut Vec<Fact>)
        -> Feed;

    /// The side (as `feed` was told it) that opened the conversation, when the messages say so
    /// — a DICOM A-ASSOCIATE-RQ always comes from the requestor. The dissector asks after each
    /// `feed` when the capture missed the TCP handshake, and from then on reports directions
    /// (and so attributes [`Describes::Client`]/[`Describes::Server`] facts) from it. The
    /// default: the messages do not tell.
    fn client(&self) -> Option<Direction> {
        None
    }
}

/// What a [`StreamDecoder`] did with the bytes it was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Consumed this many bytes from the front; wants more data.
    Consumed(usize),
    /// Nothing more of interest can come from this direction; stop feeding it (the bytes it was
    /// offered count as consumed).
    Done,
}
