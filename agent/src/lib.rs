//! The ward agent as a library: live capture (`capture`) and capture files (`pcap`), the engine
//! that turns frames into evidence and a device table (`engine`, `devices`, `rules`), and the
//! outputs (`output`: disk spool, MQTT, JSON lines) that `run` wires together. The binary
//! (`main.rs`) is the command line over these.
#![forbid(unsafe_code)]

pub mod capture;
pub mod config;
pub mod devices;
pub mod engine;
pub mod observation {
    //! The observation schema; defined in [`ward_protocols::schema::observation`] so the
    //! collector shares it.
    pub use ward_protocols::schema::observation::*;
}
pub mod oui;
pub mod output;
pub mod pcap;
pub mod pipeline;
pub mod privileges;
pub mod products;
pub mod rules;
pub mod run;
pub mod workers;
